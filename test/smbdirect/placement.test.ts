// Direct placement ([MS-SMBD] 3.1.4.5 / 3.1.4.6): the client registers buffers and sends their
// descriptors; the server RDMA-writes (SMB2 READ) or RDMA-reads (SMB2 WRITE) through them, walking
// several descriptors at an offset; per-I/O tokens are invalidated remotely or locally and then fail.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeBufferDescriptors, encodeBufferDescriptors } from '../../framing/index.js';
import { pattern } from '../support.js';
import type { SmbDirectOptions } from '../../src/index.js';
import { Inbox, closed, pair } from './helpers.js';

describe('direct placement', () => {
  it('SMB2 READ shape: the server RDMA-writes across three descriptors, then Send-with-Invalidate', async () => {
    const p = await pair();
    const bufs = [new Uint8Array(5000), new Uint8Array(70_000), new Uint8Array(1_000_000)];
    const reg = p.client.registerBuffer(bufs, 'write');
    assert.equal(reg.descriptors.length, 3);
    assert.equal(new Set(reg.descriptors.map((d) => d.token)).size, 3, 'a fresh token per buffer');
    const serverIn = new Inbox(p.accepted);
    const clientIn = new Inbox(p.client);
    await p.client.send(encodeBufferDescriptors(reg.descriptors));
    const [req] = await serverIn.count(1);
    const descriptors = decodeBufferDescriptors(req!);
    const data = pattern(1_075_000, 7);
    assert.equal(await p.accepted.rdmaWrite(descriptors, data), data.length);
    // the response carries Send-with-Invalidate of the first token; we make the rest unusable
    await p.accepted.send(new Uint8Array([1]), { invalidate: reg.token });
    await clientIn.count(1);
    assert.equal(reg.invalidated, true);
    assert.equal(p.client.stats().remoteInvalidations, 1);
    assert.deepEqual(Buffer.concat(bufs), Buffer.from(data));
    assert.equal(p.client.stats().registrationsInUse, 3);
    reg.release();
    reg.release(); // idempotent
    assert.equal(p.client.stats().registrationsInUse, 0);
    const s = p.accepted.stats();
    assert.equal(s.rdmaWrites, 1);
    assert.equal(s.rdmaBytesWritten, data.length);
    assert.equal(s.rdmaLatency.count, 1);
    await p.close();
  });

  it('SMB2 WRITE shape: the server RDMA-reads from an offset across descriptors', async () => {
    const p = await pair();
    const bufs = [pattern(3000, 1), pattern(4096, 2), pattern(2_000_000, 3)];
    const reg = p.client.registerBuffer(bufs, 'read');
    const all = Buffer.concat(bufs);
    const into = new Uint8Array(1_500_000);
    // start 2500 bytes in: the walk begins inside the first descriptor and spans all three
    assert.equal(await p.accepted.rdmaRead(reg.descriptors, into, { offset: 2500 }), into.length);
    assert.deepEqual(Buffer.from(into), all.subarray(2500, 2500 + into.length));
    // an offset that skips whole descriptors
    const tail = new Uint8Array(10_000);
    await p.accepted.rdmaRead(reg.descriptors, tail, { offset: 3000 + 4096 + 5 });
    assert.deepEqual(Buffer.from(tail), all.subarray(7101, 7101 + 10_000));
    reg.release();
    await p.close();
  });

  it("the server's own buffers stay registered between transfers: views at offsets, new bytes each time, released at close", async () => {
    const p = await pair();
    const target = new Uint8Array(300_000);
    const reg = p.client.registerBuffer(target, 'readwrite');
    // one ArrayBuffer behind two views at different offsets, rewritten between transfers
    const pool = new Uint8Array(1 << 20);
    const a = pool.subarray(1000, 101_000);
    const b = pool.subarray(500_000, 800_000);
    const clientIn = new Inbox(p.client);
    for (let round = 0; round < 3; round++) {
      a.set(pattern(a.length, 10 + round));
      await p.accepted.rdmaWrite(reg.descriptors, a);
      // a write completion means sent: the response after it says placed
      await p.accepted.send(new Uint8Array([round]));
      await clientIn.count(round + 1);
      assert.deepEqual(Buffer.from(target.subarray(0, a.length)), Buffer.from(a), `round ${round}: the bytes of this round`);
      await p.accepted.rdmaRead(reg.descriptors, b, { offset: 0 });
      assert.deepEqual(Buffer.from(b), Buffer.from(target), `round ${round}: read into the second view`);
      assert.deepEqual(Buffer.from(pool.subarray(0, 1000)), Buffer.alloc(1000), 'nothing before the first view is touched');
    }
    assert.equal(p.accepted.stats().cachedRegistrations, 1, 'one registration for the one ArrayBuffer');
    const other = pattern(50_000, 4);
    await p.accepted.rdmaWrite(reg.descriptors, other);
    assert.equal(p.accepted.stats().cachedRegistrations, 2);
    reg.release();
    await p.close();
    assert.equal(p.accepted.stats().cachedRegistrations, 0, 'closed with the connection');
  });

  it("RDMA Reads in flight stay within the ORD the transport negotiated (the client's IRD 2), not rdmaReadDepth (16)", async () => {
    const p = await pair({}, { responderResources: 2 } as SmbDirectOptions);
    assert.equal(p.client.endpoint.responderResources, 2, "the client's IRD");
    assert.equal(p.accepted.endpoint.initiatorDepth, 2, "the server's ORD, lowered to the client's IRD in the MPA exchange");
    assert.equal(p.accepted.endpoint.responderResources, 16);
    assert.equal(p.client.endpoint.initiatorDepth, 16);
    // reads the connection hands the provider past its ORD wait inside the provider, holding
    // send-queue slots: the software provider's queue of them shows it
    const ep = p.accepted.endpoint;
    const waiting = (ep as unknown as { pendingReads: unknown[] }).pendingReads;
    assert.ok(Array.isArray(waiting), "the software provider's queue of reads waiting for an ORD slot");
    let peakWaiting = 0;
    const postRead = ep.postRead.bind(ep);
    ep.postRead = (...args: Parameters<typeof ep.postRead>) => {
      postRead(...args);
      peakWaiting = Math.max(peakWaiting, waiting.length);
    };
    const bufs = Array.from({ length: 16 }, (_, i) => pattern(65_536, 40 + i));
    const reg = p.client.registerBuffer(bufs, 'read');
    const intos = bufs.map(() => new Uint8Array(65_536));
    await Promise.all(reg.descriptors.map((d, i) => p.accepted.rdmaRead([d], intos[i]!)));
    intos.forEach((b, i) => assert.deepEqual(Buffer.from(b), Buffer.from(bufs[i]!)));
    assert.equal(peakWaiting, 0, 'no read was posted beyond the negotiated ORD');
    reg.release();
    await p.close();
  });

  it('moves MaxReadWriteSize (8 MiB) each way byte-exact, cut into RDMA operations', async () => {
    const p = await pair();
    const max = p.accepted.negotiated!.maxReadWriteSize;
    assert.equal(max, 8 * 1024 * 1024);
    const target = new Uint8Array(max);
    const w = p.client.registerBuffer(target, 'write');
    const data = pattern(max, 42);
    const clientIn = new Inbox(p.client);
    await p.accepted.rdmaWrite(w.descriptors, data);
    // as an SMB2 READ response does: the send after the writes arrives after their data is placed
    await p.accepted.send(new Uint8Array([1]));
    await clientIn.count(1);
    assert.ok(Buffer.from(target).equals(Buffer.from(data)));
    w.release();
    const source = pattern(max, 43);
    const r = p.client.registerBuffer(source, 'read');
    const into = new Uint8Array(max);
    await p.accepted.rdmaRead(r.descriptors, into);
    assert.ok(Buffer.from(into).equals(Buffer.from(source)));
    r.release();
    await p.close();
  });

  it('startRdmaWrite: the response sent right behind it, without waiting, arrives after the data; what cannot be queued throws at once', async () => {
    const p = await pair();
    const into = new Uint8Array(1 << 20);
    const reg = p.client.registerBuffer(into, 'write');
    const clientIn = new Inbox(p.client);
    const data = pattern(into.length, 9);
    // what would keep the Write from being posted throws synchronously: no promise to forget
    assert.throws(() => p.accepted.startRdmaWrite(reg.descriptors, new Uint8Array(into.length + 1)), { code: 'ERR_SMBD_BAD_DESCRIPTORS' });
    assert.throws(() => p.accepted.startRdmaWrite([], data), { code: 'ERR_SMBD_BAD_DESCRIPTORS' });
    for (let i = 0; i < 4; i++) {
      // each round: new bytes, the response queued before the Write completes
      data[0] = i;
      data[data.length - 1] = i;
      const written = p.accepted.startRdmaWrite(reg.descriptors, data);
      await p.accepted.send(new Uint8Array([i]));
      const m = (await clientIn.count(i + 1))[i]!;
      assert.equal(m[0], i);
      assert.equal(into[0], i, 'the first byte is placed when the response arrives');
      assert.equal(into[into.length - 1], i, 'and the last');
      assert.deepEqual(Buffer.from(into), Buffer.from(data));
      assert.equal(await written, data.length);
    }
    reg.release();
    await p.close();
  });

  it('rejects zero-length and oversized transfers and descriptor lists that do not cover them', async () => {
    const p = await pair();
    const reg = p.client.registerBuffer(new Uint8Array(4096), 'readwrite');
    const d = reg.descriptors;
    const max = p.accepted.negotiated!.maxReadWriteSize;
    await assert.rejects(p.accepted.rdmaRead(d, new Uint8Array(0)), { code: 'ERR_SMBD_TRANSFER_SIZE' });
    await assert.rejects(p.accepted.rdmaWrite(d, new Uint8Array(max + 1)), { code: 'ERR_SMBD_TRANSFER_SIZE' });
    await assert.rejects(p.accepted.rdmaWrite([], new Uint8Array(10)), { code: 'ERR_SMBD_BAD_DESCRIPTORS' });
    await assert.rejects(p.accepted.rdmaWrite([{ ...d[0]!, length: 0 }], new Uint8Array(10)), { code: 'ERR_SMBD_BAD_DESCRIPTORS' });
    await assert.rejects(p.accepted.rdmaWrite(d, new Uint8Array(4097)), { code: 'ERR_SMBD_BAD_DESCRIPTORS' });
    await assert.rejects(p.accepted.rdmaRead(d, new Uint8Array(100), { offset: 4000 }), { code: 'ERR_SMBD_BAD_DESCRIPTORS' });
    assert.throws(() => p.client.registerBuffer(new Uint8Array(0), 'read'), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
    // none of that touched the connection
    assert.equal(p.accepted.state, 'connected');
    await p.accepted.rdmaWrite(d, pattern(4096, 1));
    reg.release();
    await p.close();
  });

  for (const how of ['released', 'remotely invalidated'] as const) {
    it(`a ${how} token fails remotely: the RDMA operation errors and the connection ends, no byte placed`, async () => {
      const p = await pair();
      const buf = new Uint8Array(64 * 1024).fill(0xee);
      const reg = p.client.registerBuffer(buf, 'write');
      const clientIn = new Inbox(p.client);
      if (how === 'released') reg.release();
      else {
        await p.accepted.send(new Uint8Array([1]), { invalidate: reg.token });
        await clientIn.count(1);
        assert.equal(reg.invalidated, true);
      }
      const serverEnd = closed(p.accepted);
      const clientEnd = closed(p.client);
      // an RDMA Write completes when it is sent (iWARP); the peer's Terminate then ends the connection
      await p.accepted.rdmaWrite(reg.descriptors, pattern(1000, 1)).catch(() => {});
      await assert.rejects(p.accepted.rdmaRead(reg.descriptors, new Uint8Array(1000)), 
        // the failed completion's status is completionStatus (status: its deprecated alias)
        { code: 'ERR_SMBD_TRANSPORT', completionStatus: 'remote-access', status: 'remote-access' });
      assert.ok(await serverEnd, 'the server side ends with an error');
      assert.ok(await clientEnd, 'the client side ends with an error');
      assert.ok(buf.every((b) => b === 0xee), 'not a byte was written');
      await p.server.close();
    });
  }

  it('a read-only registration refuses an RDMA write', async () => {
    const p = await pair();
    const buf = new Uint8Array(4096).fill(0x11);
    const reg = p.client.registerBuffer(buf, 'read');
    const end = closed(p.client);
    await p.accepted.rdmaWrite(reg.descriptors, pattern(4096, 1)).catch(() => {});
    assert.equal((await end as { code?: string } | undefined)?.code, 'ERR_IWARP_ACCESS', 'the Terminate names the violation');
    assert.ok(buf.every((b) => b === 0x11));
    await p.server.close();
  });
});
