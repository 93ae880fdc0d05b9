// The software iWARP provider over real loopback TCP sockets: MPA setup, DDP/RDMAP operations,
// STags and access rights, Terminate on bad input, close semantics, and the stream -> RDMA
// transition with its races.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type Socket, connect as tcpConnect, createServer } from 'node:net';
import { describe, it } from 'node:test';

import { encodeFpdu, RDMAP_SEND, DDP_QN_SEND, RDMAP_WRITE } from '../framing/ddp.js';
import { encodeMpaReply, encodeMpaRequest } from '../framing/mpa.js';
import {
  type IwarpEndpoint, type IwarpOptions, MpaRejectedError, type RdmaEndpoint, Smb2StreamFramer,
  createIwarpProvider, frameSmb2, upgradeToRdma,
} from '../src/providers/index.js';
import { StagAllocator } from '../src/providers/iwarp/stag.js';
import { Wcs, pattern } from './support.js';

const HOST = '127.0.0.1';
const MiB = 1 << 20;
const RW = { localWrite: true, remoteRead: true, remoteWrite: true };

async function pair(opts: { server?: IwarpOptions; client?: IwarpOptions; clientPd?: Uint8Array; serverPd?: Uint8Array } = {}) {
  const listener = await createIwarpProvider(opts.server).listen({ host: HOST, port: 0 });
  const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
  const clientP = createIwarpProvider(opts.client).connect({ host: HOST, port: listener.port, privateData: opts.clientPd });
  const [server] = await accepted;
  await server.accept(opts.serverPd);
  const client = (await clientP) as IwarpEndpoint;
  await listener.close();
  return { client, server, cw: new Wcs(client), sw: new Wcs(server) };
}

function errorOf(ep: RdmaEndpoint): Promise<Error & { code: string }> {
  return new Promise((resolve) => ep.once('error', resolve));
}

