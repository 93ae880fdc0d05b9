// The `verbs` RdmaProvider (src/providers/verbs/) on rxe0 (soft-RoCE) and siw0 (soft-iWARP),
// through the provider interface only: private data, send/recv with exact bytes, 1 MiB RDMA
// write and read with content checks, Send-with-Invalidate (siw), both close kinds with their
// flushed completions and events, IPv6, device limits named, defaultProvider() choosing verbs,
// and kernel object counts back to the baseline after the file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import {
  type Completion, type MemoryRegion, type RdmaEndpoint, RdmaError, type VerbsOptions, type VerbsProvider,
  createVerbsProvider, defaultProvider,
} from '../../src/providers/index.js';
import { Wcs } from '../support.js';
import { DEVICES, type Counts, baselineCounts, expectCountsBack, pattern, requireVm } from './helpers.js';

const RECV = 4096;
const RECVS = 16;
const MiB = 1 << 20;

interface End {
  ep: RdmaEndpoint;
  wcs: Wcs;
  /** [0, MiB) bulk data (remote read/write), then RECVS receive slots, then a send area */
  mr: MemoryRegion;
  events: string[];
}

const SEND_AT = MiB + RECVS * RECV;
const SLAB = SEND_AT + 64 * 1024;

function end(ep: RdmaEndpoint): End {
  const mr = ep.registerMemory(SLAB, { localWrite: true, remoteRead: true, remoteWrite: true });
  const events: string[] = [];
  for (const e of ['disconnected', 'error', 'close']) ep.on(e, (err?: Error) => events.push(e === 'error' ? `error:${(err as RdmaError).code}` : e));
  return { ep, wcs: new Wcs(ep, 20_000), mr, events };
}

function postRecvs(e: End, n = RECVS): void {
  for (let i = 0; i < n; i++) e.ep.postRecv(1000 + i, { mr: e.mr, offset: MiB + i * RECV, length: RECV });
}

function send(e: End, wrId: number, bytes: Uint8Array, invalidateRkey?: number): void {
  e.mr.buffer.set(bytes, SEND_AT);
  e.ep.postSend(wrId, [{ mr: e.mr, offset: SEND_AT, length: bytes.length }], invalidateRkey === undefined ? {} : { invalidateRkey });
}

function slot(e: End, wrId: number, len: number): Uint8Array {
  return e.mr.buffer.subarray(MiB + (wrId - 1000) * RECV, MiB + (wrId - 1000) * RECV + len);
}

interface Pair { provider: VerbsProvider; client: End; server: End; close(): Promise<void> }

async function connectPair(host: string, opts: VerbsOptions = {}, pd?: { client?: Uint8Array; server?: Uint8Array }): Promise<Pair & { peerPd: { client: Uint8Array; server: Uint8Array } }> {
  const provider = createVerbsProvider(opts);
  const listener = await provider.listen({ host, port: 0 });
  try {
    const conn = once(listener, 'connection');
    const clientP = provider.connect({ host, port: listener.port, privateData: pd?.client, initiatorDepth: 4, responderResources: 4 });
    const [sep] = (await conn) as [RdmaEndpoint];
    const server = end(sep);
    postRecvs(server);
    await sep.accept(pd?.server);
    const cep = await clientP;
    const client = end(cep);
    postRecvs(client);
    return {
      provider, client, server,
      peerPd: { client: cep.peerPrivateData, server: sep.peerPrivateData },
      async close() {
        await Promise.all([client.ep.disconnect(), server.ep.disconnect()]);
      },
    };
  } finally {
    await listener.close();
  }
}

/** 'close' (events.once would reject on the 'error' that may come first). */
function closed(ep: RdmaEndpoint): Promise<void> {
  return new Promise((resolve) => ep.once('close', () => resolve()));
}

