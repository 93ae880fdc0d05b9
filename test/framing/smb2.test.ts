// framing/smb2: the SMB2 header (sync and async), compound chains and NEGOTIATE with 3.1.1
// negotiate contexts. Byte vectors written from [MS-SMB2] 2.2.1 / 2.2.3 / 2.2.4 field by field,
// round trips, and property tests that a decoder never throws anything but its typed error.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { SmbDirectProtocolError, smb2 } from '../../framing/index.js';
import { mutationsDecodeOrFail } from '../support.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const GUID = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

describe('SMB2 header (2.2.1)', () => {
  it('a sync request header, field by field', () => {
    const h = smb2.encodeSmb2Header({
      command: smb2.SMB2_COMMAND.CREATE, creditCharge: 1, credits: 31, flags: smb2.SMB2_FLAGS.SIGNED,
      messageId: 0x0102030405060708n, processId: 0xfeff, treeId: 5, sessionId: 0x1122334455667788n, status: 0,
    });
    assert.deepEqual(h, hex(`
      fe534d42 4000 0100 00000000 0500 1f00 08000000 00000000
      0807060504030201 fffe0000 05000000 8877665544332211
      00000000000000000000000000000000`));
    const d = smb2.decodeSmb2Header(h);
    assert.equal(d.command, smb2.SMB2_COMMAND.CREATE);
    assert.equal(d.creditCharge, 1);
    assert.equal(d.credits, 31);
    assert.equal(d.messageId, 0x0102030405060708n);
    assert.equal(d.treeId, 5);
    assert.equal(d.processId, 0xfeff);
    assert.equal(d.asyncId, 0n);
    assert.equal(d.sessionId, 0x1122334455667788n);
    assert.equal(d.signature.length, 16);
  });

  it('the async form carries AsyncId where the sync form has ProcessId and TreeId', () => {
    const flags = smb2.SMB2_FLAGS.ASYNC_COMMAND | smb2.SMB2_FLAGS.SERVER_TO_REDIR;
    const h = smb2.encodeSmb2Header({ command: smb2.SMB2_COMMAND.CHANGE_NOTIFY, flags, status: smb2.STATUS_PENDING, asyncId: 0xabcdef0123456789n });
    assert.deepEqual(h.subarray(32, 40), hex('8967452301efcdab'));
    const d = smb2.decodeSmb2Header(h);
    assert.equal(d.asyncId, 0xabcdef0123456789n);
    assert.equal(d.treeId, 0);
    assert.equal(d.status, smb2.STATUS_PENDING);
    assert.equal(smb2.ntstatusName(d.status), 'STATUS_PENDING (0x00000103)');
  });

  it('the signature is a view into the message (signing writes it in place)', () => {
    const pdu = smb2.encodeSmb2Header({ command: 0, signature: new Uint8Array(16).fill(0xaa) });
    const d = smb2.decodeSmb2Header(pdu);
    d.signature.fill(0x55);
    assert.ok(pdu.subarray(48, 64).every((b) => b === 0x55));
  });

  it('a compound chain: three commands, 8-byte aligned, the last runs to the end', () => {
    const parts = [smb2.SMB2_COMMAND.CREATE, smb2.SMB2_COMMAND.QUERY_INFO, smb2.SMB2_COMMAND.CLOSE].map((command, i, all) => {
      const body = new Uint8Array(i === 2 ? 24 : 88); // 64 + 88 = 152: aligned
      const out = new Uint8Array(64 + body.length);
      smb2.writeSmb2Header(out, 0, { command, nextCommand: i < all.length - 1 ? out.length : 0, flags: i ? smb2.SMB2_FLAGS.RELATED_OPERATIONS : 0, messageId: BigInt(i) });
      return out;
    });
    const pdu = Buffer.concat(parts);
    const items = smb2.splitSmb2Compound(pdu);
    assert.deepEqual(items.map((x) => [x.offset, x.length, x.header.command, x.header.messageId]), [
      [0, 152, 5, 0n], [152, 152, 0x10, 1n], [304, 88, 6, 2n],
    ]);
  });

  it('ntstatus: names, severity', () => {
    assert.equal(smb2.ntstatusName(smb2.STATUS_ACCESS_DENIED), 'STATUS_ACCESS_DENIED (0xc0000022)');
    assert.equal(smb2.ntstatusName(0xc0001234), '0xc0001234');
    assert.equal(smb2.isNtError(smb2.STATUS_LOGON_FAILURE), true);
    assert.equal(smb2.isNtError(smb2.STATUS_BUFFER_OVERFLOW), false, 'a warning');
    assert.equal(smb2.isNtError(smb2.STATUS_PENDING), false);
  });
});

