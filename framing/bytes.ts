// Fixed-width integer access on Uint8Array without DataView allocation.
// Callers check bounds first: an out-of-range index reads `undefined`, which would coerce to 0.
import { fail } from './errors.js';

export function u16le(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
export function u32le(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}
export function u64le(b: Uint8Array, o: number): bigint {
  return (BigInt(u32le(b, o + 4)) << 32n) | BigInt(u32le(b, o));
}
export function putU16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}
export function putU32le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}
export function putU64le(b: Uint8Array, o: number, v: bigint): void {
  putU32le(b, o, Number(v & 0xffffffffn));
  putU32le(b, o + 4, Number(v >> 32n));
}

export function u16be(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
export function u32be(b: Uint8Array, o: number): number {
  return b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}
export function u64be(b: Uint8Array, o: number): bigint {
  return (BigInt(u32be(b, o)) << 32n) | BigInt(u32be(b, o + 4));
}
export function putU16be(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}
export function putU32be(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}
export function putU64be(b: Uint8Array, o: number, v: bigint): void {
  putU32be(b, o, Number(v >> 32n));
  putU32be(b, o + 4, Number(v & 0xffffffffn));
}

const MAX_BY_BITS = { 4: 0xf, 8: 0xff, 14: 0x3fff, 16: 0xffff, 32: 0xffffffff } as const;

/** Encoder-side range check: a field value must be an integer that fits its wire width. */
export function checkUint(name: string, v: number, bits: keyof typeof MAX_BY_BITS): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_BY_BITS[bits]) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `${name} must be an integer in [0, ${MAX_BY_BITS[bits]}], got ${v}`);
  }
  return v;
}

export function checkU64(name: string, v: bigint): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `${name} must be a bigint in [0, 2^64 - 1], got ${String(v)}`);
  }
  return v;
}
