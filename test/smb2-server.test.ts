// The SMB2 server's front door (src/smb2/server.ts) against a real peer: Samba's smbclient (Debian's
// package; ci/setup-host.sh installs it) over direct TCP on loopback. smbclient checks what a
// server must get right: the NEGOTIATE contexts, the SPNEGO/NTLMv2 exchange, the preauth integrity
// chain and the signing key derived from it (it verifies our signed final SESSION_SETUP response,
// and with signing required signs every request, which we verify). Then crafted bytes: a
// malformed request is answered with its status and the connection keeps serving.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { frameSmb2 } from '../src/providers/stream.js';
import { connect as smbdConnect } from '../src/index.js';
import { type Smb2Server, createServer } from '../src/smb2/index.js';
import { rc4 } from '../src/smb2/auth/legacy-crypto.js';
import { ntHash, ntlmv2Response } from '../src/smb2/auth/ntlm.js';
import { signMessage, signingKey, verifySignature } from '../src/smb2/signing.js';
import { tcpMessages } from './support.js';
import { smbclient as runSmbclient } from './support/samba.js';
import { MAX_SESSIONS_PER_CONNECTION } from '../src/smb2/server.js';

function smbclientPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v smbclient'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

/** smbclient, bounded: 30 s. */
const smbclient = (args: string[]) => runSmbclient(args, { timeoutMs: 30_000 });

describe('SMB2 server: NEGOTIATE, SESSION_SETUP, TREE_CONNECT against smbclient', () => {
  let server: Smb2Server;
  let port = 0;

  before(async () => {
    // a suite that cannot run where it should fails loudly: CI installs smbclient (ci/setup-host.sh)
    assert.ok(smbclientPath(), 'smbclient is not installed: run `bash ci/setup-host.sh` as root (Debian package smbclient)');
    server = createServer({ shares: [{ name: 'share', path: '/nonexistent' }], users: { alice: 'secret', bob: { ntHash: '8846f7eaee8fb117ad06bdd830b7586c' /* "password" */ } } });
    ({ port } = await server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 }));
  });
  after(async () => { await server?.close(); });

  for (const dialect of ['SMB3_11', 'SMB3_02', 'SMB3_00']) {
    for (const signing of ['required', 'off']) {
      it(`${dialect}, client signing ${signing}: session set up and the share connected`, async () => {
        const before = server.stats().requests.IOCTL?.STATUS_SUCCESS ?? 0;
        const r = await smbclient([`//127.0.0.1/share`, '-p', String(port), '-U', 'alice%secret', '-m', dialect, '--option', `client signing=${signing}`, '-c', 'exit']);
        assert.equal(r.code, 0, r.out);
        const st = server.stats().requests;
        assert.ok((st.TREE_CONNECT?.STATUS_SUCCESS ?? 0) > 0, JSON.stringify(st));
        // smbclient checks FSCTL_VALIDATE_NEGOTIATE_INFO on 3.0/3.0.2 with signing, and fails on a wrong answer
        if (dialect !== 'SMB3_11' && signing === 'required') assert.ok((st.IOCTL?.STATUS_SUCCESS ?? 0) > before, `VALIDATE_NEGOTIATE_INFO answered: ${JSON.stringify(st.IOCTL)}`);
      });
    }
  }

  it('a user given by NT hash logs on', async () => {
    const r = await smbclient(['//127.0.0.1/share', '-p', String(port), '-U', 'bob%password', '-c', 'exit']);
    assert.equal(r.code, 0, r.out);
  });

  it('a wrong password is NT_STATUS_LOGON_FAILURE, an unknown user too; the server keeps serving', async () => {
    for (const user of ['alice%Secret', 'mallory%secret']) {
      const r = await smbclient(['//127.0.0.1/share', '-p', String(port), '-U', user, '-c', 'exit']);
      assert.notEqual(r.code, 0);
      assert.match(r.out, /NT_STATUS_LOGON_FAILURE/, r.out);
    }
    assert.equal((await smbclient(['//127.0.0.1/share', '-p', String(port), '-U', 'alice%secret', '-c', 'exit'])).code, 0);
  });

  it('an unknown share is NT_STATUS_BAD_NETWORK_NAME; a share whose directory is missing cannot be listed', async () => {
    const r = await smbclient(['//127.0.0.1/nosuch', '-p', String(port), '-U', 'alice%secret', '-c', 'exit']);
    assert.match(r.out, /NT_STATUS_BAD_NETWORK_NAME/, r.out);
    const ls = await smbclient(['//127.0.0.1/share', '-p', String(port), '-U', 'alice%secret', '-c', 'ls']);
    assert.match(ls.out, /NT_STATUS_BAD_NETWORK_NAME/, ls.out);
  });

  it('crafted bytes: a NEGOTIATE with no dialect gets STATUS_INVALID_PARAMETER and the same connection then negotiates; garbage ends only that connection', async () => {
    const sock = tcpConnect({ host: '127.0.0.1', port });
    await once(sock, 'connect');
    const next = tcpMessages(sock);
    const good = smb2.encodeSmb2NegotiateRequest({ dialects: [0x302], clientGuid: new Uint8Array(16), header: { credits: 1 } });
    const bad = Uint8Array.from(good);
    bad[66] = 0; // DialectCount 0
    sock.write(frameSmb2(bad));
    const e = smb2.decodeSmb2Header(await next());
    assert.equal(e.status, smb2.STATUS_INVALID_PARAMETER);
    // the refused NEGOTIATE used MessageId 0 and its response granted the next one
    sock.write(frameSmb2(smb2.encodeSmb2NegotiateRequest({ dialects: [0x302], clientGuid: new Uint8Array(16), header: { credits: 1, messageId: 1n } })));
    assert.equal(smb2.decodeSmb2NegotiateResponse(await next()).dialect, 0x302);
    // not SMB2 at all: that connection is dropped (3.3.5.2), the server serves the next one
    sock.write(frameSmb2(new Uint8Array(80).fill(0x41)));
    await once(sock, 'close');
    assert.equal((await smbclient(['//127.0.0.1/share', '-p', String(port), '-U', 'alice%secret', '-c', 'exit'])).code, 0);
  });
});

