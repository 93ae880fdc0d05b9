// Issue #18: what a hostile peer could do before, each with the test that failed then. Peers are
// built from the project's own codecs (test/hostile.ts) or are our own API used as an attacker
// would; everything runs over real loopback sockets on the software iWARP provider.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import { connect, createServer, type SmbDirectConnection } from '../src/index.js';
import { type IwarpEndpoint, type RdmaEndpoint, createIwarpProvider } from '../src/providers/index.js';
import { HostileIwarp } from './hostile.js';
import { within } from './support.js';

const HOST = '127.0.0.1';
const MiB = 1 << 20;

function errorOf(ep: RdmaEndpoint): Promise<Error & { code: string }> {
  return new Promise((resolve) => ep.once('error', resolve));
}

describe('buffer descriptors past 2^64 (#18.1)', () => {
  it('an SMB2 WRITE-style descriptor at 2^64 - 1 MiB, 2 MiB long, from a client with IRD 1: rdmaRead rejects with ERR_SMBD_BAD_DESCRIPTORS, nothing throws, the connection lives on', async () => {
    // the server decodes descriptors itself, field by field, as an application might: the
    // connection is where they must be checked
    const server = createServer({ provider: 'iwarp-tcp' });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const results: Array<Promise<unknown>> = [];
    server.on('connection', (conn: SmbDirectConnection) => {
      conn.on('message', (m: Uint8Array) => {
        const v = new DataView(m.buffer, m.byteOffset, m.length);
        const d = { offset: v.getBigUint64(0, true), token: v.getUint32(8, true), length: v.getUint32(12, true) };
        results.push(conn.rdmaRead([d], new Uint8Array(2 * MiB)).then(() => 'resolved', (e: unknown) => e));
        void conn.send(new Uint8Array([1]));
      });
    });
    const client = await connect({ host: HOST, port, provider: 'iwarp-tcp', responderResources: 1 });
    const reply = once(client, 'message');
    const req = Buffer.alloc(16);
    req.writeBigUInt64LE(2n ** 64n - BigInt(MiB), 0);
    req.writeUInt32LE(0x1a00bc56, 8);
    req.writeUInt32LE(2 * MiB, 12);
    await client.send(req);
    await within(reply, 5000, 'the reply after the refused read');
    const e = (await results[0]) as Error & { code?: string };
    assert.equal(e.code, 'ERR_SMBD_BAD_DESCRIPTORS', String(e));
    assert.match(e.message, /64-bit address space/);
    assert.equal(client.state, 'connected');
    assert.equal([...server.connections][0]!.state, 'connected');
    client.destroy();
    await server.close();
  });

  it('the providers refuse a remote range past 2^64 at the post call (ERR_OUT_OF_RANGE), never later on the socket path', async () => {
    const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
    const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
    const clientP = createIwarpProvider({ ord: 1 }).connect({ host: HOST, port: listener.port });
    const [server] = await accepted;
    await server.accept();
    const client = await clientP;
    const mr = client.registerMemory(2 * MiB, { localWrite: true });
    const top = 2n ** 64n - BigInt(MiB);
    // ORD 1: the second read would have been queued and encoded later, from the socket's read path
    assert.throws(() => client.postRead(1, [{ mr, offset: 0, length: 2 * MiB }], top, 7), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => client.postRead(2, [{ mr, offset: MiB, length: MiB }], 2n ** 64n, 7), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => client.postWrite(3, [{ mr, offset: 0, length: 2 * MiB }], top, 7), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => client.postRead(4, [{ mr, offset: 0, length: 1 }], -1n, 7), { code: 'ERR_OUT_OF_RANGE' });
    await Promise.all([client.disconnect(), once(server, 'close')]);
    await listener.close();
  });
});