describe('SMB2 NEGOTIATE (2.2.3, 2.2.4)', () => {
  const salt = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
  const request311 = () => smb2.encodeSmb2NegotiateRequest({
    header: { messageId: 0n, credits: 1 },
    dialects: [smb2.SMB2_DIALECT.SMB300, smb2.SMB2_DIALECT.SMB302, smb2.SMB2_DIALECT.SMB311],
    securityMode: smb2.SMB2_NEGOTIATE_SIGNING_ENABLED,
    capabilities: smb2.SMB2_GLOBAL_CAP.LARGE_MTU | smb2.SMB2_GLOBAL_CAP.ENCRYPTION,
    clientGuid: GUID,
    contexts: [
      smb2.preauthContext(salt),
      smb2.encryptionContext([smb2.SMB2_CIPHER.AES_128_GCM, smb2.SMB2_CIPHER.AES_128_CCM]),
      smb2.signingContext([smb2.SMB2_SIGNING.AES_GMAC, smb2.SMB2_SIGNING.AES_CMAC]),
    ],
  });

  it('a 3.1.1 request: the fixed part, the dialects, contexts 8-byte aligned after them', () => {
    const pdu = request311();
    // fixed part: StructureSize 36, 3 dialects, signing enabled, capabilities, GUID, context offset/count
    assert.deepEqual(pdu.subarray(64, 100), hex(`2400 0300 0100 0000 44000000 0102030405060708090a0b0c0d0e0f10 70000000 0300 0000`));
    assert.deepEqual(pdu.subarray(100, 106), hex('0003 0203 1103'));
    assert.deepEqual(pdu.subarray(106, 112), new Uint8Array(6), 'padding to 8');
    // preauth at 112: type 1, length 38 (count 1, salt 32, SHA-512, the salt)
    assert.deepEqual(pdu.subarray(112, 126), hex('0100 2600 00000000 0100 2000 0100'));
    const r = smb2.decodeSmb2NegotiateRequest(pdu);
    assert.deepEqual(r.dialects, [0x300, 0x302, 0x311]);
    assert.deepEqual(r.preauthIntegrity?.hashAlgorithms, [smb2.SMB2_PREAUTH_INTEGRITY_SHA512]);
    assert.deepEqual(Uint8Array.from(r.preauthIntegrity!.salt), salt);
    assert.deepEqual(r.ciphers, [2, 1]);
    assert.deepEqual(r.signingAlgorithms, [2, 1]);
    assert.deepEqual(Uint8Array.from(r.clientGuid), GUID);
    assert.equal(r.capabilities, 0x44);
    assert.equal(smb2.chooseSmb2Dialect(r.dialects, [0x300, 0x302, 0x311]), 0x311);
    assert.equal(smb2.chooseSmb2Dialect(r.dialects, [0x300, 0x302]), 0x302);
    assert.equal(smb2.chooseSmb2Dialect([0x202, 0x2ff], [0x300, 0x302]), undefined);
  });

  it('a 3.0/3.0.2 request carries no contexts (the field is ClientStartTime there)', () => {
    const pdu = smb2.encodeSmb2NegotiateRequest({ dialects: [0x300, 0x302], clientGuid: GUID, contexts: [smb2.preauthContext(salt)] });
    assert.equal(pdu.length, 64 + 36 + 4);
    const r = smb2.decodeSmb2NegotiateRequest(pdu);
    assert.deepEqual(r.contexts, []);
    assert.equal(r.preauthIntegrity, undefined);
  });

  it('a 3.1.1 response: the choices, the security buffer, the contexts after it', () => {
    const spnego = Uint8Array.from({ length: 74 }, (_, i) => i);
    const pdu = smb2.encodeSmb2NegotiateResponse({
      header: { credits: 1 }, dialect: 0x311, serverGuid: GUID, capabilities: smb2.SMB2_GLOBAL_CAP.LARGE_MTU,
      maxTransactSize: 8 << 20, maxReadSize: 8 << 20, maxWriteSize: 8 << 20, systemTime: 133_000_000_000_000_000n,
      securityBuffer: spnego,
      contexts: [smb2.preauthContext(salt), smb2.encryptionContext([smb2.SMB2_CIPHER.AES_128_GCM]), smb2.signingContext([smb2.SMB2_SIGNING.AES_GMAC])],
    });
    assert.equal(pdu[16]! & 1, 1, 'SERVER_TO_REDIR');
    assert.deepEqual(pdu.subarray(64, 72), hex('4100 0100 1103 0300'));
    assert.deepEqual(pdu.subarray(120, 128), hex('8000 4a00 d0000000'), 'security buffer at 128, 74 bytes; contexts at 208 (128 + 74 rounded up to 8)');
    const r = smb2.decodeSmb2NegotiateResponse(pdu);
    assert.equal(r.dialect, 0x311);
    assert.equal(r.maxReadSize, 8 << 20);
    assert.equal(r.systemTime, 133_000_000_000_000_000n);
    assert.deepEqual(Uint8Array.from(r.securityBuffer), spnego);
    assert.equal(r.cipher, smb2.SMB2_CIPHER.AES_128_GCM);
    assert.equal(r.signingAlgorithm, smb2.SMB2_SIGNING.AES_GMAC);
    assert.deepEqual(r.preauthIntegrity?.hashAlgorithms, [1]);
  });

  it('a 3.0.2 response without a security buffer still has its one byte of buffer (StructureSize 65)', () => {
    const pdu = smb2.encodeSmb2NegotiateResponse({ dialect: 0x302, serverGuid: GUID, maxTransactSize: 1 << 20, maxReadSize: 1 << 20, maxWriteSize: 1 << 20 });
    assert.equal(pdu.length, 129);
    const r = smb2.decodeSmb2NegotiateResponse(pdu);
    assert.equal(r.dialect, 0x302);
    assert.equal(r.securityBuffer.length, 0);
  });

  it('a failed NEGOTIATE response throws ERR_SMB2_NEGOTIATE_FAILED with the status', () => {
    const pdu = new Uint8Array(64 + 9);
    smb2.writeSmb2Header(pdu, 0, { command: 0, flags: smb2.SMB2_FLAGS.SERVER_TO_REDIR, status: smb2.STATUS_NOT_SUPPORTED });
    assert.throws(() => smb2.decodeSmb2NegotiateResponse(pdu), { code: 'ERR_SMB2_NEGOTIATE_FAILED', status: smb2.STATUS_NOT_SUPPORTED });
  });

  it('property: a request round-trips; any byte string decodes or fails with a typed error, never anything else', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.constantFrom(0x202, 0x210, 0x300, 0x302, 0x311), { minLength: 1, maxLength: 5 }),
      fc.uint8Array({ minLength: 0, maxLength: 64 }),
      (dialects, s) => {
        const pdu = smb2.encodeSmb2NegotiateRequest({ dialects, clientGuid: GUID, contexts: [smb2.preauthContext(s), smb2.signingContext([1])] });
        const r = smb2.decodeSmb2NegotiateRequest(pdu);
        assert.deepEqual(r.dialects, dialects);
        if (dialects.includes(0x311)) assert.deepEqual(Uint8Array.from(r.preauthIntegrity!.salt), s);
      }), { seed: 23, numRuns: 200 });
    const base = request311();
    mutationsDecodeOrFail(base, (pdu) => { smb2.decodeSmb2NegotiateRequest(pdu); smb2.splitSmb2Compound(pdu); }, (err) => {
      assert.ok(err instanceof SmbDirectProtocolError, `a ${(err as Error).constructor.name}: ${(err as Error).message}`);
      assert.match(err.code, /^ERR_SMB2_/);
      assert.equal(typeof err.status, 'number', 'with the NTSTATUS a server answers');
    }, 24);
  });
});

