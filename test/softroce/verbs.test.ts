// Real verbs on rxe0 (soft-RoCE) and siw0 (soft-iWARP), both endpoints in this
// process, connected through rdma_cm: private data, send/recv, 1 MiB RDMA
// write and read, Send-with-Invalidate, memory windows, a wrong rkey, the
// disconnect flush, and kernel object counts back to their baseline.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import * as native from '../../native/index.js';
import {
  DATA, DEVICES, Events, SLAB, asyncEvents, baselineCounts, closeAll, closePair, connectPair, expectCountsBack,
  pattern, requireVm, resourceCounts, sleep,
  type Counts, type Pair, type Side,
} from './helpers.js';

const { ACCESS, SEND_FLAGS, WC_OPCODE, WC_FLAGS } = native;
const MSG = DATA; // messages are sent from [DATA, DATA + 64 KiB) of the slab

/** Copies `bytes` into the side's slab at `offset` and sends them. */
function sendBytes(side: Side, wrId: number, bytes: Uint8Array, opts: { invalidateRkey?: number; imm?: number } = {}): void {
  side.bytes.set(bytes, MSG);
  side.qp.postSend(wrId, { mr: side.mr, offset: MSG, length: bytes.length }, SEND_FLAGS.SIGNALED, opts.invalidateRkey, opts.imm);
}

/** RoCE (rxe) completes the read with a remote access error. iWARP carries the
 * error in a Terminate: siw reports QP_REQ_ERR on the responder's QP, and the
 * initiator's read is flushed when the Terminate takes its QP down. */
function expectRemoteAccessFailure(kind: string, status: string, events: native.AsyncEvent[], qpNums: number[]): void {
  if (kind === 'RoCE') {
    assert.equal(status, 'remote-access');
    return;
  }
  assert.ok(status === 'remote-access' || status === 'flushed', `status ${status}`);
  assert.ok(events.some((e) => /^QP_(FATAL|REQ_ERR|ACCESS_ERR)$/.test(e.type) && qpNums.includes(e.qpNum!)),
    `an async QP error event for QP ${qpNums.join(' or ')}: ${JSON.stringify(events)}`);
}

