// SMB2 READ / WRITE (2.2.19-2.2.22), QUERY_DIRECTORY (2.2.33/2.2.34), QUERY_INFO (2.2.37/2.2.38)
// and SET_INFO (2.2.39/2.2.40) of [MS-SMB2]: pure codecs over whole PDUs. READ/WRITE's RDMA channel
// descriptors are smb2-channel.ts's; here the fields a server needs to act (FileId, data offset).
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { type BufferDescriptor, decodeBufferDescriptors, encodeBufferDescriptors } from '../buffer-descriptor.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit } from './header.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';
import { type Smb2FileId, readFileId, smb2Body, smb2Pdu, writeFileId } from './tree.js';

export const SMB2_CHANNEL = Object.freeze({ NONE: 0, RDMA_V1: 1, RDMA_V1_INVALIDATE: 2, RDMA_TRANSFORM: 3 });
/** Info types of QUERY_INFO / SET_INFO (2.2.37). */
export const SMB2_INFO = Object.freeze({ FILE: 1, FILESYSTEM: 2, SECURITY: 3, QUOTA: 4 });
/** QUERY_DIRECTORY flags (2.2.33). */
export const SMB2_QUERY_DIRECTORY_FLAG = Object.freeze({ RESTART_SCANS: 0x01, RETURN_SINGLE_ENTRY: 0x02, INDEX_SPECIFIED: 0x04, REOPEN: 0x10 });

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

/** A buffer field (offset from the header's start, length) inside the PDU after the fixed part. */
function field(pdu: Uint8Array, off: number, len: number, fixedEnd: number, what: string): Uint8Array {
  if (len === 0) return pdu.subarray(0, 0);
  if (off < fixedEnd || off > pdu.length || len > pdu.length - off) invalid(`${what} [${off}, +${len}) outside the PDU's buffer`);
  return pdu.subarray(off, off + len);
}

function channelDescriptors(pdu: Uint8Array, channel: number, off: number, len: number, fixedEnd: number): BufferDescriptor[] {
  if (channel === SMB2_CHANNEL.NONE) return [];
  if (channel !== SMB2_CHANNEL.RDMA_V1 && channel !== SMB2_CHANNEL.RDMA_V1_INVALIDATE) invalid(`channel ${channel} is not supported`);
  const info = field(pdu, off, len, fixedEnd, 'the channel info');
  if (info.length === 0) invalid('an RDMA channel without descriptors');
  try {
    return decodeBufferDescriptors(info);
  } catch (err) {
    invalid(`the channel's descriptors: ${(err as Error).message}`);
  }
}

// ---- READ ---------------------------------------------------------------------------------------

export interface Smb2ReadRequest {
  header: Smb2Header; length: number; offset: bigint; fileId: Smb2FileId; minimumCount: number; channel: number; remainingBytes: number;
  descriptors: BufferDescriptor[];
}

export function decodeSmb2ReadRequest(pdu: Uint8Array): Smb2ReadRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.READ, 49, 48, false);
  const channel = u32le(pdu, b + 36);
  return {
    header, length: u32le(pdu, b + 4), offset: u64le(pdu, b + 8), fileId: readFileId(pdu, b + 16), minimumCount: u32le(pdu, b + 32), channel,
    remainingBytes: u32le(pdu, b + 40), descriptors: channelDescriptors(pdu, channel, u16le(pdu, b + 44), u16le(pdu, b + 46), b + 48),
  };
}

/** One credit per 64 KiB of payload: the CreditCharge a READ or WRITE of `bytes` carries (3.2.4.1.5). */
export function smb2CreditCharge(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / 65536));
}

/** The channel of a READ or WRITE request: descriptors of the client's registered buffers that
 * the server RDMA-writes (READ) or RDMA-reads (WRITE), [MS-SMB2] 2.2.19 / 2.2.21. */
export interface Smb2RequestChannel { channel: number; descriptors: readonly BufferDescriptor[] }

