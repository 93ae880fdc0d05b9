// The SMB Direct connection (smbdirect) on the verbs provider, on rxe0 (soft-RoCE) and siw0
// (soft-iWARP): negotiation, messages up to MaxFragmentedSize both ways, direct placement across
// descriptors (RDMA write + response, RDMA read at an offset into memory the provider cannot
// register, so through a bounce buffer), Send-with-Invalidate where the device can remotely
// invalidate a plain MR (siw), credit liveness with small credits, graceful close mid-transfer,
// and kernel object counts back at the baseline after the file.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import { type SmbDirectConnection, type SmbDirectOptions, connect, createServer } from '../../src/index.js';
import { EXPECTED_CONTEXTS, Inbox, asyncContextsSeen, closed } from '../smbdirect/helpers.js';
import { DEVICES, type Counts, baselineCounts, expectCountsBack, pattern, requireVm } from './helpers.js';

async function pair(host: string, opts: SmbDirectOptions = {}) {
  const server = createServer({ ...opts, provider: 'verbs' });
  const { port } = await server.listen({ host, port: 0 });
  const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
  const client = await connect({ host, port, provider: 'verbs', ...opts });
  const [accepted] = await acceptedP;
  return { server, client, accepted };
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => { await expectCountsBack(base, 'smbdirect.test'); });

  for (const dev of DEVICES) {
    describe(`SMB Direct on ${dev.name} (${dev.kind}, verbs provider)`, () => {
      it(`${dev.name}: negotiates the defaults and carries messages up to MaxFragmentedSize both ways, in order`, async () => {
        const p = await pair(dev.ip);
        assert.equal(p.client.providerName, 'verbs');
        assert.deepEqual(p.client.negotiated, p.accepted.negotiated);
        const toServer = new Inbox(p.accepted);
        const toClient = new Inbox(p.client);
        const max = p.client.negotiated!.maxFragmentedSendSize;
        const sizes = [1, 1340, 1341, 100_003, max];
        const a = sizes.map((n, i) => pattern(n, i + 1));
        const b = sizes.map((n, i) => pattern(n, i + 50));
        await Promise.all([...a.map((m) => p.client.send(m)), ...b.map((m) => p.accepted.send(m))]);
        await toServer.count(sizes.length, 30_000);
        await toClient.count(sizes.length, 30_000);
        toServer.messages.forEach((m, i) => assert.ok(Buffer.from(m).equals(Buffer.from(a[i]!)), `client -> server #${i}`));
        toClient.messages.forEach((m, i) => assert.ok(Buffer.from(m).equals(Buffer.from(b[i]!)), `server -> client #${i}`));
        await p.client.close();
        assert.equal(await closed(p.accepted), undefined);
        await p.server.close();
      });

      it(`${dev.name}: AsyncLocalStorage reads on each side's events what it read where that side was made`, async () => {
        // the addon calls in from libuv with no async context: the provider restores the one of
        // listen() (the server's side) and of connect() (the client's), as net does
        assert.deepEqual(await asyncContextsSeen(dev.ip, { provider: 'verbs' }), EXPECTED_CONTEXTS);
      });

      it(`${dev.name}: places data by RDMA write and read across descriptors, with Send-with-Invalidate`, async () => {
        const p = await pair(dev.ip);
        const toClient = new Inbox(p.client);
        // SMB2 READ: two client buffers, the server writes 1 MiB across them, then responds
        const bufs = [Buffer.alloc(300_000), Buffer.alloc(748_576)];
        const reg = p.client.registerBuffer(bufs, 'write');
        const data = pattern(1 << 20, 7);
        await p.accepted.rdmaWrite(reg.descriptors, data);
        // siw invalidates a plain MR remotely; rxe only windows, which the per-I/O tokens are there
        // (rxe has type-2 windows, siw none)
        await p.accepted.send(new Uint8Array([1]), { invalidate: reg.token });
        await toClient.count(1, 30_000);
        assert.ok(Buffer.concat(bufs).equals(Buffer.from(data)), 'placed');
        if (dev.kind === 'RoCE') {
          assert.equal(reg.invalidated, true, 'the window was invalidated by the peer, and we were told');
          assert.equal(p.client.stats().remoteInvalidations, 1);
        }
        // not asserted on siw: it sets the CQE's remote-invalidate flag only for kernel consumers
        // (siw_cq.c: rdma_is_kernel_res), so a user-space receiver on siw never learns of it; the
        // token is dead all the same, and release() deregisters it either way
        assert.equal(p.client.state, 'connected');
        reg.release();
        // SMB2 WRITE: the server reads from an offset into a view the provider will not register
        const src = [pattern(4096, 8), pattern(1 << 20, 9)];
        const wreg = p.client.registerBuffer(src, 'read');
        const backing = Buffer.alloc(2 << 20);
        const into = backing.subarray(3, 3 + 1_000_000);
        assert.equal(await p.accepted.rdmaRead(wreg.descriptors, into, { offset: 100 }), into.length);
        assert.ok(into.equals(Buffer.concat(src).subarray(100, 100 + into.length)), 'read');
        wreg.release();
        assert.equal(p.client.stats().registrationsInUse, 0);
        assert.equal(p.accepted.stats().rdmaReads, 1);
        // a view into an ArrayBuffer too large to keep registered (> 64 MiB): through a bounce buffer
        const huge = Buffer.alloc(70 << 20);
        const rreg = p.client.registerBuffer(src, 'read');
        const far = huge.subarray(50 << 20, (50 << 20) + 4000);
        assert.equal(await p.accepted.rdmaRead(rreg.descriptors, far), far.length);
        assert.ok(far.equals(Buffer.concat(src).subarray(0, 4000)), 'read through the bounce buffer');
        rreg.release();
        assert.equal(p.accepted.stats().cachedRegistrations, 2, 'the 1 MiB source and the 2 MiB backing are kept, the 70 MiB one is not');
        await p.client.close();
        await closed(p.accepted);
        await p.server.close();
      });

      if (dev.kind === 'RoCE') {
        it(`${dev.name}: per-I/O tokens are memory windows: a released token is refused remotely and ends the connection`, async () => {
          const p = await pair(dev.ip);
          const buf = Buffer.alloc(64 * 1024);
          const reg = p.client.registerBuffer(buf, 'write');
          const token = reg.descriptors[0]!.token;
          await p.accepted.rdmaWrite(reg.descriptors, pattern(buf.length, 3));
          const again = p.client.registerBuffer(buf, 'write');
          assert.notEqual(again.descriptors[0]!.token, token, 'a fresh key for the same buffer');
          again.release();
          reg.release();
          const clientEnd = closed(p.client);
          await assert.rejects(p.accepted.rdmaWrite(reg.descriptors, pattern(buf.length, 4)), (e: Error & { code?: string }) => e.code === 'ERR_SMBD_TRANSPORT');
          await clientEnd;
          assert.equal(buf[0], pattern(buf.length, 3)[0], 'nothing of the refused write was placed');
          await p.server.close();
        });

        it(`${dev.name}: a window the peer invalidated is bound again for the next I/O under a new key; the old key is refused`, async () => {
          const p = await pair(dev.ip);
          const buf = Buffer.alloc(64 * 1024);
          const reg = p.client.registerBuffer(buf, 'write');
          const token = reg.descriptors[0]!.token;
          await p.accepted.rdmaWrite(reg.descriptors, pattern(buf.length, 3));
          const response = once(p.client, 'message');
          await p.accepted.send(new Uint8Array(64), { invalidate: token });
          await response;
          assert.equal(p.client.stats().remoteInvalidations, 1);
          reg.release();
          const again = p.client.registerBuffer(buf, 'write');
          const token2 = again.descriptors[0]!.token;
          // rxe's rkey is the window's index and an 8-bit key: the same index shows the window was reused
          assert.equal(token2 >>> 8, token >>> 8, 'the invalidated window is bound again');
          assert.notEqual(token2, token, 'under a new key');
          await p.accepted.rdmaWrite(again.descriptors, pattern(buf.length, 5));
          assert.ok(buf.equals(pattern(buf.length, 5)), 'the new key places data');
          // the old key, while the same window is bound again under the new one
          const clientEnd = closed(p.client);
          await assert.rejects(p.accepted.rdmaWrite(reg.descriptors, pattern(buf.length, 6)), (e: Error & { code?: string }) => e.code === 'ERR_SMBD_TRANSPORT');
          await clientEnd;
          assert.ok(buf.equals(pattern(buf.length, 5)), 'nothing of the write under the old key was placed');
          again.release();
          await p.server.close();
        });
      }

      it(`${dev.name}: small credits (3 and 5) under random two-sided traffic: no deadlock, nothing lost`, async () => {
        const p = await pair(dev.ip, { credits: 3 });
        await p.client.close();
        await p.server.close();
        const q = await pair(dev.ip, { credits: 5 });
        const toServer = new Inbox(q.accepted);
        const toClient = new Inbox(q.client);
        let seed = 12345;
        const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
        let sa = 0, sb = 0;
        for (let round = 0; round < 60; round++) {
          const sends: Array<Promise<void>> = [];
          for (let k = rnd(8) + 1; k > 0; k--) {
            const n = rnd(4) === 0 ? 1341 + rnd(20_000) : 1 + rnd(300);
            const m = new Uint8Array(n);
            if (rnd(2)) { m[0] = sa++ & 0xff; sends.push(q.client.send(m)); } else { m[0] = sb++ & 0xff; sends.push(q.accepted.send(m)); }
          }
          await Promise.all(sends);
        }
        await toServer.count(sa, 30_000);
        await toClient.count(sb, 30_000);
        assert.deepEqual(toServer.messages.map((m) => m[0]), Array.from({ length: sa }, (_, i) => i & 0xff));
        assert.deepEqual(toClient.messages.map((m) => m[0]), Array.from({ length: sb }, (_, i) => i & 0xff));
        await q.client.close();
        await closed(q.accepted);
        await q.server.close();
      });

      it(`${dev.name}: a graceful close mid-transfer delivers everything queued; destroy settles every promise`, async () => {
        const p = await pair(dev.ip, { credits: 16 });
        const toServer = new Inbox(p.accepted);
        const msgs = Array.from({ length: 20 }, (_, i) => pattern(40_000 + i, i));
        const sends = msgs.map((m) => p.client.send(m));
        const closing = p.client.close();
        await Promise.all(sends);
        await closing;
        assert.equal(await closed(p.accepted), undefined);
        assert.equal(toServer.messages.length, 20);
        toServer.messages.forEach((m, i) => assert.ok(Buffer.from(m).equals(Buffer.from(msgs[i]!))));
        // abortive: every pending send rejects, the peer ends with an error
        const q = await pair(dev.ip, { credits: 8 });
        const pending = Promise.allSettled(Array.from({ length: 30 }, (_, i) => q.client.send(pattern(30_000, i))));
        const peerEnd = closed(q.accepted);
        q.client.destroy(new Error('stop'));
        const results = await pending;
        assert.ok(results.every((r) => r.status === 'fulfilled' || (r.reason as Error).message === 'stop'));
        assert.ok(results.some((r) => r.status === 'rejected'));
        await peerEnd;
        await Promise.all([p.server.close(), q.server.close()]);
      });
    });
  }
}
