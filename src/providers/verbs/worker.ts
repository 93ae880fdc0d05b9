// The worker side of createWorkerPool() (workers.ts): one worker_threads worker with its own
// rdma_cm event channel and its own completion pool (one CQ on comp vector = its index). The main
// thread's listener hands each connect request over (CmId.detach() there, EventChannel.adoptId()
// here = rdma_migrate_id); from then on every CM event and completion of that connection is
// handled on this thread. The user's module (workerData.module) default-exports the handler:
// `(endpoint, ctx) => void | Promise<void>`; the endpoint is not yet accepted.
import { parentPort, threadId, workerData } from 'node:worker_threads';

import type { RdmaEndpoint } from '../types.js';
import { type VerbsEndpoint, type VerbsOptions, VerbsProviderImpl } from './provider.js';

export interface WorkerContext {
  /** This worker's index in the pool and its threadId. */
  index: number;
  threadId: number;
  /** A message to the pool's 'message' event in the main thread. */
  post(data: unknown): void;
}

export type ConnectionHandler = (endpoint: RdmaEndpoint, ctx: WorkerContext) => void | Promise<void>;

interface Data { index: number; module: string; verbs?: VerbsOptions }

const port = parentPort!;
const data = workerData as Data;
const provider = new VerbsProviderImpl({
  ...data.verbs,
  completion: { ...data.verbs?.completion, cqs: 1, firstCompVector: data.index },
});
const mod = (await import(data.module)) as { default?: ConnectionHandler; stats?: () => unknown };
const handler = mod.default;
if (typeof handler !== 'function') throw new Error(`${data.module}: the default export must be the connection handler`);
const ctx: WorkerContext = { index: data.index, threadId, post: (d) => port.postMessage({ type: 'user', data: d }) };
const live = new Set<VerbsEndpoint>();
let closing = false;

port.on('message', (m: { type: string; handle?: bigint; seq?: number; privateData?: Uint8Array; initiatorDepth?: number; responderResources?: number }) => {
  if (m.type === 'conn') {
    let ep: VerbsEndpoint | undefined;
    try {
      const id = provider.cm.add((ch) => ch.adoptId(m.handle!), (e) => ep?.onCm(e));
      port.postMessage({ type: 'adopted', handle: m.handle });
      ep = provider.requestEndpoint(id, m, false);
    } catch (err) {
      port.postMessage({ type: 'adopted', handle: m.handle, error: (err as Error).message });
      return;
    }
    if (closing) { void ep.reject(); return; }
    const e = ep;
    live.add(e);
    e.once('close', () => live.delete(e));
    Promise.resolve().then(() => handler(e, ctx)).catch((err: Error) => e.destroy(err));
  } else if (m.type === 'stats') {
    port.postMessage({ type: 'stats', seq: m.seq, threadId, index: data.index, connections: live.size, pools: provider.stats(), user: mod.stats?.() });
  } else if (m.type === 'die') {
    // pool.kill(): end this thread from itself (worker.terminate() from another thread can stop
    // it in the middle of a libuv callback of the addon)
    process.exit(1);
  } else if (m.type === 'close') {
    closing = true;
    void Promise.allSettled([...live].map((e) => e.disconnect())).then(() => port.postMessage({ type: 'closed' }));
  }
});
port.postMessage({ type: 'ready', threadId });