function channelInfo(c: Smb2RequestChannel | undefined): Uint8Array {
  if (!c) return new Uint8Array(0);
  if (c.channel !== SMB2_CHANNEL.RDMA_V1 && c.channel !== SMB2_CHANNEL.RDMA_V1_INVALIDATE) {
    throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `channel ${c.channel}: RDMA_V1 or RDMA_V1_INVALIDATE`);
  }
  if (c.descriptors.length === 0) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', 'an RDMA channel needs descriptors');
  const info = encodeBufferDescriptors(c.descriptors);
  if (info.length > 0xffff) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `${c.descriptors.length} descriptors do not fit ReadChannelInfoLength`);
  return info;
}

/** READ's request; CreditCharge, unless the header gives one, covers `length`. With `rdma`, the
 * server places the data by RDMA Write into the buffers it names (RemainingBytes: their length). */
export function encodeSmb2ReadRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; length: number; offset: bigint; fileId: Smb2FileId; minimumCount?: number; rdma?: Smb2RequestChannel }): Uint8Array {
  const info = channelInfo(r.rdma);
  const out = smb2Pdu(SMB2_COMMAND.READ, { ...r.header, creditCharge: r.header?.creditCharge ?? smb2CreditCharge(r.length) }, false, 49, 48 + Math.max(1, info.length));
  const b = SMB2_HEADER_SIZE;
  putU32le(out, b + 4, checkUint('length', r.length, 32));
  putU64le(out, b + 8, r.offset);
  writeFileId(out, b + 16, r.fileId);
  putU32le(out, b + 32, checkUint('minimumCount', r.minimumCount ?? 0, 32));
  if (r.rdma) {
    putU32le(out, b + 36, r.rdma.channel);
    putU16le(out, b + 44, b + 48);
    putU16le(out, b + 46, info.length);
    out.set(info, b + 48);
  }
  return out;
}

/**
 * READ's response: inline `data` at offset 80, or (RDMA) no data and `dataRemaining` bytes placed.
 * Without data the PDU ends at the Buffer field (80 bytes, DataOffset 80), as Windows and ksmbd send
 * it: the Linux cifs client reads exactly 80 bytes of a READ response whose data went by RDMA and
 * leaves any byte after them in its SMB Direct reassembly queue, where it corrupts the next
 * response's length (a kernel oops in smbd_recv_buf, seen on 6.1).
 */
export function encodeSmb2ReadResponse(r: { header?: Omit<Smb2HeaderInit, 'command'>; data?: Uint8Array; dataRemaining?: number }): Uint8Array {
  const data = r.data ?? new Uint8Array(0);
  const out = smb2Pdu(SMB2_COMMAND.READ, r.header, true, 17, 16 + data.length);
  const b = SMB2_HEADER_SIZE;
  out[b + 2] = b + 16;
  putU32le(out, b + 4, data.length);
  putU32le(out, b + 8, checkUint('dataRemaining', r.dataRemaining ?? 0, 32));
  out.set(data, b + 16);
  return out;
}

export function decodeSmb2ReadResponse(pdu: Uint8Array): { header: Smb2Header; data: Uint8Array; dataRemaining: number } {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.READ, 17, 16, true);
  return { header, data: field(pdu, pdu[b + 2]!, u32le(pdu, b + 4), b + 16, 'READ data'), dataRemaining: u32le(pdu, b + 8) };
}

// ---- WRITE --------------------------------------------------------------------------------------

export interface Smb2WriteRequest {
  header: Smb2Header; offset: bigint; fileId: Smb2FileId; channel: number; remainingBytes: number; flags: number;
  /** Inline data (a view); empty over an RDMA channel, whose `remainingBytes` come from `descriptors`. */
  data: Uint8Array;
  descriptors: BufferDescriptor[];
}

export function decodeSmb2WriteRequest(pdu: Uint8Array): Smb2WriteRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.WRITE, 49, 48, false);
  const channel = u32le(pdu, b + 32);
  const data = field(pdu, u16le(pdu, b + 2), u32le(pdu, b + 4), b + 48, 'WRITE data');
  const descriptors = channelDescriptors(pdu, channel, u16le(pdu, b + 40), u16le(pdu, b + 42), b + 48);
  if (descriptors.length && data.length) invalid('WRITE over an RDMA channel with inline data (Length must be 0)');
  return { header, offset: u64le(pdu, b + 8), fileId: readFileId(pdu, b + 16), channel, remainingBytes: u32le(pdu, b + 36), flags: u32le(pdu, b + 44), data, descriptors };
}

