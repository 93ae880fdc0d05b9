// [MS-SMBD] 2.2.3 Data Transfer message, with the per-message checks of 3.1.5.8.
import { checkUint, putU16le, putU32le, u16le, u32le } from './bytes.js';
import { fail } from './errors.js';

export const RESPONSE_REQUESTED = 0x0001;
/** Size of an empty data transfer message (credit grant, keepalive). */
export const DATA_TRANSFER_MIN_SIZE = 20;
/** Where the data starts when a message carries data: 20 header bytes + 4 padding. */
export const DATA_TRANSFER_DATA_OFFSET = 24;

export interface DataTransfer {
  creditsRequested: number;
  creditsGranted: number;
  flags: number;
  remainingDataLength: number;
  dataOffset: number;
  dataLength: number;
  /** A view into the decoded bytes (not a copy); empty when dataLength is 0. */
  data: Uint8Array;
}

export interface DataTransferHeader {
  creditsRequested: number;
  creditsGranted: number;
  flags?: number;
  remainingDataLength?: number;
  dataLength: number;
}

export interface DataTransferInit {
  creditsRequested: number;
  creditsGranted: number;
  flags?: number;
  remainingDataLength?: number;
  data?: Uint8Array;
  /** Optional; when given it must be what the encoder writes (24 with data, 0 without). */
  dataOffset?: number;
  /** Optional; when given it must equal data.length. */
  dataLength?: number;
}

/**
 * Writes the header of a data transfer message at `target[offset]` (for a registered send slab:
 * the payload follows at offset + the returned size). Returns 24 when dataLength > 0, else 20.
 */
export function writeDataTransferHeader(target: Uint8Array, offset: number, h: DataTransferHeader): number {
  const dataLength = checkUint('dataLength', h.dataLength, 32);
  const size = dataLength > 0 ? DATA_TRANSFER_DATA_OFFSET : DATA_TRANSFER_MIN_SIZE;
  if (!Number.isInteger(offset) || offset < 0 || offset + size > target.length) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `no room for a ${size}-byte header at offset ${offset} of a ${target.length}-byte buffer`);
  }
  putU16le(target, offset, checkUint('creditsRequested', h.creditsRequested, 16));
  putU16le(target, offset + 2, checkUint('creditsGranted', h.creditsGranted, 16));
  putU16le(target, offset + 4, checkUint('flags', h.flags ?? 0, 16));
  putU16le(target, offset + 6, 0);
  putU32le(target, offset + 8, checkUint('remainingDataLength', h.remainingDataLength ?? 0, 32));
  putU32le(target, offset + 12, dataLength > 0 ? DATA_TRANSFER_DATA_OFFSET : 0);
  putU32le(target, offset + 16, dataLength);
  if (size === DATA_TRANSFER_DATA_OFFSET) putU32le(target, offset + 20, 0);
  return size;
}

export function encodeDataTransfer(m: DataTransferInit): Uint8Array {
  const data = m.data;
  const dataLength = data ? data.length : 0;
  if (m.dataLength !== undefined && m.dataLength !== dataLength) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `dataLength ${m.dataLength} does not match data.length ${dataLength}`);
  }
  const expectedOffset = dataLength > 0 ? DATA_TRANSFER_DATA_OFFSET : 0;
  if (m.dataOffset !== undefined && m.dataOffset !== expectedOffset) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `dataOffset ${m.dataOffset} is not the ${expectedOffset} this encoder writes`);
  }
  const out = new Uint8Array(dataLength > 0 ? DATA_TRANSFER_DATA_OFFSET + dataLength : DATA_TRANSFER_MIN_SIZE);
  const at = writeDataTransferHeader(out, 0, { ...m, dataLength });
  if (data && dataLength > 0) out.set(data, at);
  return out;
}

