import assert from 'node:assert/strict';
import { SmbDirectProtocolError, type SmbDirectErrorCode } from '../../framing/index.js';

/** Bytes from a hex string with optional spaces: "00 01 ff". */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

/** Asserts that fn throws a SmbDirectProtocolError with this code. */
export function throwsCode(fn: () => unknown, code: SmbDirectErrorCode): SmbDirectProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SmbDirectProtocolError, `expected ${code}, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}