describe('SPNEGO (RFC 4178, [MS-SPNG]) in SMB2 security buffers', () => {
  it("a server's NegTokenInit2 (NTLMSSP, the usual negHints): the 74 bytes Windows and Samba send", () => {
    const t = smb2.encodeSpnegoInit({ mechTypes: [smb2.OID_NTLMSSP], hint: smb2.SPNEGO_HINT_IGNORE });
    assert.deepEqual(t, hex(`604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa32a3028a0261b24
      6e6f745f646566696e65645f696e5f5246433431373840706c656173655f69676e6f7265`));
    const d = smb2.decodeSpnego(t);
    assert.equal(d.kind, 'init');
    assert.deepEqual(d.kind === 'init' && d.mechTypes, [smb2.OID_NTLMSSP]);
  });

  it("a client's first token carries the NTLM NEGOTIATE; the answers are NegTokenResps", () => {
    const ntlm = smb2.encodeNtlmNegotiate(smb2.NTLMSSP.NEGOTIATE_UNICODE);
    const first = smb2.decodeSpnego(smb2.encodeSpnegoInit({ mechTypes: [smb2.OID_NTLMSSP, smb2.OID_MS_KERBEROS], mechToken: ntlm }));
    assert.ok(first.kind === 'init');
    assert.deepEqual(first.mechTypes, [smb2.OID_NTLMSSP, smb2.OID_MS_KERBEROS]);
    assert.deepEqual(Uint8Array.from(first.mechToken!), ntlm);
    assert.equal(first.mechTypesDer[0], 0x30, 'the MechTypeList SEQUENCE a mechListMIC covers');
    const big = new Uint8Array(300).fill(3); // a long length form (0x82)
    const resp = smb2.decodeSpnego(smb2.encodeSpnegoResp({ negState: smb2.NEG_STATE.ACCEPT_INCOMPLETE, supportedMech: smb2.OID_NTLMSSP, responseToken: big, mechListMIC: new Uint8Array(16).fill(9) }));
    assert.ok(resp.kind === 'resp');
    assert.equal(resp.negState, 1);
    assert.equal(resp.supportedMech, smb2.OID_NTLMSSP);
    assert.deepEqual(Uint8Array.from(resp.responseToken!), big);
    assert.deepEqual(Uint8Array.from(resp.mechListMIC!), new Uint8Array(16).fill(9));
    assert.deepEqual(smb2.decodeSpnego(smb2.encodeSpnegoResp({ negState: smb2.NEG_STATE.ACCEPT_COMPLETED })), { kind: 'resp', negState: 0 });
  });

  it('property: any mutation or truncation decodes or fails with ERR_SPNEGO_BAD_TOKEN', () => {
    const base = smb2.encodeSpnegoInit({ mechTypes: [smb2.OID_NTLMSSP], mechToken: new Uint8Array(40).fill(1), hint: 'x' });
    mutationsDecodeOrFail(base, (t) => smb2.decodeSpnego(t), (err) => assert.equal((err as { code?: string }).code, 'ERR_SPNEGO_BAD_TOKEN', (err as Error).message), 44);
  });
});

