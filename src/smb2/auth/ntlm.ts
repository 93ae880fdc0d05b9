// NTLMv2 ([MS-NLMP] 3.3.2) for both sides: the client's response to a CHALLENGE and the server's
// check of it against its user table, each giving the session base key that SMB2 signing keys are
// derived from. Nothing here does I/O; a wrong password is an answer (undefined), never a throw.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { md4, rc4 } from './legacy-crypto.js';

const u16 = (s: string) => Buffer.from(s, 'utf16le');
const hmacMd5 = (key: Uint8Array, ...parts: Uint8Array[]): Buffer => {
  const h = createHmac('md5', key);
  for (const p of parts) h.update(p);
  return h.digest();
};

/** The NT hash of a password: MD4(UTF-16LE(password)). A user table may hold this instead. */
export function ntHash(password: string): Uint8Array {
  return md4(u16(password));
}

/** NTOWFv2 = HMAC-MD5(NT hash, UTF-16LE(UPPER(user) + domain)). */
export function ntowfv2(hash: Uint8Array, user: string, domain: string): Uint8Array {
  return hmacMd5(hash, u16(user.toUpperCase() + domain));
}

/** Microseconds / 10 since 1601-01-01: the FILETIME an NTLMv2 blob carries. */
export function fileTimeNow(nowMs = Date.now()): bigint {
  return (BigInt(nowMs) + 11_644_473_600_000n) * 10_000n;
}

/** The blob after NTProofStr (2.2.2.7): 0x0101, zeros, the time, the client challenge, TargetInfo. */
function clientBlob(time: bigint, clientChallenge: Uint8Array, targetInfo: Uint8Array): Buffer {
  const head = Buffer.alloc(28);
  head[0] = 1;
  head[1] = 1;
  head.writeBigUInt64LE(time, 8);
  Buffer.from(clientChallenge).copy(head, 16);
  return Buffer.concat([head, targetInfo, Buffer.alloc(4)]);
}

export interface Ntlmv2Response {
  /** NtChallengeResponse: NTProofStr + the blob. */
  ntChallengeResponse: Uint8Array;
  /** LmChallengeResponse: 24 zero bytes (an NTLMv2 client may send them; ksmbd and Windows accept). */
  lmChallengeResponse: Uint8Array;
  sessionBaseKey: Uint8Array;
}

/** The client's side: the response to `serverChallenge` for `user` in `domain`. */
export function ntlmv2Response(o: {
  hash: Uint8Array; user: string; domain: string; serverChallenge: Uint8Array; targetInfo: Uint8Array;
  clientChallenge?: Uint8Array; time?: bigint;
}): Ntlmv2Response {
  const key = ntowfv2(o.hash, o.user, o.domain);
  const blob = clientBlob(o.time ?? fileTimeNow(), o.clientChallenge ?? randomBytes(8), o.targetInfo);
  const proof = hmacMd5(key, o.serverChallenge, blob);
  return { ntChallengeResponse: Buffer.concat([proof, blob]), lmChallengeResponse: new Uint8Array(24), sessionBaseKey: hmacMd5(key, proof) };
}

/**
 * The server's side: checks an NtChallengeResponse against the NT hash of the user it names.
 * Returns the session base key, or undefined for a wrong password (or a response too short to be
 * NTLMv2: NTLMv1 is refused). The comparison takes the same time whatever the bytes.
 */
export function verifyNtlmv2(o: { hash: Uint8Array; user: string; domain: string; serverChallenge: Uint8Array; ntChallengeResponse: Uint8Array }): Uint8Array | undefined {
  const r = o.ntChallengeResponse;
  if (r.length < 16 + 28) return undefined;
  const key = ntowfv2(o.hash, o.user, o.domain);
  const proof = hmacMd5(key, o.serverChallenge, r.subarray(16));
  if (!timingSafeEqual(proof, r.subarray(0, 16))) return undefined;
  return hmacMd5(key, proof);
}

/** The session key both sides use: with NTLMSSP_NEGOTIATE_KEY_EXCH the client's random key, sent
 * RC4-encrypted under the session base key; else the session base key itself (3.3.2, KXKEY for v2). */
export function exportedSessionKey(sessionBaseKey: Uint8Array, keyExchange: boolean, encryptedRandomSessionKey: Uint8Array): Uint8Array {
  if (!keyExchange || encryptedRandomSessionKey.length === 0) return sessionBaseKey;
  return rc4(sessionBaseKey, encryptedRandomSessionKey);
}

/** MIC = HMAC-MD5(ExportedSessionKey, NEGOTIATE + CHALLENGE + AUTHENTICATE with its MIC zeroed). */
export function ntlmMic(exportedKey: Uint8Array, negotiate: Uint8Array, challenge: Uint8Array, authenticate: Uint8Array): Uint8Array {
  const zeroed = Uint8Array.from(authenticate);
  zeroed.fill(0, 72, 88);
  return hmacMd5(exportedKey, negotiate, challenge, zeroed);
}

/**
 * An NTLMSSP message signature ([MS-NLMP] 3.4.4.2, extended session security): version 1, the
 * first 8 bytes of HMAC-MD5(SigningKey, seq || message), RC4-sealed under the direction's
 * SealingKey with NTLMSSP_NEGOTIATE_KEY_EXCH, then seq. The RC4 state is a fresh one: this serves
 * the SPNEGO mechListMIC, each direction's first (sequence 0) use of its keys.
 */
export function ntlmsspSignature(exportedKey: Uint8Array, fromServer: boolean, message: Uint8Array, keyExchange: boolean, seq = 0): Uint8Array {
  const dir = fromServer ? 'server-to-client' : 'client-to-server';
  const md5 = (label: string) => createHash('md5').update(exportedKey).update(`session key to ${dir} ${label} key magic constant\0`, 'latin1').digest();
  const seqBytes = Buffer.alloc(4);
  seqBytes.writeUInt32LE(seq);
  let checksum: Uint8Array = hmacMd5(md5('signing'), seqBytes, message).subarray(0, 8);
  if (keyExchange) checksum = rc4(md5('sealing'), checksum);
  return Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seqBytes]);
}
