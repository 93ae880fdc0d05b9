// STags of the software iWARP provider: a 24-bit index and an 8-bit key, as RNICs build them
// (RFC 5040 2.2). Indexes are handed out in order from a random start and wrap around, skipping
// the ones still registered, so a connection that registers a buffer per I/O never runs out. The
// key of an index is a secret per-allocator function of the index plus the round, so that:
// - a peer cannot tell the next STag from the ones it has seen, nor one connection's from
//   another's (the tables and the start are random per endpoint);
// - an index that comes round again gets another key each round: a peer holding a stale STag (from
//   the registration 2^24 - 1 registrations ago) does not match the new one for 256 rounds.
import { randomBytes } from 'node:crypto';

import { RdmaError } from '../types.js';

export const MAX_STAG_INDEX = 0xffffff;

export class StagAllocator {
  private next: number;
  private rounds = 0;
  private readonly live = new Set<number>();
  /** Key tables: one random byte per value of each of the index's three bytes. */
  private readonly keys: Uint8Array;

  constructor(private readonly maxIndex = MAX_STAG_INDEX) {
    const r = randomBytes(3 * 256 + 4);
    this.keys = r.subarray(0, 3 * 256);
    this.next = 1 + (r.readUInt32LE(3 * 256) % maxIndex);
  }

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
      const k = this.keys;
      const key = (k[index & 0xff]! ^ k[256 + ((index >>> 8) & 0xff)]! ^ k[512 + (index >>> 16)]!) + this.rounds;
      return ((index << 8) | (key & 0xff)) >>> 0;
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
