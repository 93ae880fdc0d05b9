// Helpers shared by the host and VM suites: deterministic bytes, and awaitable completions of
// a provider endpoint (smbdirect/providers).
import assert from 'node:assert/strict';

import type { Completion, RdmaEndpoint } from '../src/providers/index.js';

/** Deterministic bytes for content checks (xorshift32 from a seed). */
export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Collects an endpoint's completions; take(wrId) awaits one, ok(wrId) also wants 'success'. */
export class Wcs {
  all: Completion[] = [];
  private wake?: () => void;
  constructor(ep: RdmaEndpoint, private readonly timeoutMs = 5000) {
    ep.onCompletions((batch) => { for (const c of batch) this.all.push(c); this.wake?.(); });
  }
  async take(wrId: number, ms = this.timeoutMs): Promise<Completion> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.all.findIndex((c) => c.wrId === wrId);
      if (i >= 0) return this.all.splice(i, 1)[0]!;
      if (Date.now() > end) throw new Error(`no completion ${wrId}: ${JSON.stringify(this.all)}`);
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 20); });
    }
  }
  async ok(wrId: number, ms = this.timeoutMs): Promise<Completion> {
    const c = await this.take(wrId, ms);
    assert.equal(c.status, 'success', JSON.stringify(c));
    return c;
  }
}
