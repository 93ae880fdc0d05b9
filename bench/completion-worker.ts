// The receiving side of bench/completion.ts, run in createWorkerPool() workers: accepts, keeps
// RECVS 64-byte receives posted (re-posted as each completes) and grants the sender CREDIT more
// sends in a 4-byte message every CREDIT receives (the sender never outruns the posted receives:
// on iWARP a send with no receive posted is fatal).
import type { RdmaEndpoint } from '../src/providers/index.js';

export const RECVS = 512;
export const CREDIT = 256;
export const SIZE = 64;

let received = 0;

export default async function onConnection(ep: RdmaEndpoint): Promise<void> {
  const mr = ep.registerMemory(RECVS * SIZE + SIZE, { localWrite: true });
  for (let i = 0; i < RECVS; i++) ep.postRecv(i, { mr, offset: i * SIZE, length: SIZE });
  let n = 0;
  ep.onCompletions((batch) => {
    for (const wc of batch) {
      if (wc.opcode !== 'recv' || wc.status !== 'success') continue;
      received++;
      ep.postRecv(wc.wrId, { mr, offset: wc.wrId * SIZE, length: SIZE });
      if (++n % CREDIT === 0) ep.postSend(1e9 + n, [{ mr, offset: RECVS * SIZE, length: 4 }], { signaled: false });
    }
  });
  ep.on('error', () => {});
  await ep.accept();
}

export function stats(): { received: number } {
  return { received };
}
