// The wr_id registry: one ring per work queue, in typed arrays (no object or closure per work
// request). A work request is a sequence number: the native wr_id carries it, the slot is
// `seq % capacity`. A completion for `seq` also completes the unsignaled work posted before it
// (it finished silently), but not signaled work, which reports itself: on iWARP an RDMA Read
// completes when its response has arrived, after the sends posted behind it (siw does so), so
// send-queue completions are not always in posting order. The ring's tail stops at the oldest
// work not yet complete.

/** Kinds of work request, as stored in a ring (0 is a free slot). */
export const WR_KIND = Object.freeze({ SEND: 1, RECV: 2, WRITE: 3, READ: 4, INTERNAL: 5, BIND: 6 });
export type WrKindCode = (typeof WR_KIND)[keyof typeof WR_KIND];

/** Native wr_ids: seq * 2 + 1 for receive queues, seq * 2 for send queues (below 2^53). */
export function nativeWrId(seq: number, recv: boolean): number {
  return seq * 2 + (recv ? 1 : 0);
}
export function isRecvWrId(wrId: number): boolean {
  return wrId % 2 === 1;
}
export function seqOf(wrId: number): number {
  return Math.floor(wrId / 2);
}

export class WrRing {
  /** The caller's wrId per slot. */
  readonly userWrId: Float64Array;
  /** WR_KIND per slot. */
  readonly kind: Uint8Array;
  /** 1 when the WR asked for a completion. */
  readonly signaled: Uint8Array;
  /** Posted length (reported for flushed-free success of a send/write). */
  readonly length: Uint32Array;
  /** 1 once complete while older work is still outstanding (the tail has not passed it). */
  readonly done: Uint8Array;
  /** Slots before this sequence number were already checked for silent completion. */
  private marked = 0;
  /** Next sequence number to post; the oldest outstanding one. */
  head = 0;
  tail = 0;

  constructor(readonly capacity: number, readonly recv: boolean) {
    this.userWrId = new Float64Array(capacity);
    this.kind = new Uint8Array(capacity);
    this.signaled = new Uint8Array(capacity);
    this.length = new Uint32Array(capacity);
    this.done = new Uint8Array(capacity);
  }

  get outstanding(): number {
    return this.head - this.tail;
  }

  get full(): boolean {
    return this.head - this.tail >= this.capacity;
  }

  /** Reserves the next slot; returns the native wr_id. The caller checked `full`. */
  push(userWrId: number, kind: WrKindCode, signaled: boolean, length: number): number {
    const seq = this.head++;
    const slot = seq % this.capacity;
    this.userWrId[slot] = userWrId;
    this.kind[slot] = kind;
    this.signaled[slot] = signaled ? 1 : 0;
    this.length[slot] = length;
    this.done[slot] = 0;
    return nativeWrId(seq, this.recv);
  }

  /** Un-does the last push (the post failed). */
  unpush(): void {
    this.head--;
    this.kind[this.head % this.capacity] = 0;
    if (this.marked > this.head) this.marked = this.head;
  }

  /** Completes `seq` and the unsignaled work before it, and moves the tail past everything
   * complete; returns seq's slot (its fields stay readable until it is pushed again), or -1 for
   * a stale or unknown seq. */
  retire(seq: number): number {
    if (seq < this.tail || seq >= this.head) return -1;
    const cap = this.capacity;
    for (let s = Math.max(this.marked, this.tail); s < seq; s++) {
      if (!this.signaled[s % cap]) this.done[s % cap] = 1;
    }
    if (seq > this.marked) this.marked = seq;
    const slot = seq % cap;
    this.done[slot] = 1;
    while (this.tail < this.head && this.done[this.tail % cap]) {
      this.done[this.tail % cap] = 0;
      this.tail++;
    }
    return slot;
  }
}