describe('SMB2 SESSION_SETUP, LOGOFF and the ERROR response (2.2.5-2.2.8, 2.2.2)', () => {
  it('a request carries its security buffer right after the 24-byte fixed part; the response after 8', () => {
    const token = smb2.encodeSpnegoInit({ mechTypes: [smb2.OID_NTLMSSP], mechToken: smb2.encodeNtlmNegotiate(1) });
    const req = smb2.encodeSmb2SessionSetupRequest({ header: { messageId: 1n, credits: 130 }, securityMode: 1, securityBuffer: token, previousSessionId: 9n });
    assert.deepEqual(req.subarray(64, 88), hex(`1900 00 01 00000000 00000000 5800 ${Buffer.from([token.length, 0]).toString('hex')} 0900000000000000`));
    const r = smb2.decodeSmb2SessionSetupRequest(req);
    assert.deepEqual(Uint8Array.from(r.securityBuffer), token);
    assert.equal(r.previousSessionId, 9n);
    const resp = smb2.encodeSmb2SessionSetupResponse({
      header: { status: smb2.STATUS_MORE_PROCESSING_REQUIRED, sessionId: 0x4000000000001n, messageId: 1n }, securityBuffer: new Uint8Array(100).fill(2),
    });
    const d = smb2.decodeSmb2SessionSetupResponse(resp);
    assert.equal(d.header.status, smb2.STATUS_MORE_PROCESSING_REQUIRED);
    assert.equal(d.header.sessionId, 0x4000000000001n);
    assert.equal(d.securityBuffer.length, 100);
    assert.equal(smb2.decodeSmb2SessionSetupResponse(smb2.encodeSmb2SessionSetupResponse({ securityBuffer: new Uint8Array(0), sessionFlags: smb2.SMB2_SESSION_FLAG.IS_GUEST })).sessionFlags, 1);
  });

  it('the ERROR response: StructureSize 9, ByteCount 0 and one byte of data, the status in the header', () => {
    const e = smb2.encodeSmb2ErrorResponse({ command: smb2.SMB2_COMMAND.CREATE, status: smb2.STATUS_OBJECT_NAME_NOT_FOUND, messageId: 4n });
    assert.equal(e.length, 73);
    assert.deepEqual(e.subarray(64), hex('0900 0000 00000000 00'));
    const h = smb2.decodeSmb2Header(e);
    assert.equal(h.status, smb2.STATUS_OBJECT_NAME_NOT_FOUND);
    assert.ok(h.flags & smb2.SMB2_FLAGS.SERVER_TO_REDIR);
    assert.equal(smb2.encodeSmb2Logoff({ sessionId: 1n }).length, 68);
  });
});

describe('SMB2 TREE_CONNECT, TREE_DISCONNECT, ECHO, CLOSE, FLUSH (2.2.9-2.2.18, 2.2.28)', () => {
  it('TREE_CONNECT: the UNC path after the 8-byte fixed part; the response\'s share type and maximal access', () => {
    const req = smb2.encodeSmb2TreeConnectRequest({ header: { sessionId: 7n, messageId: 3n }, path: '\\\\10.99.0.1\\share' });
    assert.deepEqual(req.subarray(64, 72), hex('0900 0000 4800 2200'));
    const r = smb2.decodeSmb2TreeConnectRequest(req);
    assert.equal(r.path, '\\\\10.99.0.1\\share');
    assert.equal(smb2.shareNameOf(r.path), 'share');
    assert.equal(smb2.shareNameOf('\\\\srv\\IPC$'), 'IPC$');
    assert.equal(smb2.shareNameOf('\\\\srv\\a\\b'), undefined);
    assert.equal(smb2.shareNameOf('share'), undefined);
    const resp = smb2.decodeSmb2TreeConnectResponse(smb2.encodeSmb2TreeConnectResponse({ header: { treeId: 1 }, shareType: smb2.SMB2_SHARE_TYPE.DISK, maximalAccess: 0x001f01ff }));
    assert.equal(resp.shareType, 1);
    assert.equal(resp.maximalAccess, 0x001f01ff);
    assert.equal(resp.header.treeId, 1);
  });

  it('the StructureSize 4 exchanges and CLOSE / FLUSH with their FileIds', () => {
    for (const c of [smb2.SMB2_COMMAND.TREE_DISCONNECT, smb2.SMB2_COMMAND.ECHO, smb2.SMB2_COMMAND.LOGOFF]) {
      for (const response of [false, true]) assert.equal(smb2.decodeSmb2Empty(smb2.encodeSmb2Empty(c, { messageId: 5n }, response), c, response).messageId, 5n);
    }
    const id = { persistent: 0x1122334455667788n, volatile: 0x99aabbccddeeff00n };
    const close = smb2.decodeSmb2CloseRequest(smb2.encodeSmb2CloseRequest({ fileId: id, flags: smb2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB }));
    assert.deepEqual(close.fileId, id);
    assert.equal(close.flags, 1);
    const attrs = { creationTime: 1n, lastAccessTime: 2n, lastWriteTime: 3n, changeTime: 4n, allocationSize: 4096n, endOfFile: 100n, fileAttributes: 0x20 };
    assert.deepEqual(smb2.decodeSmb2CloseResponse(smb2.encodeSmb2CloseResponse({ attributes: attrs })).attributes, attrs);
    assert.equal(smb2.decodeSmb2CloseResponse(smb2.encodeSmb2CloseResponse({})).attributes, undefined);
    assert.deepEqual(smb2.decodeSmb2FlushRequest(smb2.encodeSmb2FlushRequest({ fileId: smb2.SMB2_FILE_ID_RELATED })).fileId, smb2.SMB2_FILE_ID_RELATED);
  });
});