describe('inbound RDMA Read Requests are bounded by IRD (#18.2)', () => {
  it('a peer that issues more than IRD reads and never takes the responses is terminated (ERR_IWARP_IRD_EXCEEDED) on the read over IRD', async () => {
    const listener = await createIwarpProvider({ ird: 4 }).listen({ host: HOST, port: 0 });
    const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
    const peerP = HostileIwarp.connect(listener.port, { ird: 16, ord: 16 });
    const [victim] = await accepted;
    const region = victim.registerMemory(8 * MiB, { localWrite: true, remoteRead: true });
    await victim.accept();
    const peer = await peerP;
    const failed = errorOf(victim);
    peer.stall();
    for (let i = 0; i < 4; i++) peer.readRequest(region.rkey, region.addr, 8 * MiB);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(victim.state, 'RTS', 'IRD reads in flight are allowed');
    peer.readRequest(region.rkey, region.addr, 8 * MiB);
    const err = await within(failed, 5000, 'the terminate');
    assert.equal(err.code, 'ERR_IWARP_IRD_EXCEEDED');
    peer.destroy();
    await listener.close();
  });

  it('a flood of 100,000 Read Requests from a peer that never reads does not grow the victim: the connection ends at IRD + 1', async () => {
    const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
    const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
    const peerP = HostileIwarp.connect(listener.port);
    const [victim] = await accepted;
    const region = victim.registerMemory(MiB, { localWrite: true, remoteRead: true });
    await victim.accept();
    const peer = await peerP;
    const failed = errorOf(victim);
    peer.stall();
    for (let i = 0; i < 100_000; i++) peer.readRequest(region.rkey, region.addr, MiB);
    const err = await within(failed, 10_000, 'the terminate');
    assert.equal(err.code, 'ERR_IWARP_IRD_EXCEEDED');
    assert.equal(victim.state, 'CLOSED');
    peer.destroy();
    await listener.close();
  });
});

describe('a Read Request whose sink runs past 2^64', () => {
  it('is a Terminate (ERR_IWARP_TO_WRAP, RDMAP TO wrap): no Read Response with wrapping tagged offsets goes out (found by the iwarp-endpoint fuzz target)', async () => {
    const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
    const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
    const peerP = HostileIwarp.connect(listener.port);
    const [victim] = await accepted;
    const region = victim.registerMemory(4096, { localWrite: true, remoteRead: true });
    await victim.accept();
    const peer = await peerP;
    const failed = errorOf(victim);
    peer.readRequest(region.rkey, region.addr, 256, 0x1234, 2n ** 64n - 1n);
    const err = await within(failed, 5000, 'the terminate') as Error & { code: string; layer?: number; etype?: number; errorCode?: number };
    assert.equal(err.code, 'ERR_IWARP_TO_WRAP');
    assert.deepEqual([err.layer, err.etype, err.errorCode], [0, 1, 4]);
    assert.ok(await peer.closed());
    assert.equal(peer.taggedBytes, 0);
    assert.equal(peer.received.filter((f) => f.tagged).length, 0, 'no Read Response');
    await listener.close();
  });
});