describe('iwarp-tcp provider', () => {
  it('connects with private data both ways, moves bytes by send, write and read (1 MiB)', async () => {
    const { client, server, cw, sw } = await pair({ clientPd: Buffer.from('hello from client'), serverPd: Buffer.from('hi back') });
    assert.equal(Buffer.from(server.peerPrivateData).toString(), 'hello from client');
    assert.equal(Buffer.from(client.peerPrivateData).toString(), 'hi back');
    assert.equal(client.settings.crc, true);
    const cmr = client.registerMemory(2 * MiB, RW);
    const smr = server.registerMemory(2 * MiB, RW);
    // send/recv, multi-FPDU message, gathered from 2 SGEs
    server.postRecv(1, { mr: smr, offset: MiB, length: 100_000 });
    cmr.buffer.set(pattern(70_000, 1), 0);
    cmr.buffer.set(pattern(30_000, 2), 500_000);
    client.postSend(10, [{ mr: cmr, offset: 0, length: 70_000 }, { mr: cmr, offset: 500_000, length: 30_000 }]);
    await cw.ok(10);
    const rc = await sw.ok(1);
    assert.equal(rc.byteLength, 100_000);
    assert.ok(Buffer.from(smr.buffer.subarray(MiB, MiB + 70_000)).equals(pattern(70_000, 1)));
    assert.ok(Buffer.from(smr.buffer.subarray(MiB + 70_000, MiB + 100_000)).equals(pattern(30_000, 2)));
    // RDMA write 1 MiB, then a send: when it arrives the write has been placed
    cmr.buffer.set(pattern(MiB, 3), 0);
    client.postWrite(11, [{ mr: cmr, offset: 0, length: MiB }], smr.addr, smr.rkey);
    server.postRecv(2, { mr: smr, offset: MiB, length: 64 });
    client.postSend(12, [{ mr: cmr, offset: 0, length: 4 }]);
    await cw.ok(11); await cw.ok(12); await sw.ok(2);
    assert.ok(Buffer.from(smr.buffer.subarray(0, MiB)).equals(pattern(MiB, 3)));
    // RDMA read 1 MiB back from another offset
    smr.buffer.set(pattern(MiB, 4), MiB);
    client.postRead(13, [{ mr: cmr, offset: MiB, length: MiB }], smr.addr + BigInt(MiB), smr.rkey);
    await cw.ok(13);
    assert.ok(Buffer.from(cmr.buffer.subarray(MiB, 2 * MiB)).equals(pattern(MiB, 4)));
    // completions of the send queue arrive in posting order
    client.postRead(14, [{ mr: cmr, offset: 0, length: 1000 }], smr.addr, smr.rkey);
    server.postRecv(3, { mr: smr, offset: MiB, length: 64 });
    client.postSend(15, [{ mr: cmr, offset: 0, length: 4 }]);
    await cw.ok(15);
    assert.deepEqual(cw.all.map((c) => c.wrId), [14], 'the read completed no later than the send posted after it');
    await Promise.all([client.disconnect(), once(server, 'disconnected')]);
  });

  it('reads into its own buffer or through data events, with any FPDU size, byte-exact (8 MiB of writes and sends)', async () => {
    // the endpoint parses FPDUs in place in its receive buffer and moves a partial one to the front
    // when the tail runs short; 'data' events (readBufferSize 0) copy into the same buffer
    for (const [readBufferSize, maxFpduPayload, into] of [[undefined, 16384, true], [undefined, 65517, true], [0, 65517, false], [0, 1000, false], [140_000, 65517, true]] as const) {
      const label = `readBufferSize ${readBufferSize ?? 'default'}, FPDU ${maxFpduPayload}`;
      const { client, server, cw, sw } = await pair({ client: { maxFpduPayload }, server: { readBufferSize } });
      assert.equal(server.readsIntoBuffer, into, `${label}: reads into its buffer`);
      const cmr = client.registerMemory(MiB + 4096, RW);
      const smr = server.registerMemory(8 * MiB, RW);
      // odd sizes and offsets so FPDUs straddle every read boundary
      let off = 0, wr = 0;
      for (let i = 0; off < 8 * MiB - 300_000; i++) {
        const len = 1 + ((i * 77_777) % 300_000);
        cmr.buffer.set(pattern(len, i), 0);
        client.postWrite(++wr, [{ mr: cmr, offset: 0, length: len }], smr.addr + BigInt(off), smr.rkey);
        await cw.ok(wr);
        off += len;
      }
      const expected = Buffer.alloc(off);
      for (let i = 0, at = 0; at < off; i++) { const len = 1 + ((i * 77_777) % 300_000); expected.set(pattern(len, i), at); at += len; }
      server.postRecv(1, { mr: smr, offset: 0, length: 200_000 });
      cmr.buffer.set(pattern(199_999, 99), 0);
      client.postSend(++wr, [{ mr: cmr, offset: 0, length: 199_999 }]);
      assert.equal((await sw.ok(1)).byteLength, 199_999, label);
      assert.ok(Buffer.from(smr.buffer.subarray(0, 199_999)).equals(pattern(199_999, 99)), `${label}: the send`);
      assert.ok(Buffer.from(smr.buffer.subarray(199_999, off)).equals(expected.subarray(199_999)), `${label}: the writes`);
      await Promise.all([client.disconnect(), once(server, 'disconnected')]);
    }
  });

  it('Send-with-Invalidate invalidates the STag; a later read through it is a remote access error', async () => {
    const { client, server, cw, sw } = await pair();
    const cmr = client.registerMemory(4096, RW);
    const target = client.registerMemory(4096, RW);   // the client exposes this to the server
    const smr = server.registerMemory(8192, RW);
    target.buffer.set(pattern(4096, 5));
    server.postRead(1, [{ mr: smr, offset: 0, length: 4096 }], target.addr, target.rkey);
    await sw.ok(1);
    assert.ok(Buffer.from(smr.buffer.subarray(0, 4096)).equals(pattern(4096, 5)));
    client.postRecv(2, { mr: cmr, offset: 0, length: 64 });
    server.postSend(3, [{ mr: smr, offset: 0, length: 8 }], { invalidateRkey: target.rkey });
    const rc = await cw.ok(2);
    assert.equal(rc.invalidatedRkey, target.rkey);
    const serverErr = errorOf(server);
    const clientErr = errorOf(client);
    server.postRead(4, [{ mr: smr, offset: 0, length: 64 }], target.addr, target.rkey);
    assert.equal((await sw.take(4)).status, 'remote-access');
    assert.equal((await serverErr).code, 'ERR_IWARP_TERMINATED');
    assert.equal((await clientErr).code, 'ERR_IWARP_INVALID_STAG');
  });

  it('STags: indexes wrap around past the ones still registered, a reused index gets a new key, and only a full table is out of STags', () => {
    const stags = new StagAllocator(4);
    const first = [stags.allocate(), stags.allocate(), stags.allocate(), stags.allocate()];
    assert.deepEqual(first.map((s) => s >>> 8).sort(), [1, 2, 3, 4]);
    assert.throws(() => stags.allocate(), (e: Error & { code?: string }) => e.code === 'ERR_NO_STAG');
    stags.release(first[1]!);
    const again = stags.allocate();
    assert.equal(again >>> 8, first[1]! >>> 8, 'the freed index, skipping the registered ones');
    assert.notEqual(again, first[1], 'with another key');
    stags.release(again);
    // one registration per I/O, forever: an STag comes back only after 256 rounds of the table
    const seen = new Map<number, number>();
    for (let i = 0; i < 3 * 256 * 4; i++) {
      const s = stags.allocate();
      stags.release(s);
      const before = seen.get(s);
      assert.ok(before === undefined || i - before >= 256, `STag 0x${s.toString(16)} again after ${i - (before ?? 0)} registrations`);
      seen.set(s, i);
    }
    assert.equal(stags.size, 3, 'the three never released are still registered');
  });

  it('STags differ between endpoints: a peer cannot predict the next one from another connection', () => {
    const a = new StagAllocator(), b = new StagAllocator();
    const sa = Array.from({ length: 8 }, () => a.allocate()), sb = Array.from({ length: 8 }, () => b.allocate());
    assert.notDeepEqual(sa, sb);
    assert.notDeepEqual(sa.map((s) => s & 0xff), sb.map((s) => s & 0xff), 'keys differ, not only the start index');
    // consecutive indexes do not step their key by a constant
    const steps = new Set(sa.slice(1).map((s, i) => ((s & 0xff) - (sa[i]! & 0xff) + 256) & 0xff));
    assert.ok(steps.size > 1, `key steps ${[...steps]}`);
  });

  it('a write to a read-only region is refused with a Terminate; not a byte is written', async () => {
    const { client, server, cw } = await pair();
    const cmr = client.registerMemory(4096, RW);
    const backing = new Uint8Array(3 * 4096).fill(0xee);
    const ro = server.registerMemory(backing.subarray(4096, 8192), { localWrite: true, remoteRead: true });
    const errs = Promise.all([errorOf(client), errorOf(server)]);
    cmr.buffer.fill(1);
    client.postWrite(1, [{ mr: cmr, offset: 0, length: 4096 }], ro.addr, ro.rkey);
    client.postSend(2, [{ mr: cmr, offset: 0, length: 4 }]);
    const [ce, se] = await errs;
    assert.equal(se.code, 'ERR_IWARP_ACCESS');
    assert.equal(ce.code, 'ERR_IWARP_TERMINATED');
    const statuses = [(await cw.take(1)).status, (await cw.take(2)).status];
    assert.ok(statuses.includes('remote-access') || statuses.every((s) => s === 'success' || s === 'flushed'), statuses.join());
    assert.ok(backing.every((b) => b === 0xee), 'nothing written anywhere');
  });

  it('a Send larger than the posted receive is an error, not a truncation; no receive is a Terminate', async () => {
    let { client, server, sw } = await pair();
    let cmr = client.registerMemory(8192, RW);
    let smr = server.registerMemory(8192, RW);
    server.postRecv(1, { mr: smr, offset: 0, length: 100 });
    server.postRecv(2, { mr: smr, offset: 100, length: 100 });
    let errs = Promise.all([errorOf(client), errorOf(server)]);
    client.postSend(3, [{ mr: cmr, offset: 0, length: 101 }]);
    assert.equal((await sw.take(1)).status, 'local-length');
    assert.equal((await sw.take(2)).status, 'flushed');
    let [ce, se] = await errs;
    assert.equal(se.code, 'ERR_IWARP_MESSAGE_TOO_LONG');
    assert.equal(ce.code, 'ERR_IWARP_TERMINATED');
    ({ client, server, sw } = await pair());
    cmr = client.registerMemory(64, RW);
    smr = server.registerMemory(64, RW);
    errs = Promise.all([errorOf(client), errorOf(server)]);
    client.postSend(1, [{ mr: cmr, offset: 0, length: 8 }]);
    [ce, se] = await errs;
    assert.equal(se.code, 'ERR_IWARP_NO_RECEIVE');
    assert.equal(ce.code, 'ERR_IWARP_TERMINATED');
  });

  it('graceful disconnect flushes receives on both sides; destroy() sends a Terminate', async () => {
    let { client, server, cw, sw } = await pair();
    const cmr = client.registerMemory(4096, RW), smr = server.registerMemory(4096, RW);
    for (let i = 0; i < 3; i++) { client.postRecv(i, { mr: cmr, offset: i * 64, length: 64 }); server.postRecv(i, { mr: smr, offset: i * 64, length: 64 }); }
    await Promise.all([client.disconnect(), once(server, 'disconnected'), once(client, 'disconnected')]);
    for (let i = 0; i < 3; i++) { assert.equal((await cw.take(i)).status, 'flushed'); assert.equal((await sw.take(i)).status, 'flushed'); }
    assert.equal(client.state, 'CLOSED');
    assert.throws(() => client.postRecv(9, { mr: cmr, offset: 0, length: 1 }), { code: 'ERR_INVALID_STATE' });
    ({ client, server } = await pair());
    const se = errorOf(server);
    client.destroy();
    const err = await se;
    assert.equal(err.code, 'ERR_IWARP_TERMINATED');
    assert.match(err.message, /RDMAP error type 0/);
  });

  it('CRC is on when either side asks, off when neither does; markers and bad frames are refused', async () => {
    let p = await pair({ client: { crc: false }, server: { crc: false } });
    assert.equal(p.client.settings.crc, false);
    assert.equal(p.server.settings.crc, false);
    const m = p.client.registerMemory(64, RW), s = p.server.registerMemory(64, RW);
    p.server.postRecv(1, { mr: s, offset: 0, length: 64 });
    p.client.postSend(2, [{ mr: m, offset: 0, length: 64 }]);
    await p.sw.ok(1);
    await p.client.disconnect();
    p = await pair({ client: { crc: false }, server: { crc: true } });
    assert.equal(p.client.settings.crc, true);
    await p.client.disconnect();
    // a peer asking for markers
    const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
    const fake = createServer((sock) => sock.once('data', () => sock.write(encodeMpaReply({ markers: true, crc: true, privateData: new Uint8Array(4) }))));
    fake.listen(0, HOST);
    await once(fake, 'listening');
    await assert.rejects(createIwarpProvider().connect({ host: HOST, port: (fake.address() as { port: number }).port }), { code: 'ERR_MPA_MARKERS' });
    fake.close();
    // garbage instead of an MPA Request: no connection event, the socket is closed
    const sock = tcpConnect({ host: HOST, port: listener.port });
    await once(sock, 'connect');
    sock.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await once(sock, 'close');
    await listener.close();
  });

  it('MPA timeouts: no Reply, no Request; the socket is closed, nothing hangs', async () => {
    const silent = createServer({ pauseOnConnect: true });
    silent.listen(0, HOST);
    await once(silent, 'listening');
    const t0 = Date.now();
    await assert.rejects(createIwarpProvider({ replyTimeoutMs: 200 }).connect({ host: HOST, port: (silent.address() as { port: number }).port }), { code: 'ERR_MPA_TIMEOUT' });
    assert.ok(Date.now() - t0 < 2000);
    silent.close();
    const listener = await createIwarpProvider({ requestTimeoutMs: 200 }).listen({ host: HOST, port: 0 });
    let connections = 0;
    listener.on('connection', () => connections++);
    const sock = tcpConnect({ host: HOST, port: listener.port });
    await once(sock, 'close'); // the listener gave up on the silent client
    assert.equal(connections, 0);
    await listener.close();
  });

  it('a reject reaches the initiator with the private data', async () => {
    const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
    listener.once('connection', (ep: IwarpEndpoint) => void ep.reject(Buffer.from('go away')));
    const err = await createIwarpProvider().connect({ host: HOST, port: listener.port }).catch((e) => e);
    assert.ok(err instanceof MpaRejectedError);
    assert.equal(Buffer.from(err.privateData).toString(), 'go away');
    await listener.close();
  });

  it('a peer that lies about lengths, STags, offsets or MSNs gets a Terminate; nothing outside a region is touched', async () => {
    const cases: Array<[string, (raw: Socket, rkey: number, addr: bigint) => void, string]> = [
      ['write past the end', (raw, rkey, addr) => writeFpdus(raw, encodeFpdu({ tagged: true, last: true, opcode: RDMAP_WRITE, stag: rkey, to: addr + 4090n }, new Uint8Array(16))), 'ERR_IWARP_BASE_BOUNDS'],
      ['write below the start', (raw, rkey, addr) => writeFpdus(raw, encodeFpdu({ tagged: true, last: true, opcode: RDMAP_WRITE, stag: rkey, to: addr - 1n }, new Uint8Array(4))), 'ERR_IWARP_BASE_BOUNDS'],
      ['unknown STag', (raw, rkey, addr) => writeFpdus(raw, encodeFpdu({ tagged: true, last: true, opcode: RDMAP_WRITE, stag: (rkey + 0x100) >>> 0, to: addr }, new Uint8Array(4))), 'ERR_IWARP_INVALID_STAG'],
      ['wrong MSN', (raw) => writeFpdus(raw, encodeFpdu({ tagged: false, last: true, opcode: RDMAP_SEND, invalidateStag: 0, qn: DDP_QN_SEND, msn: 7, mo: 0 }, new Uint8Array(4))), 'ERR_IWARP_BAD_MSN'],
      ['message starting at MO 8', (raw) => writeFpdus(raw, encodeFpdu({ tagged: false, last: true, opcode: RDMAP_SEND, invalidateStag: 0, qn: DDP_QN_SEND, msn: 1, mo: 8 }, new Uint8Array(4))), 'ERR_IWARP_BAD_MO'],
      ['bad CRC', (raw, rkey, addr) => { const f = encodeFpdu({ tagged: true, last: true, opcode: RDMAP_WRITE, stag: rkey, to: addr }, new Uint8Array(4)); f[2][f[2].length - 1] ^= 1; writeFpdus(raw, f); }, 'ERR_MPA_BAD_CRC'],
    ];
    for (const [name, send, code] of cases) {
      const { server, raw, region, backing } = await rawPeer();
      const err = errorOf(server);
      const terminated = new Promise<Buffer>((resolve) => { let got = Buffer.alloc(0); raw.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); resolve(got); }); });
      send(raw, region.rkey, region.addr);
      assert.equal((await err).code, code, name);
      const t = await terminated;
      assert.equal(t[3]! & 0x0f, 7, `${name}: the peer receives a Terminate (RDMAP opcode 7)`);
      assert.ok(backing.every((b) => b === 0xee), `${name}: nothing written`);
      raw.destroy();
    }
  });

  it('fuzz: random FPDU streams end in a typed error and a Terminate, never a crash or unbounded buffering', async () => {
    let seed = 12345;
    const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    for (let round = 0; round < 40; round++) {
      const { server, raw } = await rawPeer();
      const done = new Promise<string>((resolve) => { server.once('error', (e: { code: string }) => resolve(e.code)); server.once('close', () => resolve('closed')); });
      let back = Buffer.alloc(0);
      raw.on('data', (d: Buffer) => { back = Buffer.concat([back, d]); });
      const rawClosed = once(raw, 'close');
      const junk = new Uint8Array(1 + (rand() % 3000));
      for (let i = 0; i < junk.length; i++) junk[i] = rand() & 0xff;
      if (round % 2) { junk[0] = 0xff; junk[1] = 0xff; } // a 64 KiB length that never completes
      raw.end(junk);
      const code = await done;
      assert.match(code, /^ERR_/, `round ${round}: ${code}`);
      assert.equal((server as unknown as { rx: Uint8Array }).rx.length, 256 * 1024, 'the receive buffer is what was configured: it never grows');
      await rawClosed;
      // the connection ended with a Terminate: an untagged FPDU with RDMAP opcode 7 on queue 2
      assert.ok(back.length >= 24 && (back[3]! & 0x0f) === 7 && back.readUInt32BE(8) === 2, `round ${round}: no Terminate (${back.subarray(0, 12).toString('hex')})`);
    }
  });
});

