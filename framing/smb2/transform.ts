// The SMB2 TRANSFORM_HEADER ([MS-SMB2] 2.2.41): what an encrypted message travels in. Pure codecs;
// the AEAD itself (AES-CCM/GCM) lives in src/smb2/encryption.ts. The 32 bytes from Nonce to the end
// of the header are the AEAD's associated data; Signature is its tag.
import { checkU64, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const SMB2_TRANSFORM_HEADER_SIZE = 52;
export const SMB2_TRANSFORM_PROTOCOL_ID = 0x424d53fd; // 0xFD 'S' 'M' 'B', read little-endian
/** Flags (3.1.1) / EncryptionAlgorithm (3.0, 3.0.2): both say "encrypted" with 0x0001. */
export const SMB2_TRANSFORM_FLAG_ENCRYPTED = 0x0001;
/** Where the AEAD's associated data starts (the Nonce field). */
export const SMB2_TRANSFORM_AAD_OFFSET = 20;

export interface Smb2TransformHeader {
  /** The AEAD tag (a view into the message). */
  signature: Uint8Array;
  /** The 16-byte Nonce field (a view): AES-CCM uses its first 11 bytes, AES-GCM its first 12. */
  nonce: Uint8Array;
  originalMessageSize: number;
  flags: number;
  sessionId: bigint;
  /** The associated data: the header from Nonce to its end (a view). */
  aad: Uint8Array;
  /** The encrypted message (a view). */
  ciphertext: Uint8Array;
}

function bad(code: 'ERR_SMB2_SHORT_PDU' | 'ERR_SMB2_BAD_PROTOCOL_ID' | 'ERR_SMB2_BAD_TRANSFORM', message: string): never {
  throw new SmbDirectProtocolError(code, message, { status: STATUS_INVALID_PARAMETER });
}

/** Whether `pdu` starts with the TRANSFORM_HEADER's ProtocolId (an encrypted message). */
export function isSmb2Transform(pdu: Uint8Array): boolean {
  return pdu.length >= 4 && u32le(pdu, 0) === SMB2_TRANSFORM_PROTOCOL_ID;
}

/** Reads an encrypted message: its header checked (the protocol id, Flags encrypted, an
 * OriginalMessageSize equal to what follows the header and at least an SMB2 header). */
export function decodeSmb2TransformHeader(pdu: Uint8Array): Smb2TransformHeader {
  if (pdu.length < SMB2_TRANSFORM_HEADER_SIZE) bad('ERR_SMB2_SHORT_PDU', `a TRANSFORM_HEADER needs 52 bytes, ${pdu.length} given`);
  if (!isSmb2Transform(pdu)) bad('ERR_SMB2_BAD_PROTOCOL_ID', `not a TRANSFORM_HEADER (ProtocolId 0x${u32le(pdu, 0).toString(16)})`);
  const originalMessageSize = u32le(pdu, 36);
  const flags = u16le(pdu, 42);
  if (flags !== SMB2_TRANSFORM_FLAG_ENCRYPTED) bad('ERR_SMB2_BAD_TRANSFORM', `TRANSFORM_HEADER Flags 0x${flags.toString(16)} (0x0001 expected)`);
  const size = pdu.length - SMB2_TRANSFORM_HEADER_SIZE;
  if (originalMessageSize !== size) bad('ERR_SMB2_BAD_TRANSFORM', `OriginalMessageSize ${originalMessageSize}, but ${size} bytes follow the header`);
  if (size < 64) bad('ERR_SMB2_BAD_TRANSFORM', `an encrypted message of ${size} bytes cannot hold an SMB2 header`);
  return {
    signature: pdu.subarray(4, 20), nonce: pdu.subarray(20, 36), originalMessageSize, flags, sessionId: u64le(pdu, 44),
    aad: pdu.subarray(SMB2_TRANSFORM_AAD_OFFSET, SMB2_TRANSFORM_HEADER_SIZE), ciphertext: pdu.subarray(SMB2_TRANSFORM_HEADER_SIZE),
  };
}

/** Writes a TRANSFORM_HEADER for a message of `originalMessageSize` bytes into `out[0..52)`, its
 * Signature zero (the AEAD fills it once the message is encrypted). */
export function encodeSmb2TransformHeader(out: Uint8Array, init: { nonce: Uint8Array; originalMessageSize: number; sessionId: bigint }): void {
  if (out.length < SMB2_TRANSFORM_HEADER_SIZE) throw new RangeError('a TRANSFORM_HEADER needs 52 bytes');
  if (init.nonce.length > 16) throw new RangeError('a TRANSFORM_HEADER nonce is at most 16 bytes');
  checkU64('sessionId', init.sessionId);
  out.fill(0, 0, SMB2_TRANSFORM_HEADER_SIZE);
  putU32le(out, 0, SMB2_TRANSFORM_PROTOCOL_ID);
  out.set(init.nonce, 20);
  putU32le(out, 36, init.originalMessageSize);
  putU16le(out, 42, SMB2_TRANSFORM_FLAG_ENCRYPTED);
  putU64le(out, 44, init.sessionId);
}
