// createWorkerPool(): per-CPU workers for a verbs server. One worker_threads worker per CQ set
// (worker.ts); a listener in the main thread hands each connect request to a worker
// (round-robin) with CmId.detach() / EventChannel.adoptId() = rdma_migrate_id, and that
// connection's CM events and completions are handled on the worker from then on. A connection
// never migrates twice (a handle is adopted at most once). A worker that dies takes its
// connections down (the addon's env cleanup destroys its cm_ids and QPs: the peers see a
// disconnect); the others keep serving, and new connections go to the live ones.
import { EventEmitter } from 'node:events';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import * as native from '../../../native/index.js';
import type { CmEvent } from '../../../native/index.js';
import type { CqSetStats } from '../../../completion/pool.js';
import type { RdmaListener } from '../types.js';
import { RdmaError } from '../errors.js';
import { VerbsListener, type VerbsOptions, VerbsProviderImpl } from './provider.js';

export interface WorkerPoolOptions {
  /** Number of workers (default 2). */
  workers?: number;
  /** The module each worker loads; its default export handles a connection (see worker.ts). */
  module: string | URL;
  verbs?: VerbsOptions;
  /** How long close() lets workers disconnect gracefully before terminating them (default 10 s). */
  closeTimeoutMs?: number;
}

export interface WorkerStats {
  index: number;
  threadId: number;
  connections: number;
  /** The worker's completion pool per device (one CQ each, on comp vector = index). */
  pools: Record<string, CqSetStats[]>;
  /** What the worker module's `stats()` export returned, if any. */
  user?: unknown;
}

interface Slot {
  index: number;
  worker: Worker;
  threadId: number;
  alive: boolean;
  handles: Set<bigint>;
  waiters: Map<number, (s: WorkerStats) => void>;
  exited: Promise<number>;
  closed?: () => void;
}

/** 'message' (worker index, data) from ctx.post(); 'workerExit' (index, exit code); 'error'. */
export class VerbsWorkerPool extends EventEmitter {
  private readonly slots: Slot[] = [];
  private readonly rdmaListeners = new Set<VerbsListener>();
  private readonly provider = new VerbsProviderImpl();
  private next = 0;
  private seq = 0;
  private closing = false;

  constructor(private readonly options: WorkerPoolOptions) {
    super();
  }

  /** Starts the workers; resolves when each has loaded the module. */
  async start(): Promise<void> {
    const n = this.options.workers ?? 2;
    if (!Number.isInteger(n) || n < 1) throw new RdmaError('ERR_OUT_OF_RANGE', 'workers must be a positive integer');
    const mod = this.options.module instanceof URL ? this.options.module.href
      : this.options.module.startsWith('file:') ? this.options.module : pathToFileURL(this.options.module).href;
    const script = fileURLToPath(new URL('./worker.js', import.meta.url));
    const ready: Promise<void>[] = [];
    for (let index = 0; index < n; index++) {
      const worker = new Worker(script, { workerData: { index, module: mod, verbs: this.options.verbs } });
      const slot: Slot = { index, worker, threadId: worker.threadId, alive: true, handles: new Set(), waiters: new Map(), exited: undefined as unknown as Promise<number> };
      slot.exited = new Promise((resolve) => worker.once('exit', (code) => {
        slot.alive = false;
        // ids handed over but not adopted before the worker died
        for (const h of slot.handles) native.destroyDetachedId(h);
        slot.handles.clear();
        slot.closed?.();
        this.emit('workerExit', index, code);
        resolve(code);
      }));
      ready.push(new Promise((resolve, reject) => {
        worker.once('error', reject);
        worker.on('message', (m: { type: string; handle?: bigint; seq?: number; data?: unknown }) => {
          if (m.type === 'ready') { worker.off('error', reject); worker.on('error', (err) => this.emit('error', err)); resolve(); }
          else if (m.type === 'adopted') slot.handles.delete(m.handle!);
          else if (m.type === 'stats') { slot.waiters.get(m.seq!)?.(m as unknown as WorkerStats); slot.waiters.delete(m.seq!); }
          else if (m.type === 'user') this.emit('message', index, m.data);
          else if (m.type === 'closed') slot.closed?.();
        });
      }));
      this.slots.push(slot);
    }
    try {
      await Promise.all(ready);
    } catch (err) {
      await Promise.all(this.slots.map((s) => s.worker.terminate()));
      throw err;
    }
  }

