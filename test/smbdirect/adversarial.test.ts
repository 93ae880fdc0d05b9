// A raw provider endpoint as the peer, sending crafted messages after a correct negotiation: every
// [MS-SMBD] 3.1.5.8 terminate rule ends that connection with the matching code, and the server
// keeps serving others. Keepalive ([MS-SMBD] 3.1.6.2) both ways, and its timeout.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import { decodeDataTransfer } from '../../framing/index.js';
import { connect, createServer, type SmbDirectConnection } from '../../src/index.js';
import { HOST, RawPeer, closed, dataTransfer, pair, request, response } from './helpers.js';

function header(o: { credits?: number; granted?: number; flags?: number; remaining?: number; offset?: number; length?: number }, total: number): Uint8Array {
  const b = Buffer.alloc(total);
  b.writeUInt16LE(o.credits ?? 255, 0);
  b.writeUInt16LE(o.granted ?? 0, 2);
  b.writeUInt16LE(o.flags ?? 0, 4);
  b.writeUInt32LE(o.remaining ?? 0, 8);
  b.writeUInt32LE(o.offset ?? 24, 12);
  b.writeUInt32LE(o.length ?? total - 24, 16);
  return b;
}

const rules: Array<[string, Uint8Array[], string]> = [
  ['a 19-byte message', [new Uint8Array(19).fill(1)], 'ERR_SMBD_SHORT_MESSAGE'],
  ['CreditsRequested 0', [header({ credits: 0 }, 40)], 'ERR_SMBD_ZERO_CREDITS_REQUESTED'],
  ['DataOffset 28 (not 8-byte aligned)', [header({ offset: 28, length: 4 }, 32)], 'ERR_SMBD_BAD_DATA_OFFSET'],
  ['DataOffset + DataLength past the message', [header({ length: 17 }, 40)], 'ERR_SMBD_DATA_OVERRUN'],
  ['DataLength + RemainingDataLength above MaxFragmentedSize', [header({ remaining: 1044480 - 15 }, 40)], 'ERR_SMBD_FRAGMENT_OVERRUN'],
  ['a fragment that does not continue the message', [header({ remaining: 100 }, 40), header({ remaining: 50 }, 40)], 'ERR_SMBD_FRAGMENT_MISMATCH'],
  ['a message longer than the negotiated MaxReceiveSize', [header({}, 1400)], 'ERR_SMBD_RECEIVE_TOO_LARGE'],
  ['Send-with-Invalidate of a key that is no registration (our receive buffers)', [], 'ERR_SMBD_BAD_INVALIDATE'],
];

describe('terminate rules against a crafted peer ([MS-SMBD] 3.1.5.8)', () => {
  for (const [what, msgs, code] of rules) {
    it(`${what} -> ${code}, and the server keeps serving`, async () => {
      const server = createServer();
      const { port } = await server.listen({ host: HOST, port: 0 });
      const bystander = await connect({ host: HOST, port });
      const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
      const raw = await RawPeer.connect(port);
      raw.send(request({ preferredSendSize: 1364 }));
      await raw.message(0);
      const [conn] = await acceptedP;
      const end = closed(conn);
      if (msgs.length) for (const m of msgs) raw.send(m);
      else {
        // a live STag of ours that is no registration: the connection's receive slab, its first
        // (STags are unpredictable, so the test reads it off the endpoint)
        const slab = [...(conn.endpoint as unknown as { regions: Map<number, unknown> }).regions.keys()][0]!;
        raw.send(dataTransfer({ creditsRequested: 255, creditsGranted: 0, data: new Uint8Array(8) }), { invalidateRkey: slab });
      }
      const err = await end;
      assert.equal((err as { code?: string } | undefined)?.code, code, String(err));
      await raw.end();
      // the other connection is untouched
      const echo = once(bystander, 'message');
      const [other] = [...server.connections];
      other!.on('message', (m: Uint8Array) => void other!.send(m));
      await bystander.send(new Uint8Array([9, 9]));
      assert.deepEqual([...((await echo)[0] as Uint8Array)], [9, 9]);
      bystander.destroy();
      await server.close();
    });
  }
});