describe('SMB2 CREATE and create contexts (2.2.13, 2.2.14)', () => {
  it('a request: the name after the 56-byte fixed part, contexts 8-aligned after it; round trip', () => {
    const req = smb2.encodeSmb2CreateRequest({
      header: { messageId: 9n, sessionId: 1n, treeId: 1 }, name: 'dir\\file.bin', desiredAccess: 0x0012019f, createDisposition: smb2.FILE_DISPOSITION.OPEN_IF,
      createOptions: smb2.FILE_OPTION.NON_DIRECTORY_FILE, contexts: [{ name: smb2.CREATE_CONTEXT.QUERY_MAXIMAL_ACCESS, data: new Uint8Array(0) }, { name: smb2.CREATE_CONTEXT.QUERY_ON_DISK_ID, data: new Uint8Array(0) }],
    });
    assert.deepEqual(req.subarray(64 + 44, 64 + 56), hex('7800 1800 90000000 2c000000'), 'name at 0x78 (24 bytes), contexts at 0x90 (24 + 20 bytes)');
    const r = smb2.decodeSmb2CreateRequest(req);
    assert.equal(r.name, 'dir\\file.bin');
    assert.equal(r.createDisposition, smb2.FILE_DISPOSITION.OPEN_IF);
    assert.deepEqual(r.contexts.map((c) => c.name), ['MxAc', 'QFid']);
    assert.equal(smb2.decodeSmb2CreateRequest(smb2.encodeSmb2CreateRequest({ name: '', desiredAccess: 1, createDisposition: 1 })).name, '', 'the root');
  });

  it('contexts with data: a lease request\'s 32 bytes come back as a view; a response round-trips with its FileId and contexts', () => {
    const lease = Uint8Array.from({ length: 32 }, (_, i) => i);
    const area = smb2.encodeCreateContexts([{ name: 'RqLs', data: lease }, { name: 'DH2Q', data: new Uint8Array(32).fill(7) }]);
    const back = smb2.decodeCreateContexts(area);
    assert.deepEqual(Uint8Array.from(back[0]!.data), lease);
    assert.equal(back[1]!.name, 'DH2Q');
    const resp = smb2.decodeSmb2CreateResponse(smb2.encodeSmb2CreateResponse({
      oplockLevel: 0, createAction: smb2.FILE_ACTION.CREATED, creationTime: 1n, lastAccessTime: 2n, lastWriteTime: 3n, changeTime: 4n,
      allocationSize: 0n, endOfFile: 0n, fileAttributes: 0x80, fileId: { persistent: 5n, volatile: 6n }, contexts: [{ name: 'MxAc', data: new Uint8Array(8) }],
    }));
    assert.equal(resp.createAction, 2);
    assert.deepEqual(resp.fileId, { persistent: 5n, volatile: 6n });
    assert.equal(resp.contexts[0]!.data.length, 8);
  });

  it('property: any mutation or truncation of a CREATE request decodes or fails with ERR_SMB2_BAD_REQUEST (or a header code)', () => {
    const base = smb2.encodeSmb2CreateRequest({ name: 'a\\b', desiredAccess: 1, createDisposition: 1, contexts: [{ name: 'RqLs', data: new Uint8Array(32) }, { name: 'MxAc', data: new Uint8Array(0) }] });
    mutationsDecodeOrFail(base, (b) => smb2.decodeSmb2CreateRequest(b), (err) => {
      assert.ok(err instanceof SmbDirectProtocolError, String(err));
      assert.match(err.code, /^ERR_SMB2_/);
    }, 45);
  });
});

describe('SMB2 READ response (2.2.20)', () => {
  it('with its data placed by RDMA it is exactly 80 bytes, DataOffset 80, DataLength 0 and DataRemaining the bytes placed', () => {
    // the Linux cifs client reads exactly 80 bytes of such a response; a byte more stays in its
    // SMB Direct reassembly queue and corrupts the next response (a kernel oops on 6.1)
    const pdu = smb2.encodeSmb2ReadResponse({ dataRemaining: 6 });
    assert.equal(pdu.length, 80);
    assert.equal(pdu[66], 80, 'DataOffset');
    assert.equal(new DataView(pdu.buffer).getUint32(68, true), 0, 'DataLength');
    const r = smb2.decodeSmb2ReadResponse(pdu);
    assert.equal(r.data.length, 0);
    assert.equal(r.dataRemaining, 6);
  });

  it('inline data follows the fixed part at offset 80 and round-trips', () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const pdu = smb2.encodeSmb2ReadResponse({ data });
    assert.equal(pdu.length, 80 + 300);
    assert.deepEqual(Uint8Array.from(smb2.decodeSmb2ReadResponse(pdu).data), data);
  });
});

