// TREE_CONNECT / TREE_DISCONNECT (2.2.9-2.2.12), ECHO (2.2.28/2.2.29), CLOSE (2.2.15/2.2.16) and
// FLUSH (2.2.17/2.2.18) of [MS-SMB2]: the small fixed-size commands, pure codecs over whole PDUs.
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_FLAGS, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit, decodeSmb2Header, writeSmb2Header } from './header.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const SMB2_SHARE_TYPE = Object.freeze({ DISK: 0x01, PIPE: 0x02, PRINT: 0x03 });
export const SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB = 0x0001;
/** A handle ([MS-SMB2] 2.2.14.1): persistent and volatile halves. */
export interface Smb2FileId { persistent: bigint; volatile: bigint }
/** The FileId of a related compound request: "the one the previous request opened" (3.3.5.2.7.2). */
export const SMB2_FILE_ID_RELATED: Readonly<Smb2FileId> = Object.freeze({ persistent: 0xffffffffffffffffn, volatile: 0xffffffffffffffffn });

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

/** The header and the body's start, checked: command, direction, fixed size, StructureSize. */
export function smb2Body(pdu: Uint8Array, command: number, structureSize: number, fixed: number, response: boolean): { header: Smb2Header; b: number } {
  const header = decodeSmb2Header(pdu);
  if (header.command !== command) invalid(`command 0x${header.command.toString(16)}, expected 0x${command.toString(16)}`);
  if (((header.flags & SMB2_FLAGS.SERVER_TO_REDIR) !== 0) !== response) invalid(`a ${response ? 'response' : 'request'} with SERVER_TO_REDIR ${response ? 'clear' : 'set'}`);
  if (pdu.length < SMB2_HEADER_SIZE + fixed) invalid(`command 0x${command.toString(16)} needs ${SMB2_HEADER_SIZE + fixed} bytes, got ${pdu.length}`);
  const s = u16le(pdu, SMB2_HEADER_SIZE);
  if (s !== structureSize) invalid(`command 0x${command.toString(16)} StructureSize ${s} (must be ${structureSize})`);
  return { header, b: SMB2_HEADER_SIZE };
}

/** A PDU of header + `bodySize` bytes with the header and StructureSize written. */
export function smb2Pdu(command: number, header: Omit<Smb2HeaderInit, 'command'> | undefined, response: boolean, structureSize: number, bodySize: number): Uint8Array {
  const out = new Uint8Array(SMB2_HEADER_SIZE + bodySize);
  writeSmb2Header(out, 0, { ...header, command, flags: (header?.flags ?? 0) | (response ? SMB2_FLAGS.SERVER_TO_REDIR : 0) });
  putU16le(out, SMB2_HEADER_SIZE, structureSize);
  return out;
}

export function readFileId(pdu: Uint8Array, at: number): Smb2FileId {
  return { persistent: u64le(pdu, at), volatile: u64le(pdu, at + 8) };
}

export function writeFileId(pdu: Uint8Array, at: number, id: Smb2FileId): void {
  putU64le(pdu, at, id.persistent);
  putU64le(pdu, at + 8, id.volatile);
}

// ---- TREE_CONNECT -----------------------------------------------------------------------------

export interface Smb2TreeConnectRequest { header: Smb2Header; flags: number; path: string }
export interface Smb2TreeConnectResponse { header: Smb2Header; shareType: number; shareFlags: number; capabilities: number; maximalAccess: number }

/** At most this many bytes of path (a UNC path is short; Windows caps it at 260 characters). */
export const MAX_TREE_PATH = 2048;

export function decodeSmb2TreeConnectRequest(pdu: Uint8Array): Smb2TreeConnectRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.TREE_CONNECT, 9, 8, false);
  const off = u16le(pdu, b + 4), len = u16le(pdu, b + 6);
  if (len === 0 || len % 2 !== 0 || len > MAX_TREE_PATH) invalid(`a TREE_CONNECT path of ${len} bytes`);
  if (off < b + 8 || off + len > pdu.length) invalid(`TREE_CONNECT path [${off}, +${len}) outside the PDU's buffer`);
  return { header, flags: u16le(pdu, b + 2), path: Buffer.from(pdu.buffer, pdu.byteOffset + off, len).toString('utf16le') };
}

export function encodeSmb2TreeConnectRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; path: string; flags?: number }): Uint8Array {
  const path = Buffer.from(r.path, 'utf16le');
  if (path.length === 0 || path.length > MAX_TREE_PATH) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `a tree path of ${path.length} bytes`);
  const out = smb2Pdu(SMB2_COMMAND.TREE_CONNECT, r.header, false, 9, 8 + path.length);
  putU16le(out, SMB2_HEADER_SIZE + 2, checkUint('flags', r.flags ?? 0, 16));
  putU16le(out, SMB2_HEADER_SIZE + 4, SMB2_HEADER_SIZE + 8);
  putU16le(out, SMB2_HEADER_SIZE + 6, path.length);
  out.set(path, SMB2_HEADER_SIZE + 8);
  return out;
}

