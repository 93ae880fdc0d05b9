// [MS-SMBD] negotiation in both roles, against a raw provider endpoint that sends crafted bytes:
// the acceptor rules of 3.1.5.6, the initiator rules of 3.1.5.7, the ksmbd off-by-one boundaries,
// and both timers.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import { decodeNegotiateRequest, decodeNegotiateResponse } from '../../framing/index.js';
import { connect, createServer, type SmbDirectConnection, type SmbDirectServer } from '../../src/index.js';
import { HOST, Inbox, RawPeer, dataTransfer, pair, request, response } from './helpers.js';

async function serverWithErrors(opts = {}): Promise<{ server: SmbDirectServer; port: number; errors: Error[] }> {
  const server = createServer(opts);
  const errors: Error[] = [];
  server.on('connectionError', (e: Error) => errors.push(e));
  const { port } = await server.listen({ host: HOST, port: 0 });
  return { server, port, errors };
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('acceptor ([MS-SMBD] 3.1.5.6)', () => {
  it('accepts MaxReceiveSize 128 and MaxFragmentedSize 131072 (the spec minimums ksmbd refused) and sizes its answer', async () => {
    const { server, port } = await serverWithErrors();
    const accepted = once(server, 'connection') as Promise<[SmbDirectConnection]>;
    const raw = await RawPeer.connect(port);
    raw.send(request({ creditsRequested: 10, preferredSendSize: 1000, maxReceiveSize: 128, maxFragmentedSize: 131072 }));
    const res = decodeNegotiateResponse(await raw.message(0));
    assert.equal(res.status, 0);
    assert.equal(res.negotiatedVersion, 0x100);
    assert.equal(res.preferredSendSize, 128, 'PreferredSendSize = min(ours, the request MaxReceiveSize)');
    assert.equal(res.maxReceiveSize, 8192);
    assert.equal(res.creditsRequested, 255);
    assert.equal(res.creditsGranted, 10, 'grants what the peer asked for, from receives already posted');
    assert.equal(res.maxFragmentedSize, 1044480, '1 MiB capped at 255 x 8192 / 2');
    assert.equal(res.maxReadWriteSize, 8 * 1024 * 1024);
    const [conn] = await accepted;
    assert.deepEqual(conn.negotiated, {
      maxSendSize: 128, maxReceiveSize: 1000, maxFragmentedSendSize: 131072, maxFragmentedReceiveSize: 1044480,
      maxReadWriteSize: 8 * 1024 * 1024, peerCreditsRequested: 10,
    });
    // and it speaks: a data transfer message from the raw peer arrives as a message
    const inbox = new Inbox(conn);
    raw.send(dataTransfer({ creditsRequested: 10, creditsGranted: 5, data: new TextEncoder().encode('over rdma') }));
    const [m] = await inbox.count(1);
    assert.equal(Buffer.from(m!).toString(), 'over rdma');
    raw.destroy();
    await server.close();
  });

  it('answers a request with no common version with STATUS_NOT_SUPPORTED, then disconnects', async () => {
    const { server, port, errors } = await serverWithErrors();
    const raw = await RawPeer.connect(port);
    raw.send(request({ minVersion: 0x200, maxVersion: 0x200 }));
    const bytes = await raw.message(0);
    assert.equal(bytes.length, 32);
    assert.throws(() => decodeNegotiateResponse(bytes), { code: 'ERR_SMBD_NEGOTIATE_FAILED', status: 0xc00000bb });
    assert.equal(Buffer.from(bytes).readUInt16LE(0), 0x100, 'MinVersion');
    assert.equal(Buffer.from(bytes).readUInt16LE(2), 0x100, 'MaxVersion');
    assert.equal(Buffer.from(bytes).readUInt16LE(10), 0, 'no credits granted on failure');
    await raw.end();
    await waitFor(() => errors.length === 1);
    assert.equal((errors[0] as { code?: string }).code, 'ERR_SMBD_NO_COMMON_VERSION');
    await server.close();
  });

  const silent: Array<[string, Uint8Array, string]> = [
    ['CreditsRequested 0', request({ creditsRequested: 0 }), 'ERR_SMBD_ZERO_CREDITS_REQUESTED'],
    ['MaxReceiveSize 127', request({ maxReceiveSize: 127 }), 'ERR_SMBD_RECEIVE_SIZE_TOO_SMALL'],
    ['MaxFragmentedSize 131071', request({ maxFragmentedSize: 131071 }), 'ERR_SMBD_FRAGMENTED_SIZE_TOO_SMALL'],
    ['a 19-byte request', request().subarray(0, 19), 'ERR_SMBD_SHORT_MESSAGE'],
  ];
  for (const [what, bytes, code] of silent) {
    it(`terminates without a response on ${what}, and keeps serving`, async () => {
      const { server, port, errors } = await serverWithErrors();
      const raw = await RawPeer.connect(port);
      raw.send(bytes);
      await raw.end();
      assert.equal(raw.received.length, 0, 'no negotiate response');
      await waitFor(() => errors.length === 1);
      assert.equal((errors[0] as { code?: string }).code, code);
      // the server still serves a well-behaved client
      const good = await connect({ host: HOST, port });
      assert.equal(good.state, 'connected');
      good.destroy();
      await server.close();
    });
  }

  it('gives up on a peer that sends no request within acceptTimeoutMs', async () => {
    const { server, port, errors } = await serverWithErrors({ acceptTimeoutMs: 150 });
    const raw = await RawPeer.connect(port);
    await raw.end(3000);
    await waitFor(() => errors.length === 1);
    assert.equal((errors[0] as { code?: string }).code, 'ERR_SMBD_NEGOTIATE_TIMEOUT');
    await server.close();
  });
});

describe('initiator ([MS-SMBD] 3.1.5.2, 3.1.5.7)', () => {
  it('sends the default request and grants credits right after a minimal response', async () => {
    const l = await RawPeer.listen();
    const peerP = l.accept();
    const connP = connect({ host: HOST, port: l.port });
    const peer = await peerP;
    const reqBytes = await peer.message(0);
    assert.deepEqual(decodeNegotiateRequest(reqBytes), {
      minVersion: 0x100, maxVersion: 0x100, creditsRequested: 255, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1044480,
    });
    peer.send(response({ creditsGranted: 1, creditsRequested: 7, maxReceiveSize: 128, maxFragmentedSize: 131072, preferredSendSize: 8192, maxReadWriteSize: 1 << 20 }));
    const conn = await connP;
    assert.deepEqual(conn.negotiated, {
      maxSendSize: 128, maxReceiveSize: 8192, maxFragmentedSendSize: 131072, maxFragmentedReceiveSize: 1044480,
      maxReadWriteSize: 1 << 20, peerCreditsRequested: 7,
    });
    // one credit, spent on a message that grants: the empty grant of 7 (the peer's target)
    const grant = Buffer.from(await peer.message(1));
    assert.equal(grant.length, 20, 'an empty data transfer message');
    assert.equal(grant.readUInt16LE(0), 255, 'CreditsRequested = our target');
    assert.equal(grant.readUInt16LE(2), 7, 'CreditsGranted = the peer target');
    assert.equal(conn.stats().sendCredits, 0);
    conn.destroy();
    peer.destroy();
    await l.close();
  });

  const bad: Array<[string, Uint8Array, string]> = [
    ['STATUS_NOT_SUPPORTED', response({ status: 0xc00000bb, creditsGranted: 0, creditsRequested: 0 }), 'ERR_SMBD_NEGOTIATE_REFUSED'],
    ['STATUS_INSUFFICIENT_RESOURCES', response({ status: 0xc000009a }), 'ERR_SMBD_NEGOTIATE_FAILED'],
    ['NegotiatedVersion 0x0200', response({ negotiatedVersion: 0x200 }), 'ERR_SMBD_BAD_NEGOTIATED_VERSION'],
    ['CreditsGranted 0', response({ creditsGranted: 0 }), 'ERR_SMBD_ZERO_CREDITS_GRANTED'],
    ['CreditsRequested 0', response({ creditsRequested: 0 }), 'ERR_SMBD_ZERO_CREDITS_REQUESTED'],
    ['MaxReceiveSize 127', response({ maxReceiveSize: 127 }), 'ERR_SMBD_RECEIVE_SIZE_TOO_SMALL'],
    ['MaxFragmentedSize 131071', response({ maxFragmentedSize: 131071 }), 'ERR_SMBD_FRAGMENTED_SIZE_TOO_SMALL'],
    ['PreferredSendSize above our MaxReceiveSize', response({ preferredSendSize: 8193 }), 'ERR_SMBD_PREFERRED_SEND_SIZE_TOO_LARGE'],
    ['a 31-byte response', response().subarray(0, 31), 'ERR_SMBD_SHORT_MESSAGE'],
  ];
  for (const [what, bytes, code] of bad) {
    it(`refuses a response with ${what} and disconnects`, async () => {
      const l = await RawPeer.listen();
      const peerP = l.accept();
      const connP = connect({ host: HOST, port: l.port });
      const peer = await peerP;
      await peer.message(0);
      peer.send(bytes);
      await assert.rejects(connP, { code });
      await peer.end();
      await l.close();
    });
  }

  it('gives up when no response comes within negotiateTimeoutMs', async () => {
    const l = await RawPeer.listen();
    const peerP = l.accept();
    const connP = connect({ host: HOST, port: l.port, negotiateTimeoutMs: 150 });
    const peer = await peerP;
    await assert.rejects(connP, { code: 'ERR_SMBD_NEGOTIATE_TIMEOUT' });
    await peer.end();
    await l.close();
  });

  it('refuses options that break the protocol before connecting', async () => {
    await assert.rejects(connect({ host: HOST, port: 1, maxSendSize: 8137 }), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
    await assert.rejects(connect({ host: HOST, port: 1, credits: 2 }), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
    await assert.rejects(connect({ host: HOST, port: 1, maxFragmentedSize: 131071 }), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
  });

  it('two of ours agree on the defaults', async () => {
    const p = await pair();
    assert.deepEqual(p.client.negotiated, p.accepted.negotiated);
    assert.equal(p.client.negotiated!.maxSendSize, 1364);
    assert.equal(p.client.negotiated!.maxReceiveSize, 1364);
    await p.close();
  });
});
