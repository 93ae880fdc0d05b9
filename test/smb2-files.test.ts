// The SMB2 server's file commands on a share that is a temporary directory, driven by Samba's
// smbclient over direct TCP on loopback: ls, get/put of a 64 MiB file byte-identical, mkdir,
// rename, del, rmdir, a read-only share; and what must never work: paths out of the share (`..`,
// a symlink that leads out, reserved names), writes on a read-only share. The files are checked
// on disk, not only through the protocol.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { type Smb2Server, createServer } from '../src/smb2/index.js';
import { matchPattern, resolveInShare } from '../src/smb2/fs-backend.js';
import { once } from 'node:events';
import { encodeSmb2ReadWriteChannel as smb2ChannelRequest, smb2 } from '../framing/index.js';
import { connect as smbdConnect } from '../src/index.js';
import { createFile, fileIdBytes, testSession } from './support/smb2-client.js';
import { CLI } from './support.js';
import { smbclient as runSmbclient } from './support/samba.js';

const smbclient = (args: string[], cwd: string) => runSmbclient(args, { cwd, timeoutMs: 120_000 });

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('SMB2 server file commands against smbclient', () => {
  let server: Smb2Server;
  let port = 0;
  let base: string, share: string, ro: string, local: string, outside: string;
  const run = (sh: string, cmds: string) => smbclient([`//127.0.0.1/${sh}`, '-p', String(port), '-U', 'alice%secret', '-c', cmds], local);

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'smb2-files-'));
    share = join(base, 'share');
    ro = join(base, 'ro');
    local = join(base, 'local');
    outside = join(base, 'outside');
    for (const d of [share, ro, local, outside]) mkdirSync(d);
    writeFileSync(join(outside, 'secret.txt'), 'not for the client');
    writeFileSync(join(ro, 'readme.txt'), 'read only');
    symlinkSync(outside, join(share, 'escape')); // a link out of the share
    symlinkSync(join(outside, 'secret.txt'), join(share, 'secret-link'));
    server = createServer({ shares: [{ name: 'share', path: share }, { name: 'ro', path: ro, readOnly: true }], users: { alice: 'secret' } });
    ({ port } = await server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 }));
  });
  after(async () => {
    await server?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('put and get 64 MiB byte-identical; the file on disk is the one sent; bytes counted as inline', async () => {
    const data = randomBytes(64 * 1024 * 1024);
    writeFileSync(join(local, 'big.bin'), data);
    const put = await run('share', 'put big.bin big.bin');
    assert.equal(put.code, 0, put.out);
    assert.equal(sha(readFileSync(join(share, 'big.bin'))), sha(data), 'on the server\'s disk');
    const get = await run('share', 'get big.bin back.bin');
    assert.equal(get.code, 0, get.out);
    assert.equal(sha(readFileSync(join(local, 'back.bin'))), sha(data), 'back at the client');
    const b = server.stats().bytes;
    assert.ok(b.inlineBytesWritten >= data.length && b.inlineBytesRead >= data.length, JSON.stringify(b));
  });

  it('mkdir, rename into it, ls, del, rmdir: each visible on disk', async () => {
    writeFileSync(join(local, 'small.txt'), 'small');
    const r = await run('share', 'put small.txt small.txt; mkdir d1; rename small.txt d1\\moved.txt; ls d1\\*');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /moved\.txt\s+A\s+5/);
    assert.equal(readFileSync(join(share, 'd1', 'moved.txt'), 'utf8'), 'small');
    assert.equal(existsSync(join(share, 'small.txt')), false);
    const d = await run('share', 'del d1\\moved.txt; rmdir d1');
    assert.equal(d.code, 0, d.out);
    assert.equal(existsSync(join(share, 'd1')), false);
  });

  it('a read-only share lists and reads, and refuses put, mkdir and del with NT_STATUS_ACCESS_DENIED', async () => {
    const r = await run('ro', 'ls; get readme.txt ro-copy.txt');
    assert.equal(r.code, 0, r.out);
    assert.equal(readFileSync(join(local, 'ro-copy.txt'), 'utf8'), 'read only');
    for (const cmd of ['put small.txt x.txt', 'mkdir nope', 'del readme.txt']) {
      const w = await run('ro', cmd);
      assert.match(w.out, /NT_STATUS_ACCESS_DENIED/, `${cmd}: ${w.out}`);
    }
    assert.equal(readFileSync(join(ro, 'readme.txt'), 'utf8'), 'read only');
    assert.equal(existsSync(join(ro, 'x.txt')), false);
  });

  it('nothing outside the share: .., a symlink that leads out, reserved names', async () => {
    // (smbclient folds '..' itself, so the server sees \outside\secret.txt: not in the share; the
    // server's own refusal of '..' is checked below with resolveInShare)
    const dotdot = await run('share', 'get ..\\outside\\secret.txt s1.txt');
    assert.match(dotdot.out, /NT_STATUS_OBJECT_NAME_INVALID|NT_STATUS_OBJECT_PATH_NOT_FOUND|NT_STATUS_OBJECT_NAME_NOT_FOUND/, dotdot.out);
    const link = await run('share', 'get secret-link s2.txt');
    assert.match(link.out, /NT_STATUS_ACCESS_DENIED/, link.out);
    const dirLink = await run('share', 'get escape\\secret.txt s3.txt');
    assert.match(dirLink.out, /NT_STATUS_ACCESS_DENIED/, dirLink.out);
    const reserved = await run('share', 'put small.txt CON');
    assert.match(reserved.out, /NT_STATUS_OBJECT_NAME_INVALID/, reserved.out);
    for (const f of ['s1.txt', 's2.txt', 's3.txt']) assert.equal(existsSync(join(local, f)) && statSync(join(local, f)).size > 0, false, `${f} got bytes`);
    // a listing does not show the links that lead out
    const ls = await run('share', 'ls');
    assert.doesNotMatch(ls.out, /secret-link|escape/, ls.out);
    assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'not for the client');
  });
});