  get workers(): ReadonlyArray<{ index: number; threadId: number; alive: boolean }> {
    return this.slots.map((s) => ({ index: s.index, threadId: s.threadId, alive: s.alive }));
  }

  /** A main-thread rdma_cm listener whose connections are handed to the workers. */
  async listen(opts: { host: string; port: number; backlog?: number }): Promise<RdmaListener> {
    if (this.closing) throw new RdmaError('ERR_INVALID_STATE', 'the worker pool is closing');
    let listener!: VerbsListener;
    const id = this.provider.cm.add((ch) => ch.createId(), (e) => {
      if (e.type === 'CONNECT_REQUEST' && e.id) this.handOff(e);
      else if (e.type === 'DEVICE_REMOVAL') listener.deviceRemoved();
    });
    listener = new VerbsListener(this.provider, id);
    try {
      id.bind(opts.host, opts.port);
      id.listen(opts.backlog ?? 128);
    } catch (err) {
      this.provider.cm.remove(id);
      if (err instanceof Error) err.message = `listen on ${opts.host}:${opts.port}: ${err.message}`;
      throw err;
    }
    this.rdmaListeners.add(listener);
    return listener;
  }

  private handOff(e: CmEvent): void {
    const id = e.id!;
    const live = this.slots.filter((s) => s.alive);
    if (!live.length || this.closing) {
      try { id.reject(); } catch { /* gone */ }
      id.close();
      return;
    }
    const slot = live[this.next++ % live.length]!;
    const handle = id.detach();
    slot.handles.add(handle);
    slot.worker.postMessage({
      type: 'conn', handle, privateData: e.privateData ? new Uint8Array(e.privateData) : undefined,
      initiatorDepth: e.initiatorDepth, responderResources: e.responderResources,
    });
  }

  /** Each live worker's counters (its CQ set, connections, the module's own stats()). */
  async stats(): Promise<WorkerStats[]> {
    return Promise.all(this.slots.filter((s) => s.alive).map((s) => new Promise<WorkerStats>((resolve) => {
      const seq = ++this.seq;
      s.waiters.set(seq, resolve);
      s.worker.postMessage({ type: 'stats', seq });
    })));
  }

  /** Ends one worker (as if it died): its connections go down, the others keep serving. */
  async kill(index: number): Promise<void> {
    const s = this.slots[index];
    if (!s) throw new RdmaError('ERR_OUT_OF_RANGE', `no worker ${index}`);
    if (s.alive) {
      // the worker ends itself (process.exit in a worker ends that thread), as a crash would;
      // terminate() only if it does not within a second
      s.worker.postMessage({ type: 'die' });
      const timer = setTimeout(() => { void s.worker.terminate(); }, 1000);
      await s.exited;
      clearTimeout(timer);
    }
    await s.exited;
  }

  /** Closes the listeners, lets every worker disconnect its connections gracefully, ends them. */
  async close(): Promise<void> {
    this.closing = true;
    for (const l of this.rdmaListeners) await l.close();
    this.rdmaListeners.clear();
    const ms = this.options.closeTimeoutMs ?? 10_000;
    await Promise.all(this.slots.map(async (s) => {
      if (!s.alive) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        s.closed = () => { clearTimeout(timer); resolve(); };
        s.worker.postMessage({ type: 'close' });
      });
      await s.worker.terminate();
      await s.exited;
    }));
  }
}

/** Starts `workers` worker threads for a verbs server (see VerbsWorkerPool). */
export async function createWorkerPool(options: WorkerPoolOptions): Promise<VerbsWorkerPool> {
  if (!native.available) throw new RdmaError('ERR_NATIVE_UNAVAILABLE', `worker pools need the native addon: ${native.reason}`);
  const pool = new VerbsWorkerPool(options);
  await pool.start();
  return pool;
}