function statuses(cs: Completion[]): string[] {
  return [...new Set(cs.map((c) => c.status))];
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => { await expectCountsBack(base, 'verbs-provider.test'); });

  it('defaultProvider() picks verbs where a device has an active port, and says which', () => {
    const p = defaultProvider({ host: DEVICES[0]!.ip });
    assert.equal(p.name, 'verbs');
    assert.match(p.reason, new RegExp(`${DEVICES[0]!.name} port 1 is active and serves ${DEVICES[0]!.ip.replace(/\./g, '\\.')}`));
  });

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind}) through the verbs provider`, () => {
      it(`${dev.name}: connects with private data both ways; send/recv delivers exact bytes`, async () => {
        const cpd = new TextEncoder().encode('client hello');
        const spd = new TextEncoder().encode('server hello, accepted');
        const p = await connectPair(dev.ip, {}, { client: cpd, server: spd });
        try {
          assert.deepEqual(p.peerPd.server.subarray(0, cpd.length), cpd);
          assert.deepEqual(p.peerPd.client.subarray(0, spd.length), spd);
          const msgs = [pattern(1, 1), pattern(100, 2), pattern(RECV, 3), pattern(1364, 4)];
          for (let i = 0; i < msgs.length; i++) {
            send(p.client, i + 1, msgs[i]!);
            const sc = await p.client.wcs.ok(i + 1);
            assert.equal(sc.opcode, 'send');
            assert.equal(sc.byteLength, msgs[i]!.length);
            const rc = await p.server.wcs.ok(1000 + i);
            assert.equal(rc.opcode, 'recv');
            assert.equal(rc.byteLength, msgs[i]!.length);
            assert.deepEqual(slot(p.server, 1000 + i, rc.byteLength), msgs[i]);
          }
          // the other way, a 3-piece gather list
          const a = pattern(10, 5), b = pattern(300, 6), c = pattern(7, 7);
          const s = p.server;
          s.mr.buffer.set(a, SEND_AT); s.mr.buffer.set(b, SEND_AT + 1000); s.mr.buffer.set(c, SEND_AT + 5000);
          s.ep.postSend(20, [{ mr: s.mr, offset: SEND_AT, length: 10 }, { mr: s.mr, offset: SEND_AT + 1000, length: 300 }, { mr: s.mr, offset: SEND_AT + 5000, length: 7 }]);
          await s.wcs.ok(20);
          const rc = await p.client.wcs.ok(1000);
          assert.ok(Buffer.from(slot(p.client, 1000, rc.byteLength)).equals(Buffer.concat([a, b, c])), 'gathered bytes');
          // an unsignaled send reports nothing; the signaled one after it does
          p.client.mr.buffer.set(pattern(8, 8), SEND_AT);
          p.client.ep.postSend(30, [{ mr: p.client.mr, offset: SEND_AT, length: 8 }], { signaled: false });
          p.client.ep.postSend(31, [{ mr: p.client.mr, offset: SEND_AT, length: 8 }]);
          await p.client.wcs.ok(31);
          assert.ok(!p.client.wcs.all.some((x) => x.wrId === 30), 'no completion for the unsignaled send');
          await p.server.wcs.ok(1004);
          await p.server.wcs.ok(1005);
          const st = p.provider.stats()[dev.name];
          assert.ok(st && st.length >= 1, JSON.stringify(p.provider.stats()));
          assert.equal(st.reduce((n, x) => n + x.qps, 0), 2, 'both QPs on the pool');
          assert.ok(st.reduce((n, x) => n + x.completions, 0) >= 12, JSON.stringify(st));
        } finally {
          await p.close();
        }
      });

      it(`${dev.name}: 1 MiB RDMA write and read with content checks`, async () => {
        const p = await connectPair(dev.ip);
        try {
          const c = p.client, s = p.server;
          const data = pattern(MiB, 11);
          c.mr.buffer.set(data, 0);
          c.ep.postWrite(1, [{ mr: c.mr, offset: 0, length: MiB }], s.mr.addr, s.mr.rkey);
          const wc = await c.wcs.ok(1);
          assert.equal(wc.opcode, 'write');
          assert.equal(wc.byteLength, MiB);
          // tell the server the write is done (a send after the write on the same QP)
          send(c, 2, new Uint8Array([1]));
          await c.wcs.ok(2);
          await s.wcs.ok(1000);
          assert.ok(Buffer.from(s.mr.buffer.subarray(0, MiB)).equals(data), 'written bytes');
          // the server's bytes read back by the client
          const other = pattern(MiB, 12);
          s.mr.buffer.set(other, 0);
          c.ep.postRead(3, [{ mr: c.mr, offset: 0, length: MiB }], s.mr.addr, s.mr.rkey);
          const rc = await c.wcs.ok(3);
          assert.equal(rc.opcode, 'read');
          assert.equal(rc.byteLength, MiB);
          assert.ok(Buffer.from(c.mr.buffer.subarray(0, MiB)).equals(other), 'read bytes');
        } finally {
          await p.close();
        }
      });

      it(`${dev.name}: a read reports its completion even when the sends posted after it complete first`, async () => {
        // On iWARP an RDMA Read completes when its response has arrived, and siw completes the
        // sends behind it on transmit, before that: the provider once took the later send's
        // completion to retire the read too, and the read's own completion was dropped as stale.
        const p = await connectPair(dev.ip);
        try {
          const c = p.client, s = p.server;
          for (let round = 0; round < 8; round++) {
            const data = pattern(MiB, 20 + round);
            s.mr.buffer.set(data, 0);
            c.ep.postRead(100 + round, [{ mr: c.mr, offset: 0, length: MiB }], s.mr.addr, s.mr.rkey);
            // an unsignaled and a signaled send right behind the read
            c.mr.buffer.set([round], SEND_AT);
            c.ep.postSend(200 + round, [{ mr: c.mr, offset: SEND_AT, length: 1 }], { signaled: false });
            c.ep.postSend(300 + round, [{ mr: c.mr, offset: SEND_AT, length: 1 }]);
            const [rc] = await Promise.all([c.wcs.ok(100 + round), c.wcs.ok(300 + round)]);
            assert.equal(rc.opcode, 'read');
            assert.ok(Buffer.from(c.mr.buffer.subarray(0, MiB)).equals(data), `round ${round}: the bytes read`);
            await s.wcs.ok(1000 + 2 * round);
            await s.wcs.ok(1000 + 2 * round + 1);
          }
        } finally {
          await p.close();
        }
      });

      it(`${dev.name}: a receive posted before a send on another connection of this thread is in place when that send arrives`, async () => {
        // Receives are staged and posted when the JS task ends; a send posted in the same task on
        // another endpoint (here the server's, answering into the client's receive) must not overtake
        // them. siw terminated the connection ("no buffer") when it did: the bench's raw pair hit it.
        const p = await connectPair(dev.ip);
        try {
          const c = p.client, s = p.server;
          for (let i = 0; i < RECVS; i++) send(s, 10 + i, new Uint8Array([i]));
          for (let i = 0; i < RECVS; i++) await c.wcs.ok(1000 + i); // the client has no receive posted now
          c.ep.postRecv(2000, { mr: c.mr, offset: MiB, length: RECV });
          s.mr.buffer.set([7, 8], SEND_AT);
          // two SGEs: posted at once, not staged
          s.ep.postSend(30, [{ mr: s.mr, offset: SEND_AT, length: 1 }, { mr: s.mr, offset: SEND_AT + 1, length: 1 }]);
          // the task goes on long enough for the Send to arrive before it ends
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
          const rc = await c.wcs.ok(2000);
          assert.equal(rc.byteLength, 2);
          assert.deepEqual([...c.mr.buffer.subarray(MiB, MiB + 2)], [7, 8]);
          await s.wcs.ok(30);
          assert.deepEqual(c.events, []);
          assert.deepEqual(s.events, []);
        } finally {
          await p.close();
        }
      });

      if (dev.kind === 'iWARP') {
        it(`${dev.name}: Send-with-Invalidate of the peer's rkey, then a read through it fails`, async () => {
          const p = await connectPair(dev.ip);
          try {
            const target = p.server.ep.registerMemory(8192, { localWrite: true, remoteRead: true });
            target.buffer.set(pattern(8192, 13));
            p.client.ep.postRead(1, [{ mr: p.client.mr, offset: 0, length: 8192 }], target.addr, target.rkey);
            await p.client.wcs.ok(1);
            assert.deepEqual(p.client.mr.buffer.subarray(0, 8192), pattern(8192, 13));
            send(p.client, 2, pattern(16, 14), target.rkey);
            await p.client.wcs.ok(2);
            const rc = await p.server.wcs.ok(1000);
            assert.equal(rc.byteLength, 16);
            const gone = Promise.all([closed(p.client.ep), closed(p.server.ep)]);
            p.client.ep.postRead(3, [{ mr: p.client.mr, offset: 0, length: 8192 }], target.addr, target.rkey);
            const ec = await p.client.wcs.take(3);
            assert.notEqual(ec.status, 'success', 'a read through an invalidated STag fails');
            await gone;
            assert.ok(p.client.events.includes('close'), JSON.stringify(p.client.events));
          } finally {
            await p.close();
          }
        });
      }

      it(`${dev.name}: graceful disconnect flushes receives, both sides see 'disconnected' then 'close'`, async () => {
        const p = await connectPair(dev.ip);
        send(p.client, 1, pattern(64, 15));
        await p.client.wcs.ok(1);
        await p.server.wcs.ok(1000);
        const bothClosed = Promise.all([closed(p.client.ep), closed(p.server.ep)]);
        await p.client.ep.disconnect();
        await bothClosed;
        for (const e of [p.client, p.server]) {
          assert.deepEqual(e.events, ['disconnected', 'close']);
          const recvs = e.wcs.all.filter((c) => c.opcode === 'recv');
          assert.equal(recvs.length, e === p.server ? RECVS - 1 : RECVS, `${e === p.client ? 'client' : 'server'} receives all completed`);
          assert.deepEqual(statuses(recvs), ['flushed']);
          assert.throws(() => e.ep.postSend(9, []), (err: RdmaError) => err.code === 'ERR_INVALID_STATE');
          assert.equal(e.mr.buffer.byteLength, 0, 'registered slabs are released (detached) at close');
        }
        await p.server.ep.disconnect(); // idempotent once closed
      });

      it(`${dev.name}: destroy() is abortive: local work flushes, the peer's connection ends`, async () => {
        const p = await connectPair(dev.ip);
        const bothClosed = Promise.all([closed(p.client.ep), closed(p.server.ep)]);
        p.server.ep.destroy(new RdmaError('ERR_TEST_ABORT', 'test abort'));
        await bothClosed;
        assert.deepEqual(statuses(p.server.wcs.all), ['flushed']);
        assert.equal(p.server.wcs.all.length, RECVS);
        assert.ok(p.server.events.includes('error:ERR_TEST_ABORT'), JSON.stringify(p.server.events));
        // the peer sees its connection end (gracefully answered or with an error) and its receives flush
        assert.ok(p.client.events.includes('close'), JSON.stringify(p.client.events));
        assert.deepEqual(statuses(p.client.wcs.all), ['flushed']);
        assert.equal(p.client.wcs.all.length, RECVS);
      });

      it(`${dev.name}: queue sizes over the device limits fail with the limit named`, async () => {
        const provider = createVerbsProvider({ maxSendWr: 1 << 30 });
        const listener = await createVerbsProvider().listen({ host: dev.ip, port: 0 });
        listener.on('connection', (ep: RdmaEndpoint) => { void ep.reject(); });
        try {
          await assert.rejects(provider.connect({ host: dev.ip, port: listener.port }),
            (e: RdmaError) => e.code === 'ERR_DEVICE_LIMIT' && /maxSendWr \d+ exceeds the device's max_qp_wr/.test(e.message));
          await assert.rejects(createVerbsProvider({ maxRecvSge: 1000 }).connect({ host: dev.ip, port: listener.port }),
            (e: RdmaError) => e.code === 'ERR_DEVICE_LIMIT' && /max_sge/.test(e.message));
          await assert.rejects(createVerbsProvider().connect({ host: dev.ip, port: listener.port, responderResources: 255 }),
            (e: RdmaError) => e.code === 'ERR_DEVICE_LIMIT' && /max_qp_rd_atom/.test(e.message));
          // a rejected request
          await assert.rejects(createVerbsProvider().connect({ host: dev.ip, port: listener.port }),
            (e: RdmaError) => e.code === 'ERR_VERBS_REJECTED');
        } finally {
          await listener.close();
        }
      });

      it(`${dev.name}: IPv6`, async () => {
        const netdev = dev.kind === 'RoCE' ? 'd0' : 'd1';
        const ip6 = dev.kind === 'RoCE' ? 'fd99:0::1' : 'fd99:1::1';
        execFileSync('ip', ['-6', 'addr', 'replace', `${ip6}/64`, 'dev', netdev, 'nodad']);
        // rxe adds the GID of a new address asynchronously
        for (let i = 0; i < 100 && dev.kind === 'RoCE' && !defaultProvider({ host: ip6 }).name.startsWith('verbs'); i++) await new Promise((r) => setTimeout(r, 50));
        const p = await connectPair(ip6);
        try {
          send(p.client, 1, pattern(200, 16));
          await p.client.wcs.ok(1);
          const rc = await p.server.wcs.ok(1000);
          assert.deepEqual(slot(p.server, 1000, rc.byteLength), pattern(200, 16));
          assert.equal((p.client.ep as unknown as { id: { peerAddress: { family: string } } }).id.peerAddress.family, 'IPv6');
        } finally {
          await p.close();
        }
      });
    });
  }
}
