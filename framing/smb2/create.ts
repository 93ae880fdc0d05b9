// SMB2 CREATE request and response ([MS-SMB2] 2.2.13 / 2.2.14) and create contexts (2.2.13.2):
// pure codecs over whole PDUs; the file name is UTF-16LE relative to the share's root. Contexts
// are returned by name (their data as views): a server answers the ones it knows (MxAc, QFid, ...)
// and ignores the rest, as 3.3.5.9 allows; leases and durable handles parse them in a later issue.
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit } from './header.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';
import { type Smb2FileId, type Smb2FileTimesAndSizes, smb2Body, smb2Pdu, writeFileId, readFileId } from './tree.js';

export const FILE_DISPOSITION = Object.freeze({ SUPERSEDE: 0, OPEN: 1, CREATE: 2, OPEN_IF: 3, OVERWRITE: 4, OVERWRITE_IF: 5 });
/** Whether a CreateDisposition replaces an existing file's data (SUPERSEDE, OVERWRITE, OVERWRITE_IF). */
export const replacesData = (disposition: number): boolean =>
  disposition === FILE_DISPOSITION.SUPERSEDE || disposition === FILE_DISPOSITION.OVERWRITE || disposition === FILE_DISPOSITION.OVERWRITE_IF;
export const FILE_OPTION = Object.freeze({
  DIRECTORY_FILE: 0x00000001, WRITE_THROUGH: 0x00000002, SEQUENTIAL_ONLY: 0x00000004, NO_INTERMEDIATE_BUFFERING: 0x00000008,
  NON_DIRECTORY_FILE: 0x00000040, DELETE_ON_CLOSE: 0x00001000, OPEN_BY_FILE_ID: 0x00002000, OPEN_REPARSE_POINT: 0x00200000,
});
export const FILE_ACTION = Object.freeze({ SUPERSEDED: 0, OPENED: 1, CREATED: 2, OVERWRITTEN: 3 });
/** Create context names (2.2.13.2). */
export const CREATE_CONTEXT = Object.freeze({
  EA_BUFFER: 'ExtA', SD_BUFFER: 'SecD', DURABLE_HANDLE_REQUEST: 'DHnQ', DURABLE_HANDLE_RECONNECT: 'DHnC', ALLOCATION_SIZE: 'AlSi',
  QUERY_MAXIMAL_ACCESS: 'MxAc', TIMEWARP_TOKEN: 'TWrp', QUERY_ON_DISK_ID: 'QFid', REQUEST_LEASE: 'RqLs',
  DURABLE_HANDLE_REQUEST_V2: 'DH2Q', DURABLE_HANDLE_RECONNECT_V2: 'DH2C',
});
/** At most this many create contexts per request, and name bytes (a path is at most 32 K UTF-16 units). */
export const MAX_CREATE_CONTEXTS = 32;
export const MAX_CREATE_NAME = 65534;

export interface CreateContext { name: string; data: Uint8Array }

export interface Smb2CreateRequest {
  header: Smb2Header;
  requestedOplockLevel: number;
  impersonationLevel: number;
  desiredAccess: number;
  fileAttributes: number;
  shareAccess: number;
  createDisposition: number;
  createOptions: number;
  /** Relative to the share's root, backslashes as sent ('' is the root). */
  name: string;
  contexts: CreateContext[];
}

export interface Smb2CreateResponse extends Smb2FileTimesAndSizes {
  header: Smb2Header;
  oplockLevel: number;
  createAction: number;
  fileId: Smb2FileId;
  contexts: CreateContext[];
}

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