describe('no byte of a released buffer leaves (#18.3)', () => {
  it('a peer that stalls while reading 64 MiB, then resumes after the victim closed the region and reused its buffer, gets none of the bytes written after close()', async () => {
    const hostile = await HostileIwarp.listen();
    const peerP = hostile.accept();
    const victim = (await createIwarpProvider().connect({ host: HOST, port: hostile.port })) as IwarpEndpoint;
    const peer = await peerP;
    const size = 64 * MiB;
    const buffer = new Uint8Array(size).fill(0xaa);
    const region = victim.registerMemory(buffer, { localWrite: true, remoteRead: true });
    const failed = errorOf(victim);
    peer.stall();
    peer.readRequest(region.rkey, region.addr, size);
    // the victim answers until its socket is full; the response is still being sent
    for (let i = 0; i < 100 && victim.socket.writableLength === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(victim.socket.writableLength > 0, 'the Read Response backed up');
    region.close();
    buffer.fill(0xbb); // the caller reuses its memory
    peer.resume();
    assert.ok(await peer.closed(), 'the victim ended the connection');
    const err = await within(failed, 5000, 'the error');
    assert.equal(err.code, 'ERR_IWARP_REGION_RELEASED');
    let leaked = 0;
    for (const seg of peer.received) if (seg.tagged) for (const b of seg.payload) if (b === 0xbb) leaked++;
    assert.ok(peer.taggedBytes < size, `the response was cut short (${peer.taggedBytes} of ${size} bytes)`);
    assert.equal(leaked, 0, `${leaked} bytes written after close() reached the peer`);
    assert.equal(peer.malformed, undefined, 'every FPDU the peer got was whole and checksummed (none cut from changed bytes)');
    hostile.close();
  });

  it('a region closed after its Read Response went out whole is no reason to end the connection', async () => {
    const hostile = await HostileIwarp.listen();
    const peerP = hostile.accept();
    const victim = (await createIwarpProvider().connect({ host: HOST, port: hostile.port })) as IwarpEndpoint;
    const peer = await peerP;
    const region = victim.registerMemory(new Uint8Array(64 * 1024).fill(7), { localWrite: true, remoteRead: true });
    peer.readRequest(region.rkey, region.addr, 64 * 1024);
    for (let i = 0; i < 100 && peer.taggedBytes < 64 * 1024; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(peer.taggedBytes, 64 * 1024);
    region.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(victim.state, 'RTS');
    victim.destroy();
    hostile.close();
  });
});

describe('idle and half-open connections are bounded (#18.4)', () => {
  it('maxNegotiating: peers that open connections and never negotiate hold at most that many; the next is rejected (ERR_SMBD_RESOURCE_LIMIT) and a real client still gets in once they time out', async () => {
    const server = createServer({ provider: 'iwarp-tcp', maxNegotiating: 3, acceptTimeoutMs: 500 });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const errors: Array<Error & { code?: string }> = [];
    server.on('connectionError', (e: Error) => errors.push(e));
    const idle = await Promise.all([0, 1, 2].map(() => createIwarpProvider().connect({ host: HOST, port })));
    await assert.rejects(createIwarpProvider().connect({ host: HOST, port }), (e: Error & { code?: string }) => e.code === 'ERR_MPA_REJECTED');
    assert.ok(errors.some((e) => e.code === 'ERR_SMBD_RESOURCE_LIMIT' && /maxNegotiating/.test(e.message)), errors.map(String).join());
    // they never negotiate: each is dropped at acceptTimeoutMs, and then a client gets in
    await within(Promise.all(idle.map((ep) => new Promise((r) => { ep.on('error', () => {}); ep.on('close', r); }))), 5000, 'the idle connections to be dropped');
    const client = await connect({ host: HOST, port, provider: 'iwarp-tcp' });
    assert.equal(client.state, 'connected');
    client.destroy();
    await server.close();
  });

  it('maxConnections: past it a request is rejected at the transport; a slot frees when a connection closes', async () => {
    const server = createServer({ provider: 'iwarp-tcp', maxConnections: 2 });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const errors: Array<Error & { code?: string }> = [];
    server.on('connectionError', (e: Error) => errors.push(e));
    const a = await connect({ host: HOST, port, provider: 'iwarp-tcp' });
    const b = await connect({ host: HOST, port, provider: 'iwarp-tcp' });
    await assert.rejects(connect({ host: HOST, port, provider: 'iwarp-tcp' }), (e: Error & { code?: string }) => e.code === 'ERR_MPA_REJECTED');
    assert.ok(errors.some((e) => e.code === 'ERR_SMBD_RESOURCE_LIMIT' && /maxConnections \(2\)/.test(e.message)));
    await a.close();
    for (let i = 0; i < 100 && server.connections.size > 1; i++) await new Promise((r) => setTimeout(r, 10));
    const c = await connect({ host: HOST, port, provider: 'iwarp-tcp' });
    assert.equal(c.state, 'connected');
    b.destroy(); c.destroy();
    await server.close();
  });

  it('registered memory is accounted per connection and refused past maxRegisteredBytes (ERR_SMBD_RESOURCE_LIMIT); transfers still work, and everything is given back at close', async () => {
    const { registeredMemory } = await import('../src/index.js');
    const before = registeredMemory().used;
    const server = createServer({ provider: 'iwarp-tcp' });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
    const client = await connect({ host: HOST, port, provider: 'iwarp-tcp', maxRegisteredBytes: 8 * MiB });
    const [accepted] = await acceptedP;
    const slabs = client.stats().registeredBytes;
    assert.ok(slabs > 2 * MiB && slabs < 3 * MiB, `slabs ${slabs}`);
    const reg = client.registerBuffer(new Uint8Array(4 * MiB), 'write');
    assert.equal(client.stats().registeredBytes, slabs + 4 * MiB);
    assert.throws(() => client.registerBuffer(new Uint8Array(4 * MiB), 'write'), (e: Error & { code?: string }) => e.code === 'ERR_SMBD_RESOURCE_LIMIT' && /maxRegisteredBytes/.test(e.message));
    // the server places into what is registered
    const data = new Uint8Array(4 * MiB).fill(3);
    assert.equal(await accepted.rdmaWrite(reg.descriptors, data), 4 * MiB);
    reg.release();
    assert.equal(client.stats().registeredBytes, slabs);
    assert.ok(registeredMemory().used > before);
    client.destroy();
    await server.close();
    assert.equal(registeredMemory().used, before, 'every byte given back');
  });

  it('options a connection cannot hold are refused when made: slabs past maxRegisteredBytes, and credits past the provider\'s receive queue', async () => {
    assert.throws(() => createServer({ credits: 65535 }), (e: Error & { code?: string }) => e.code === 'ERR_SMBD_INVALID_ARGUMENT' && /maxRegisteredBytes/.test(e.message));
    const small = createIwarpProvider({ maxRecvWr: 64 });
    assert.throws(() => createServer({ provider: small, credits: 255 }), (e: Error & { code?: string }) => e.code === 'ERR_SMBD_INVALID_ARGUMENT' && /maxRecvWr \(64\)/.test(e.message));
    await assert.rejects(connect({ host: HOST, port: 1, provider: small, credits: 255 }), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
    // a named provider is sized for the options: 2000 credits work on iwarp-tcp (1024 was its default queue)
    const server = createServer({ provider: 'iwarp-tcp', credits: 2000, maxReceiveSize: 1024 });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const client = await connect({ host: HOST, port, provider: 'iwarp-tcp', credits: 2000, maxReceiveSize: 1024 });
    assert.equal(client.state, 'connected');
    client.destroy();
    await server.close();
  });

  it('a connection whose setup fails (a provider with queues too small, and no checkCapacity) frees its endpoint at once: the client is not left waiting', async () => {
    const small = createIwarpProvider({ maxRecvWr: 64 });
    const provider = { name: small.name, listen: small.listen.bind(small), connect: small.connect.bind(small) };
    const server = createServer({ provider });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const failed = once(server, 'connectionError') as Promise<[Error & { code?: string }]>;
    const started = Date.now();
    await assert.rejects(connect({ host: HOST, port, provider: 'iwarp-tcp' }));
    assert.ok(Date.now() - started < 3000, `the client waited ${Date.now() - started} ms`);
    const [err] = await failed;
    assert.equal(err.code, 'ERR_QUEUE_FULL');
    await server.close();
  });
});

describe('smaller ones (#18.7)', () => {
  it('a pending rdmaRead rejects with the latched error, not "the connection is connected"', async () => {
    const server = createServer({ provider: 'iwarp-tcp' });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
    const client = await connect({ host: HOST, port, provider: 'iwarp-tcp' });
    const [accepted] = await acceptedP;
    const reg = client.registerBuffer(new Uint8Array(8 * MiB), 'read');
    const read = accepted.rdmaRead(reg.descriptors, new Uint8Array(8 * MiB)).then(() => undefined, (e: Error) => e);
    accepted.endpoint.destroy(new Error('boom')); // the transport fails under the read
    const err = (await read) as Error & { code?: string };
    assert.ok(err, 'the read rejected');
    assert.doesNotMatch(err.message, /is connected/);
    await closed_(accepted);
    assert.equal(err, accepted.error, 'the connection\'s latched error');
    client.destroy();
    await server.close();
  });

  it('server.close() drops sockets still waiting for their MPA Request: nothing keeps the process up', async () => {
    const server = createServer({ provider: 'iwarp-tcp' });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const { connect: tcp } = await import('node:net');
    const sock = tcp({ host: HOST, port });
    await once(sock, 'connect');
    sock.on('error', () => {});
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await server.close();
    await within(once(sock, 'close'), 1000, 'the pending socket to be closed');
    assert.ok(Date.now() - started < 1000);
  });
});

function closed_(conn: SmbDirectConnection): Promise<unknown> {
  return conn.state === 'closed' ? Promise.resolve() : once(conn, 'close');
}

describe('the bounds never refuse a peer that plays by the rules', () => {
  it('a peer at its full read depth, many transfers at once, each registration released as its response arrives: no Terminate, no reset, every byte read', async () => {
    const server = createServer({ provider: 'iwarp-tcp' });
    const { port } = await server.listen({ host: HOST, port: 0 });
    const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
    const client = await connect({ host: HOST, port, provider: 'iwarp-tcp' });
    const [accepted] = await acceptedP;
    const depth = 6, size = 8 * MiB, transfers = 24;
    const sources = Array.from({ length: depth }, (_, i) => new Uint8Array(size).fill(i + 1));
    const sinks = Array.from({ length: depth }, () => new Uint8Array(size));
    // the server reads each registration (an SMB2 WRITE), answers, and the client releases on the answer
    accepted.on('message', (m: Uint8Array) => {
      const slot = m[0]!;
      const v = new DataView(m.buffer, m.byteOffset, m.length);
      const d = { offset: v.getBigUint64(1, true), token: v.getUint32(9, true), length: v.getUint32(13, true) };
      accepted.rdmaRead([d], sinks[slot]!).then(() => accepted.send(new Uint8Array([slot])), (e: Error) => accepted.destroy(e));
    });
    let done = 0, started = 0;
    const regs = new Map<number, { release(): void }>();
    const finished = new Promise<void>((resolve, reject) => {
      client.on('close', (err?: Error) => reject(err ?? new Error('closed')));
      const start = (slot: number) => {
        const reg = client.registerBuffer(sources[slot]!, 'read');
        regs.set(slot, reg);
        const d = reg.descriptors[0]!;
        const req = Buffer.alloc(17);
        req[0] = slot; req.writeBigUInt64LE(d.offset, 1); req.writeUInt32LE(d.token, 9); req.writeUInt32LE(d.length, 13);
        started++;
        void client.send(req);
      };
      client.on('message', (m: Uint8Array) => {
        const slot = m[0]!;
        regs.get(slot)!.release();
        if (++done === transfers) resolve();
        else if (started < transfers) start(slot);
      });
      for (let i = 0; i < depth; i++) start(i);
    });
    await within(finished, 60_000, 'the transfers');
    for (let i = 0; i < depth; i++) assert.ok(sinks[i]!.every((b) => b === i + 1), `slot ${i}`);
    assert.equal(client.state, 'connected');
    assert.equal(accepted.state, 'connected');
    client.destroy();
    await server.close();
  });
});
