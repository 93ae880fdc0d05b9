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
import { Inbox, closed } from '../smbdirect/helpers.js';
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

      it(`${dev.name}: places data by RDMA write and read across descriptors${dev.kind === 'iWARP' ? ', with Send-with-Invalidate' : ''}`, async () => {
        const p = await pair(dev.ip);
        const toClient = new Inbox(p.client);
        // SMB2 READ: two client buffers, the server writes 1 MiB across them, then responds
        const bufs = [Buffer.alloc(300_000), Buffer.alloc(748_576)];
        const reg = p.client.registerBuffer(bufs, 'write');
        const data = pattern(1 << 20, 7);
        await p.accepted.rdmaWrite(reg.descriptors, data);
        // siw invalidates a plain MR remotely; rxe only windows, which per-I/O registration is not
        const invalidate = dev.kind === 'iWARP' ? reg.token : undefined;
        await p.accepted.send(new Uint8Array([1]), invalidate === undefined ? {} : { invalidate });
        await toClient.count(1, 30_000);
        assert.ok(Buffer.concat(bufs).equals(Buffer.from(data)), 'placed');
        // not asserted: siw sets the CQE's remote-invalidate flag only for kernel consumers
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
        await p.client.close();
        await closed(p.accepted);
        await p.server.close();
      });

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