describe('share path resolution (src/smb2/fs-backend.ts)', () => {
  it('.., ., empty components, reserved device names and characters NTFS refuses are STATUS_OBJECT_NAME_INVALID; a plain path joins the root', () => {
    for (const bad of ['..', 'a\\..\\..\\etc', '.\\x', 'a\\\\b', 'CON', 'nul.txt', 'com1', 'a:b', 'a*b', 'x<y', 'trailing.', 'trailing ', 'ctl\u0001']) {
      assert.throws(() => resolveInShare('/srv/s', bad), (e: Error & { status?: number }) => e.status === 0xc0000033, JSON.stringify(bad));
    }
    assert.equal(resolveInShare('/srv/s', ''), '/srv/s');
    assert.equal(resolveInShare('/srv/s', '\\dir\\f.txt'), '/srv/s/dir/f.txt');
    assert.equal(resolveInShare('/srv/s', 'console.txt'), '/srv/s/console.txt', 'only the exact device names are reserved');
  });

  it('search patterns: * and ? case-insensitive, DOS wildcards', () => {
    assert.ok(matchPattern('*', 'anything'));
    assert.ok(matchPattern('*.TXT', 'a.txt'));
    assert.ok(matchPattern('a?c', 'abc'));
    assert.ok(!matchPattern('a?c', 'abbc'));
    assert.ok(matchPattern('<.txt', 'x.txt'));
    assert.ok(matchPattern('exact', 'EXACT'));
    assert.ok(!matchPattern('a.b', 'axb'), 'a dot is a dot, not a regex wildcard');
  });
});


