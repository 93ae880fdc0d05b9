// SMB2/3 message signing ([MS-SMB2] 3.1.4.1) and the signing key's derivation (3.1.4.2):
// AES-CMAC (3.0, 3.0.2, 3.1.1) and AES-GMAC (3.1.1 with SIGNING_CAPABILITIES), keys from the
// session key by SP800-108 counter-mode KDF with HMAC-SHA256. Signatures are computed over the
// message with its signature field zeroed and written into that field in place.
import { createCipheriv, createHmac, timingSafeEqual } from 'node:crypto';

import { SMB2_COMMAND, SMB2_FLAGS, SMB2_SIGNATURE_OFFSET, SMB2_SIGNATURE_SIZE } from '../../framing/smb2/header.js';
import { SMB2_DIALECT, SMB2_SIGNING } from '../../framing/smb2/negotiate.js';

const ZERO16 = new Uint8Array(16);

/** SP800-108 KDF in counter mode, HMAC-SHA256, one block: the first `bytes` (16 or 32) of
 * HMAC(key, [1]be32 || label || 0x00 || context || [bits]be32). Labels include their NUL. */
export function smb3Kdf(key: Uint8Array, label: Uint8Array, context: Uint8Array, bytes = 16): Uint8Array {
  const i = Buffer.from([0, 0, 0, 1]);
  const l = Buffer.alloc(4);
  l.writeUInt32BE(bytes * 8);
  return new Uint8Array(createHmac('sha256', key).update(i).update(label).update(Buffer.from([0])).update(context).update(l).digest().subarray(0, bytes));
}

const nul = (s: string) => Buffer.from(`${s}\0`, 'latin1');

/** The signing key of a session: 3.0/3.0.2 from "SMB2AESCMAC"/"SmbSign", 3.1.1 from
 * "SMBSigningKey" and the preauth integrity hash of its SESSION_SETUP exchange. */
export function signingKey(sessionKey: Uint8Array, dialect: number, preauthHash?: Uint8Array): Uint8Array {
  if (dialect === SMB2_DIALECT.SMB311) {
    if (preauthHash?.length !== 64) throw new RangeError('3.1.1 signing keys need the 64-byte preauth integrity hash');
    return smb3Kdf(sessionKey, nul('SMBSigningKey'), preauthHash);
  }
  return smb3Kdf(sessionKey, nul('SMB2AESCMAC'), nul('SmbSign'));
}

/** AES-128-CMAC (RFC 4493) of `parts`, concatenated. */
export function aesCmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const enc = (block: Uint8Array) => {
    const c = createCipheriv('aes-128-ecb', key, null);
    c.setAutoPadding(false);
    return new Uint8Array(c.update(block));
  };
  const dbl = (b: Uint8Array) => {
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
    if (b[0]! & 0x80) out[15]! ^= 0x87;
    return out;
  };
  const k1 = dbl(enc(ZERO16)), k2 = dbl(k1);
  const m = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const n = Math.max(1, Math.ceil(m.length / 16));
  const complete = m.length > 0 && m.length % 16 === 0;
  const last = new Uint8Array(16);
  const tail = m.subarray((n - 1) * 16);
  last.set(tail);
  if (complete) for (let i = 0; i < 16; i++) last[i]! ^= k1[i]!;
  else {
    last[tail.length] = 0x80;
    for (let i = 0; i < 16; i++) last[i]! ^= k2[i]!;
  }
  // CBC-MAC over the blocks before the last, then the last: AES-CBC with a zero IV does it in one call
  const c = createCipheriv('aes-128-cbc', key, ZERO16);
  c.setAutoPadding(false);
  const body = n > 1 ? c.update(m.subarray(0, (n - 1) * 16)) : Buffer.alloc(0);
  const prev = body.length ? body.subarray(body.length - 16) : ZERO16;
  const x = new Uint8Array(16);
  for (let i = 0; i < 16; i++) x[i] = last[i]! ^ prev[i]!;
  return enc(x);
}

const EMPTY = new Uint8Array(0);

/** The 12-byte AES-GMAC nonce of a message (3.1.4.1): MessageId, then bit 0 set for a response
 * (SERVER_TO_REDIR) and bit 1 for a CANCEL request. */
function gmacNonce(message: Uint8Array): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.set(message.subarray(24, 32), 0);
  const flags = message[16]! | (message[17]! << 8) | (message[18]! << 16) | (message[19]! << 24);
  const command = message[12]! | (message[13]! << 8);
  nonce[8] = (flags & SMB2_FLAGS.SERVER_TO_REDIR ? 1 : 0) | (command === SMB2_COMMAND.CANCEL ? 2 : 0);
  return nonce;
}

/** The signature of one message (a compound's item on its own), its signature field taken as zero;
 * `prefix`: bytes the MAC covers before the message (see verifySignature). */
export function computeSignature(key: Uint8Array, algorithm: number, message: Uint8Array, prefix: Uint8Array = EMPTY): Uint8Array {
  const before = message.subarray(0, SMB2_SIGNATURE_OFFSET), after = message.subarray(SMB2_SIGNATURE_OFFSET + SMB2_SIGNATURE_SIZE);
  if (algorithm === SMB2_SIGNING.AES_CMAC) return aesCmac(key, prefix, before, ZERO16, after);
  if (algorithm === SMB2_SIGNING.AES_GMAC) {
    const g = createCipheriv('aes-128-gcm', key, gmacNonce(message));
    if (prefix.length) g.setAAD(prefix);
    g.setAAD(before);
    g.setAAD(ZERO16);
    g.setAAD(after);
    g.final();
    return new Uint8Array(g.getAuthTag());
  }
  if (algorithm === SMB2_SIGNING.HMAC_SHA256) {
    return new Uint8Array(createHmac('sha256', key).update(prefix).update(before).update(ZERO16).update(after).digest().subarray(0, 16));
  }
  throw new RangeError(`unknown signing algorithm ${algorithm}`);
}

/** Signs `message` in place: sets SMB2_FLAGS_SIGNED and writes the signature. */
export function signMessage(key: Uint8Array, algorithm: number, message: Uint8Array): void {
  message[16]! |= SMB2_FLAGS.SIGNED;
  message.set(computeSignature(key, algorithm, message), SMB2_SIGNATURE_OFFSET);
}

/** Whether `message`'s signature is the one `key` gives (compared in constant time); with
 * `prefix`, the one it gives over `prefix` and the message. */
export function verifySignature(key: Uint8Array, algorithm: number, message: Uint8Array, prefix?: Uint8Array): boolean {
  const want = computeSignature(key, algorithm, message, prefix);
  return timingSafeEqual(want, message.subarray(SMB2_SIGNATURE_OFFSET, SMB2_SIGNATURE_OFFSET + SMB2_SIGNATURE_SIZE));
}

/**
 * The signature the Linux kernel's ksmbd gives a READ response without inline data (placed by RDMA,
 * or an error response): its smb2_set_sign_rsp/smb3_set_sign_rsp (fs/smb/server/smb2pdu.c) take a READ response to
 * be two buffers, header and data, and with no data buffer sign the one before the response
 * instead, the 4-byte RFC 1002 length in front of it (big-endian; seen on 6.1.192). The MAC still
 * covers every byte of the message: a client accepts this form for such READ responses only.
 */
export function verifyKsmbdReadSignature(key: Uint8Array, algorithm: number, message: Uint8Array): boolean {
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, message.length, false);
  return verifySignature(key, algorithm, message, prefix);
}