describe('keepalive ([MS-SMBD] 3.1.6.2)', () => {
  it('both idle ends ask for a response, both answer, and the connection lives on', async () => {
    const p = await pair({ keepaliveIntervalMs: 100 });
    await new Promise((r) => setTimeout(r, 450));
    const c = p.client.stats();
    const s = p.accepted.stats();
    assert.ok(c.keepalivesSent >= 1 && s.keepalivesSent >= 1, `keepalives: client ${c.keepalivesSent}, server ${s.keepalivesSent}`);
    assert.ok(c.emptySends >= c.keepalivesSent && s.emptySends >= s.keepalivesSent);
    assert.equal(p.client.state, 'connected');
    assert.equal(p.accepted.state, 'connected');
    await p.close();
  });

  it('an end that keeps receiving does not ask: the idle time runs from the last receive', async () => {
    const p = await pair({ keepaliveIntervalMs: 200 });
    p.accepted.on('message', () => {}); // (messages no one listens for are held, not received)
    for (let i = 0; i < 16; i++) {
      await p.client.send(new Uint8Array(64));
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(p.accepted.stats().keepalivesSent, 0, 'a message every 50 ms, the interval 200 ms');
    assert.equal(p.accepted.stats().messagesReceived, 16);
    await p.close();
  });

  it('answers RESPONSE_REQUESTED promptly with a message that does not ask back', async () => {
    const l = await RawPeer.listen();
    const peerP = l.accept();
    const connP = connect({ host: HOST, port: l.port });
    const peer = await peerP;
    await peer.message(0);
    peer.send(response({ creditsGranted: 10 }));
    const conn = await connP;
    await peer.message(1); // the initial grant
    peer.send(dataTransfer({ creditsRequested: 255, creditsGranted: 0, flags: 1 }));
    const answer = decodeDataTransfer(await peer.message(2, 1000));
    assert.equal(answer.flags, 0, 'no RESPONSE_REQUESTED on the answer (no ping-pong)');
    assert.equal(answer.dataLength, 0);
    conn.destroy();
    peer.destroy();
    await l.close();
  });

  it('terminates a peer that takes our credits and goes silent, though no keepalive can be sent (no credit to send it with)', async () => {
    const server = createServer({ keepaliveIntervalMs: 100, keepaliveTimeoutMs: 150 });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
    const raw = await RawPeer.connect(port);
    raw.send(request()); // then nothing: our grant is never answered with credits of its own
    await raw.message(0);
    const [conn] = await acceptedP;
    const started = Date.now();
    const err = await closed(conn);
    assert.equal((err as { code?: string } | undefined)?.code, 'ERR_SMBD_KEEPALIVE_TIMEOUT', String(err));
    assert.match(String(err), /no send credit/);
    assert.equal(conn.stats().keepalivesSent, 0, 'it never had a credit to ask with');
    assert.ok(Date.now() - started < 2000);
    await raw.end();
    await server.close();
  });

  it('terminates a peer that does not answer within keepaliveTimeoutMs', async () => {
    const l = await RawPeer.listen();
    const peerP = l.accept();
    const connP = connect({ host: HOST, port: l.port, keepaliveIntervalMs: 100, keepaliveTimeoutMs: 150 });
    const peer = await peerP;
    await peer.message(0);
    peer.send(response({ creditsGranted: 10 }));
    const conn = await connP;
    const end = closed(conn);
    const err = await end;
    assert.equal((err as { code?: string } | undefined)?.code, 'ERR_SMBD_KEEPALIVE_TIMEOUT');
    const asked = peer.received.slice(1).map((b) => decodeDataTransfer(b)).filter((m) => m.flags === 1);
    assert.equal(asked.length, 1, 'one keepalive asked for a response');
    await peer.end();
    await l.close();
  });
});