/** WRITE's request: inline `data`, or with `rdma` none (Length 0) and `remainingBytes` that the
 * server RDMA-reads from the buffers it names. CreditCharge, unless the header gives one, covers
 * the bytes either way. */
export function encodeSmb2WriteRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; offset: bigint; fileId: Smb2FileId; data: Uint8Array; rdma?: Smb2RequestChannel; remainingBytes?: number }): Uint8Array {
  const info = channelInfo(r.rdma);
  if (r.rdma && r.data.length) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', 'a WRITE over an RDMA channel carries no inline data');
  const bytes = r.rdma ? checkUint('remainingBytes', r.remainingBytes ?? 0, 32) : r.data.length;
  const out = smb2Pdu(SMB2_COMMAND.WRITE, { ...r.header, creditCharge: r.header?.creditCharge ?? smb2CreditCharge(bytes) }, false, 49, 48 + Math.max(1, r.data.length + info.length));
  const b = SMB2_HEADER_SIZE;
  // DataOffset 0 over an RDMA channel (no inline data), as cifs sends it: ksmbd refuses any other
  // with STATUS_INVALID_PARAMETER
  putU16le(out, b + 2, r.rdma ? 0 : b + 48);
  putU32le(out, b + 4, r.data.length);
  putU64le(out, b + 8, r.offset);
  writeFileId(out, b + 16, r.fileId);
  out.set(r.data, b + 48);
  if (r.rdma) {
    putU32le(out, b + 32, r.rdma.channel);
    putU32le(out, b + 36, bytes);
    putU16le(out, b + 40, b + 48);
    putU16le(out, b + 42, info.length);
    out.set(info, b + 48);
  }
  return out;
}

/** WRITE's response: the bytes written. */
export function decodeSmb2WriteResponse(pdu: Uint8Array): { header: Smb2Header; count: number } {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.WRITE, 17, 16, true);
  return { header, count: u32le(pdu, b + 4) };
}

export function encodeSmb2WriteResponse(r: { header?: Omit<Smb2HeaderInit, 'command'>; count: number }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.WRITE, r.header, true, 17, 16);
  putU32le(out, SMB2_HEADER_SIZE + 4, checkUint('count', r.count, 32));
  return out;
}

// ---- QUERY_DIRECTORY ----------------------------------------------------------------------------

export interface Smb2QueryDirectoryRequest {
  header: Smb2Header; infoClass: number; flags: number; fileIndex: number; fileId: Smb2FileId; pattern: string; outputBufferLength: number;
}

export function decodeSmb2QueryDirectoryRequest(pdu: Uint8Array): Smb2QueryDirectoryRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.QUERY_DIRECTORY, 33, 32, false);
  const name = field(pdu, u16le(pdu, b + 24), u16le(pdu, b + 26), b + 32, 'the search pattern');
  if (name.length % 2) invalid('a search pattern of odd length');
  return {
    header, infoClass: pdu[b + 2]!, flags: pdu[b + 3]!, fileIndex: u32le(pdu, b + 4), fileId: readFileId(pdu, b + 8),
    pattern: Buffer.from(name.buffer, name.byteOffset, name.length).toString('utf16le'), outputBufferLength: u32le(pdu, b + 28),
  };
}

export function encodeSmb2QueryDirectoryRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; infoClass: number; flags?: number; fileId: Smb2FileId; pattern: string; outputBufferLength: number }): Uint8Array {
  const name = Buffer.from(r.pattern, 'utf16le');
  const out = smb2Pdu(SMB2_COMMAND.QUERY_DIRECTORY, r.header, false, 33, 32 + Math.max(1, name.length));
  const b = SMB2_HEADER_SIZE;
  out[b + 2] = checkUint('infoClass', r.infoClass, 8);
  out[b + 3] = checkUint('flags', r.flags ?? 0, 8);
  writeFileId(out, b + 8, r.fileId);
  putU16le(out, b + 24, b + 32);
  putU16le(out, b + 26, name.length);
  putU32le(out, b + 28, checkUint('outputBufferLength', r.outputBufferLength, 32));
  out.set(name, b + 32);
  return out;
}