/** The chain of create contexts in `area` (offsets relative to each context). */
export function decodeCreateContexts(area: Uint8Array): CreateContext[] {
  const out: CreateContext[] = [];
  let at = 0;
  for (;;) {
    if (at + 16 > area.length) invalid(`a create context at ${at} past the ${area.length}-byte area`);
    const next = u32le(area, at), nameOff = u16le(area, at + 4), nameLen = u16le(area, at + 6), dataOff = u16le(area, at + 10), dataLen = u32le(area, at + 12);
    const end = next === 0 ? area.length : at + next;
    if (next !== 0 && (next % 8 !== 0 || next < 16 || end > area.length)) invalid(`a create context's Next ${next} at ${at}: not 8-aligned or past the area`);
    if (nameLen === 0 || nameOff < 16 || at + nameOff + nameLen > end) invalid(`a create context name [${nameOff}, +${nameLen}) outside its context`);
    if (dataLen > 0 && (dataOff < 16 || at + dataOff > end || dataLen > end - at - dataOff)) invalid(`create context data [${dataOff}, +${dataLen}) outside its context`);
    const name = Buffer.from(area.buffer, area.byteOffset + at + nameOff, nameLen).toString('latin1');
    out.push({ name, data: dataLen ? area.subarray(at + dataOff, at + dataOff + dataLen) : area.subarray(0, 0) });
    if (out.length > MAX_CREATE_CONTEXTS) invalid(`more than ${MAX_CREATE_CONTEXTS} create contexts`);
    if (next === 0) return out;
    at += next;
  }
}

/** Create contexts laid out (name at 16, data 8-aligned after it, each context 8-aligned). */
export function encodeCreateContexts(contexts: readonly CreateContext[]): Uint8Array {
  const sizes = contexts.map((c) => {
    const dataOff = (16 + c.name.length + 7) & ~7;
    return { dataOff, size: c.data.length ? dataOff + c.data.length : 16 + c.name.length };
  });
  const spans = sizes.map((s, i) => (i < contexts.length - 1 ? (s.size + 7) & ~7 : s.size));
  const out = new Uint8Array(spans.reduce((a, b) => a + b, 0));
  let at = 0;
  contexts.forEach((c, i) => {
    putU32le(out, at, i < contexts.length - 1 ? spans[i]! : 0);
    putU16le(out, at + 4, 16);
    putU16le(out, at + 6, c.name.length);
    if (c.data.length) putU16le(out, at + 10, sizes[i]!.dataOff);
    putU32le(out, at + 12, c.data.length);
    out.set(Buffer.from(c.name, 'latin1'), at + 16);
    if (c.data.length) out.set(c.data, at + sizes[i]!.dataOff);
    at += spans[i]!;
  });
  return out;
}

export function decodeSmb2CreateRequest(pdu: Uint8Array): Smb2CreateRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.CREATE, 57, 56, false);
  const nameOff = u16le(pdu, b + 44), nameLen = u16le(pdu, b + 46);
  const ctxOff = u32le(pdu, b + 48), ctxLen = u32le(pdu, b + 52);
  if (nameLen % 2 !== 0 || nameLen > MAX_CREATE_NAME) invalid(`a CREATE name of ${nameLen} bytes`);
  if (nameLen > 0 && (nameOff < b + 56 || nameOff + nameLen > pdu.length)) invalid(`CREATE name [${nameOff}, +${nameLen}) outside the PDU's buffer`);
  if (ctxLen > 0 && (ctxOff % 8 !== 0 || ctxOff < b + 56 || ctxOff > pdu.length || ctxLen > pdu.length - ctxOff)) invalid(`CREATE contexts [${ctxOff}, +${ctxLen}) outside the PDU's buffer or not 8-aligned`);
  return {
    header, requestedOplockLevel: pdu[b + 3]!, impersonationLevel: u32le(pdu, b + 4), desiredAccess: u32le(pdu, b + 24),
    fileAttributes: u32le(pdu, b + 28), shareAccess: u32le(pdu, b + 32), createDisposition: u32le(pdu, b + 36), createOptions: u32le(pdu, b + 40),
    name: nameLen ? Buffer.from(pdu.buffer, pdu.byteOffset + nameOff, nameLen).toString('utf16le') : '',
    contexts: ctxLen ? decodeCreateContexts(pdu.subarray(ctxOff, ctxOff + ctxLen)) : [],
  };
}

