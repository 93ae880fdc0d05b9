// mpaFrameLength, decodeMpaFrame and decodeIrdOrd (RFC 5044 7.1, RFC 6581), with each `expect`
// (none, request, reply). The length a stream parser is told must be the frame's, private data a
// view inside it; the decoded frame must survive encode + decode, and the IRD/ORD word (every bit
// a field) must encode back to its bytes.
import {
  type MpaFrame, decodeIrdOrd, decodeMpaFrame, encodeIrdOrd, encodeMpaReply, encodeMpaRequest, mpaFrameLength,
} from '../../framing/mpa.js';
import { equalBytes } from '../lib/bytes.js';
import { check, decode, within } from '../lib/oracle.js';

const EXPECT = [undefined, 'request', 'reply'] as const;

const same = (a: MpaFrame, b: MpaFrame) => a.kind === b.kind && a.markers === b.markers && a.crc === b.crc && a.reject === b.reject &&
  a.revision === b.revision && a.enhanced === b.enhanced && equalBytes(a.privateData, b.privateData);

export function fuzz(data: Buffer): void {
  for (const expect of EXPECT) {
    const n = decode(`mpaFrameLength(${expect})`, () => mpaFrameLength(data, expect));
    const f = decode(`decodeMpaFrame(${expect})`, () => decodeMpaFrame(data, expect));
    if (n !== undefined) check(n >= 20 && n <= 20 + 512, `frame length ${n}`);
    if (!f) continue;
    check(n === f.byteLength && f.byteLength <= data.length, 'mpaFrameLength and decodeMpaFrame disagree');
    check(within(f.privateData, data) && f.privateData.length === f.byteLength - 20, 'private data is not the frame tail');
    check(expect === undefined || f.kind === expect, `asked for a ${expect}, got a ${f.kind}`);
    check(f.revision === 1 || f.revision === 2, `revision ${f.revision}`);
    if (f.enhanced) check(decode('decodeIrdOrd(privateData)', () => decodeIrdOrd(f.privateData)), 'enhanced frame without IRD/ORD');
    const init = { markers: f.markers, crc: f.crc, reject: f.reject, revision: f.revision, enhanced: f.enhanced, privateData: f.privateData };
    const wire = f.kind === 'request' ? encodeMpaRequest(init) : encodeMpaReply(init);
    const again = decode('decodeMpaFrame(encode(...))', () => decodeMpaFrame(wire, f.kind));
    check(again && same(again, f), 'frame does not survive encode + decode');
  }
  const v = decode('decodeIrdOrd', () => decodeIrdOrd(data));
  if (v) check(equalBytes(encodeIrdOrd(v), data.subarray(0, 4)), 'IRD/ORD does not encode back to its 4 bytes');
}