describe('SMB2 LOCK and CANCEL (2.2.26, 2.2.27, 2.2.30)', () => {
  it('a request: LockCount, LockSequence, the FileId, then 24-byte elements from offset 88 (the first inside StructureSize 48)', () => {
    const fileId = { persistent: 1n, volatile: 2n };
    const locks = [
      { offset: 0xffffffffffffffffn, length: 1n, flags: smb2.SMB2_LOCKFLAG.EXCLUSIVE | smb2.SMB2_LOCKFLAG.FAIL_IMMEDIATELY },
      { offset: 100n, length: 0n, flags: smb2.SMB2_LOCKFLAG.SHARED },
    ];
    const pdu = smb2.encodeSmb2LockRequest({ header: { messageId: 7n }, lockSequence: 0x123ab1, fileId, locks });
    assert.equal(pdu.length, 64 + 24 + 2 * 24);
    const v = new DataView(pdu.buffer);
    assert.equal(v.getUint16(64, true), 48, 'StructureSize');
    assert.equal(v.getUint16(66, true), 2, 'LockCount');
    assert.equal(v.getBigUint64(88, true), 0xffffffffffffffffn, 'the first element\'s Offset');
    assert.equal(v.getUint32(88 + 16, true), 0x12, 'its Flags');
    const r = smb2.decodeSmb2LockRequest(pdu);
    assert.equal(r.lockSequence, 0x123ab1);
    assert.deepEqual(r.fileId, fileId);
    assert.deepEqual(r.locks, locks);
  });

  it('LockCount 0 decodes to no elements (the server answers it); elements past the PDU are ERR_SMB2_BAD_REQUEST', () => {
    const pdu = smb2.encodeSmb2LockRequest({ fileId: { persistent: 0n, volatile: 0n }, locks: [] });
    assert.equal(pdu.length, 64 + 48, 'the fixed part holds one element slot');
    assert.deepEqual(smb2.decodeSmb2LockRequest(pdu).locks, []);
    new DataView(pdu.buffer).setUint16(66, 2, true);
    assert.throws(() => smb2.decodeSmb2LockRequest(pdu), (e: unknown) => e instanceof SmbDirectProtocolError && e.code === 'ERR_SMB2_BAD_REQUEST' &&
      e.status === smb2.STATUS_INVALID_PARAMETER && /LockCount 2/.test(e.message));
  });

  it('the response is the 4-byte body; CANCEL is a 4-byte request whose header names the request (async form: AsyncId)', () => {
    const resp = smb2.encodeSmb2LockResponse({ messageId: 3n, status: smb2.STATUS_SUCCESS });
    assert.equal(resp.length, 68);
    assert.equal(smb2.decodeSmb2LockResponse(resp).messageId, 3n);
    const cancel = smb2.encodeSmb2CancelRequest({ messageId: 3n, flags: smb2.SMB2_FLAGS.ASYNC_COMMAND, asyncId: 9n, sessionId: 5n });
    const h = smb2.decodeSmb2CancelRequest(cancel);
    assert.equal(h.asyncId, 9n);
    assert.equal(h.sessionId, 5n);
  });

  it('property: any mutation or truncation of a LOCK request decodes or fails with a typed error', () => {
    const base = smb2.encodeSmb2LockRequest({ fileId: { persistent: 1n, volatile: 1n }, locks: [{ offset: 1n, length: 2n, flags: 1 }, { offset: 3n, length: 4n, flags: 2 }] });
    mutationsDecodeOrFail(base, (b) => smb2.decodeSmb2LockRequest(b), (err) => {
      assert.ok(err instanceof SmbDirectProtocolError, String(err));
      assert.match(err.code, /^ERR_SMB2_/);
    }, 45);
  });
});