/** The response of QUERY_DIRECTORY and QUERY_INFO (StructureSize 9: an output buffer at 72). */
export function encodeSmb2OutputResponse(command: number, r: { header?: Omit<Smb2HeaderInit, 'command'>; output: Uint8Array }): Uint8Array {
  const out = smb2Pdu(command, r.header, true, 9, 8 + Math.max(1, r.output.length));
  const b = SMB2_HEADER_SIZE;
  putU16le(out, b + 2, b + 8);
  putU32le(out, b + 4, r.output.length);
  out.set(r.output, b + 8);
  return out;
}

export function decodeSmb2OutputResponse(pdu: Uint8Array, command: number): { header: Smb2Header; output: Uint8Array } {
  const { header, b } = smb2Body(pdu, command, 9, 8, true);
  return { header, output: field(pdu, u16le(pdu, b + 2), u32le(pdu, b + 4), b + 8, 'the output buffer') };
}

// ---- QUERY_INFO / SET_INFO ------------------------------------------------------------------------

export interface Smb2QueryInfoRequest {
  header: Smb2Header; infoType: number; infoClass: number; outputBufferLength: number; input: Uint8Array; additionalInformation: number; flags: number; fileId: Smb2FileId;
}

export function decodeSmb2QueryInfoRequest(pdu: Uint8Array): Smb2QueryInfoRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.QUERY_INFO, 41, 40, false);
  return {
    header, infoType: pdu[b + 2]!, infoClass: pdu[b + 3]!, outputBufferLength: u32le(pdu, b + 4),
    input: field(pdu, u16le(pdu, b + 8), u32le(pdu, b + 12), b + 40, 'the input buffer'), additionalInformation: u32le(pdu, b + 16),
    flags: u32le(pdu, b + 20), fileId: readFileId(pdu, b + 24),
  };
}

export function encodeSmb2QueryInfoRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; infoType: number; infoClass: number; outputBufferLength: number; fileId: Smb2FileId; additionalInformation?: number }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.QUERY_INFO, r.header, false, 41, 41);
  const b = SMB2_HEADER_SIZE;
  out[b + 2] = checkUint('infoType', r.infoType, 8);
  out[b + 3] = checkUint('infoClass', r.infoClass, 8);
  putU32le(out, b + 4, checkUint('outputBufferLength', r.outputBufferLength, 32));
  putU32le(out, b + 16, checkUint('additionalInformation', r.additionalInformation ?? 0, 32));
  writeFileId(out, b + 24, r.fileId);
  return out;
}

export interface Smb2SetInfoRequest { header: Smb2Header; infoType: number; infoClass: number; buffer: Uint8Array; additionalInformation: number; fileId: Smb2FileId }

export function decodeSmb2SetInfoRequest(pdu: Uint8Array): Smb2SetInfoRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.SET_INFO, 33, 32, false);
  return {
    header, infoType: pdu[b + 2]!, infoClass: pdu[b + 3]!, buffer: field(pdu, u16le(pdu, b + 8), u32le(pdu, b + 4), b + 32, 'the SET_INFO buffer'),
    additionalInformation: u32le(pdu, b + 12), fileId: readFileId(pdu, b + 16),
  };
}

export function encodeSmb2SetInfoRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; infoType: number; infoClass: number; buffer: Uint8Array; fileId: Smb2FileId; additionalInformation?: number }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.SET_INFO, r.header, false, 33, 32 + Math.max(1, r.buffer.length));
  const b = SMB2_HEADER_SIZE;
  out[b + 2] = checkUint('infoType', r.infoType, 8);
  out[b + 3] = checkUint('infoClass', r.infoClass, 8);
  putU32le(out, b + 4, r.buffer.length);
  putU16le(out, b + 8, b + 32);
  putU32le(out, b + 12, checkUint('additionalInformation', r.additionalInformation ?? 0, 32));
  writeFileId(out, b + 16, r.fileId);
  out.set(r.buffer, b + 32);
  return out;
}

/** SET_INFO's response: StructureSize 2, nothing else. */
export function encodeSmb2SetInfoResponse(header?: Omit<Smb2HeaderInit, 'command'>): Uint8Array {
  return smb2Pdu(SMB2_COMMAND.SET_INFO, header, true, 2, 2);
}
