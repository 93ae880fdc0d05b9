// A minimal SMB2 3.0.2 client for tests (the real client is issue #21): NEGOTIATE, SESSION_SETUP
// with raw NTLMSSP (NTLMv2), TREE_CONNECT, then whatever the test sends, over any request/response
// function (`rpc`: one message out, its response back). Requests are not signed.
import assert from 'node:assert/strict';

import { smb2 } from '../../framing/index.js';
import { ntHash, ntlmv2Response } from '../../src/smb2/auth/ntlm.js';
import type { Smb2Server } from '../../src/smb2/index.js';
import { SessionCipher } from '../../src/smb2/encryption.js';

export type Rpc = (message: Uint8Array) => Promise<Uint8Array>;

/** A connection to `server` in this process (its `attach`, no transport): `rpc` sends one message
 * and gives back its response; `inbox` holds what the server sent and was not taken; `closed()`
 * says whether the server ended the connection. */
export function attachClient(server: Smb2Server): { conn: ReturnType<Smb2Server['attach']>; rpc: Rpc; inbox: Uint8Array[]; closed: () => boolean } {
  const inbox: Uint8Array[] = [];
  let closed = false;
  const conn = server.attach({ send: (m) => { inbox.push(m); }, close: () => { closed = true; } });
  const rpc: Rpc = async (m) => { await conn.message(m); return inbox.shift()!; };
  return { conn, rpc, inbox, closed: () => closed };
}

export interface TestSession {
  rpc: Rpc;
  sessionId: bigint;
  treeId: number;
  maxRead: number;
  /** With `encrypt`: the client's keys (rpc encrypts each request and decrypts each response with
   * them); `plainRpc` sends as it is. */
  cipher?: SessionCipher;
  plainRpc: Rpc;
  /** The next MessageId: a request takes as many as its CreditCharge (`charge`, default 1). */
  nextId(charge?: number): bigint;
}

/** `encrypt`: offer SMB2_GLOBAL_CAP_ENCRYPTION and, when the server agrees (AES-128-CCM on 3.0.2),
 * send everything after SESSION_SETUP encrypted. */
export async function testSession(plainRpc: Rpc, o: { user: string; password: string; share: string; encrypt?: boolean }): Promise<TestSession> {
  let id = 0n;
  const nextId = (charge = 1) => { const at = id; id += BigInt(Math.max(1, charge)); return at; };
  let rpc = plainRpc;
  const neg = smb2.decodeSmb2NegotiateResponse(await rpc(smb2.encodeSmb2NegotiateRequest({
    dialects: [0x302], clientGuid: new Uint8Array(16).fill(3), header: { messageId: nextId(), credits: 64 }, capabilities: o.encrypt ? smb2.SMB2_GLOBAL_CAP.ENCRYPTION : 0,
  })));
  const auth = await sessionSetup(rpc, nextId, o);
  assert.equal(auth.status, smb2.STATUS_SUCCESS, smb2.ntstatusName(auth.status));
  const { sessionId, sessionBaseKey } = auth;
  let cipher: SessionCipher | undefined;
  if (o.encrypt && neg.capabilities & smb2.SMB2_GLOBAL_CAP.ENCRYPTION) {
    const c = (cipher = new SessionCipher(sessionBaseKey, 0x302, smb2.SMB2_CIPHER.AES_128_CCM, undefined, 'client'));
    rpc = async (m) => c.decrypt(smb2.decodeSmb2TransformHeader(await plainRpc(c.encrypt(m, sessionId))));
  }
  const tcReply = await rpc(smb2.encodeSmb2TreeConnectRequest({ header: { messageId: nextId(), credits: 64, sessionId }, path: `\\\\h\\${o.share}` }));
  const tcStatus = smb2.decodeSmb2Header(tcReply).status;
  assert.equal(tcStatus, smb2.STATUS_SUCCESS, smb2.ntstatusName(tcStatus));
  const tc = smb2.decodeSmb2TreeConnectResponse(tcReply);
  return { rpc, plainRpc, cipher, sessionId, treeId: tc.header.treeId, maxRead: neg.maxReadSize, nextId };
}

/** An NTLMv2 SESSION_SETUP exchange (raw NTLMSSP, no key exchange): a new session, or with
 * `sessionId` a re-authentication of that one; `user: ''` is anonymous. */
export async function sessionSetup(rpc: Rpc, nextId: () => bigint, o: { user: string; password: string; sessionId?: bigint; previousSessionId?: bigint }): Promise<{
  status: number; sessionId: bigint; sessionFlags: number; sessionBaseKey: Uint8Array;
}> {
  const r1 = smb2.decodeSmb2SessionSetupResponse(await rpc(smb2.encodeSmb2SessionSetupRequest({
    header: { messageId: nextId(), credits: 64, sessionId: o.sessionId ?? 0n }, securityBuffer: smb2.encodeNtlmNegotiate(smb2.NTLMSSP.NEGOTIATE_UNICODE | smb2.NTLMSSP.NEGOTIATE_NTLM),
  })));
  assert.equal(r1.header.status, smb2.STATUS_MORE_PROCESSING_REQUIRED, smb2.ntstatusName(r1.header.status));
  const ch = smb2.decodeNtlmChallenge(r1.securityBuffer);
  const v2 = o.user === '' ? { ntChallengeResponse: new Uint8Array(0), lmChallengeResponse: new Uint8Array(0), sessionBaseKey: new Uint8Array(16) }
    : ntlmv2Response({ hash: ntHash(o.password), user: o.user, domain: 'W', serverChallenge: ch.serverChallenge, targetInfo: ch.targetInfoBytes });
  const sessionId = r1.header.sessionId;
  const reply = await rpc(smb2.encodeSmb2SessionSetupRequest({
    header: { messageId: nextId(), credits: 64, sessionId }, previousSessionId: o.previousSessionId,
    securityBuffer: smb2.encodeNtlmAuthenticate({ flags: ch.flags, lmChallengeResponse: v2.lmChallengeResponse, ntChallengeResponse: v2.ntChallengeResponse, domain: 'W', user: o.user, workstation: 'T', encryptedRandomSessionKey: new Uint8Array(0) }),
  }));
  const status = smb2.decodeSmb2Header(reply).status;
  const sessionFlags = status === smb2.STATUS_SUCCESS ? smb2.decodeSmb2SessionSetupResponse(reply).sessionFlags : 0;
  return { status, sessionId, sessionFlags, sessionBaseKey: v2.sessionBaseKey };
}

/** CREATE (OVERWRITE_IF a file, read/write): its FileId. */
export async function createFile(s: TestSession, name: string, disposition: number = smb2.FILE_DISPOSITION.OVERWRITE_IF): Promise<smb2.Smb2FileId> {
  const r = smb2.decodeSmb2CreateResponse(await s.rpc(smb2.encodeSmb2CreateRequest({
    header: { messageId: s.nextId(), credits: 64, sessionId: s.sessionId, treeId: s.treeId }, name, desiredAccess: 0x0012019f, createDisposition: disposition,
    createOptions: smb2.FILE_OPTION.NON_DIRECTORY_FILE,
  })));
  assert.equal(r.header.status, smb2.STATUS_SUCCESS, smb2.ntstatusName(r.header.status));
  return r.fileId;
}

/** A FileId as the 16 bytes framing/smb2-channel.ts wants. */
export function fileIdBytes(id: smb2.Smb2FileId): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, id.persistent, true);
  v.setBigUint64(8, id.volatile, true);
  return b;
}