describe('security descriptors ([MS-DTYP] 2.4.6, self-relative)', () => {
  it('SIDs as strings and bytes; an ACL of allow/deny ACEs; a descriptor round-trips byte for byte', () => {
    const everyone = smb2.sidFromString('S-1-1-0');
    assert.deepEqual([...everyone], [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], 'authority 1, one sub-authority 0');
    const admins = smb2.sidFromString('S-1-5-32-544');
    assert.equal(Buffer.from(admins).toString('hex'), '01020000000000052000000020020000');
    assert.equal(smb2.sidToString(admins), 'S-1-5-32-544');
    const dacl = smb2.encodeAcl([
      { type: smb2.ACE_TYPE.ACCESS_DENIED, flags: smb2.ACE_FLAG.OBJECT_INHERIT, mask: 0x10000, sid: everyone },
      { type: smb2.ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: 0x1f01ff, sid: admins },
    ]);
    assert.equal(dacl.length, 8 + (8 + 12) + (8 + 16));
    const sd = { control: smb2.SE_CONTROL.SELF_RELATIVE | smb2.SE_CONTROL.DACL_PRESENT, owner: admins, group: everyone, dacl };
    const bytes = smb2.encodeSecurityDescriptor(sd);
    const back = smb2.decodeSecurityDescriptor(bytes);
    assert.deepEqual({ ...back, owner: [...back.owner!], group: [...back.group!], dacl: [...back.dacl!] },
      { ...sd, owner: [...admins], group: [...everyone], dacl: [...dacl] });
    assert.deepEqual(smb2.encodeSecurityDescriptor(back), bytes);
    // DACL_PRESENT without a DACL is a NULL DACL: it stays one
    const nullDacl = smb2.decodeSecurityDescriptor(smb2.encodeSecurityDescriptor({ control: smb2.SE_CONTROL.DACL_PRESENT, owner: admins }));
    assert.equal(nullDacl.dacl, undefined);
    assert.ok(nullDacl.control & smb2.SE_CONTROL.DACL_PRESENT);
  });

  it('malformed descriptors are ERR_SMB2_BAD_REQUEST: not self-relative, offsets outside, a SID of 16 sub-authorities, an ACE past its ACL', () => {
    const owner = smb2.sidFromString('S-1-5-32-544');
    const good = smb2.encodeSecurityDescriptor({ control: smb2.SE_CONTROL.DACL_PRESENT, owner, dacl: smb2.encodeAcl([{ type: 0, flags: 0, mask: 1, sid: owner }]) });
    const bad = (mutate: (b: Uint8Array) => void, what: RegExp) => {
      const b = Uint8Array.from(good);
      mutate(b);
      assert.throws(() => smb2.decodeSecurityDescriptor(b), (e: unknown) => e instanceof SmbDirectProtocolError && e.code === 'ERR_SMB2_BAD_REQUEST' && what.test(e.message));
    };
    bad((b) => { b[3] = 0; }, /not self-relative/);
    assert.throws(() => smb2.decodeSecurityDescriptor(new Uint8Array(smb2.MAX_SECURITY_DESCRIPTOR + 1)), /a security descriptor of 65537 bytes/);
    bad((b) => { new DataView(b.buffer).setUint32(4, 4000, true); }, /owner at offset 4000/);
    bad((b) => { b[21] = 16; }, /16 sub-authorities/);
    bad((b) => { new DataView(b.buffer).setUint16(20 + owner.length + 8 + 2, 200, true); }, /ACE 0 of size 200/);
    mutationsDecodeOrFail(good, (b) => smb2.decodeSecurityDescriptor(b), (err) => {
      assert.ok(err instanceof SmbDirectProtocolError, String(err));
      assert.match(err.code, /^ERR_SMB2_/);
    }, 45);
  });
});

