// SESSION_SETUP request and response ([MS-SMB2] 2.2.5 / 2.2.6), LOGOFF (2.2.7 / 2.2.8) and the
// error response every failed command gets (2.2.2): pure codecs over whole PDUs.
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_FLAGS, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit, decodeSmb2Header, writeSmb2Header } from './header.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const SMB2_SESSION_FLAG_BINDING = 0x01;
/** SessionFlags of the response (2.2.6). */
export const SMB2_SESSION_FLAG = Object.freeze({ IS_GUEST: 0x0001, IS_NULL: 0x0002, ENCRYPT_DATA: 0x0004 });

export interface Smb2SessionSetupRequest {
  header: Smb2Header;
  flags: number;
  securityMode: number;
  capabilities: number;
  previousSessionId: bigint;
  /** A view of the security buffer (SPNEGO or raw NTLMSSP). */
  securityBuffer: Uint8Array;
}

export interface Smb2SessionSetupResponse {
  header: Smb2Header;
  sessionFlags: number;
  securityBuffer: Uint8Array;
}

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

/** The body's StructureSize, checked; returns where the body starts. */
function body(pdu: Uint8Array, h: Smb2Header, command: number, size: number, fixed: number, response: boolean): number {
  if (h.command !== command) invalid(`command 0x${h.command.toString(16)}, expected 0x${command.toString(16)}`);
  if (((h.flags & SMB2_FLAGS.SERVER_TO_REDIR) !== 0) !== response) invalid(`a ${response ? 'response' : 'request'} with SERVER_TO_REDIR ${response ? 'clear' : 'set'}`);
  if (pdu.length < SMB2_HEADER_SIZE + fixed) invalid(`command 0x${command.toString(16)} needs ${SMB2_HEADER_SIZE + fixed} bytes, got ${pdu.length}`);
  const s = u16le(pdu, SMB2_HEADER_SIZE);
  if (s !== size) invalid(`command 0x${command.toString(16)} StructureSize ${s} (must be ${size})`);
  return SMB2_HEADER_SIZE;
}

/** A (offset, length) buffer field, offsets from the header's start: inside the PDU, after the fixed part. */
function buffer(pdu: Uint8Array, offset: number, length: number, fixedEnd: number, what: string): Uint8Array {
  if (length === 0) return pdu.subarray(0, 0);
  if (offset < fixedEnd || offset > pdu.length || length > pdu.length - offset) invalid(`${what} [${offset}, +${length}) outside the ${pdu.length}-byte PDU's buffer`);
  return pdu.subarray(offset, offset + length);
}

export function decodeSmb2SessionSetupRequest(pdu: Uint8Array): Smb2SessionSetupRequest {
  const header = decodeSmb2Header(pdu);
  const b = body(pdu, header, SMB2_COMMAND.SESSION_SETUP, 25, 24, false);
  return {
    header, flags: pdu[b + 2]!, securityMode: pdu[b + 3]!, capabilities: u32le(pdu, b + 4), previousSessionId: u64le(pdu, b + 16),
    securityBuffer: buffer(pdu, u16le(pdu, b + 12), u16le(pdu, b + 14), b + 24, 'the security buffer'),
  };
}

export function decodeSmb2SessionSetupResponse(pdu: Uint8Array): Smb2SessionSetupResponse {
  const header = decodeSmb2Header(pdu);
  const b = body(pdu, header, SMB2_COMMAND.SESSION_SETUP, 9, 8, true);
  return { header, sessionFlags: u16le(pdu, b + 2), securityBuffer: buffer(pdu, u16le(pdu, b + 4), u16le(pdu, b + 6), b + 8, 'the security buffer') };
}

export function encodeSmb2SessionSetupRequest(r: {
  header?: Omit<Smb2HeaderInit, 'command'>; flags?: number; securityMode?: number; capabilities?: number; previousSessionId?: bigint; securityBuffer: Uint8Array;
}): Uint8Array {
  const b = SMB2_HEADER_SIZE;
  const out = new Uint8Array(b + 24 + r.securityBuffer.length);
  writeSmb2Header(out, 0, { ...r.header, command: SMB2_COMMAND.SESSION_SETUP });
  putU16le(out, b, 25);
  out[b + 2] = checkUint('flags', r.flags ?? 0, 8);
  out[b + 3] = checkUint('securityMode', r.securityMode ?? 1, 8);
  putU32le(out, b + 4, checkUint('capabilities', r.capabilities ?? 0, 32));
  putU16le(out, b + 12, b + 24);
  putU16le(out, b + 14, checkUint('security buffer length', r.securityBuffer.length, 16));
  putU64le(out, b + 16, r.previousSessionId ?? 0n);
  out.set(r.securityBuffer, b + 24);
  return out;
}

export function encodeSmb2SessionSetupResponse(r: { header?: Omit<Smb2HeaderInit, 'command'>; sessionFlags?: number; securityBuffer: Uint8Array }): Uint8Array {
  const b = SMB2_HEADER_SIZE;
  const out = new Uint8Array(b + 8 + Math.max(1, r.securityBuffer.length));
  writeSmb2Header(out, 0, { ...r.header, command: SMB2_COMMAND.SESSION_SETUP, flags: (r.header?.flags ?? 0) | SMB2_FLAGS.SERVER_TO_REDIR });
  putU16le(out, b, 9);
  putU16le(out, b + 2, checkUint('sessionFlags', r.sessionFlags ?? 0, 16));
  putU16le(out, b + 4, r.securityBuffer.length ? b + 8 : 0);
  putU16le(out, b + 6, checkUint('security buffer length', r.securityBuffer.length, 16));
  out.set(r.securityBuffer, b + 8);
  return out;
}

/** LOGOFF request or response (StructureSize 4, nothing else). */
export function encodeSmb2Logoff(header: Omit<Smb2HeaderInit, 'command'>): Uint8Array {
  const out = new Uint8Array(SMB2_HEADER_SIZE + 4);
  writeSmb2Header(out, 0, { ...header, command: SMB2_COMMAND.LOGOFF });
  putU16le(out, SMB2_HEADER_SIZE, 4);
  return out;
}

/** The ERROR response (2.2.2) to any command: StructureSize 9, no error contexts, one byte of data
 * (ErrorData is never empty on the wire), or `errorData` (e.g. a symlink error context). */
export function encodeSmb2ErrorResponse(header: Smb2HeaderInit & { status: number }, errorData?: Uint8Array): Uint8Array {
  const data = errorData ?? new Uint8Array(1);
  const out = new Uint8Array(SMB2_HEADER_SIZE + 8 + Math.max(1, data.length));
  writeSmb2Header(out, 0, { ...header, flags: (header.flags ?? 0) | SMB2_FLAGS.SERVER_TO_REDIR });
  putU16le(out, SMB2_HEADER_SIZE, 9);
  putU32le(out, SMB2_HEADER_SIZE + 4, errorData ? errorData.length : 0);
  out.set(data, SMB2_HEADER_SIZE + 8);
  return out;
}
