// Host-side checks of completion/ and the verbs provider's pieces that need no RDMA device: the
// wr_id rings, the device-limit check, defaultProvider()'s choice on a machine without RDMA, and
// the verbs provider failing with a coded error here.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { WR_KIND, WrRing, isRecvWrId, seqOf } from '../completion/index.js';
import type { DeviceAttributes } from '../native/index.js';
import * as native from '../native/index.js';
import { RdmaError, checkDeviceLimits, createVerbsProvider, defaultProvider, verbsCandidate } from '../src/providers/index.js';

describe('WrRing (the wr_id registry)', () => {
  it('maps native wr_ids to slots in posting order and retires older unsignaled slots', () => {
    const sq = new WrRing(4, false);
    const a = sq.push(100, WR_KIND.SEND, false, 10);
    const b = sq.push(101, WR_KIND.WRITE, true, 20);
    assert.equal(isRecvWrId(a), false);
    assert.equal(sq.outstanding, 2);
    // the completion of b retires a (unsignaled, completed silently before it)
    const slot = sq.retire(seqOf(b));
    assert.equal(sq.userWrId[slot], 101);
    assert.equal(sq.kind[slot], WR_KIND.WRITE);
    assert.equal(sq.length[slot], 20);
    assert.equal(sq.outstanding, 0);
    assert.equal(sq.retire(seqOf(a)), -1, 'a stale wr_id is refused');
  });

  it('a read that completes after the sends posted behind it (iWARP) is still reported, and holds the tail', () => {
    const sq = new WrRing(8, false);
    const s0 = sq.push(1, WR_KIND.SEND, false, 10);
    const r1 = sq.push(2, WR_KIND.READ, true, 4096);
    const s2 = sq.push(3, WR_KIND.SEND, false, 10);
    const s3 = sq.push(4, WR_KIND.SEND, true, 10);
    // siw: the sends finish on transmit, the read when its response has arrived
    assert.equal(sq.userWrId[sq.retire(seqOf(s3))], 4);
    assert.equal(sq.tail, seqOf(r1), 'the tail stops at the read; s0 completed with s3');
    assert.equal(sq.outstanding, 3);
    const r = sq.retire(seqOf(r1));
    assert.notEqual(r, -1, 'the read completion is not taken for a stale one');
    assert.equal(sq.userWrId[r], 2);
    assert.equal(sq.kind[r], WR_KIND.READ);
    assert.equal(sq.outstanding, 0, 's2 and s3 were complete: the tail moves past them');
    assert.equal(sq.retire(seqOf(s2)), -1);
    assert.equal(sq.retire(seqOf(s0)), -1);
    // and the ring goes on wrapping with slots that were marked complete out of order
    for (let i = 0; i < 20; i++) {
      const a = sq.push(10 + i, WR_KIND.READ, true, 1);
      const b = sq.push(50 + i, WR_KIND.SEND, true, 1);
      assert.equal(sq.userWrId[sq.retire(seqOf(b))], 50 + i);
      assert.equal(sq.outstanding, 2);
      assert.equal(sq.userWrId[sq.retire(seqOf(a))], 10 + i);
      assert.equal(sq.outstanding, 0);
    }
  });

  it('wraps around its capacity and reports full', () => {
    const rq = new WrRing(3, true);
    const ids: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) ids.push(rq.push(round * 10 + i, WR_KIND.RECV, true, 64));
      assert.ok(rq.full);
      for (let i = 0; i < 3; i++) {
        const id = ids.shift()!;
        assert.ok(isRecvWrId(id));
        assert.equal(rq.userWrId[rq.retire(seqOf(id))], round * 10 + i);
      }
      assert.equal(rq.outstanding, 0);
    }
    rq.push(1, WR_KIND.RECV, true, 1);
    rq.unpush();
    assert.equal(rq.outstanding, 0);
  });
});

describe('checkDeviceLimits', () => {
  const attrs = { name: 'dev0', maxQpWr: 1024, maxSge: 4, maxQpRdAtom: 16, maxQpInitRdAtom: 8 } as DeviceAttributes;
  const ok = { maxSendWr: 1024, maxRecvWr: 1, maxSendSge: 4, maxRecvSge: 1, initiatorDepth: 8, responderResources: 16 };
  it('accepts sizes within the limits', () => {
    checkDeviceLimits(attrs, ok);
  });
  for (const [k, limit] of [['maxSendWr', 'max_qp_wr'], ['maxRecvWr', 'max_qp_wr'], ['maxSendSge', 'max_sge'], ['maxRecvSge', 'max_sge'],
    ['initiatorDepth', 'max_qp_init_rd_atom'], ['responderResources', 'max_qp_rd_atom']] as const) {
    it(`names ${limit} when ${k} exceeds it`, () => {
      assert.throws(() => checkDeviceLimits(attrs, { ...ok, [k]: 100_000 }), (e: RdmaError) =>
        e instanceof RdmaError && e.code === 'ERR_DEVICE_LIMIT' && e.message.includes(limit) && e.message.includes(k));
    });
  }
});

describe('defaultProvider() without RDMA', () => {
  it('picks iwarp-tcp and says why', () => {
    const st = native.status();
    if (st.devices.length) return assert.fail('this host suite expects no RDMA device (run the VM suite for verbs)');
    const p = defaultProvider();
    assert.equal(p.name, 'iwarp-tcp');
    assert.match(p.reason, /^iwarp-tcp: (native addon unavailable|no RDMA device)/);
    assert.equal(verbsCandidate('127.0.0.1').device, undefined);
  });

  it('createVerbsProvider() validates options and fails with a coded error where RDMA is missing', async () => {
    assert.throws(() => createVerbsProvider({ maxSendWr: 0 }), (e: RdmaError) => e.code === 'ERR_OUT_OF_RANGE');
    assert.throws(() => createVerbsProvider({ initiatorDepth: 300 }), (e: RdmaError) => e.code === 'ERR_OUT_OF_RANGE');
    const p = createVerbsProvider();
    assert.equal(p.name, 'verbs');
    await assert.rejects(p.connect({ host: '127.0.0.1', port: 9 }), (e: NodeJS.ErrnoException) => typeof e.code === 'string' && e.code.length > 0);
    await assert.rejects(p.listen({ host: '127.0.0.1', port: 0 }), (e: NodeJS.ErrnoException) => typeof e.code === 'string' && e.code.length > 0);
    assert.deepEqual(p.stats(), {});
  });
});