describe('the client side of READ/WRITE and the information a server returns', () => {
  const fileId = { persistent: 0x1122334455667788n, volatile: 0x99aabbccddeeff00n };
  const descriptors = [{ offset: 0x7f0000001000n, token: 0xabcd1234, length: 1 << 20 }];

  it('READ with an RDMA channel: the descriptors at Buffer, RemainingBytes 0 (a read-ahead hint), CreditCharge for the length', () => {
    const pdu = smb2.encodeSmb2ReadRequest({ header: { messageId: 9n }, length: 1 << 20, offset: 4096n, fileId, rdma: { channel: smb2.SMB2_CHANNEL.RDMA_V1_INVALIDATE, descriptors } });
    const r = smb2.decodeSmb2ReadRequest(pdu);
    assert.deepEqual({ length: r.length, offset: r.offset, channel: r.channel, remainingBytes: r.remainingBytes, descriptors: r.descriptors, charge: r.header.creditCharge },
      { length: 1 << 20, offset: 4096n, channel: 2, remainingBytes: 0, descriptors, charge: 16 });
    assert.throws(() => smb2.encodeSmb2ReadRequest({ length: 1, offset: 0n, fileId, rdma: { channel: 3, descriptors } }), { code: 'ERR_FRAMING_INVALID_ARGUMENT' });
    assert.throws(() => smb2.encodeSmb2ReadRequest({ length: 1, offset: 0n, fileId, rdma: { channel: 1, descriptors: [] } }), { code: 'ERR_FRAMING_INVALID_ARGUMENT' });
  });

  it('WRITE with an RDMA channel: Length and DataOffset 0 (ksmbd refuses any other), RemainingBytes the bytes, the descriptors at Buffer', () => {
    const pdu = smb2.encodeSmb2WriteRequest({ offset: 0n, fileId, data: new Uint8Array(0), rdma: { channel: smb2.SMB2_CHANNEL.RDMA_V1, descriptors }, remainingBytes: 1 << 20 });
    assert.equal(pdu[64 + 2]! | (pdu[64 + 3]! << 8), 0, 'DataOffset');
    const w = smb2.decodeSmb2WriteRequest(pdu);
    assert.deepEqual({ channel: w.channel, remainingBytes: w.remainingBytes, data: w.data.length, descriptors: w.descriptors, charge: w.header.creditCharge },
      { channel: 1, remainingBytes: 1 << 20, data: 0, descriptors, charge: 16 });
    assert.throws(() => smb2.encodeSmb2WriteRequest({ offset: 0n, fileId, data: new Uint8Array(1), rdma: { channel: 1, descriptors }, remainingBytes: 1 }), { code: 'ERR_FRAMING_INVALID_ARGUMENT' });
    assert.equal(smb2.decodeSmb2WriteResponse(smb2.encodeSmb2WriteResponse({ header: { messageId: 3n }, count: 12345 })).count, 12345);
  });

  const st = { creationTime: 1n, lastAccessTime: 2n, lastWriteTime: 3n, changeTime: 4n, endOfFile: 5000n, allocationSize: 8192n, attributes: 0x20, fileId: 77n, nlink: 2, isDirectory: false };

  it('directory entries decode as the server encodes them, names, short names and ids included', () => {
    const dir = { ...st, attributes: smb2.FILE_ATTRIBUTE.DIRECTORY, isDirectory: true, fileId: 78n };
    for (const cls of [smb2.FILE_INFO.ID_BOTH_DIRECTORY, smb2.FILE_INFO.BOTH_DIRECTORY, smb2.FILE_INFO.DIRECTORY, smb2.FILE_INFO.FULL_DIRECTORY, smb2.FILE_INFO.ID_FULL_DIRECTORY]) {
      const { buffer, count } = smb2.chainDirectoryEntries([smb2.encodeDirectoryEntry(cls, 'a file.txt', st, 'AFILE~1.TXT'), smb2.encodeDirectoryEntry(cls, 'sub dir', dir)], 65536);
      assert.equal(count, 2);
      const e = smb2.decodeDirectoryEntries(cls, buffer);
      const hasId = cls === smb2.FILE_INFO.ID_BOTH_DIRECTORY || cls === smb2.FILE_INFO.ID_FULL_DIRECTORY;
      assert.deepEqual(e.map((x) => [x.name, x.isDirectory, x.endOfFile, x.fileId]), [['a file.txt', false, 5000n, hasId ? 77n : 0n], ['sub dir', true, 5000n, hasId ? 78n : 0n]]);
      if (cls === smb2.FILE_INFO.ID_BOTH_DIRECTORY) assert.equal(e[0]!.shortName, 'AFILE~1.TXT');
    }
  });

  it('malformed directory listings are typed errors: a cut entry, a name or NextEntryOffset leaving the buffer, an unaligned or backward offset', () => {
    const cls = smb2.FILE_INFO.ID_BOTH_DIRECTORY;
    const { buffer } = smb2.chainDirectoryEntries([smb2.encodeDirectoryEntry(cls, 'x', st), smb2.encodeDirectoryEntry(cls, 'y', st)], 65536);
    const bad = (mutate: (b: Uint8Array) => void, what: string) => {
      const b = Uint8Array.from(buffer);
      mutate(b);
      assert.throws(() => smb2.decodeDirectoryEntries(cls, b), { code: 'ERR_SMB2_BAD_REQUEST' }, what);
    };
    bad((b) => b.fill(0, 0, 4).set([5], 0), 'NextEntryOffset inside the entry');
    bad((b) => new DataView(b.buffer).setUint32(0, 0x10000, true), 'NextEntryOffset past the buffer');
    bad((b) => new DataView(b.buffer).setUint32(0, 113, true), 'NextEntryOffset unaligned');
    bad((b) => new DataView(b.buffer).setUint32(60, 0xfffffff0, true), 'FileNameLength past the buffer');
    bad((b) => new DataView(b.buffer).setUint32(60, 1, true), 'odd FileNameLength');
    assert.throws(() => smb2.decodeDirectoryEntries(cls, buffer.subarray(0, 50)), { code: 'ERR_SMB2_BAD_REQUEST' }, 'cut short');
    assert.throws(() => smb2.decodeDirectoryEntries(smb2.FILE_INFO.NAMES, buffer), { code: 'ERR_SMB2_BAD_REQUEST' }, 'a class not decoded');
    assert.throws(() => smb2.decodeDirectoryEntries(cls, buffer, 1), { code: 'ERR_SMB2_BAD_REQUEST' }, 'more entries than allowed');
    mutationsDecodeOrFail(buffer, (b) => smb2.decodeDirectoryEntries(cls, b), (err) => assert.equal((err as SmbDirectProtocolError).code, 'ERR_SMB2_BAD_REQUEST'), 21, 2000);
  });

  it('FileAllInformation decodes as the server encodes it; shorter than 100 bytes or a name past its end is a typed error', () => {
    const b = smb2.encodeFileInfo(smb2.FILE_INFO.ALL, { st, deletePending: true, position: 0n, accessMask: 0x1f01ff, mode: 0, name: '\\dir\\f.txt' })!;
    const a = smb2.decodeFileAllInfo(b);
    assert.deepEqual({ ...a }, { ...st, deletePending: true, name: '\\dir\\f.txt' });
    assert.throws(() => smb2.decodeFileAllInfo(b.subarray(0, 99)), { code: 'ERR_SMB2_BAD_REQUEST' });
    const long = Uint8Array.from(b);
    new DataView(long.buffer).setUint32(96, 1000, true);
    assert.throws(() => smb2.decodeFileAllInfo(long), { code: 'ERR_SMB2_BAD_REQUEST' });
  });
});
