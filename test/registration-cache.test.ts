// The whole-ArrayBuffer registration cache (src/providers/registration-cache.ts) that the SMB
// Direct connection keeps for its transfer buffers and the verbs endpoint for its windows' bases:
// reuse, least-recently-used eviction, never a registration let go while in use, and every
// registration deregistered exactly once.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RegistrationCache } from '../src/providers/registration-cache.js';

interface FakeMr { id: number; ab: ArrayBufferLike; closed: boolean; released: boolean }

/** A cache over counted registrations (the thing under test is the cache, not a provider). */
function harness(opts: { maxEntries?: number; maxBytes?: number; fits?: (n: number) => boolean; refuse?: (ab: ArrayBufferLike) => boolean } = {}) {
  let next = 0;
  const live = new Set<FakeMr>();
  const deregistered: FakeMr[] = [];
  const cache = new RegistrationCache<FakeMr>({
    maxEntries: opts.maxEntries ?? 4, maxBytes: opts.maxBytes ?? 1 << 20,
    register: (ab) => {
      if (opts.refuse?.(ab)) return undefined;
      const mr = { id: next++, ab, closed: false, released: false };
      live.add(mr);
      return mr;
    },
    deregister: (mr) => {
      assert.equal(mr.released, false, `registration ${mr.id} deregistered twice`);
      mr.released = true;
      mr.closed = true;
      live.delete(mr);
      deregistered.push(mr);
    },
    usable: (mr) => !mr.closed,
    fits: opts.fits,
  });
  return { cache, live, deregistered, registered: () => next };
}

test('a buffer used again gets the registration made the first time', () => {
  const { cache, registered } = harness();
  const ab = new ArrayBuffer(4096);
  const a = cache.acquire(ab)!;
  cache.release(a);
  const b = cache.acquire(ab)!;
  assert.equal(b.region, a.region);
  assert.equal(registered(), 1);
  assert.equal(cache.size, 1);
  assert.equal(cache.bytes, 4096);
});

test('a full cache evicts the least recently used idle entry, never a busy one', () => {
  const { cache, deregistered } = harness({ maxEntries: 2 });
  const [x, y, z] = [new ArrayBuffer(10), new ArrayBuffer(20), new ArrayBuffer(30)];
  const ex = cache.acquire(x)!;
  const ey = cache.acquire(y)!;
  cache.release(ey); // y idle, x busy (and older)
  const ez = cache.acquire(z)!;
  assert.deepEqual(deregistered.map((m) => m.ab), [y], 'the idle one went, though x was older');
  assert.ok(!ex.region.closed);
  // both busy: no room, the caller does without (registers per I/O)
  assert.equal(cache.acquire(new ArrayBuffer(5)), undefined);
  cache.release(ex);
  cache.release(ez);
  assert.equal(cache.size, 2);
});

test('an entry dropped while in use is deregistered by its last user, once', () => {
  const { cache, live, deregistered } = harness();
  const ab = new ArrayBuffer(64);
  const e1 = cache.acquire(ab)!;
  const e2 = cache.acquire(ab)!;
  cache.clear();
  assert.equal(deregistered.length, 0, 'still in use by two');
  assert.equal(cache.size, 0);
  cache.release(e1);
  assert.equal(deregistered.length, 0);
  cache.release(e2);
  assert.equal(deregistered.length, 1);
  cache.release(e2); // a stray extra release changes nothing
  assert.equal(deregistered.length, 1);
  assert.equal(live.size, 0);
});

test('clear() deregisters idle entries at once', () => {
  const { cache, live } = harness();
  for (let i = 0; i < 3; i++) cache.release(cache.acquire(new ArrayBuffer(100 + i))!);
  assert.equal(live.size, 3);
  cache.clear();
  assert.equal(live.size, 0);
  assert.equal(cache.bytes, 0);
});

test('a buffer over a quarter of the byte bound, a refused registration or no room under fits() gives undefined', () => {
  const big = harness({ maxBytes: 1000 });
  assert.equal(big.cache.acquire(new ArrayBuffer(251)), undefined);
  assert.ok(big.cache.acquire(new ArrayBuffer(250)));
  const refused = harness({ refuse: () => true });
  assert.equal(refused.cache.acquire(new ArrayBuffer(8)), undefined);
  assert.equal(refused.cache.size, 0);
  let room = 0;
  const limited = harness({ fits: (n) => n <= room });
  const idle = new ArrayBuffer(16);
  room = 16;
  limited.cache.release(limited.cache.acquire(idle)!);
  room = 0; // the owner's memory limit is reached: an idle entry gives way, then still no room
  assert.equal(limited.cache.acquire(new ArrayBuffer(16)), undefined);
  assert.equal(limited.deregistered.length, 1, 'the idle entry was evicted to try to make room');
});

test('a registration closed behind the cache (its endpoint ended) or a resized buffer is made anew', () => {
  const { cache, deregistered, registered } = harness();
  const ab = new ArrayBuffer(32);
  const e = cache.acquire(ab)!;
  cache.release(e);
  e.region.closed = true; // closed by its owner's end, not by the cache
  const again = cache.acquire(ab)!;
  assert.notEqual(again.region, e.region);
  assert.equal(registered(), 2);
  // handed back once all the same: the owner's accounting of its bytes ends there
  assert.deepEqual(deregistered.map((m) => m.id), [e.region.id]);
});