/** A hand-written 3.0.2 session over TCP with raw NTLMSSP and KEY_EXCH: both sides know the
 * signing key; `validate` builds a signed VALIDATE_NEGOTIATE_INFO. */
async function signedSession(port: number) {
  const sock = tcpConnect({ host: '127.0.0.1', port });
  await once(sock, 'connect');
  const next = tcpMessages(sock);
  const rpc = (m: Uint8Array): Promise<Uint8Array> => {
    sock.write(frameSmb2(m));
    return next();
  };
  const guid = new Uint8Array(16).fill(9);
  const dialects = [0x300, 0x302];
  const neg = smb2.decodeSmb2NegotiateResponse(await rpc(smb2.encodeSmb2NegotiateRequest({ dialects, clientGuid: guid, securityMode: 1, capabilities: 4, header: { credits: 8 } })));
  const nego = smb2.encodeNtlmNegotiate(smb2.NTLMSSP.NEGOTIATE_UNICODE | smb2.NTLMSSP.NEGOTIATE_NTLM | smb2.NTLMSSP.NEGOTIATE_KEY_EXCH);
  const r1 = smb2.decodeSmb2SessionSetupResponse(await rpc(smb2.encodeSmb2SessionSetupRequest({ header: { messageId: 1n, credits: 8 }, securityBuffer: nego })));
  assert.equal(r1.header.status, smb2.STATUS_MORE_PROCESSING_REQUIRED);
  const ch = smb2.decodeNtlmChallenge(r1.securityBuffer);
  const v2 = ntlmv2Response({ hash: ntHash('secret'), user: 'alice', domain: 'W', serverChallenge: ch.serverChallenge, targetInfo: ch.targetInfoBytes });
  const random = new Uint8Array(16).fill(0x5c);
  const auth = smb2.encodeNtlmAuthenticate({ flags: ch.flags, lmChallengeResponse: v2.lmChallengeResponse, ntChallengeResponse: v2.ntChallengeResponse, domain: 'W', user: 'alice', workstation: 'T', encryptedRandomSessionKey: rc4(v2.sessionBaseKey, random) });
  const final = await rpc(smb2.encodeSmb2SessionSetupRequest({ header: { messageId: 2n, credits: 8, sessionId: r1.header.sessionId }, securityBuffer: auth }));
  const key = signingKey(random, 0x302);
  assert.equal(smb2.decodeSmb2Header(final).status, smb2.STATUS_SUCCESS);
  assert.ok(verifySignature(key, smb2.SMB2_SIGNING.AES_CMAC, final), 'the final SESSION_SETUP response is signed with the key both sides derived');
  const sid = r1.header.sessionId;
  const validate = (v: { dialects: number[] }) => {
    const m = smb2.encodeSmb2IoctlRequest({ header: { messageId: 3n, credits: 8, sessionId: sid }, ctlCode: smb2.FSCTL.VALIDATE_NEGOTIATE_INFO, fileId: smb2.SMB2_FILE_ID_RELATED,
      input: smb2.encodeValidateNegotiateInfo({ capabilities: 4, guid, securityMode: 1, dialects: v.dialects }) });
    signMessage(key, smb2.SMB2_SIGNING.AES_CMAC, m);
    return m;
  };
  return { sock, rpc, next, validate, key, sid, neg, dialects };
}

