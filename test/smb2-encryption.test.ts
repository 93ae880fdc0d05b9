// SMB3 encryption (src/smb2/encryption.ts, the TRANSFORM_HEADER codec, the server's use of both):
// Samba's smbclient puts and gets files over encrypted sessions with each cipher, and a recording
// proxy between it and the server shows that the file's bytes never cross the wire in the clear;
// a hand-written client checks the rules a peer cannot be trusted with (a forged message ends the
// connection, a share or server that requires encryption refuses plain requests).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, connect as tcpConnect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { DecryptError, SessionCipher, chooseCipher } from '../src/smb2/encryption.js';
import { createServer } from '../src/smb2/index.js';
import { attachClient, testSession } from './support/smb2-client.js';
import { smbclient } from './support/samba.js';

const C = smb2.SMB2_CIPHER;
const CIPHERS = [C.AES_128_CCM, C.AES_128_GCM, C.AES_256_CCM, C.AES_256_GCM];

describe('SMB3 encryption: the AEAD and the TRANSFORM_HEADER', () => {
  const message = smb2.encodeSmb2Empty(smb2.SMB2_COMMAND.ECHO, { messageId: 7n }, false);
  for (const dialect of [0x302, 0x311]) {
    for (const cipher of CIPHERS) {
      it(`dialect 0x${dialect.toString(16)}, cipher ${cipher}: each side reads what the other sealed; a changed bit anywhere is refused`, () => {
        const key = randomBytes(16), hash = dialect === 0x311 ? randomBytes(64) : undefined;
        const server = new SessionCipher(key, dialect, cipher, hash), client = new SessionCipher(key, dialect, cipher, hash, 'client');
        const up = client.encrypt(message, 0x1234n);
        assert.equal(up.length, 52 + message.length);
        const t = smb2.decodeSmb2TransformHeader(up);
        assert.equal(t.sessionId, 0x1234n);
        assert.deepEqual(Uint8Array.from(server.decrypt(t)), Uint8Array.from(message));
        assert.notDeepEqual(Uint8Array.from(t.ciphertext), Uint8Array.from(message), 'the body is not sent as it is');
        const down = server.encrypt(message, 0x1234n);
        assert.deepEqual(Uint8Array.from(client.decrypt(smb2.decodeSmb2TransformHeader(down))), Uint8Array.from(message));
        // a key is one direction's: the server cannot read its own message as if the client sent it
        assert.throws(() => server.decrypt(smb2.decodeSmb2TransformHeader(down)), DecryptError);
        // the tag, the nonce, the SessionId (associated data) and the body are each covered
        for (const at of [4, 20, 44, 52, up.length - 1]) {
          const bad = Uint8Array.from(up);
          bad[at]! ^= 1;
          assert.throws(() => server.decrypt(smb2.decodeSmb2TransformHeader(bad)), DecryptError, `byte ${at}`);
        }
        // two messages never share a nonce
        assert.notDeepEqual(Uint8Array.from(smb2.decodeSmb2TransformHeader(server.encrypt(message, 1n)).nonce), Uint8Array.from(smb2.decodeSmb2TransformHeader(down).nonce));
      });
    }
  }

  it('a malformed TRANSFORM_HEADER is a typed error: short, Flags not 1, a size that is not what follows, too small for an SMB2 header', () => {
    const good = new SessionCipher(randomBytes(16), 0x302, C.AES_128_CCM).encrypt(new Uint8Array(64), 1n);
    const code = (b: Uint8Array) => { try { smb2.decodeSmb2TransformHeader(b); return 'ok'; } catch (err) { return (err as { code: string }).code; } };
    assert.equal(code(good), 'ok');
    assert.equal(code(good.subarray(0, 51)), 'ERR_SMB2_SHORT_PDU');
    const flags = Uint8Array.from(good); flags[42] = 2;
    assert.equal(code(flags), 'ERR_SMB2_BAD_TRANSFORM');
    assert.equal(code(good.subarray(0, good.length - 1)), 'ERR_SMB2_BAD_TRANSFORM');
    const small = Uint8Array.from(good.subarray(0, 52 + 63)); new DataView(small.buffer).setUint32(36, 63, true);
    assert.equal(code(small), 'ERR_SMB2_BAD_TRANSFORM');
    assert.equal(chooseCipher([C.AES_256_CCM, C.AES_128_GCM]), C.AES_128_GCM, 'the server prefers AES-128-GCM');
    assert.equal(chooseCipher([9]), 0, 'no common cipher');
  });
});