describe('SMB2 READ/WRITE by RDMA channel over SMB Direct (the software iWARP provider on loopback)', () => {
  it('WRITE by RDMA Read from the client\'s buffer, READ by RDMA Write into it with Send-with-Invalidate: byte-identical, counted as RDMA bytes', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-rdma-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    t.after(() => server.close());
    const { port } = await server.listen({ transport: 'rdma', host: '127.0.0.1', port: 0, provider: 'iwarp-tcp' });
    const conn = await smbdConnect({ host: '127.0.0.1', port, provider: 'iwarp-tcp' });
    t.after(() => conn.destroy());
    const rpc = async (m: Uint8Array) => {
      const reply = once(conn, 'message').then(([x]) => x as Uint8Array);
      await conn.send(m);
      return reply;
    };
    const s = await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' });
    assert.equal(s.maxRead, conn.negotiated!.maxReadWriteSize, 'MaxReadSize is the SMB Direct MaxReadWriteSize');
    const fileId = await createFile(s, 'placed.bin');
    const data = randomBytes(1 << 20);
    // WRITE: the server RDMA-reads the bytes from our registration ([MS-SMBD] 3.1.4.6)
    const src = conn.registerBuffer(data, 'read');
    const w = await rpc(smb2ChannelRequest({ command: 'write', channel: 1, length: 0, remainingBytes: data.length, fileOffset: 0n, descriptors: src.descriptors,
      messageId: s.nextId(16), sessionId: s.sessionId, treeId: s.treeId, fileId: fileIdBytes(fileId) }));
    src.release();
    assert.equal(smb2.decodeSmb2Header(w).status, smb2.STATUS_SUCCESS);
    assert.equal(sha(readFileSync(join(dir, 'placed.bin'))), sha(data), 'on disk');
    // READ with V1_INVALIDATE: the server RDMA-writes into our buffer and answers with a Send with
    // Invalidate of its token (3.1.4.5): DataLength 0, DataRemaining the bytes placed
    const into = new Uint8Array(data.length);
    const dst = conn.registerBuffer(into, 'write');
    const rr = await rpc(smb2ChannelRequest({ command: 'read', channel: 2, length: data.length, fileOffset: 0n, descriptors: dst.descriptors,
      messageId: s.nextId(16), sessionId: s.sessionId, treeId: s.treeId, fileId: fileIdBytes(fileId) }));
    const read = smb2.decodeSmb2ReadResponse(rr);
    assert.equal(read.header.status, smb2.STATUS_SUCCESS);
    assert.equal(read.data.length, 0);
    assert.equal(read.dataRemaining, data.length);
    assert.equal(sha(into), sha(data), 'placed byte-identical');
    assert.equal(dst.invalidated, true, 'the response invalidated the token');
    dst.release();
    // an error response invalidates too: the Linux cifs client (3.0.2, 3.1.1) leaves invalidation
    // to the server and re-registers the region for its next I/O (a READ at EOF is its usual case)
    const eofInto = conn.registerBuffer(new Uint8Array(4096), 'write');
    const eof = await rpc(smb2ChannelRequest({ command: 'read', channel: 2, length: 4096, fileOffset: BigInt(data.length), descriptors: eofInto.descriptors,
      messageId: s.nextId(), sessionId: s.sessionId, treeId: s.treeId, fileId: fileIdBytes(fileId) }));
    assert.equal(smb2.decodeSmb2Header(eof).status, smb2.STATUS_END_OF_FILE);
    assert.equal(eofInto.invalidated, true, 'a failed READ with V1_INVALIDATE invalidated its token');
    eofInto.release();
    // descriptors that cover less than the READ's Length: refused before any byte moves
    const short = conn.registerBuffer(new Uint8Array(4096), 'write');
    const shortRead = await rpc(smb2ChannelRequest({ command: 'read', channel: 2, length: 8192, fileOffset: 0n, descriptors: short.descriptors,
      messageId: s.nextId(), sessionId: s.sessionId, treeId: s.treeId, fileId: fileIdBytes(fileId) }));
    assert.equal(smb2.decodeSmb2Header(shortRead).status, smb2.STATUS_INVALID_PARAMETER);
    short.release();
    const badSrc = conn.registerBuffer(new Uint8Array(4096), 'read');
    const bad = await rpc(smb2ChannelRequest({ command: 'write', channel: 2, length: 0, remainingBytes: 4096, fileOffset: 0n, descriptors: badSrc.descriptors,
      messageId: s.nextId(), sessionId: s.sessionId, treeId: s.treeId, fileId: fileIdBytes({ persistent: 999n, volatile: 999n }) }));
    assert.equal(smb2.decodeSmb2Header(bad).status, smb2.STATUS_FILE_CLOSED);
    assert.equal(badSrc.invalidated, true, 'a failed WRITE with V1_INVALIDATE invalidated its token');
    badSrc.release();
    const b = server.stats().bytes;
    assert.equal(b.rdmaBytesRead, data.length);
    assert.equal(b.rdmaBytesWritten, data.length);
    assert.equal(b.inlineBytesRead + b.inlineBytesWritten, 0, 'no bulk byte went inline');
  });
});

