// The SMB3 client (connect of smbdirect/smb2) against real servers on loopback: ours over direct
// TCP and over SMB Direct on the software iWARP provider, and Samba's smbd (Debian's package) over
// TCP. Each runs the same file suite: byte-identical 64 MiB, directories, rename, rm, stat, the
// handle API, a wrong password and a missing file as typed errors, the bulk bytes by RDMA where
// the transport has it. Then what a hostile or dying server does: a response with a bad signature,
// a connection cut mid-read. Every promise settles; no registration is left.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer as createTcpServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';

import { type Smb2Client, type Smb2ConnectOptions, connect, createServer } from '../src/smb2/index.js';
import { FaultProxy, faultAt } from './support/fault-proxy.js';
import { startSmbd } from './support/samba.js';
import { runCli } from './support.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const MiB = 1 << 20;
const PASS = 'Client.Pass1';

interface Target { name: string; options(): Smb2ConnectOptions; rdma: boolean; stop(): Promise<void> }

async function ourServer(transport: 'tcp' | 'rdma'): Promise<Target & { server: ReturnType<typeof createServer> }> {
  const dir = mkdtempSync(join(tmpdir(), 'smb2-client-'));
  const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: PASS } });
  const { port } = transport === 'tcp' ? await server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 })
    : await server.listen({ transport: 'rdma', provider: 'iwarp-tcp', host: '127.0.0.1', port: 0 });
  return {
    name: `our server over ${transport === 'tcp' ? 'TCP' : 'SMB Direct (iwarp-tcp)'}`, rdma: transport === 'rdma', server,
    options: () => ({ host: '127.0.0.1', port, share: 'share', username: 'alice', password: PASS, transport, provider: 'iwarp-tcp' }),
    stop: async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); },
  };
}

async function samba(): Promise<Target> {
  const s = await startSmbd(PASS);
  return { name: "Samba's smbd over TCP", rdma: false, options: () => ({ host: '127.0.0.1', port: s.port, share: s.share, username: s.user, password: PASS, transport: 'tcp' }), stop: s.stop };
}

