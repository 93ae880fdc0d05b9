// STags of the software iWARP provider: a 24-bit index and an 8-bit key, as RNICs build them
// (RFC 5040 2.2). Indexes are handed out in order and wrap around, skipping the ones still
// registered, so a connection that registers a buffer per I/O never runs out; the key of an
// index changes each time the index comes round again, so a peer holding a stale STag (from the
// registration before, 2^24 - 1 registrations ago) does not match the new one.
import { RdmaError } from '../types.js';

export const MAX_STAG_INDEX = 0xffffff;

export class StagAllocator {
  private next = 1;
  private rounds = 0;
  private readonly live = new Set<number>();

  constructor(private readonly maxIndex = MAX_STAG_INDEX) {}

  /** A fresh STag; ERR_NO_STAG only when every index is registered. */
  allocate(): number {
    for (let tries = 0; tries < this.maxIndex; tries++) {
      const index = this.next;
      if (index >= this.maxIndex) {
        this.next = 1;
        this.rounds = (this.rounds + 1) & 0xff;
      } else {
        this.next = index + 1;
      }
      if (this.live.has(index)) continue;
      this.live.add(index);
      // spread within a round (neighbouring STags differ in their key too), shifted each round
      const key = (index * 0x5b + this.rounds) & 0xff;
      return ((index << 8) | key) >>> 0;
    }
    throw new RdmaError('ERR_NO_STAG', `out of STags: all ${this.maxIndex} are registered`);
  }

  /** The STag's index may be handed out again (its region was closed). */
  release(stag: number): void {
    this.live.delete(stag >>> 8);
  }

  /** Registered indexes now. */
  get size(): number {
    return this.live.size;
  }
}