function writeFpdus(raw: Socket, parts: Uint8Array[]): void {
  for (const p of parts) raw.write(p);
}

/** Our endpoint as responder, and a raw socket on the other side that has done the MPA dance. */
async function rawPeer() {
  const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
  const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
  const raw = tcpConnect({ host: HOST, port: listener.port });
  await once(raw, 'connect');
  raw.write(encodeMpaRequest({ crc: true, revision: 2, privateData: new Uint8Array([0, 16, 0, 16]) }));
  const [server] = await accepted;
  const backing = new Uint8Array(3 * 4096).fill(0xee);
  const region = server.registerMemory(backing.subarray(4096, 8192), { localWrite: true, remoteWrite: true, remoteRead: true });
  const reply = once(raw, 'data');
  await server.accept();
  await reply;
  await listener.close();
  return { server, raw, region, backing };
}

describe('stream -> RDMA transition (upgradeToRdma)', () => {
  /** A TCP pair on loopback: [initiator socket, responder socket]. */
  async function tcpPair(): Promise<[Socket, Socket]> {
    const srv = createServer({ pauseOnConnect: true });
    srv.listen(0, HOST);
    await once(srv, 'listening');
    const accepted = once(srv, 'connection') as Promise<[Socket]>;
    const a = tcpConnect({ host: HOST, port: (srv.address() as { port: number }).port });
    const [b] = await accepted;
    await once(a, 'connect');
    srv.close();
    return [a, b];
  }

  /** The responder's stream side: SMB2 framing until the MPA Request, then the upgrade. */
  function streamResponder(sock: Socket, messages: string[]): Promise<IwarpEndpoint> {
    return new Promise((resolve, reject) => {
      const framer = new Smb2StreamFramer();
      framer.on('message', (m: Uint8Array) => { messages.push(Buffer.from(m).toString()); sock.write(frameSmb2(Buffer.from(`re:${Buffer.from(m)}`))); });
      framer.on('mpa', (head: Uint8Array) => upgradeToRdma(sock, { role: 'responder', head }).then(resolve, reject));
      framer.on('error', reject);
      sock.on('data', (d: Buffer) => framer.push(d));
      sock.resume();
    });
  }

  async function checkRdma(a: IwarpEndpoint, b: IwarpEndpoint): Promise<void> {
    const aw = new Wcs(a), bw = new Wcs(b);
    const am = a.registerMemory(4096, RW), bm = b.registerMemory(4096, RW);
    b.postRecv(1, { mr: bm, offset: 0, length: 4096 });
    am.buffer.set(pattern(3000, 9));
    a.postSend(2, [{ mr: am, offset: 0, length: 3000 }]);
    await bw.ok(1); await aw.ok(2);
    assert.ok(Buffer.from(bm.buffer.subarray(0, 3000)).equals(pattern(3000, 9)));
    await Promise.all([a.disconnect(), once(b, 'disconnected')]);
  }

  it('stream traffic first, then the upgrade; stream data in flight when the upgrade starts', async () => {
    const [a, b] = await tcpPair();
    const seen: string[] = [];
    const responder = streamResponder(b, seen);
    // the initiator sends two stream requests and, without waiting, upgrades: the responder must
    // answer both in stream mode and find the MPA Request right after them
    const replies: string[] = [];
    const framer = new Smb2StreamFramer();
    framer.on('message', (m: Uint8Array) => replies.push(Buffer.from(m).toString()));
    a.on('data', (d: Buffer) => framer.push(d));
    a.write(frameSmb2(Buffer.from('NEGOTIATE')));
    a.write(frameSmb2(Buffer.from('SESSION_SETUP')));
    while (replies.length < 2) await new Promise((r) => setTimeout(r, 5)); // quiesce: both answered
    const [init, resp] = await Promise.all([upgradeToRdma(a, { role: 'initiator', privateData: Buffer.from('up') }), responder.then(async (ep) => { await ep.accept(); return ep; })]);
    assert.deepEqual(seen, ['NEGOTIATE', 'SESSION_SETUP']);
    assert.deepEqual(replies, ['re:NEGOTIATE', 're:SESSION_SETUP']);
    assert.equal(Buffer.from(resp.peerPrivateData).toString(), 'up');
    await checkRdma(init, resp);
  });

  it('the MPA Request and the first FPDU in one TCP segment; the MPA frame split byte by byte', async () => {
    for (const split of [false, true]) {
      const [a, b] = await tcpPair();
      // receives are posted before accept(), as the provider contract says (docs/providers.md)
      let m!: ReturnType<IwarpEndpoint['registerMemory']>;
      let w!: Wcs;
      const responder = streamResponder(b, []).then(async (ep) => {
        w = new Wcs(ep);
        m = ep.registerMemory(64, RW);
        ep.postRecv(1, { mr: m, offset: 0, length: 64 });
        await ep.accept();
        return ep;
      });
      // a hand-made initiator: MPA Request + a Send FPDU in one write (or byte by byte)
      const req = encodeMpaRequest({ crc: true, revision: 2, privateData: new Uint8Array([0, 16, 0, 16]) });
      const fpdu = Buffer.concat(encodeFpdu({ tagged: false, last: true, opcode: RDMAP_SEND, invalidateStag: 0, qn: DDP_QN_SEND, msn: 1, mo: 0 }, Buffer.from('first!')));
      const bytes = Buffer.concat([req, fpdu]);
      a.setNoDelay(true);
      if (split) {
        for (let i = 0; i < req.length; i++) { a.write(bytes.subarray(i, i + 1)); await new Promise((r) => setImmediate(r)); }
        a.write(bytes.subarray(req.length));
      } else {
        a.write(bytes);
      }
      const ep = await responder;
      // the bytes after the MPA frame in the same read are RDMA data, never stream data
      const c = await w.take(1);
      assert.equal(c.status, 'success');
      assert.equal(Buffer.from(m.buffer.subarray(0, c.byteLength)).toString(), 'first!');
      a.destroy();
      ep.destroy();
    }
  });

  it('a reject can hand the connection back to stream mode', async () => {
    const [a, b] = await tcpPair();
    const seen: string[] = [];
    const responder = streamResponder(b, seen);
    const init = upgradeToRdma(a, { role: 'initiator', onReject: 'stream' }).catch((e) => e);
    const ep = await responder;
    // responder refuses and keeps the stream: it goes on framing SMB2
    ep.mpaRequest!.onReject = 'stream';
    await ep.reject(Buffer.from('no rdma here'));
    const err = await init;
    assert.ok(err instanceof MpaRejectedError);
    assert.ok(err.socket, 'the initiator keeps its socket');
    const framer = new Smb2StreamFramer();
    b.removeAllListeners('data');
    const got = new Promise<string>((r) => framer.on('message', (m: Uint8Array) => r(Buffer.from(m).toString())));
    b.on('data', (d: Buffer) => framer.push(d));
    b.resume();
    err.socket.write(frameSmb2(Buffer.from('after reject')));
    assert.equal(await got, 'after reject');
    a.destroy(); b.destroy();
  });
});