for (const make of [() => ourServer('tcp'), () => ourServer('rdma'), samba]) {
  describe('SMB3 client', () => {
    let t: Target;
    let c: Smb2Client;
    before(async () => {
      t = await make();
      c = await connect(t.options());
    });
    after(async () => {
      await c?.close();
      await t?.stop();
    });

    it('against each server: 64 MiB written and read back byte-identical, pipelined at MaxRead/WriteSize; by RDMA where SMB Direct carries it', async () => {
      const data = randomBytes(64 * MiB);
      const before = { ...c.stats };
      await c.writeFile('big.bin', data);
      const back = await c.readFile('big.bin');
      assert.equal(back.length, data.length);
      assert.equal(sha(back), sha(data));
      assert.equal((await c.stat('big.bin')).size, data.length);
      const moved = { rdma: c.stats.rdmaBytesRead + c.stats.rdmaBytesWritten - before.rdmaBytesRead - before.rdmaBytesWritten,
        inline: c.stats.inlineBytesRead + c.stats.inlineBytesWritten - before.inlineBytesRead - before.inlineBytesWritten };
      assert.deepEqual(moved, t.rdma ? { rdma: 2 * data.length, inline: 0 } : { rdma: 0, inline: 2 * data.length }, t.name);
      if (t.rdma) assert.equal(c.smbDirect!.stats().registrationsInUse, 0, 'every per-I/O registration released');
      assert.ok(c.signing, 'a user session signs');
      await c.rm('big.bin');
    });

    it('directories, rename, rm and stat as node:fs/promises has them; a missing path is ENOENT, a full directory ENOTEMPTY', async () => {
      await c.mkdir('top/mid/leaf', { recursive: true });
      await c.writeFile('top/mid/a.txt', 'alpha');
      await c.writeFile('top/b.txt', 'bravo!');
      assert.deepEqual((await c.readdir('top')).sort(), ['b.txt', 'mid']);
      const typed = await c.readdir('top/mid', { withFileTypes: true });
      assert.deepEqual(typed.map((e) => [e.name, e.isDirectory(), e.isFile()]).sort(), [['a.txt', false, true], ['leaf', true, false]]);
      assert.equal(typed.find((e) => e.name === 'a.txt')!.stats.size, 5);
      const st = await c.stat('top/b.txt');
      assert.equal(st.size, 6);
      assert.ok(st.isFile() && !st.isDirectory());
      assert.ok(Math.abs(st.mtimeMs - Date.now()) < 60_000, `mtime ${st.mtime.toISOString()} is now`);
      assert.ok((await c.stat('top/mid')).isDirectory());
      await c.rename('top/b.txt', 'top/mid/c.txt');
      assert.equal(String(await c.readFile('top/mid/c.txt')), 'bravo!');
      await assert.rejects(c.stat('top/b.txt'), { code: 'ENOENT', name: 'Smb2Error' });
      await assert.rejects(c.readFile('nope/none.txt'), (err: { code: string; status: number }) => err.code === 'ENOENT' && err.status >>> 0 >= 0xc0000000);
      await assert.rejects(c.mkdir('top'), { code: 'EEXIST' });
      await assert.rejects(c.rm('top'), { code: 'ENOTEMPTY' });
      await c.rm('nope', { force: true });
      await c.rm('top', { recursive: true });
      assert.deepEqual(await c.readdir('.'), []);
    });

    it('a handle: positioned and sequential reads and writes, append, truncate, sync, stat; close is idempotent', async () => {
      const h = await c.open('h.bin', 'w+');
      await h.write(Buffer.from('0123456789'));
      await h.write(Buffer.from('ab'), 0, 2, 4);
      await h.sync();
      const buf = Buffer.alloc(20);
      const r = await h.read(buf, 0, 20, 0);
      assert.equal(buf.subarray(0, r.bytesRead).toString(), '0123ab6789');
      await h.truncate(3);
      assert.equal((await h.stat()).size, 3);
      await h.close();
      await h.close();
      await assert.rejects(h.read(buf), { code: 'EBADF' });
      const a = await c.open('h.bin', 'a');
      await a.write(Buffer.from('XY'));
      await a.close();
      assert.equal(String(await c.readFile('h.bin')), '012XY');
      await assert.rejects(c.open('h.bin', 'wx'), { code: 'EEXIST' });
      await assert.rejects(c.open('h.bin', 'rw' as 'r'), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
      await c.rm('h.bin');
    });

    it('streams: a pipeline into createWriteStream and out of createReadStream (a range too) is byte-identical; write() reports backpressure', async () => {
      const data = randomBytes(10 * MiB + 12345);
      const chunks = Array.from({ length: Math.ceil(data.length / 700_000) }, (_, i) => data.subarray(i * 700_000, (i + 1) * 700_000));
      await pipeline(Readable.from(chunks), c.createWriteStream('s.bin'));
      const got: Buffer[] = [];
      for await (const b of c.createReadStream('s.bin', { highWaterMark: 3 * MiB })) got.push(b as Buffer);
      assert.equal(sha(Buffer.concat(got)), sha(data));
      const part: Buffer[] = [];
      for await (const b of c.createReadStream('s.bin', { start: 1000, end: 1000 + 2 * MiB - 1 })) part.push(b as Buffer);
      assert.equal(sha(Buffer.concat(part)), sha(data.subarray(1000, 1000 + 2 * MiB)));
      const w = c.createWriteStream('bp.bin', { highWaterMark: 64 * 1024 });
      assert.equal(w.write(Buffer.alloc(128 * 1024)), false, 'past highWaterMark: wait for drain');
      await once(w, 'drain');
      w.end(Buffer.alloc(10));
      await once(w, 'finish');
      assert.equal((await c.stat('bp.bin')).size, 128 * 1024 + 10);
      await assert.rejects((async () => { for await (const _ of c.createReadStream('missing.bin')) void _; })(), { code: 'ENOENT' });
      await c.rm('s.bin');
      await c.rm('bp.bin');
    });

    it('a wrong password is STATUS_LOGON_FAILURE as an Smb2Error (EACCES); the server serves the next client', async () => {
      await assert.rejects(connect({ ...t.options(), password: 'wrong' }), { name: 'Smb2Error', code: 'EACCES', status: 0xc000006d });
      const again = await connect(t.options());
      assert.deepEqual(await again.readdir('.'), []);
      await again.close();
    });
  });
}

describe('SMB3 client against a hostile or dying server', () => {
  for (const [what, tamper] of [
    ['its signature changed', (f: Buffer) => { f[4 + 48] ^= 0x01; }],
    ['its SessionId zeroed (which would skip verification)', (f: Buffer) => { f.fill(0, 4 + 40, 4 + 48); }],
  ] as const) it(`a response with ${what} ends the connection: every outstanding promise rejects`, async (t) => {
    const s = await ourServer('tcp');
    t.after(() => s.stop());
    const port = (s.options().port)!;
    // a proxy that flips one signature byte of the 8th response it passes on
    let frames = 0;
    const proxy = createTcpServer((client) => {
      const up = tcpConnect({ host: '127.0.0.1', port });
      client.on('error', () => {});
      up.on('error', () => {});
      client.pipe(up);
      let pending = Buffer.alloc(0);
      up.on('data', (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        while (pending.length >= 4 && pending.length >= 4 + pending.readUIntBE(1, 3)) {
          const n = 4 + pending.readUIntBE(1, 3);
          const frame = Buffer.from(pending.subarray(0, n));
          pending = pending.subarray(n);
          if (++frames === 8) tamper(frame);
          client.write(frame);
        }
      });
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    }).listen(0, '127.0.0.1');
    t.after(() => proxy.close());
    await new Promise((r) => proxy.once('listening', r));
    const c = await connect({ ...s.options(), port: (proxy.address() as AddressInfo).port });
    // NEGOTIATE, 2 SESSION_SETUPs, TREE_CONNECT: 4 responses; these four more, the 8th tampered
    const ops = [c.writeFile('x', 'one'), c.readdir('.'), c.stat('x').catch((e: unknown) => e), c.readdir('.').catch((e: unknown) => e)];
    const results = await Promise.allSettled(ops);
    const failures = results.filter((r) => r.status === 'rejected' || r.value instanceof Error);
    assert.ok(failures.length >= 1, 'the tampered response failed its request');
    await assert.rejects(c.readdir('.'), /closed/i, 'and the connection with it');
    await c.close();
  });

  it('a server that grants no credits: the next request rejects with ETIMEDOUT within timeoutMs, it does not wait forever', async (t) => {
    const s = await ourServer('tcp');
    t.after(() => s.stop());
    // a proxy that zeroes CreditResponse (header bytes 14-15) of every response
    const proxy = createTcpServer((client) => {
      const up = tcpConnect({ host: '127.0.0.1', port: s.options().port! });
      client.on('error', () => {});
      up.on('error', () => {});
      client.pipe(up);
      let pending = Buffer.alloc(0);
      up.on('data', (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        while (pending.length >= 4 && pending.length >= 4 + pending.readUIntBE(1, 3)) {
          const n = 4 + pending.readUIntBE(1, 3);
          const frame = Buffer.from(pending.subarray(0, n));
          pending = pending.subarray(n);
          frame[4 + 14] = 0;
          frame[4 + 15] = 0;
          client.write(frame);
        }
      });
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
    }).listen(0, '127.0.0.1');
    t.after(() => proxy.close());
    await once(proxy, 'listening');
    const t0 = Date.now();
    await assert.rejects(connect({ ...s.options(), port: (proxy.address() as AddressInfo).port, timeoutMs: 500 }), { code: 'ETIMEDOUT', message: /granted no credits/ });
    assert.ok(Date.now() - t0 < 10_000, 'rejected at its deadline');
  });

  it('a connection cut in the middle of a 32 MiB write over SMB Direct: the write rejects, no registration is left', async (t) => {
    const s = await ourServer('rdma');
    t.after(() => s.stop());
    const proxy = await FaultProxy.start({ port: s.options().port! });
    t.after(() => proxy.close());
    // the client's RDMA Read responses carry the data toward the server: cut that direction
    proxy.plan(faultAt({ dir: 'c2s', afterBytes: 8 * MiB }, { kind: 'reset' }));
    const c = await connect({ ...s.options(), port: proxy.port });
    const conn = c.smbDirect!;
    await assert.rejects(c.writeFile('w.bin', randomBytes(32 * MiB)), (err: Error) => err.message.length > 0);
    assert.equal(conn.stats().registrationsInUse, 0, 'no registration left behind');
    await c.close();
  });

  it('a connection cut in the middle of a 64 MiB read over SMB Direct: the read rejects, no registration is left, the next client works', async (t) => {
    const s = await ourServer('rdma');
    t.after(() => s.stop());
    const seed = await connect(s.options());
    await seed.writeFile('big.bin', randomBytes(64 * MiB));
    await seed.close();
    const proxy = await FaultProxy.start({ port: s.options().port! });
    t.after(() => proxy.close());
    // the software iWARP provider runs over TCP: reset it once 16 MiB came back
    proxy.plan(faultAt({ dir: 's2c', afterBytes: 16 * MiB }, { kind: 'reset' }));
    const c = await connect({ ...s.options(), port: proxy.port });
    const conn = c.smbDirect!;
    await assert.rejects(c.readFile('big.bin'), (err: Error & { code?: string }) => typeof err.message === 'string' && err.message.length > 0);
    assert.equal(conn.stats().registrationsInUse, 0, 'no registration left behind');
    await assert.rejects(c.stat('big.bin'), { code: 'ECONNRESET' });
    await c.close();
    const next = await connect(s.options());
    assert.equal((await next.stat('big.bin')).size, 64 * MiB);
    await next.close();
  });
});

describe('smbdirect cp / ls (the client from the command line)', () => {
  it('copies a file to and from a share over SMB Direct and TCP byte-identical, lists it; a missing file, a wrong password and usage errors have their exit codes', async (t) => {
    const s = await ourServer('rdma');
    t.after(() => s.stop());
    const tcp = await s.server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 });
    const local = mkdtempSync(join(tmpdir(), 'smb2-cp-'));
    t.after(() => rmSync(local, { recursive: true, force: true }));
    const data = randomBytes(3 * MiB + 7);
    writeFileSync(join(local, 'up.bin'), data);
    const rdmaUrl = `smb://alice:${PASS}@127.0.0.1:${s.options().port}/share`;
    const tcpUrl = `smb://alice:${PASS}@127.0.0.1:${tcp.port}/share`;
    const rdma = ['--transport', 'rdma', '--provider', 'iwarp-tcp'];
    // to a share's root (the file keeps its name), back over TCP, then share to share
    const up = await runCli(['cp', join(local, 'up.bin'), `${rdmaUrl}/`, ...rdma]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /copied \(rdma\) 3145735 bytes in [\d.]+ s \([\d.]+ MB\/s\)/);
    const down = await runCli(['cp', `${tcpUrl}/up.bin`, join(local, 'down.bin'), '--transport', 'tcp']);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(sha(readFileSync(join(local, 'down.bin'))), sha(data));
    // 'auto': SMB Direct where it answers (the first URL), TCP where it does not (the second)
    const across = await runCli(['cp', `${rdmaUrl}/up.bin`, `${tcpUrl}/copy.bin`, '--transport', 'auto', '--provider', 'iwarp-tcp']);
    assert.equal(across.code, 0, across.stderr);
    assert.match(across.stdout, /copied \(rdma\/tcp\)/);
    const ls = await runCli(['ls', tcpUrl, '--transport', 'tcp']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.trim().split('\n').map((l) => l.split(/\s+/).filter(Boolean)).map((f) => [f[0], f[1], f.at(-1)]),
      [['-', '3145735', 'copy.bin'], ['-', '3145735', 'up.bin']]);
    const missing = await runCli(['cp', `${tcpUrl}/nope.bin`, join(local, 'x'), '--transport', 'tcp']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ENOENT/);
    const badPass = await runCli(['ls', `smb://alice:wrong@127.0.0.1:${tcp.port}/share`, '--transport', 'tcp']);
    assert.equal(badPass.code, 1);
    assert.match(badPass.stderr, /STATUS_LOGON_FAILURE/);
    for (const args of [['cp', join(local, 'a'), join(local, 'b')], ['cp', tcpUrl], ['ls', '/tmp'], ['cp', 'a', 'b', '--bogus']]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
  });
});
