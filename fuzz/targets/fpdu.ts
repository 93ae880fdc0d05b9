// decodeFpdu (MPA FPDU framing RFC 5044 6, DDP RFC 5041, RDMAP RFC 5040 headers), then
// decodeReadRequest / decodeTerminate on what it accepts. Decoded with CRC checking off, on, and on
// after the harness wrote the right CRC into the bytes (so the checks behind the CRC are reached
// with CRC on): the last must agree with the first. What decodes must be consistent (length a
// multiple of 4, payload a view inside) and survive encodeFpdu + decodeFpdu.
import {
  RDMAP_READ_REQUEST, RDMAP_TERMINATE, type DdpHeader, type DdpSegment, decodeFpdu, decodeReadRequest, decodeTerminate,
  encodeFpdu, fpduLength,
} from '../../framing/ddp.js';
import { crc32c } from '../../framing/crc32c.js';
import { concat, equalBytes } from '../lib/bytes.js';
import { check, decode, within } from '../lib/oracle.js';

type Seg = DdpSegment & { byteLength: number };

function header(s: Seg): DdpHeader {
  return s.tagged
    ? { tagged: true, last: s.last, opcode: s.opcode, stag: s.stag, to: s.to }
    : { tagged: false, last: s.last, opcode: s.opcode, invalidateStag: s.invalidateStag, qn: s.qn, msn: s.msn, mo: s.mo };
}

const key = (s: Seg | undefined) => s && JSON.stringify({ ...header(s), byteLength: s.byteLength, n: s.payload.length },
  (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));

function checkSegment(s: Seg, data: Uint8Array, crc: boolean): void {
  check(s.byteLength <= data.length && s.byteLength % 4 === 0 && s.byteLength === fpduLength((data[0]! << 8) | data[1]!), `byteLength ${s.byteLength}`);
  check(within(s.payload, data), 'payload is not a view inside the FPDU');
  if (s.opcode === RDMAP_READ_REQUEST) check(decode('decodeReadRequest(payload)', () => decodeReadRequest(s.payload)), 'accepted Read Request with an undecodable body');
  if (s.opcode === RDMAP_TERMINATE) decode('decodeTerminate(payload)', () => decodeTerminate(s.payload));
  const wire = concat(encodeFpdu(header(s), s.payload, crc));
  const again = decode('decodeFpdu(encodeFpdu(...))', () => decodeFpdu(wire, crc));
  check(again && key(again) === key(s) && equalBytes(again.payload, s.payload), 'segment does not survive encodeFpdu + decodeFpdu');
}

export function fuzz(data: Buffer): void {
  const plain = decode('decodeFpdu(crc off)', () => decodeFpdu(data, false));
  if (plain) checkSegment(plain, data, false);
  const checked = decode('decodeFpdu(crc on)', () => decodeFpdu(data, true));
  if (checked) {
    checkSegment(checked, data, true);
    check(key(checked) === key(plain), 'CRC on accepts what CRC off decodes differently');
  }
  // the same bytes with the right CRC: everything behind the CRC check, with CRC on
  if (data.length >= 2) {
    const n = fpduLength((data[0]! << 8) | data[1]!);
    if (data.length >= n && n >= 8) {
      const fixed = Uint8Array.from(data);
      new DataView(fixed.buffer).setUint32(n - 4, crc32c(fixed.subarray(0, n - 4)), true);
      const s = decode('decodeFpdu(crc on, CRC fixed)', () => decodeFpdu(fixed, true));
      check(key(s) === key(plain), 'with a right CRC, CRC on and CRC off disagree');
    }
  }
}
