// Direct placement's arithmetic on its own (src/smbdirect/placement.ts): the descriptor checks and
// the offset walk, against a byte-by-byte model, with no provider.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import type { BufferDescriptor } from '../../framing/index.js';
import { badDescriptor, descriptorsProblem, planTransfer } from '../../src/smbdirect/placement.js';

const d = (offset: bigint, length: number, token: number): BufferDescriptor => ({ offset, length, token });

describe('placement plan', () => {
  it('walks from an offset inside the first descriptor across the rest, cut at maxOpSize', () => {
    const ds = [d(0x1000n, 3000, 1), d(0x9000n, 4096, 2), d(0x100000n, 2_000_000, 3)];
    const plan = planTransfer(ds, 2500, 10_000, 4096);
    assert.deepEqual(plan, [
      { at: 0, length: 500, remoteAddr: 0x1000n + 2500n, rkey: 1 },
      { at: 500, length: 4096, remoteAddr: 0x9000n, rkey: 2 },
      { at: 4596, length: 4096, remoteAddr: 0x100000n, rkey: 3 },
      { at: 8692, length: 1308, remoteAddr: 0x100000n + 4096n, rkey: 3 },
    ]);
  });

  it('skips whole descriptors', () => {
    const ds = [d(0n, 10, 1), d(100n, 10, 2), d(200n, 10, 3)];
    assert.deepEqual(planTransfer(ds, 25, 5, 1 << 20), [{ at: 0, length: 5, remoteAddr: 205n, rkey: 3 }]);
  });

  it('every byte of the transfer maps to the address the byte-by-byte model gives, once, in order', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ len: fc.integer({ min: 1, max: 300 }), base: fc.bigInt({ min: 0n, max: 1n << 40n }) }), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 2000 }),
      (parts, skip, maxOp, want) => {
        const ds = parts.map((p, i) => d(p.base, p.len, i));
        const covered = parts.reduce((n, p) => n + p.len, 0);
        const length = Math.min(want, covered - skip);
        if (length <= 0) {
          assert.ok(descriptorsProblem(ds, skip, Math.max(1, want)));
          return;
        }
        assert.equal(descriptorsProblem(ds, skip, length), undefined);
        // the model: the address of every byte of the concatenated descriptors
        const model: Array<[number, bigint]> = [];
        for (const x of ds) for (let k = 0; k < x.length; k++) model.push([x.token, x.offset + BigInt(k)]);
        let next = 0;
        for (const g of planTransfer(ds, skip, length, maxOp)) {
          assert.equal(g.at, next, 'contiguous, in order');
          assert.ok(g.length >= 1 && g.length <= maxOp);
          for (let k = 0; k < g.length; k++) {
            const [tok, addr] = model[skip + g.at + k]!;
            assert.equal(g.rkey, tok);
            assert.equal(g.remoteAddr + BigInt(k), addr);
          }
          next += g.length;
        }
        assert.equal(next, length, 'the whole transfer, nothing more');
      }), { numRuns: 300 });
  });

  it('refuses what a peer cannot mean: empty lists, zero lengths, tokens past 32 bits, ranges past 2^64, too little cover', () => {
    assert.match(descriptorsProblem([], 0, 1)!, /non-empty/);
    assert.match(badDescriptor(d(0n, 0, 1))!, /length 0/);
    assert.match(badDescriptor(d(0n, 1, 2 ** 32))!, /not 32 bits/);
    assert.match(badDescriptor(d((1n << 64n) - 10n, 11, 1))!, /64-bit address space/);
    assert.equal(badDescriptor(d((1n << 64n) - 10n, 10, 1)), undefined, 'up to the last byte is fine');
    assert.match(descriptorsProblem([d(0n, 10, 1)], 5, 6)!, /cover 10 bytes, 5 \+ 6/);
    assert.match(badDescriptor(undefined)!, /bigint offset/);
  });
});