/** A TCP proxy to `port` that keeps every byte each way. */
async function recordingProxy(port: number): Promise<{ server: Server; port: number; up: Buffer[]; down: Buffer[] }> {
  const up: Buffer[] = [], down: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((c) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    sockets.add(c).add(s);
    c.on('data', (d: Buffer) => { up.push(d); s.write(d); });
    s.on('data', (d: Buffer) => { down.push(d); c.write(d); });
    c.on('close', () => s.destroy());
    s.on('close', () => c.destroy());
    c.on('error', () => {});
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  server.on('close', () => { for (const s of sockets) s.destroy(); });
  return { server, port: (server.address() as { port: number }).port, up, down };
}

describe('SMB3 encryption against smbclient, through a recording proxy', () => {
  const cases: Array<{ name: string; args: string[]; encryption?: 'on' | 'required'; share?: string }> = [
    { name: '3.1.1, client requires encryption (AES-128-GCM)', args: ['-m', 'SMB3_11', '--client-protection=encrypt'] },
    { name: '3.1.1, AES-256-CCM', args: ['-m', 'SMB3_11', '--client-protection=encrypt', '--option=client smb3 encryption algorithms=aes-256-ccm'] },
    { name: '3.0 (AES-128-CCM by the capability)', args: ['-m', 'SMB3_00', '--client-protection=encrypt'] },
    { name: '3.1.1, the server requires it of a client that does not ask', args: ['-m', 'SMB3_11', '--client-protection=off'], encryption: 'required' },
    { name: '3.0.2, a share that requires it (SHAREFLAG_ENCRYPT_DATA)', args: ['-m', 'SMB3_02'], share: 'sealed' },
  ];
  for (const c of cases) {
    it(`${c.name}: a 1 MiB file put and got back byte-identical, never in the clear on the wire`, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'smb2-enc-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const server = createServer({
        shares: [{ name: 'share', path: dir }, { name: 'sealed', path: dir, encryptData: true }], users: { alice: 'secret' }, encryption: c.encryption,
      });
      t.after(() => server.close());
      const { port } = await server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 });
      const proxy = await recordingProxy(port);
      t.after(() => proxy.server.close());
      const data = randomBytes(1 << 20);
      writeFileSync(join(dir, 'in.bin'), data);
      const r = await smbclient([`//127.0.0.1/${c.share ?? 'share'}`, '-p', String(proxy.port), '-U', 'alice%secret', ...c.args,
        '-c', `put ${join(dir, 'in.bin')} up.bin; get up.bin ${join(dir, 'back.bin')}`], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.out);
      assert.ok(readFileSync(join(dir, 'up.bin')).equals(data), 'the put file is byte-identical');
      assert.ok(readFileSync(join(dir, 'back.bin')).equals(data), 'the got file is byte-identical');
      const up = Buffer.concat(proxy.up), down = Buffer.concat(proxy.down);
      for (const at of [0, 300_000, (1 << 20) - 64]) {
        const sample = data.subarray(at, at + 64);
        assert.equal(up.indexOf(sample), -1, `the file's bytes at ${at} are not on the wire to the server`);
        assert.equal(down.indexOf(sample), -1, `the file's bytes at ${at} are not on the wire from the server`);
      }
      assert.ok(up.indexOf(Buffer.from([0xfd, 0x53, 0x4d, 0x42])) > 0, 'the client sent TRANSFORM_HEADERs');
      assert.ok(down.indexOf(Buffer.from([0xfd, 0x53, 0x4d, 0x42])) > 0, 'the server sent TRANSFORM_HEADERs');
    });
  }
});

