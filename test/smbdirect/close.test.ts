// Close ([MS-SMBD] has no close message: the provider's disconnect is the close): graceful from
// either side mid-transfer delivers everything queued; abortive settles every promise; the first
// error is reported once; server.close() ends everything; nothing is left registered.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connect, type SmbDirectConnection } from '../../src/index.js';
import type { IwarpEndpoint } from '../../src/providers/index.js';
import { pattern } from '../support.js';
import { EXPECTED_CONTEXTS, HOST, Inbox, asyncContextsSeen, closed, pair } from './helpers.js';

function events(conn: SmbDirectConnection): string[] {
  const seen: string[] = [];
  conn.on('error', (e: Error & { code?: string }) => seen.push(`error:${e.code}`));
  conn.on('close', () => seen.push('close'));
  return seen;
}

const iwarp = (c: SmbDirectConnection) => c.endpoint as IwarpEndpoint;

describe('close', () => {
  for (const side of ['client', 'server'] as const) {
    it(`graceful close from the ${side} mid-transfer delivers every queued message, then both ends close cleanly`, async () => {
      const p = await pair({ credits: 16 });
      const [closer, other] = side === 'client' ? [p.client, p.accepted] : [p.accepted, p.client];
      const inbox = new Inbox(other);
      const evCloser = events(closer);
      const evOther = events(other);
      const msgs = Array.from({ length: 30 }, (_, i) => pattern(50_000 + i, i));
      const sends = msgs.map((m) => closer.send(m));
      const closing = closer.close();
      await assert.rejects(closer.send(new Uint8Array(1)), { code: 'ERR_SMBD_CLOSED' });
      await Promise.all(sends);
      await closing;
      assert.equal(await closed(other), undefined, 'the peer sees a clean close');
      assert.equal(inbox.messages.length, 30);
      inbox.messages.forEach((m, i) => assert.ok(Buffer.from(m).equals(Buffer.from(msgs[i]!)), `message ${i}`));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(evCloser, ['close']);
      assert.deepEqual(evOther, ['close']);
      for (const c of [closer, other]) {
        assert.equal(c.state, 'closed');
        assert.equal(iwarp(c).state, 'CLOSED');
        assert.equal(c.stats().registrationsInUse, 0);
      }
      assert.equal(await closer.close(), undefined, 'close() again is a no-op');
      await p.server.close();
    });
  }

  it('destroy(err) mid-transfer rejects every pending send and RDMA read with err, reports it once; the peer ends too', async () => {
    const p = await pair({ credits: 8 });
    const ev = events(p.client);
    const reg = p.accepted.registerBuffer(pattern(1 << 20, 1), 'read');
    const sends = Array.from({ length: 50 }, (_, i) => p.client.send(pattern(20_000, i)));
    const read = p.client.rdmaRead(reg.descriptors, new Uint8Array(1 << 20));
    const boom = Object.assign(new Error('application gave up'), { code: 'ERR_APP' });
    const peerEnd = closed(p.accepted);
    p.client.destroy(boom);
    p.client.destroy(new Error('second')); // ignored: the first error is latched
    const results = await Promise.allSettled([...sends, read]);
    const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    assert.ok(rejected.length >= 40, `${rejected.length} of 51 rejected`);
    for (const r of rejected) assert.equal(r.reason, boom);
    assert.ok(await peerEnd, 'the peer ends with an error (a Terminate or the reset)');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(ev, ['error:ERR_APP', 'close']);
    assert.equal(p.client.error, boom);
    assert.equal(p.client.stats().registrationsInUse, 0);
    await p.server.close();
  });

  it('a peer that disconnects while we have work queued fails it with ERR_SMBD_DISCONNECTED', async () => {
    const p = await pair({ credits: 4 });
    p.client.pause(); // hold the client's receive buffers: the server runs out of credits
    const sends = Array.from({ length: 20 }, (_, i) => p.accepted.send(pattern(5000, i)));
    const settled = Promise.allSettled(sends);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(p.accepted.stats().sendQueued > 0);
    const end = closed(p.accepted);
    await p.client.close(); // graceful on its side: it has nothing queued
    const err = await end;
    assert.equal((err as { code?: string } | undefined)?.code, 'ERR_SMBD_DISCONNECTED');
    const results = await settled;
    assert.ok(results.some((r) => r.status === 'rejected' && r.reason === err), 'queued sends fail with that error');
    await p.server.close();
  });

  it("a peer's graceful close while its last messages' receives are reposted is a clean close, not ERR_SMBD_DISCONNECTED", async () => {
    // on verbs the peer's DISCONNECTED can be read before the completions of its last messages:
    // the endpoint is going down (posts refused with ERR_INVALID_STATE) while the connection still
    // reposts their receives. No message can arrive any more, so nothing is lost.
    const p = await pair({ credits: 8 });
    const inbox = new Inbox(p.accepted);
    const ep = p.accepted.endpoint;
    const postRecv = ep.postRecv.bind(ep);
    let refused = 0;
    ep.postRecv = (...args: Parameters<typeof ep.postRecv>) => {
      if (inbox.messages.length >= 1) {
        refused++;
        throw Object.assign(new Error('cannot post work in state CLOSING'), { code: 'ERR_INVALID_STATE' });
      }
      postRecv(...args);
    };
    const end = closed(p.accepted);
    await p.client.send(pattern(100, 1));
    await inbox.count(1);
    await p.client.close();
    assert.ok(refused >= 1, 'a receive repost was refused');
    assert.equal(await end, undefined, 'the server side closes cleanly');
    await p.server.close();
  });

  it("AsyncLocalStorage reads on each side's events what it read where that side was made", async () => {
    assert.deepEqual(await asyncContextsSeen(HOST), EXPECTED_CONTEXTS);
  });

  it('server.close() closes every connection and stops listening', async () => {
    const p = await pair();
    const second = await connect({ host: HOST, port: p.server.address()!.port });
    const ends = [closed(p.client), closed(second)];
    await p.server.close();
    assert.deepEqual(await Promise.all(ends), [undefined, undefined]);
    assert.equal(p.server.connections.size, 0);
    await assert.rejects(connect({ host: HOST, port: (p.server.address() ?? { port: 1 }).port }));
  });

  it('send, registerBuffer and RDMA calls after close fail with ERR_SMBD_CLOSED', async () => {
    const p = await pair();
    await p.client.close();
    await assert.rejects(p.client.send(new Uint8Array(1)), { code: 'ERR_SMBD_CLOSED' });
    assert.throws(() => p.client.registerBuffer(new Uint8Array(10), 'read'), { code: 'ERR_SMBD_CLOSED' });
    await assert.rejects(p.client.rdmaWrite([{ offset: 0n, token: 1, length: 10 }], new Uint8Array(10)), { code: 'ERR_SMBD_CLOSED' });
    await closed(p.accepted);
    await p.server.close();
  });
});