export function decodeSmb2TreeConnectResponse(pdu: Uint8Array): Smb2TreeConnectResponse {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.TREE_CONNECT, 16, 16, true);
  return { header, shareType: pdu[b + 2]!, shareFlags: u32le(pdu, b + 4), capabilities: u32le(pdu, b + 8), maximalAccess: u32le(pdu, b + 12) };
}

export function encodeSmb2TreeConnectResponse(r: { header?: Omit<Smb2HeaderInit, 'command'>; shareType: number; shareFlags?: number; capabilities?: number; maximalAccess: number }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.TREE_CONNECT, r.header, true, 16, 16);
  const b = SMB2_HEADER_SIZE;
  out[b + 2] = checkUint('shareType', r.shareType, 8);
  putU32le(out, b + 4, checkUint('shareFlags', r.shareFlags ?? 0, 32));
  putU32le(out, b + 8, checkUint('capabilities', r.capabilities ?? 0, 32));
  putU32le(out, b + 12, checkUint('maximalAccess', r.maximalAccess, 32));
  return out;
}

/** "\\server\share" -> "share" (case kept); undefined for a path that is not \\server\share. */
export function shareNameOf(uncPath: string): string | undefined {
  const m = /^\\\\[^\\]+\\([^\\]+)$/.exec(uncPath);
  return m?.[1];
}

// ---- the StructureSize 4 exchanges: TREE_DISCONNECT, ECHO, LOGOFF and FLUSH's response ------------

/** Checks a 4-byte body (TREE_DISCONNECT, ECHO, LOGOFF requests and responses, FLUSH's response). */
export function decodeSmb2Empty(pdu: Uint8Array, command: number, response: boolean): Smb2Header {
  return smb2Body(pdu, command, 4, 4, response).header;
}

export function encodeSmb2Empty(command: number, header: Omit<Smb2HeaderInit, 'command'> | undefined, response: boolean): Uint8Array {
  return smb2Pdu(command, header, response, 4, 4);
}

// ---- CLOSE and FLUSH -----------------------------------------------------------------------------

export interface Smb2CloseRequest { header: Smb2Header; flags: number; fileId: Smb2FileId }
export interface Smb2FileTimesAndSizes {
  creationTime: bigint; lastAccessTime: bigint; lastWriteTime: bigint; changeTime: bigint;
  allocationSize: bigint; endOfFile: bigint; fileAttributes: number;
}

export function decodeSmb2CloseRequest(pdu: Uint8Array): Smb2CloseRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.CLOSE, 24, 24, false);
  return { header, flags: u16le(pdu, b + 2), fileId: readFileId(pdu, b + 8) };
}

export function encodeSmb2CloseRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; flags?: number; fileId: Smb2FileId }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.CLOSE, r.header, false, 24, 24);
  putU16le(out, SMB2_HEADER_SIZE + 2, checkUint('flags', r.flags ?? 0, 16));
  writeFileId(out, SMB2_HEADER_SIZE + 8, r.fileId);
  return out;
}

/** CLOSE's response: with POSTQUERY_ATTRIB the attributes, else all zero (2.2.16). */
export function encodeSmb2CloseResponse(r: { header?: Omit<Smb2HeaderInit, 'command'>; attributes?: Smb2FileTimesAndSizes }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.CLOSE, r.header, true, 60, 60);
  const a = r.attributes;
  if (a) {
    const b = SMB2_HEADER_SIZE;
    putU16le(out, b + 2, SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB);
    [a.creationTime, a.lastAccessTime, a.lastWriteTime, a.changeTime, a.allocationSize, a.endOfFile].forEach((v, i) => putU64le(out, b + 8 + 8 * i, v));
    putU32le(out, b + 56, checkUint('fileAttributes', a.fileAttributes, 32));
  }
  return out;
}

export function decodeSmb2CloseResponse(pdu: Uint8Array): { header: Smb2Header; attributes?: Smb2FileTimesAndSizes } {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.CLOSE, 60, 60, true);
  if (!(u16le(pdu, b + 2) & SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB)) return { header };
  const t = (i: number) => u64le(pdu, b + 8 + 8 * i);
  return { header, attributes: { creationTime: t(0), lastAccessTime: t(1), lastWriteTime: t(2), changeTime: t(3), allocationSize: t(4), endOfFile: t(5), fileAttributes: u32le(pdu, b + 56) } };
}

export function decodeSmb2FlushRequest(pdu: Uint8Array): { header: Smb2Header; fileId: Smb2FileId } {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.FLUSH, 24, 24, false);
  return { header, fileId: readFileId(pdu, b + 8) };
}

export function encodeSmb2FlushRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; fileId: Smb2FileId }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.FLUSH, r.header, false, 24, 24);
  writeFileId(out, SMB2_HEADER_SIZE + 8, r.fileId);
  return out;
}
