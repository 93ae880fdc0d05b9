// [MS-SMBD] 2.2.3.1 Buffer Descriptor V1: Offset u64 | Token u32 | Length u32, little-endian.
import { checkU64, checkUint, putU32le, putU64le, u32le, u64le } from './bytes.js';
import { fail } from './errors.js';

export const BUFFER_DESCRIPTOR_SIZE = 16;
/** One past the highest 64-bit address: a descriptor's (and any RDMA range's) bytes end at or below it. */
export const ADDRESS_END = 1n << 64n;

export interface BufferDescriptor {
  /** Remote address (or tagged offset) of the buffer. */
  offset: bigint;
  /** The per-I/O steering tag (rkey / STag). */
  token: number;
  length: number;
}

export function encodeBufferDescriptors(list: readonly BufferDescriptor[]): Uint8Array {
  const out = new Uint8Array(list.length * BUFFER_DESCRIPTOR_SIZE);
  writeBufferDescriptors(out, 0, list);
  return out;
}

/** Writes `list` at `target[at]`; returns the number of bytes written. */
export function writeBufferDescriptors(target: Uint8Array, at: number, list: readonly BufferDescriptor[]): number {
  if (at + list.length * BUFFER_DESCRIPTOR_SIZE > target.length) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `${list.length} descriptors do not fit at offset ${at} of ${target.length} bytes`);
  }
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    const o = at + i * BUFFER_DESCRIPTOR_SIZE;
    putU64le(target, o, checkU64('offset', d.offset));
    putU32le(target, o + 8, checkUint('token', d.token, 32));
    putU32le(target, o + 12, checkUint('length', d.length, 32));
    if (d.offset + BigInt(d.length) > ADDRESS_END) fail('ERR_FRAMING_INVALID_ARGUMENT', `descriptor ${i}: offset + length runs past 2^64`);
  }
  return list.length * BUFFER_DESCRIPTOR_SIZE;
}

/** Decodes a non-empty array of descriptors; the byte count must be a multiple of 16, and no
 * descriptor may run past 2^64 (a peer's Offset + Length that wraps would otherwise reach an RDMA
 * operation as an address no provider can express). Zero lengths are left to the caller: SMB2
 * names that error itself (ERR_SMB2_ZERO_LENGTH_DESCRIPTOR). */
export function decodeBufferDescriptors(bytes: Uint8Array): BufferDescriptor[] {
  if (bytes.length === 0 || bytes.length % BUFFER_DESCRIPTOR_SIZE !== 0) {
    fail('ERR_SMBD_BAD_DESCRIPTOR_LIST', `descriptor list of ${bytes.length} bytes is not a non-empty multiple of ${BUFFER_DESCRIPTOR_SIZE}`);
  }
  const list: BufferDescriptor[] = new Array(bytes.length / BUFFER_DESCRIPTOR_SIZE);
  for (let i = 0, o = 0; i < list.length; i++, o += BUFFER_DESCRIPTOR_SIZE) {
    const d = { offset: u64le(bytes, o), token: u32le(bytes, o + 8), length: u32le(bytes, o + 12) };
    if (d.offset + BigInt(d.length) > ADDRESS_END) {
      fail('ERR_SMBD_DESCRIPTOR_OVERFLOW', `buffer descriptor ${i}: Offset 0x${d.offset.toString(16)} + Length ${d.length} runs past 2^64`);
    }
    list[i] = d;
  }
  return list;
}