describe('SMB2 server: a hand-written 3.0.2 client (raw NTLMSSP), signing both ways, VALIDATE_NEGOTIATE_INFO', () => {
  it('a validate that matches the NEGOTIATE is answered, signed; one that does not ends the connection', async (t) => {
    const server = createServer({ shares: [{ name: 's', path: '/x' }], users: { alice: 'secret' } });
    t.after(() => server.close());
    const { port } = await server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 });
    const session = () => signedSession(port);
    const a = await session();
    const resp = await a.rpc(a.validate({ dialects: a.dialects }));
    assert.ok(verifySignature(a.key, smb2.SMB2_SIGNING.AES_CMAC, resp), 'the IOCTL response is signed');
    const io = smb2.decodeSmb2IoctlResponse(resp);
    assert.equal(io.header.status, smb2.STATUS_SUCCESS);
    assert.equal(io.output.length, 24);
    assert.deepEqual(Uint8Array.from(io.output.subarray(4, 20)), Uint8Array.from(a.neg.serverGuid), 'the server GUID of the NEGOTIATE');
    assert.equal(io.output[22]! | (io.output[23]! << 8), 0x302, 'the dialect');
    a.sock.destroy();
    // a man in the middle took 3.0.2 out of the NEGOTIATE: the validate says so, and the connection ends
    const b = await session();
    b.sock.write(frameSmb2(b.validate({ dialects: [0x300] })));
    await once(b.sock, 'close');
  });

  it('a signed related compound (CREATE + QUERY_INFO + CLOSE): every response padded to 8 bytes, the last too, each signed over its padded length', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-compound-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = createServer({ shares: [{ name: 's', path: dir }], users: { alice: 'secret' } });
    t.after(() => server.close());
    const { port } = await server.listen({ transport: 'tcp', host: '127.0.0.1', port: 0 });
    const a = await signedSession(port);
    t.after(() => a.sock.destroy());
    const sign = (m: Uint8Array) => { signMessage(a.key, smb2.SMB2_SIGNING.AES_CMAC, m); return m; };
    const tc = smb2.decodeSmb2TreeConnectResponse(await a.rpc(sign(smb2.encodeSmb2TreeConnectRequest({ header: { messageId: 3n, credits: 8, sessionId: a.sid, flags: smb2.SMB2_FLAGS.SIGNED }, path: '\\\\h\\s' }))));
    assert.equal(tc.header.status, smb2.STATUS_SUCCESS);
    const h = (messageId: bigint, related: boolean) => ({ messageId, credits: 8, sessionId: a.sid, treeId: tc.header.treeId,
      flags: smb2.SMB2_FLAGS.SIGNED | (related ? smb2.SMB2_FLAGS.RELATED_OPERATIONS : 0) });
    // the name info of "odd.txt" (4 + 14 bytes after the 8-byte fixed part) leaves a response that is not a multiple of 8
    const parts = [
      smb2.encodeSmb2CreateRequest({ header: h(4n, false), name: 'odd.txt', desiredAccess: 0x0012019f, createDisposition: smb2.FILE_DISPOSITION.OPEN_IF }),
      smb2.encodeSmb2QueryInfoRequest({ header: h(5n, true), infoType: smb2.SMB2_INFO.FILE, infoClass: 9, outputBufferLength: 4096, fileId: smb2.SMB2_FILE_ID_RELATED }),
      smb2.encodeSmb2CloseRequest({ header: h(6n, true), fileId: smb2.SMB2_FILE_ID_RELATED }),
    ];
    const sizes = parts.map((p) => (p.length + 7) & ~7);
    const message = new Uint8Array(sizes.reduce((x, y) => x + y, 0));
    let at = 0;
    parts.forEach((p, i) => {
      message.set(p, at);
      if (i < parts.length - 1) new DataView(message.buffer).setUint32(at + 20, sizes[i]!, true);
      sign(message.subarray(at, at + sizes[i]!));
      at += sizes[i]!;
    });
    const reply = await a.rpc(message);
    const items = smb2.splitSmb2Compound(reply);
    assert.deepEqual(items.map((i) => i.header.command), [smb2.SMB2_COMMAND.CREATE, smb2.SMB2_COMMAND.QUERY_INFO, smb2.SMB2_COMMAND.CLOSE]);
    assert.deepEqual(items.map((i) => i.header.status), [0, 0, 0]);
    assert.equal(reply.length % 8, 0, 'the last response is padded too (Windows; smbtorture compound.padding)');
    for (const i of items) {
      assert.equal(i.length % 8, 0);
      assert.ok(verifySignature(a.key, smb2.SMB2_SIGNING.AES_CMAC, reply.subarray(i.offset, i.offset + i.length)), `response ${i.header.command} verifies over its padded length`);
    }
  });
});