export function encodeSmb2CreateRequest(r: {
  header?: Omit<Smb2HeaderInit, 'command'>; name: string; desiredAccess: number; createDisposition: number; createOptions?: number;
  shareAccess?: number; fileAttributes?: number; requestedOplockLevel?: number; impersonationLevel?: number; contexts?: readonly CreateContext[];
}): Uint8Array {
  const name = Buffer.from(r.name, 'utf16le');
  if (name.length > MAX_CREATE_NAME) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `a CREATE name of ${name.length} bytes`);
  const ctx = r.contexts?.length ? encodeCreateContexts(r.contexts) : new Uint8Array(0);
  const b = SMB2_HEADER_SIZE;
  const nameAt = b + 56;
  const ctxAt = ctx.length ? (nameAt + name.length + 7) & ~7 : 0;
  const out = smb2Pdu(SMB2_COMMAND.CREATE, r.header, false, 57, (ctx.length ? ctxAt + ctx.length : nameAt + Math.max(1, name.length)) - b);
  out[b + 3] = checkUint('requestedOplockLevel', r.requestedOplockLevel ?? 0, 8);
  putU32le(out, b + 4, checkUint('impersonationLevel', r.impersonationLevel ?? 2, 32));
  putU32le(out, b + 24, checkUint('desiredAccess', r.desiredAccess, 32));
  putU32le(out, b + 28, checkUint('fileAttributes', r.fileAttributes ?? 0, 32));
  putU32le(out, b + 32, checkUint('shareAccess', r.shareAccess ?? 7, 32));
  putU32le(out, b + 36, checkUint('createDisposition', r.createDisposition, 32));
  putU32le(out, b + 40, checkUint('createOptions', r.createOptions ?? 0, 32));
  putU16le(out, b + 44, nameAt);
  putU16le(out, b + 46, name.length);
  if (ctx.length) {
    putU32le(out, b + 48, ctxAt);
    putU32le(out, b + 52, ctx.length);
    out.set(ctx, ctxAt);
  }
  out.set(name, nameAt);
  return out;
}

export function encodeSmb2CreateResponse(r: Omit<Smb2CreateResponse, 'header' | 'contexts'> & { header?: Omit<Smb2HeaderInit, 'command'>; contexts?: readonly CreateContext[] }): Uint8Array {
  const ctx = r.contexts?.length ? encodeCreateContexts(r.contexts) : new Uint8Array(0);
  const b = SMB2_HEADER_SIZE;
  const out = smb2Pdu(SMB2_COMMAND.CREATE, r.header, true, 89, 88 + Math.max(1, ctx.length));
  out[b + 2] = checkUint('oplockLevel', r.oplockLevel, 8);
  putU32le(out, b + 4, checkUint('createAction', r.createAction, 32));
  [r.creationTime, r.lastAccessTime, r.lastWriteTime, r.changeTime, r.allocationSize, r.endOfFile].forEach((v, i) => putU64le(out, b + 8 + 8 * i, v));
  putU32le(out, b + 56, checkUint('fileAttributes', r.fileAttributes, 32));
  writeFileId(out, b + 64, r.fileId);
  if (ctx.length) {
    putU32le(out, b + 80, b + 88);
    putU32le(out, b + 84, ctx.length);
    out.set(ctx, b + 88);
  }
  return out;
}

export function decodeSmb2CreateResponse(pdu: Uint8Array): Smb2CreateResponse {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.CREATE, 89, 88, true);
  const ctxOff = u32le(pdu, b + 80), ctxLen = u32le(pdu, b + 84);
  if (ctxLen > 0 && (ctxOff < b + 88 || ctxOff > pdu.length || ctxLen > pdu.length - ctxOff)) invalid(`CREATE response contexts [${ctxOff}, +${ctxLen}) outside the PDU`);
  const t = (i: number) => u64le(pdu, b + 8 + 8 * i);
  return {
    header, oplockLevel: pdu[b + 2]!, createAction: u32le(pdu, b + 4), creationTime: t(0), lastAccessTime: t(1), lastWriteTime: t(2), changeTime: t(3),
    allocationSize: t(4), endOfFile: t(5), fileAttributes: u32le(pdu, b + 56), fileId: readFileId(pdu, b + 64),
    contexts: ctxLen ? decodeCreateContexts(pdu.subarray(ctxOff, ctxOff + ctxLen)) : [],
  };
}
