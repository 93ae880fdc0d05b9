// The Reassembler ([MS-SMBD] 3.1.5.8) fed a sequence of fragments taken from the input:
//   u8 size class of MaxFragmentedSize, then per fragment: u8 kind, DataLength, RemainingDataLength
//   (16 or 32 bits by kind) and DataLength payload bytes (zeros past the end of the input).
// A model that only concatenates checks every message handed out: it is exactly the fragments'
// data since the message started, as long as the first fragment announced, non-empty and at most
// MaxFragmentedSize; a single fragment message is handed out whole, at once. An empty message
// between two fragments may be refused or passed over, nothing else. Errors must be documented
// ones; the reassembler resets after one, as the connection would be gone.
import { Reassembler } from '../../framing/fragment.js';
import { Cursor, concat, equalBytes } from '../lib/bytes.js';
import { check, decode } from '../lib/oracle.js';

// (no 2^32 - 1: a message is allocated whole when its first fragment arrives, up to the maximum
// the owner chose; the overflow checks are reached with 32-bit RemainingDataLength all the same)
const SIZES = [1, 128, 4096, 131072, 1 << 20, 65536, 300, 1 << 24];

export function fuzz(data: Buffer): void {
  const c = new Cursor(data);
  const max = SIZES[c.u8() & 7]!;
  const r = new Reassembler(max);
  let parts: Uint8Array[] = [];
  let total = 0; // announced length of the pending message (0: none pending)
  for (let i = 0; c.left > 0 && i < 512; i++) {
    const kind = c.u8();
    const dataLength = kind & 0x80 ? c.u16() : c.u8();
    const remainingDataLength = kind & 0x40 ? c.u32() : kind & 0x20 ? c.u16() : kind & 0x10 ? c.u8() : 0;
    const payload = new Uint8Array(dataLength);
    payload.set(c.take(dataLength));
    const wasPending = r.pending;
    const out = decode('Reassembler.push', () => r.push({ remainingDataLength, dataLength, data: payload }));
    if (out !== undefined) {
      const expected = concat([...parts, payload]);
      const announced = parts.length ? total : dataLength;
      check(out.length > 0 && out.length <= max, `handed out a message of ${out.length} bytes (max ${max})`);
      check(out.length === announced, `handed out ${out.length} bytes, the first fragment announced ${announced}`);
      check(equalBytes(out, expected), 'the message is not the concatenation of its fragments');
      check(!r.pending && r.receivedLength === 0, 'still pending after handing out a message');
      parts = [];
      total = 0;
      continue;
    }
    if (!r.pending) {
      // refused, or nothing to hand out (an empty message); nothing may be half-kept
      check(r.receivedLength === 0, 'not pending but holds bytes');
      check(!(dataLength > 0 && remainingDataLength === 0 && dataLength <= max && !wasPending), 'a whole one-fragment message was not handed out');
      parts = [];
      total = 0;
      continue;
    }
    if (wasPending && dataLength === 0 && remainingDataLength === 0) {
      // an empty message (credit grant) between two fragments: passed over (or refused, above)
      check(r.receivedLength === parts.reduce((n, p) => n + p.length, 0), 'an empty message in between changed the pending message');
      continue;
    }
    if (!wasPending) {
      parts = [payload];
      total = dataLength + remainingDataLength;
    } else {
      parts.push(payload);
    }
    const have = parts.reduce((s, p) => s + p.length, 0);
    check(r.receivedLength === have, `receivedLength ${r.receivedLength}, fragments so far ${have}`);
    check(have + remainingDataLength === total, 'the fragments no longer add up to what the first one announced');
    check(total <= max, `pending message of ${total} bytes above MaxFragmentedSize ${max}`);
  }
}