describe('SMB2 server over SMB Direct (the software iWARP provider on loopback)', () => {
  it('listen({ transport: "rdma" }): each SMB2 message is one SMB Direct message, no RFC 1002 prefix; NEGOTIATE and a bad SESSION_SETUP answered', async (t) => {
    const server = createServer({ users: { alice: 'secret' } });
    t.after(() => server.close());
    const { port } = await server.listen({ transport: 'rdma', host: '127.0.0.1', port: 0, provider: 'iwarp-tcp' });
    const conn = await smbdConnect({ host: '127.0.0.1', port, provider: 'iwarp-tcp' });
    t.after(() => conn.destroy());
    const reply = () => once(conn, 'message').then(([m]) => m as Uint8Array);
    let r = reply();
    await conn.send(smb2.encodeSmb2NegotiateRequest({ dialects: [0x300, 0x302], clientGuid: new Uint8Array(16), header: { credits: 10 } }));
    const neg = smb2.decodeSmb2NegotiateResponse(await r);
    assert.equal(neg.dialect, 0x302);
    assert.equal(neg.header.credits, 10, 'the credits asked for');
    const spnego = smb2.decodeSpnego(neg.securityBuffer);
    assert.ok(spnego.kind === 'init' && spnego.mechTypes.includes(smb2.OID_NTLMSSP));
    // a SESSION_SETUP whose token is neither SPNEGO nor NTLMSSP: its status, and the connection stays
    r = reply();
    await conn.send(smb2.encodeSmb2SessionSetupRequest({ header: { messageId: 1n, credits: 1 }, securityBuffer: new Uint8Array(20).fill(0x41) }));
    const h = smb2.decodeSmb2Header(await r);
    assert.equal(h.status, smb2.STATUS_INVALID_PARAMETER);
    assert.equal(conn.state, 'connected');
    // a peer cannot pile up sessions: malformed tokens leave none behind, and unfinished ones are
    // capped per connection (MAX_SESSIONS_PER_CONNECTION)
    const setup = async (token: Uint8Array, id: bigint) => {
      const p = reply();
      await conn.send(smb2.encodeSmb2SessionSetupRequest({ header: { messageId: id, credits: 1 }, securityBuffer: token }));
      return smb2.decodeSmb2Header(await p).status;
    };
    let id = 2n;
    for (let i = 0; i < 100; i++) assert.equal(await setup(new Uint8Array(20).fill(0x41), id++), smb2.STATUS_INVALID_PARAMETER);
    const ntlmNegotiate = smb2.encodeSpnegoInit({ mechTypes: [smb2.OID_NTLMSSP], mechToken: smb2.encodeNtlmNegotiate(smb2.NTLMSSP.NEGOTIATE_UNICODE) });
    for (let i = 0; i < MAX_SESSIONS_PER_CONNECTION; i++) assert.equal(await setup(ntlmNegotiate, id++), smb2.STATUS_MORE_PROCESSING_REQUIRED, `session ${i}`);
    assert.equal(await setup(ntlmNegotiate, id++), smb2.STATUS_INSUFFICIENT_RESOURCES);
  });
});

