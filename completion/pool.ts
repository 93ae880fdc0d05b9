// Per-CPU completion queues (docs/architecture.md "Per-CPU completion queues"): a CompletionPool owns
// N completion channels + CQs of one device, each CQ on its own comp vector; a new QP is placed
// on one of them (round-robin, or by the caller's hash for affinity); each batch the addon
// delivers (a struct-of-arrays of up to CQ_BATCH completions) is routed by QP number to that
// QP's sink, in CQ order, so every QP sees its completions in order and in batches.
import { availableParallelism } from 'node:os';
import { threadId } from 'node:worker_threads';

import type { CompletionBatch, CompletionChannel, CompletionQueue, Device } from '../native/index.js';

/** What a QP's owner gives the pool: it is handed the CQ's batch and the indices that are its own. */
export interface CompletionSink {
  /** Completion i of `batch` belongs to this sink (called in CQ order). */
  take(batch: CompletionBatch, i: number): void;
  /** The end of a batch that had completions for this sink. */
  batchDone(): void;
}

export interface CompletionPoolOptions {
  /** Number of CQs (default min(device comp vectors, available CPUs)); clamped to [1, comp vectors]. */
  cqs?: number;
  /** Entries per CQ (default 4096, at most the device's max_cqe). */
  cqe?: number;
  /** The first comp vector to use (default 0): CQ k is on vector (first + k) % vectors. */
  firstCompVector?: number;
  /** Placement of new QPs: 'round-robin' (default) or a hash of the caller's key. */
  placement?: 'round-robin' | ((key: number) => number);
}

/** Counters of one CQ of the pool. */
export interface CqSetStats {
  index: number;
  compVector: number;
  /** worker_threads threadId of the thread that polls this CQ (0: the main thread). */
  threadId: number;
  /** QPs on this CQ now, and placed here in all. */
  qps: number;
  placed: number;
  events: number;
  polls: number;
  completions: number;
  batches: number;
  /** The largest batch and the mean batch size. */
  maxBatch: number;
  meanBatch: number;
  /** Completions for a QP no sink knows (a QP destroyed with completions still queued). */
  orphans: number;
}

interface Slot {
  index: number;
  channel: CompletionChannel;
  cq: CompletionQueue;
  sinks: Map<number, CompletionSink>;
  placed: number;
  maxBatch: number;
  orphans: number;
}

/** Handle of one QP's place in the pool. */
export interface CqPlacement {
  readonly cq: CompletionQueue;
  readonly index: number;
  /** Starts routing completions of `qpNum` to the sink (after the QP is created on `cq`). */
  bind(qpNum: number): void;
  /** Stops routing; polls what is queued for the QP first (flushed completions). */
  release(): void;
}

export class CompletionPool {
  private readonly slots: Slot[] = [];
  private next = 0;
  private closedFlag = false;
  private readonly placement: 'round-robin' | ((key: number) => number);

  constructor(readonly device: Device, options: CompletionPoolOptions = {}) {
    const attrs = device.query();
    const vectors = Math.max(1, attrs.numCompVectors);
    const n = Math.max(1, Math.min(vectors, options.cqs ?? Math.min(vectors, availableParallelism())));
    const cqe = Math.min(options.cqe ?? 4096, attrs.maxCqe);
    const first = options.firstCompVector ?? 0;
    this.placement = options.placement ?? 'round-robin';
    try {
      for (let k = 0; k < n; k++) {
        const channel = device.createCompChannel();
        const slot = { index: k, channel, sinks: new Map(), placed: 0, maxBatch: 0, orphans: 0 } as unknown as Slot;
        slot.cq = device.createCq(cqe, channel, (first + k) % vectors, (count) => this.dispatch(slot, count));
        this.slots.push(slot);
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get size(): number {
    return this.slots.length;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Chooses a CQ for a new QP whose completions go to `sink`. */
  place(sink: CompletionSink, key?: number): CqPlacement {
    if (this.closedFlag) throw Object.assign(new Error('the completion pool is closed'), { code: 'ERR_CLOSED' });
    let index: number;
    if (typeof this.placement === 'function' && key !== undefined) {
      index = ((this.placement(key) % this.slots.length) + this.slots.length) % this.slots.length;
    } else {
      index = this.next;
      this.next = (this.next + 1) % this.slots.length;
    }
    const slot = this.slots[index]!;
    slot.placed++;
    let qpNum = -1;
    const pool = this;
    return {
      cq: slot.cq,
      index,
      bind(n: number) {
        qpNum = n;
        slot.sinks.set(n, sink);
      },
      release() {
        if (qpNum < 0) return;
        pool.pollNow(slot);
        slot.sinks.delete(qpNum);
        qpNum = -1;
      },
    };
  }

  /** Polls one CQ by hand (outside its channel's event) and dispatches what it finds. */
  private pollNow(slot: Slot): void {
    if (slot.cq.closed) return;
    for (;;) {
      let n: number;
      try {
        n = slot.cq.poll();
      } catch {
        return; // ERR_REENTRANT: we are inside this CQ's own delivery, which goes on after us
      }
      if (n <= 0) return;
      this.dispatch(slot, n);
    }
  }

  /** Routes one batch: completion i goes to the sink of its QP; each touched sink is flushed once. */
  private dispatch(slot: Slot, count: number): void {
    if (count > slot.maxBatch) slot.maxBatch = count;
    const batch = slot.cq.batch;
    const qpNum = batch.qpNum;
    let lastQp = -1;
    let last: CompletionSink | undefined;
    let touched: CompletionSink[] | undefined;
    for (let i = 0; i < count; i++) {
      const q = qpNum[i]!;
      if (q !== lastQp) {
        lastQp = q;
        last = slot.sinks.get(q);
        if (last) {
          if (!touched) touched = [last];
          else if (!touched.includes(last)) touched.push(last);
        }
      }
      if (last) last.take(batch, i);
      else slot.orphans++;
    }
    if (touched) for (const s of touched) s.batchDone();
  }

  stats(): CqSetStats[] {
    return this.slots.map((s) => {
      const st = s.cq.closed ? { events: 0, polls: 0, completions: 0, batches: 0, compVector: -1 } : s.cq.stats();
      return {
        index: s.index, compVector: st.compVector, threadId, qps: s.sinks.size, placed: s.placed,
        events: st.events, polls: st.polls, completions: st.completions, batches: st.batches,
        maxBatch: s.maxBatch, meanBatch: st.batches ? st.completions / st.batches : 0, orphans: s.orphans,
      };
    });
  }

  /** QPs placed and not yet released. */
  get active(): number {
    let n = 0;
    for (const s of this.slots) n += s.sinks.size;
    return n;
  }

  /** Drains every CQ (flushed completions go to their sinks), then closes channels and CQs.
   * The QPs on them must be gone or in the error state: closing a CQ closes its QPs. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const s of this.slots) {
      this.pollNow(s);
      s.sinks.clear();
      s.channel.close();
    }
  }
}