describe('SMB3 encryption: what a peer cannot get away with', () => {
  const server = () => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-enc-'));
    const s = createServer({ shares: [{ name: 'share', path: dir }, { name: 'sealed', path: dir, encryptData: true }], users: { alice: 'secret' } });
    return { s, done: async () => { await s.close(); rmSync(dir, { recursive: true, force: true }); } };
  };
  const echo = (sessionId: bigint, messageId: bigint) => smb2.encodeSmb2Empty(smb2.SMB2_COMMAND.ECHO, { messageId, sessionId, credits: 1 }, false);

  it('an encrypted session is served encrypted; a message with a bad tag, or for a session without keys, ends its connection', async (t) => {
    const { s, done } = server();
    t.after(done);
    const a = attachClient(s);
    const sess = await testSession(a.rpc, { user: 'alice', password: 'secret', share: 'share', encrypt: true });
    assert.ok(sess.cipher, 'the server agreed to encrypt (SMB2_GLOBAL_CAP_ENCRYPTION)');
    // the TREE_CONNECT in testSession went encrypted; so does an ECHO, and its answer
    const reply = smb2.decodeSmb2Header(await sess.rpc(echo(sess.sessionId, sess.nextId())));
    assert.equal(reply.status, smb2.STATUS_SUCCESS);
    assert.equal(reply.flags & smb2.SMB2_FLAGS.SIGNED, 0, 'an encrypted response is not signed as well');
    const forged = sess.cipher.encrypt(echo(sess.sessionId, sess.nextId()), sess.sessionId);
    forged[60]! ^= 0x80;
    await a.conn.message(forged);
    assert.ok(a.closed(), 'a message that fails its tag ends the connection');
    assert.equal(a.inbox.length, 0, 'and is not answered');

    const b = attachClient(s);
    const plain = await testSession(b.rpc, { user: 'alice', password: 'secret', share: 'share' });
    assert.equal(plain.cipher, undefined);
    const fake = new SessionCipher(randomBytes(16), 0x302, smb2.SMB2_CIPHER.AES_128_CCM, undefined, 'client');
    await b.conn.message(fake.encrypt(echo(plain.sessionId, plain.nextId()), plain.sessionId));
    assert.ok(b.closed(), 'a session that negotiated no encryption has no keys: its "encrypted" message ends the connection');
    // the server serves on
    const c = attachClient(s);
    await testSession(c.rpc, { user: 'alice', password: 'secret', share: 'share', encrypt: true });
  });

  it('a share that requires encryption refuses a session that cannot encrypt, and plain requests of one that can', async (t) => {
    const { s, done } = server();
    t.after(done);
    const a = attachClient(s);
    await assert.rejects(testSession(a.rpc, { user: 'alice', password: 'secret', share: 'sealed' }), /STATUS_ACCESS_DENIED/);
    const b = attachClient(s);
    const sess = await testSession(b.rpc, { user: 'alice', password: 'secret', share: 'sealed', encrypt: true });
    const query = (rpc: typeof sess.rpc) => rpc(smb2.encodeSmb2CreateRequest({
      header: { messageId: sess.nextId(), credits: 8, sessionId: sess.sessionId, treeId: sess.treeId }, name: '', desiredAccess: 0x00120089, createDisposition: smb2.FILE_DISPOSITION.OPEN,
    }));
    assert.equal(smb2.decodeSmb2Header(await query(sess.plainRpc)).status, smb2.STATUS_ACCESS_DENIED, 'a plain CREATE on the sealed share');
    assert.equal(smb2.decodeSmb2Header(await query(sess.rpc)).status, smb2.STATUS_SUCCESS, 'the same CREATE encrypted');
  });

  it("encryption: 'required' refuses a client without a common cipher at SESSION_SETUP; 'off' offers none", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-enc-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const req = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' }, encryption: 'required' });
    t.after(() => req.close());
    await assert.rejects(testSession(attachClient(req).rpc, { user: 'alice', password: 'secret', share: 'share' }), /STATUS_ACCESS_DENIED/);
    const off = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' }, encryption: 'off' });
    t.after(() => off.close());
    const sess = await testSession(attachClient(off).rpc, { user: 'alice', password: 'secret', share: 'share', encrypt: true });
    assert.equal(sess.cipher, undefined, 'no SMB2_GLOBAL_CAP_ENCRYPTION in the NEGOTIATE response');
  });
});