describe('SMB2 requests pipelined on one connection (SMB Direct, the software iWARP provider on loopback)', () => {
  it('lone READs and WRITEs run side by side; a CLOSE sent behind them is answered after every one of them; every byte lands and reads back', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-piped-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    t.after(() => server.close());
    const { port } = await server.listen({ transport: 'rdma', host: '127.0.0.1', port: 0, provider: 'iwarp-tcp' });
    const conn = await smbdConnect({ host: '127.0.0.1', port, provider: 'iwarp-tcp' });
    t.after(() => conn.destroy());
    const s = await testSession(async (m) => {
      const reply = once(conn, 'message').then(([x]) => x as Uint8Array);
      await conn.send(m);
      return reply;
    }, { user: 'alice', password: 'secret', share: 'share' });
    const N = 8, CHUNK = 256 * 1024;
    const data = randomBytes(N * CHUNK);
    const hdr = (charge = 1) => ({ messageId: s.nextId(charge), credits: 8, sessionId: s.sessionId, treeId: s.treeId });
    /** Sends every request without waiting, then collects as many responses, in arrival order. */
    const pipeline = async (requests: Uint8Array[]) => {
      const got: smb2.Smb2Header[] = [];
      const bodies = new Map<bigint, Uint8Array>();
      const all = new Promise<void>((resolve) => {
        const on = (m: Uint8Array) => {
          const h = smb2.decodeSmb2Header(m);
          got.push(h);
          bodies.set(h.messageId, m);
          if (got.length === requests.length) { conn.off('message', on); resolve(); }
        };
        conn.on('message', on);
      });
      await Promise.all(requests.map((r) => conn.send(r)));
      await all;
      return { got, bodies };
    };

    let fileId = await createFile(s, 'piped.bin');
    const writes = Array.from({ length: N }, (_, i) => smb2.encodeSmb2WriteRequest({ header: hdr(CHUNK / 65536), fileId, offset: BigInt(i * CHUNK), data: data.subarray(i * CHUNK, (i + 1) * CHUNK) }));
    const close = smb2.encodeSmb2CloseRequest({ header: hdr(), fileId });
    const w = await pipeline([...writes, close]);
    assert.deepEqual(w.got.map((h) => h.status), Array(N + 1).fill(smb2.STATUS_SUCCESS));
    assert.equal(w.got.at(-1)!.command, smb2.SMB2_COMMAND.CLOSE, 'the CLOSE is answered after every WRITE sent before it');
    assert.equal(sha(readFileSync(join(dir, 'piped.bin'))), sha(data), 'every pipelined WRITE landed');

    fileId = await createFile(s, 'piped.bin', smb2.FILE_DISPOSITION.OPEN);
    const reads = Array.from({ length: N }, (_, i) => smb2.encodeSmb2ReadRequest({ header: hdr(CHUNK / 65536), fileId, offset: BigInt(i * CHUNK), length: CHUNK }));
    const r = await pipeline(reads);
    const back = Buffer.concat(reads.map((q) => {
      const resp = smb2.decodeSmb2ReadResponse(r.bodies.get(smb2.decodeSmb2Header(q).messageId)!);
      assert.equal(resp.header.status, smb2.STATUS_SUCCESS);
      return resp.data;
    }));
    assert.equal(sha(back), sha(data), 'pipelined READs, matched by MessageId, read every byte back');
    const io = server.stats().io;
    assert.ok(io.peakInFlight > 1, `READ/WRITE requests ran side by side (at most ${io.peakInFlight} at once)`);
    assert.ok(io.peakInFlight <= 16, 'and no more than MAX_IO_IN_FLIGHT');
    assert.equal(io.inFlight, 0);
  });
});

describe('smbdirect share (the command)', () => {
  it('serves a directory: prints its addresses and the smbclient line; smbclient lists through it; Ctrl-C stops it with exit 0; usage errors exit 2', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-share-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'listed.txt'), 'x');
    const child = spawn(process.execPath, [CLI, 'share', dir, '--name', 'data', '--user', 'alice:secret', '--port', '0', '--no-rdma'], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    let port = 0;
    // the address and the smbclient line may come in separate chunks: wait for both
    for (let i = 0; i < 300 && !(port && /smbclient: /.test(out)); i++) {
      port = Number(/listening on tcp [^ ]+:(\d+)/.exec(out)?.[1] ?? 0);
      if (!(port && /smbclient: /.test(out))) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(port, out);
    assert.match(out, /smbclient: smbclient \/\/127\.0\.0\.1\/data -p \d+ -U alice/);
    const ls = await smbclient(['//127.0.0.1/data', '-p', String(port), '-U', 'alice%secret', '-c', 'ls'], dir);
    assert.match(ls.out, /listed\.txt/, ls.out);
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    const [code] = await exited;
    assert.equal(code, 0, out);
    for (const args of [['share'], ['share', dir], ['share', join(dir, 'listed.txt'), '--guest'], ['share', dir, '--user', 'nocolon']]) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    }
  });
});