/** Decodes one received message (the whole RDMA Send payload) and applies the 3.1.5.8 checks. */
export function decodeDataTransfer(bytes: Uint8Array): DataTransfer {
  const length = bytes.length;
  if (length < DATA_TRANSFER_MIN_SIZE) {
    fail('ERR_SMBD_SHORT_MESSAGE', `data transfer message is ${length} bytes, needs ${DATA_TRANSFER_MIN_SIZE} ([MS-SMBD] 3.1.5.8)`);
  }
  const creditsRequested = u16le(bytes, 0);
  if (creditsRequested === 0) fail('ERR_SMBD_ZERO_CREDITS_REQUESTED', 'data transfer asks for 0 credits ([MS-SMBD] 3.1.5.8)');
  const dataOffset = u32le(bytes, 12);
  const dataLength = u32le(bytes, 16);
  if (dataOffset % 8 !== 0 || (dataLength > 0 && dataOffset < DATA_TRANSFER_DATA_OFFSET)) {
    fail('ERR_SMBD_BAD_DATA_OFFSET', `DataOffset ${dataOffset} is not 8-byte aligned past the header ([MS-SMBD] 3.1.5.8)`);
  }
  // Both are u32, so the sum is exact in a double: no 32-bit wrap-around can sneak past this.
  if (dataOffset + dataLength > length) {
    fail('ERR_SMBD_DATA_OVERRUN', `DataOffset ${dataOffset} + DataLength ${dataLength} exceeds the ${length}-byte message ([MS-SMBD] 3.1.5.8)`);
  }
  return {
    creditsRequested,
    creditsGranted: u16le(bytes, 2),
    flags: u16le(bytes, 4),
    remainingDataLength: u32le(bytes, 8),
    dataOffset,
    dataLength,
    data: bytes.subarray(dataOffset, dataOffset + dataLength),
  };
}

// ---- in place, for the per-message path (no object, no checks the caller already made) --------
// The field offsets of the 2.2.3 header, for code that reads or writes it through a DataView.
export const DT_CREDITS_REQUESTED = 0;
export const DT_CREDITS_GRANTED = 2;
export const DT_FLAGS = 4;
export const DT_REMAINING_DATA_LENGTH = 8;
export const DT_DATA_OFFSET = 12;
export const DT_DATA_LENGTH = 16;

/** writeDataTransferHeader's bytes, positional and unchecked: every value must be in range
 * (credits and flags 16 bits, lengths 32 bits) and the header must fit. Returns its size (20
 * without data, 24 with). */
export function putDataTransferHeader(v: DataView, off: number, creditsRequested: number, creditsGranted: number, flags: number,
  remainingDataLength: number, dataLength: number): number {
  v.setUint16(off + DT_CREDITS_REQUESTED, creditsRequested, true);
  v.setUint16(off + DT_CREDITS_GRANTED, creditsGranted, true);
  v.setUint16(off + DT_FLAGS, flags, true);
  v.setUint16(off + 6, 0, true);
  v.setUint32(off + DT_REMAINING_DATA_LENGTH, remainingDataLength, true);
  v.setUint32(off + DT_DATA_OFFSET, dataLength > 0 ? DATA_TRANSFER_DATA_OFFSET : 0, true);
  v.setUint32(off + DT_DATA_LENGTH, dataLength, true);
  if (dataLength === 0) return DATA_TRANSFER_MIN_SIZE;
  v.setUint32(off + 20, 0, true);
  return DATA_TRANSFER_DATA_OFFSET;
}

/** decodeDataTransfer's 3.1.5.8 checks, in place: true when the `length`-byte message at `base`
 * is well-formed (read its fields at the DT_ offsets then). When false, decodeDataTransfer of the
 * same bytes throws the typed error that says why. */
export function dataTransferValid(v: DataView, base: number, length: number): boolean {
  if (length < DATA_TRANSFER_MIN_SIZE || v.getUint16(base + DT_CREDITS_REQUESTED, true) === 0) return false;
  const dataOffset = v.getUint32(base + DT_DATA_OFFSET, true);
  const dataLength = v.getUint32(base + DT_DATA_LENGTH, true);
  return dataOffset % 8 === 0 && (dataLength === 0 || dataOffset >= DATA_TRANSFER_DATA_OFFSET) && dataOffset + dataLength <= length;
}
