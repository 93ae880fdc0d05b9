// The worker module of workers.test.ts: accepts each connection handed to this worker, echoes
// every message from the receive buffer it landed in (the receive is posted again once the echo
// has gone), and records on which thread each connection's completions were handled.
import { threadId } from 'node:worker_threads';

import type { RdmaEndpoint } from '../../src/providers/index.js';
import type { WorkerContext } from '../../src/providers/verbs/worker.js';

const RECVS = 8;
const SIZE = 4096;

interface ConnStats { peerPort: number; cqIndex: number; completions: number; threads: number[]; echoed: number; errors: string[] }
const conns: ConnStats[] = [];

export default async function onConnection(ep: RdmaEndpoint, ctx: WorkerContext): Promise<void> {
  const mr = ep.registerMemory(RECVS * SIZE, { localWrite: true });
  const v = ep as unknown as { peerAddress?: { port: number }; cqIndex: number };
  const st: ConnStats = { peerPort: v.peerAddress?.port ?? -1, cqIndex: v.cqIndex, completions: 0, threads: [], echoed: 0, errors: [] };
  conns.push(st);
  for (let i = 0; i < RECVS; i++) ep.postRecv(i, { mr, offset: i * SIZE, length: SIZE });
  ep.onCompletions((batch) => {
    if (!st.threads.includes(threadId)) st.threads.push(threadId);
    for (const wc of batch) {
      st.completions++;
      if (wc.status !== 'success') { if (wc.status !== 'flushed') st.errors.push(`${wc.opcode} ${wc.status}`); continue; }
      if (wc.opcode === 'recv') {
        ep.postSend(100 + wc.wrId, [{ mr, offset: wc.wrId * SIZE, length: wc.byteLength }]);
      } else if (wc.opcode === 'send') {
        st.echoed++;
        const i = wc.wrId - 100;
        ep.postRecv(i, { mr, offset: i * SIZE, length: SIZE });
      }
    }
  });
  ep.on('error', (err: Error) => st.errors.push(`error ${(err as { code?: string }).code}`));
  await ep.accept();
  ctx.post({ accepted: st.peerPort });
}

export function stats(): ConnStats[] {
  return conns;
}
