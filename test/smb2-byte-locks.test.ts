// src/smb2/byte-locks.ts: the server's byte-range lock table on its own (the rules Windows follows,
// as smbtorture's smb2.lock suite pins them down; test/smb2-torture.test.ts runs that suite against
// the whole server).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LockTable, type LockWaiter, lockRangeOverflows, locksOverlap } from '../src/smb2/byte-locks.js';

const r = (offset: number | bigint, length: number | bigint) => ({ offset: BigInt(offset), length: BigInt(length) });

describe('byte-range locks', () => {
  it('zero-length locks are points: inside a range strictly, never against another point', () => {
    assert.equal(locksOverlap(r(10, 0), r(10, 0)), false);
    assert.equal(locksOverlap(r(10, 0), r(9, 1)), false);
    assert.equal(locksOverlap(r(10, 0), r(10, 1)), false);
    assert.equal(locksOverlap(r(10, 0), r(9, 2)), true);
    assert.equal(locksOverlap(r(9, 3), r(10, 0)), true);
    assert.equal(locksOverlap(r(0, 4), r(2, 4)), true);
    assert.equal(locksOverlap(r(0, 4), r(4, 4)), false);
    assert.equal(lockRangeOverflows(r(0xffffffffffffffffn, 1)), false, 'ending at 2^64 is valid');
    assert.equal(lockRangeOverflows(r(0xffffffffffffffffn, 2)), true);
  });

  it('an open stacks shared locks on its own exclusive one, never an exclusive on anything; other opens conflict', () => {
    const t = new LockTable();
    const a = {};
    const b = {};
    assert.ok(t.tryLock('f', a, r(0, 10), true));
    assert.ok(t.tryLock('f', a, r(0, 10), false), 'shared on own exclusive');
    assert.equal(t.tryLock('f', a, r(5, 1), true), undefined, 'exclusive on own lock');
    assert.equal(t.tryLock('f', b, r(5, 1), false), undefined, "shared on another's exclusive");
    // unlocking takes the exclusive lock first: the shared one left lets b share
    assert.ok(t.unlock('f', a, r(0, 10)));
    assert.ok(t.tryLock('f', b, r(5, 1), false));
    assert.equal(t.unlock('f', a, r(0, 5)), false, 'an unlock names a lock exactly');
    assert.deepEqual(t.counts, { held: 2, waiting: 0 });
  });

  it('I/O: reads meet only another open\'s exclusive lock, writes any shared lock too; zero-length I/O nothing', () => {
    const t = new LockTable();
    const a = {};
    const b = {};
    t.tryLock('f', a, r(0, 100), true);
    t.tryLock('f', a, r(100, 100), false);
    assert.equal(t.ioConflict('f', a, 0n, 100n, true), false, 'the owner writes under its exclusive lock');
    assert.equal(t.ioConflict('f', b, 50n, 10n, false), true);
    assert.equal(t.ioConflict('f', a, 150n, 1n, true), true, 'a shared lock stops even its owner writing');
    assert.equal(t.ioConflict('f', b, 150n, 1n, false), false);
    assert.equal(t.ioConflict('f', b, 50n, 0n, true), false);
    assert.equal(t.ioConflict('g', b, 0n, 1n, true), false, 'another file');
  });

  it('waiting requests are granted oldest first as ranges come free; a closing open fails its own and frees the rest', () => {
    const t = new LockTable();
    const [a, b, c] = [{}, {}, {}];
    const settled: string[] = [];
    const waiter = (owner: object, name: string, exclusive: boolean): LockWaiter =>
      ({ key: 'f', owner, ...r(0, 10), exclusive, settle: (ok) => settled.push(`${name}:${ok}`) });
    t.tryLock('f', a, r(0, 10), true);
    const wb = waiter(b, 'b', true);
    const wc = waiter(c, 'c', false);
    t.wait(wb);
    t.wait(wc);
    assert.ok(t.unlock('f', a, r(0, 10)));
    assert.deepEqual(settled, ['b:true'], 'b got it; c (shared) waits behind b\'s exclusive lock');
    const wa = waiter(a, 'a', false);
    t.wait(wa);
    t.release('f', c); // c's open closes: its waiting request fails
    assert.deepEqual(settled, ['b:true', 'c:false']);
    t.release('f', b);
    assert.deepEqual(settled, ['b:true', 'c:false', 'a:true']);
    assert.equal(t.cancel(wa), false, 'granted already');
    t.release('f', a);
    assert.deepEqual(t.counts, { held: 0, waiting: 0 }, 'nothing left: the file\'s entry is gone');
  });

  it('a cancelled request leaves the queue; drop takes back exactly the locks given (not an older stacked one)', () => {
    const t = new LockTable();
    const [a, b] = [{}, {}];
    t.tryLock('f', a, r(0, 10), true);
    const w: LockWaiter = { key: 'f', owner: b, ...r(0, 1), exclusive: false, settle: () => assert.fail('settled after cancel') };
    t.wait(w);
    assert.ok(t.cancel(w));
    const shared = t.tryLock('f', a, r(0, 10), false)!;
    t.drop('f', [shared]);
    assert.equal(t.tryLock('f', b, r(0, 1), false), undefined, 'a still holds its exclusive lock');
    t.release('f', a);
    assert.deepEqual(t.counts, { held: 0, waiting: 0 });
  });
});