/** The bytes of a receive completion (receives sit at the end of the slab, 4 KiB each). */
function received(side: Side, wrId: number, len: number): Uint8Array {
  const slot = wrId - 1000;
  return side.bytes.subarray(SLAB - (slot + 1) * 4096, SLAB - (slot + 1) * 4096 + len);
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => {
    try { await expectCountsBack(base, 'verbs.test'); } finally { closeAll(); }
  });

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind})`, () => {
      it(`${dev.name}: device, port and GID queries`, () => {
        const entry = native.listDevices().find((d) => d.name === dev.name);
        assert.ok(entry, `${dev.name} listed`);
        assert.equal(entry.transport, dev.kind === 'iWARP' ? 'iwarp' : 'ib');
        const d = native.openDevice(dev.name);
        assert.equal(native.openDevice(dev.name), d, 'one Device object per open device');
        const a = d.query();
        assert.equal(a.name, dev.name);
        assert.equal(a.nodeType, dev.kind === 'iWARP' ? 'rnic' : 'ca');
        for (const k of ['maxQpWr', 'maxSge', 'maxQpRdAtom', 'numCompVectors', 'maxCqe'] as const) assert.ok(a[k] > 0, `${k} = ${a[k]}`);
        const port = d.queryPort(1);
        assert.equal(port.state, 'active');
        assert.equal(port.linkLayer, 'ethernet');
        if (dev.kind === 'RoCE') {
          // RoCEv2 GID of the IPv4 address (::ffff:a.b.c.d)
          const gids = Array.from({ length: Math.min(port.gidTableLength, 16) }, (_, i) => {
            try { return d.queryGid(1, i); } catch { return undefined; }
          });
          assert.ok(gids.some((g) => g?.type === 'RoCEv2' && g.gid === `::ffff:${dev.ip}`), JSON.stringify(gids));
        }
        assert.throws(() => d.queryPort(9), (e: native.NativeError) => e.code === 'EINVAL' && e.syscall === 'ibv_query_port');
        // a CQ on the last comp vector
        const ch = d.createCompChannel();
        const cq = d.createCq(16, ch, a.numCompVectors - 1, () => {});
        assert.equal(cq.compVector, a.numCompVectors - 1);
        assert.ok(cq.cqe >= 16);
        ch.close();
        assert.ok(cq.closed, 'closing a channel closes its CQs');
        console.log(`# ${dev.name}: max_qp_wr ${a.maxQpWr}, max_sge ${a.maxSge}, max_qp_rd_atom ${a.maxQpRdAtom}, comp vectors ${a.numCompVectors}, memory windows ${a.memoryWindowType2 ? 'type 2' : 'none'}, mtu ${port.activeMtu}`);
      });

      it(`${dev.name}: connects through rdma_cm with private data both ways`, async () => {
        const clientPd = Buffer.from('client hello: smbdirect negotiate');
        const serverPd = Buffer.from('server hello: accepted');
        const p = await connectPair(dev, { clientPrivateData: clientPd, serverPrivateData: serverPd });
        try {
          // IB CM pads private data to its fixed size; iWARP carries it exactly
          assert.deepEqual(p.server.peerPrivateData.subarray(0, clientPd.length), clientPd);
          assert.deepEqual(p.client.peerPrivateData.subarray(0, serverPd.length), serverPd);
          if (dev.kind === 'iWARP') {
            assert.equal(p.server.peerPrivateData.length, clientPd.length);
            assert.equal(p.client.peerPrivateData.length, serverPd.length);
          }
          // siw does not report the QP state through ibv_query_qp (always RESET)
          if (dev.kind === 'RoCE') for (const s of [p.client, p.server]) assert.equal(s.qp.query().state, 'RTS');
          assert.equal(p.client.id.peerAddress?.address, dev.ip);
          assert.equal(p.server.id.localAddress?.port, p.listener.localAddress?.port);
        } finally {
          await closePair(p);
        }
      });

      it(`${dev.name}: send/recv delivers exact bytes, lengths, immediate data`, async () => {
        const p = await connectPair(dev, { recvs: 8 });
        try {
          const msgs = [pattern(1, 1), pattern(100, 2), pattern(4096, 3), pattern(1364, 4)];
          for (let i = 0; i < msgs.length; i++) {
            sendBytes(p.client, i + 1, msgs[i]!);
            const sc = await p.client.wcs.takeOk(i + 1);
            assert.equal(sc.opcode, WC_OPCODE.SEND);
            const rc = await p.server.wcs.takeOk(1000 + i);
            assert.equal(rc.opcode, WC_OPCODE.RECV);
            assert.equal(rc.byteLength, msgs[i]!.length);
            assert.ok(Buffer.from(received(p.server, 1000 + i, rc.byteLength)).equals(msgs[i]!), `message ${i} bytes`);
          }
          // Send-with-Immediate (RoCE; iWARP has no immediate data)
          if (dev.kind === 'RoCE') {
            sendBytes(p.client, 9, pattern(8, 9), { imm: 0xdeadbeef });
            await p.client.wcs.takeOk(9);
            const rc = await p.server.wcs.takeOk(1004);
            assert.ok(rc.flags & WC_FLAGS.WITH_IMM, 'WITH_IMM flag');
            assert.equal(rc.immOrInvalidatedRkey, 0xdeadbeef);
          }
          // an unsignaled send completes silently; the signaled one after it reports
          sendBytes(p.client, 30, pattern(10, 30));
          p.client.qp.postSend(31, { mr: p.client.mr, offset: MSG, length: 10 }, 0);
          p.client.qp.postSend(32, { mr: p.client.mr, offset: MSG, length: 10 });
          await p.client.wcs.takeOk(32);
          await p.client.wcs.takeOk(30);
          assert.ok(!p.client.wcs.all.some((c) => c.wrId === 31), 'no completion for the unsignaled send');
          const used = dev.kind === 'RoCE' ? 5 : 4;
          for (let i = 0; i < 3; i++) await p.server.wcs.takeOk(1000 + used + i);
          const st = p.server.cq.stats();
          assert.ok(st.events > 0 && st.batches > 0 && st.completions >= used + 3 && st.polls >= st.batches, JSON.stringify(st));
          // and the other direction, with a scatter-gather list of 3 pieces
          const a = pattern(10, 5), b = pattern(300, 6), c = pattern(7, 7);
          p.server.bytes.set(a, MSG); p.server.bytes.set(b, MSG + 1000); p.server.bytes.set(c, MSG + 5000);
          p.server.qp.postSend(20, [
            { mr: p.server.mr, offset: MSG, length: a.length },
            { mr: p.server.mr, offset: MSG + 1000, length: b.length },
            { mr: p.server.mr, offset: MSG + 5000, length: c.length },
          ]);
          await p.server.wcs.takeOk(20);
          const rc = await p.client.wcs.takeOk(1000);
          assert.equal(rc.byteLength, 317);
          assert.ok(Buffer.from(received(p.client, 1000, 317)).equals(Buffer.concat([a, b, c])), 'gathered bytes');
        } finally {
          await closePair(p);
        }
      });
      it(`${dev.name}: staged posts: a burst of receives and of sends in one call each, in order; a bad row refuses the whole burst`, async () => {
        const p = await connectPair(dev);
        try {
          const { STAGE_COLS, STAGE_ROWS } = native;
          const n = 12;
          const rs = p.server.qp.recvStage;
          assert.equal(rs.length, STAGE_ROWS * STAGE_COLS);
          for (let i = 0; i < n; i++) rs.set([2000 + i, p.server.mr.handle, SLAB - (i + 1) * 4096, 4096, 0], i * STAGE_COLS);
          p.server.qp.postStaged(1, n);
          const ss = p.client.qp.sendStage;
          const msgs = Array.from({ length: n }, (_, i) => pattern(1 + i * 97, 40 + i));
          for (let i = 0; i < n; i++) {
            p.client.bytes.set(msgs[i]!, MSG + i * 4096);
            // every third one unsignaled: it completes silently, as with postSend
            ss.set([100 + i, p.client.mr.handle, MSG + i * 4096, msgs[i]!.length, i % 3 === 1 ? 0 : SEND_FLAGS.SIGNALED], i * STAGE_COLS);
          }
          p.client.qp.postStaged(0, n);
          for (let i = 0; i < n; i++) {
            const rc = await p.server.wcs.takeOk(2000 + i);
            assert.equal(rc.byteLength, msgs[i]!.length, `message ${i} length`);
            const at = SLAB - (i + 1) * 4096;
            assert.ok(Buffer.from(p.server.bytes.subarray(at, at + rc.byteLength)).equals(msgs[i]!), `message ${i} bytes, in order`);
          }
          for (let i = 0; i < n; i++) if (i % 3 !== 1) await p.client.wcs.takeOk(100 + i);
          assert.ok(!p.client.wcs.all.some((c) => c.wrId >= 100 && c.wrId < 100 + n), 'no completion for the unsignaled sends');

          // refused whole: a closed region, a row past the region's end, an unknown flag, too many rows
          const gone = p.client.pd.allocSlab(4096, native.ACCESS.LOCAL_WRITE);
          const goneHandle = gone.handle;
          gone.close();
          ss.set([50, p.client.mr.handle, MSG, 10, SEND_FLAGS.SIGNALED], 0);
          ss.set([51, goneHandle, 0, 10, SEND_FLAGS.SIGNALED], STAGE_COLS);
          assert.throws(() => p.client.qp.postStaged(0, 2), (e: native.NativeError) => e.code === 'ERR_CLOSED');
          ss.set([51, p.client.mr.handle, SLAB - 10, 11, SEND_FLAGS.SIGNALED], STAGE_COLS);
          assert.throws(() => p.client.qp.postStaged(0, 2), RangeError);
          ss.set([51, p.client.mr.handle, MSG, 10, 1 << 9], STAGE_COLS);
          assert.throws(() => p.client.qp.postStaged(0, 2), RangeError);
          assert.throws(() => p.client.qp.postStaged(0, STAGE_ROWS + 1), RangeError);
          // nothing of those bursts went out: the next send fills the next receive
          rs.set([2100, p.server.mr.handle, SLAB - 4096, 4096, 0], 0);
          p.server.qp.postStaged(1, 1);
          sendBytes(p.client, 60, pattern(33, 60));
          await p.client.wcs.takeOk(60);
          const rc = await p.server.wcs.takeOk(2100);
          assert.equal(rc.byteLength, 33);
          assert.ok(!p.client.wcs.all.some((c) => c.wrId === 50 || c.wrId === 51), 'refused rows never completed');
        } finally {
          await closePair(p);
        }
      });

      it(`${dev.name}: RDMA write and read of 1 MiB with content checks`, async () => {
        const p = await connectPair(dev, { recvs: 4 });
        try {
          const out = pattern(DATA, 11);
          p.client.bytes.set(out, 0);
          p.client.qp.postWrite(1, { mr: p.client.mr, offset: 0, length: DATA }, p.server.mr.addr, p.server.mr.rkey);
          assert.equal((await p.client.wcs.takeOk(1)).opcode, WC_OPCODE.RDMA_WRITE);
          // a send after the write: when it arrives, the write has been placed (RC ordering)
          sendBytes(p.client, 2, pattern(4, 12));
          await p.client.wcs.takeOk(2);
          await p.server.wcs.takeOk(1000);
          assert.ok(Buffer.from(p.server.bytes.buffer, 0, DATA).equals(out), 'server memory == written bytes');

          const back = pattern(DATA, 13);
          p.server.bytes.set(back, 0);
          p.client.bytes.fill(0, 0, DATA);
          p.client.qp.postRead(3, { mr: p.client.mr, offset: 0, length: DATA }, p.server.mr.addr, p.server.mr.rkey);
          const rc = await p.client.wcs.takeOk(3);
          assert.equal(rc.opcode, WC_OPCODE.RDMA_READ);
          assert.ok(Buffer.from(p.client.bytes.buffer, 0, DATA).equals(back), 'read bytes == server memory');

          // a read from the middle into an offset; scattered over 2 SGEs where the
          // device allows it (iWARP: one sink SGE per read, refused up front)
          p.client.bytes.fill(0, 0, 8192);
          const sgl = [{ mr: p.client.mr, offset: 100, length: 1000 }, { mr: p.client.mr, offset: 5000, length: 24 }];
          if (p.client.device.query().maxSgeRd >= 2) {
            p.client.qp.postRead(4, sgl, p.server.mr.addr + 4096n, p.server.mr.rkey);
            await p.client.wcs.takeOk(4);
            assert.ok(Buffer.from(p.client.bytes.subarray(5000, 5024)).equals(back.subarray(5096, 5120)));
          } else {
            assert.throws(() => p.client.qp.postRead(4, sgl, p.server.mr.addr + 4096n, p.server.mr.rkey),
              (e: native.NativeError) => e.code === 'ERR_DEVICE_LIMIT' && /max_sge_rd/.test(e.message));
            p.client.qp.postRead(4, sgl[0], p.server.mr.addr + 4096n, p.server.mr.rkey);
            await p.client.wcs.takeOk(4);
          }
          assert.ok(Buffer.from(p.client.bytes.subarray(100, 1100)).equals(back.subarray(4096, 5096)));
        } finally {
          await closePair(p);
        }
      });

      it(`${dev.name}: Send-with-Invalidate invalidates the peer's rkey`, async (t) => {
        const p = await connectPair(dev, { recvs: 4 });
        try {
          const attrs = p.server.device.query();
          // The key a peer may invalidate: a type-2 window on RoCE (rxe invalidates
          // windows and kernel fast-reg MRs, not user MRs); on iWARP (siw) any STag.
          let rkey: number, target: bigint, mr = p.server.mr;
          if (dev.kind === 'RoCE') {
            if (!attrs.memoryWindowType2) {
              t.skip(`${dev.name}: no type-2 memory windows (device_cap_flags 0x${attrs.deviceCapFlags.toString(16)})`);
              return;
            }
            mr = p.server.pd.allocSlab(65536, ACCESS.LOCAL_WRITE | ACCESS.REMOTE_READ | ACCESS.REMOTE_WRITE | ACCESS.MW_BIND);
            const mw = p.server.pd.allocMw();
            rkey = p.server.qp.postBindMw(50, mw, mr, 0, 65536, ACCESS.REMOTE_READ | ACCESS.REMOTE_WRITE);
            const bc = await p.server.wcs.takeOk(50);
            assert.equal(bc.opcode, WC_OPCODE.BIND_MW);
            assert.equal(mw.rkey, rkey);
            target = mr.addr;
          } else {
            mr = p.server.pd.allocSlab(65536, ACCESS.LOCAL_WRITE | ACCESS.REMOTE_READ | ACCESS.REMOTE_WRITE);
            rkey = mr.rkey;
            target = mr.addr;
          }
          new Uint8Array(mr.buffer).set(pattern(4096, 21));
          // usable before the invalidate
          p.client.qp.postRead(1, { mr: p.client.mr, offset: 0, length: 4096 }, target, rkey);
          await p.client.wcs.takeOk(1);
          assert.deepEqual(p.client.bytes.subarray(0, 4096), pattern(4096, 21));

          sendBytes(p.client, 2, pattern(16, 22), { invalidateRkey: rkey });
          await p.client.wcs.takeOk(2);
          const rc = await p.server.wcs.take(1000);
          if (rc.status !== 'success') console.log(`# ${dev.name}: send-with-invalidate receive ${JSON.stringify(rc)}; async ${JSON.stringify(asyncEvents.splice(0))}`);
          assert.equal(rc.status, 'success');
          if (dev.kind === 'RoCE') {
            assert.ok(rc.flags & WC_FLAGS.WITH_INV, `WITH_INV flag on the receive (flags ${rc.flags})`);
            assert.equal(rc.immOrInvalidatedRkey, rkey, 'the invalidated rkey is reported');
          } else {
            // libsiw's copy_cqe sets wc_flags = 0: the receiver is not told which STag was invalidated
            console.log(`# ${dev.name}: receive flags ${rc.flags} (siw's user provider does not report the invalidated STag)`);
          }

          // and refused after it
          p.client.qp.postRead(3, { mr: p.client.mr, offset: 0, length: 4096 }, target, rkey);
          const ec = await p.client.wcs.take(3);
          await sleep(200);
          const ae = asyncEvents.splice(0);
          console.log(`# ${dev.name}: read through an invalidated rkey -> ${ec.status}; async events ${JSON.stringify(ae)}`);
          expectRemoteAccessFailure(dev.kind, ec.status, ae, [p.client.qp.qpNum, p.server.qp.qpNum]);
        } finally {
          await closePair(p);
        }
      });

      it(`${dev.name}: memory window bind, remote access through it, local invalidate`, async (t) => {
        const d = native.openDevice(dev.name);
        const attrs = d.query();
        if (!attrs.memoryWindowType2) {
          const why = `${dev.name} reports no type-2 memory windows (max_mw ${attrs.maxMw}, device_cap_flags 0x${attrs.deviceCapFlags.toString(16)})`;
          console.log(`# skip: ${why}`);
          t.skip(why);
          return;
        }
        const p = await connectPair(dev, { recvs: 2 });
        try {
          const mr = p.server.pd.allocSlab(65536, ACCESS.LOCAL_WRITE | ACCESS.REMOTE_READ | ACCESS.REMOTE_WRITE | ACCESS.MW_BIND);
          const mw = p.server.pd.allocMw();
          // a read-only window over [4096, 8192)
          const rkey = p.server.qp.postBindMw(60, mw, mr, 4096, 4096, ACCESS.REMOTE_READ);
          await p.server.wcs.takeOk(60);
          new Uint8Array(mr.buffer).set(pattern(4096, 31), 4096);
          p.client.qp.postRead(1, { mr: p.client.mr, offset: 0, length: 4096 }, mr.addr + 4096n, rkey);
          await p.client.wcs.takeOk(1);
          assert.deepEqual(p.client.bytes.subarray(0, 4096), pattern(4096, 31));
          // a write through the read-only window is refused (access rights are enforced)
          p.client.qp.postWrite(2, { mr: p.client.mr, offset: 0, length: 64 }, mr.addr + 4096n, rkey);
          assert.equal((await p.client.wcs.take(2)).status, 'remote-access');
          assert.deepEqual(new Uint8Array(mr.buffer, 4096, 64), pattern(4096, 31).subarray(0, 64), 'no byte written');
          await closePair(p);

          // a fresh connection: bind, invalidate locally, then the key is dead
          const q = await connectPair(dev, { recvs: 2 });
          try {
            const mr2 = q.server.pd.allocSlab(8192, ACCESS.LOCAL_WRITE | ACCESS.REMOTE_READ | ACCESS.MW_BIND);
            const mw2 = q.server.pd.allocMw();
            const k = q.server.qp.postBindMw(61, mw2, mr2, 0, 8192, ACCESS.REMOTE_READ);
            await q.server.wcs.takeOk(61);
            q.server.qp.postLocalInvalidate(62, k);
            assert.equal((await q.server.wcs.takeOk(62)).opcode, WC_OPCODE.LOCAL_INV);
            q.client.qp.postRead(1, { mr: q.client.mr, offset: 0, length: 64 }, mr2.addr, k);
            assert.equal((await q.client.wcs.take(1)).status, 'remote-access');
          } finally {
            await closePair(q);
          }
        } catch (e) {
          if (!p.client.id.closed) await closePair(p);
          throw e;
        }
      });

      it(`${dev.name}: a wrong rkey gives a remote access error completion`, async () => {
        const p = await connectPair(dev, { recvs: 2 });
        try {
          const bad = (p.server.mr.rkey ^ 0x5a5a5a00) >>> 0;
          p.client.qp.postRead(1, { mr: p.client.mr, offset: 0, length: 4096 }, p.server.mr.addr, bad);
          const wc = await p.client.wcs.take(1);
          await sleep(200);
          const ae = asyncEvents.splice(0);
          console.log(`# ${dev.name}: read with a wrong rkey -> ${wc.status}; async events ${JSON.stringify(ae)}`);
          expectRemoteAccessFailure(dev.kind, wc.status, ae, [p.client.qp.qpNum, p.server.qp.qpNum]);
          // the QP is in error now: what was posted after flushes, nothing hangs
          if (dev.kind === 'RoCE') assert.equal(p.client.qp.query().state, 'ERR');
          assert.equal((await p.client.wcs.take(1000)).status, 'flushed');
        } finally {
          await closePair(p).catch(() => undefined);
        }
      });

      it(`${dev.name}: disconnect flushes posted receives and raises DISCONNECTED on both sides`, async () => {
        const p = await connectPair(dev, { recvs: 8 });
        p.client.id.disconnect();
        const s = await p.events.next(p.server.id, ['DISCONNECTED']);
        // the passive side answers the way rping does, which moves its QP to error too
        p.server.id.disconnect();
        const c = await p.events.next(p.client.id, ['DISCONNECTED']);
        assert.equal(c.type, 'DISCONNECTED');
        assert.equal(s.type, 'DISCONNECTED');
        for (const side of [p.client, p.server]) {
          for (let i = 0; i < 8; i++) assert.equal((await side.wcs.take(1000 + i)).status, 'flushed');
          if (dev.kind === 'RoCE') assert.equal(side.qp.query().state, 'ERR');
        }
        for (const s2 of [p.client, p.server]) { s2.id.close(); s2.pd.close(); s2.channel.close(); }
        p.listener.close();
        p.events.close();
      });

      it(`${dev.name}: rdma_migrate_id moves a connection's events to another channel`, async () => {
        const p = await connectPair(dev, { recvs: 1 });
        const moved = new Events();
        p.client.id.migrate(moved.channel);
        p.client.id.disconnect();
        await p.events.next(p.server.id, ['DISCONNECTED']);
        p.server.id.disconnect();
        const ev = await moved.next(p.client.id, ['DISCONNECTED']);
        assert.equal(ev.id, p.client.id);
        assert.ok(!p.events.log.some((e) => e.id === p.client.id), 'nothing for the moved id on the old channel');
        p.events.close();
        assert.ok(!p.client.id.closed, 'the old channel no longer owns the moved id');
        moved.close();
        assert.ok(p.client.id.closed && p.client.qp.closed, 'the new channel closes it');
        for (const s2 of [p.client, p.server]) { s2.pd.close(); s2.channel.close(); }
      });

      it(`${dev.name}: misuse from JS throws typed errors, never crashes`, async () => {
        const p = await connectPair(dev, { recvs: 1 });
        try {
          const { qp, mr, pd } = p.client;
          const code = (c: string) => (e: native.NativeError) => e.code === c;
          assert.throws(() => qp.postSend(1, { mr, offset: SLAB - 10, length: 11 }), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => qp.postSend(1, { mr, offset: -1, length: 1 }), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => qp.postSend(1.5, null), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => qp.postSend(1, { mr: {} as never, offset: 0, length: 1 }), code('ERR_INVALID_ARG_TYPE'));
          assert.throws(() => qp.postSend(1, 'x' as never), code('ERR_INVALID_ARG_TYPE'));
          assert.throws(() => qp.postWrite(1, null, 'addr' as never, 1), code('ERR_INVALID_ARG_TYPE'));
          assert.throws(() => qp.postSend(1, Array(33).fill({ mr, offset: 0, length: 1 })), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => qp.postSend(1, null, 0x100), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => qp.postRead(1, null, 0n, 1, SEND_FLAGS.INLINE | SEND_FLAGS.SIGNALED), code('ERR_OUT_OF_RANGE'));
          if (dev.kind === 'iWARP') {
            // siw's user-space provider has no Local Invalidate and refuses it with -EINVAL (a negative
            // errno, where most providers return a positive one): still named EINVAL, errno -22
            assert.throws(() => qp.postLocalInvalidate(1, mr.rkey),
              (e: native.NativeError) => e.code === 'EINVAL' && (e as { errno?: number }).errno === -22 && /ibv_post_send/.test(e.message));
          }
          // an MR of another PD
          const otherPd = p.server.device.allocPd();
          const otherMr = otherPd.allocSlab(4096, ACCESS.LOCAL_WRITE);
          assert.throws(() => qp.postSend(1, { mr: otherMr, offset: 0, length: 1 }), code('ERR_WRONG_PD'));
          otherPd.close();
          assert.ok(otherMr.closed, 'closing a PD closes its MRs');
          // closed objects
          assert.throws(() => qp.postSend(1, { mr: otherMr, offset: 0, length: 1 }), code('ERR_CLOSED'));
          assert.throws(() => otherPd.allocSlab(1, 0), code('ERR_CLOSED'));
          // registration arguments
          assert.throws(() => pd.allocSlab(0, 0), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => pd.allocSlab(4096, ACCESS.REMOTE_WRITE), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => pd.registerBuffer(Buffer.from('pooled slice'), ACCESS.LOCAL_WRITE), code('ERR_OUT_OF_RANGE'));
          assert.throws(() => pd.registerBuffer('x' as never, 0), code('ERR_INVALID_ARG_TYPE'));
          // device limits are named
          const limits = p.client.device.query();
          const ev = new Events();
          const id = ev.channel.createId();
          id.resolveAddr(dev.ip, 9, 5000);
          await ev.next(id, ['ADDR_RESOLVED']);
          const pd2 = id.device!.allocPd();
          const ch = id.device!.createCompChannel();
          const cq = id.device!.createCq(8, ch, 0, () => {});
          assert.throws(() => id.createQp(pd2, cq, cq, { maxSendWr: limits.maxQpWr + 1 }),
            (e: native.NativeError) => e.code === 'ERR_DEVICE_LIMIT' && /max_qp_wr/.test(e.message));
          assert.throws(() => id.createQp(pd2, cq, cq, { maxSendSge: limits.maxSge + 1 }),
            (e: native.NativeError) => e.code === 'ERR_DEVICE_LIMIT' && /max_sge/.test(e.message));
          assert.equal(cq.poll(), 0);
          assert.throws(() => id.device!.createCq(1, ch, limits.numCompVectors, () => {}), code('ERR_OUT_OF_RANGE'));
          id.close(); pd2.close(); ch.close(); ev.close();
        } finally {
          await closePair(p);
        }
      });

      it(`${dev.name}: closing in any order neither crashes nor leaks`, async () => {
        const before = resourceCounts();
        // 1. QP before CQ, then PD with live MRs, MR buffers detached
        let p: Pair = await connectPair(dev, { recvs: 4 });
        const buf = p.client.mr.buffer;
        p.client.qp.close();
        p.client.qp.close(); // idempotent
        assert.ok(p.client.qp.closed);
        assert.throws(() => p.client.qp.postSend(1, null), (e: native.NativeError) => e.code === 'ERR_CLOSED');
        assert.throws(() => p.client.qp.postRecv(1, { mr: p.client.mr, offset: 0, length: 1 }), (e: native.NativeError) => e.code === 'ERR_CLOSED');
        assert.throws(() => p.client.qp.query(), (e: native.NativeError) => e.code === 'ERR_CLOSED');
        p.client.cq.close();
        p.client.pd.close();
        assert.ok(p.client.mr.closed);
        assert.equal(buf.byteLength, 0, 'the slab ArrayBuffer is detached at close');
        assert.throws(() => p.client.mr.buffer, (e: native.NativeError) => e.code === 'ERR_CLOSED');
        // 2. the server side: CQ channel first (closes CQ and the QP on it), then the cm_id
        p.server.channel.close();
        assert.ok(p.server.cq.closed && p.server.qp.closed, 'closing a channel closes its CQs and their QPs');
        p.server.id.close();
        p.server.pd.close();
        p.client.id.close();
        p.client.channel.close();
        p.listener.close();
        p.events.close();
        await expectCountsBack(before, 'QP-before-CQ / PD-with-MRs teardown');

        // 3. the event channel first: closes every id (and their QPs) on it
        p = await connectPair(dev, { recvs: 4 });
        p.events.close();
        for (const s of [p.client, p.server]) assert.ok(s.id.closed && s.qp.closed);
        assert.ok(p.listener.closed);
        for (const s of [p.client, p.server]) { s.pd.close(); s.channel.close(); }
        await expectCountsBack(before, 'event-channel-first teardown');

        // 4. a JS-owned ArrayBuffer registration keeps working and is released
        p = await connectPair(dev, { recvs: 1 });
        const ab = new ArrayBuffer(65536);
        const jsMr = p.server.pd.registerBuffer(new Uint8Array(ab), ACCESS.LOCAL_WRITE | ACCESS.REMOTE_WRITE | ACCESS.REMOTE_READ);
        assert.equal(jsMr.buffer, ab);
        p.client.bytes.set(pattern(1000, 41), 0);
        p.client.qp.postWrite(1, { mr: p.client.mr, offset: 0, length: 1000 }, jsMr.addr + 10n, jsMr.rkey);
        await p.client.wcs.takeOk(1);
        p.client.bytes.set(pattern(4, 42), MSG);
        p.client.qp.postSend(2, { mr: p.client.mr, offset: MSG, length: 4 });
        await p.server.wcs.takeOk(1000);
        assert.deepEqual(new Uint8Array(ab, 10, 1000), pattern(1000, 41));
        jsMr.close();
        assert.equal(ab.byteLength, 65536, 'a JS buffer is not detached, only deregistered');
        await closePair(p);
        await expectCountsBack(before, 'registered JS buffer');
      });
    });
  }
}
