// DDP (RFC 5041) segments carrying RDMAP (RFC 5040) messages, framed as MPA FPDUs (RFC 5044):
//   ULPDU_Length u16 | DDP/RDMAP header | payload | pad to 4 | CRC32c
// Big-endian. The layouts match the kernel's siw (drivers/infiniband/sw/siw/iwarp.h).
import { checkU64, checkUint, putU16be, putU32be, putU32le, putU64be, u16be, u32be, u32le, u64be } from './bytes.js';
import { crc32c } from './crc32c.js';
import { fail } from './errors.js';

export const RDMAP_WRITE = 0;
export const RDMAP_READ_REQUEST = 1;
export const RDMAP_READ_RESPONSE = 2;
export const RDMAP_SEND = 3;
export const RDMAP_SEND_INVALIDATE = 4;
export const RDMAP_SEND_SE = 5;
export const RDMAP_SEND_SE_INVALIDATE = 6;
export const RDMAP_TERMINATE = 7;

/** Untagged queue numbers (RFC 5040 5.1). */
export const DDP_QN_SEND = 0;
export const DDP_QN_READ_REQUEST = 1;
export const DDP_QN_TERMINATE = 2;

export const DDP_TAGGED_HEADER_SIZE = 14;
export const DDP_UNTAGGED_HEADER_SIZE = 18;
export const MPA_ULPDU_LENGTH_SIZE = 2;
export const MPA_CRC_SIZE = 4;
export const READ_REQUEST_SIZE = 28;
export const TERMINATE_CONTROL_SIZE = 4;
/** Largest DDP segment an FPDU can carry (16-bit ULPDU_Length). */
export const MPA_MAX_ULPDU = 0xffff;

const DDP_TAGGED = 0x80;
const DDP_LAST = 0x40;
const DDP_VERSION = 1;
const RDMAP_VERSION = 1;

export interface TaggedHeader {
  tagged: true;
  last: boolean;
  /** RDMAP_WRITE or RDMAP_READ_RESPONSE. */
  opcode: number;
  stag: number;
  to: bigint;
}

export interface UntaggedHeader {
  tagged: false;
  last: boolean;
  /** RDMAP_READ_REQUEST, one of the Send opcodes, or RDMAP_TERMINATE. */
  opcode: number;
  /** The RsvdULP word: the STag to invalidate for Send-with-Invalidate, else 0. */
  invalidateStag: number;
  qn: number;
  msn: number;
  mo: number;
}

export type DdpHeader = TaggedHeader | UntaggedHeader;
export type DdpSegment = DdpHeader & { payload: Uint8Array };

export function ddpHeaderSize(tagged: boolean): number {
  return tagged ? DDP_TAGGED_HEADER_SIZE : DDP_UNTAGGED_HEADER_SIZE;
}

/** Total bytes of the FPDU whose ULPDU_Length is `ulpduLength`: length field, segment, pad to 4,
 * and the CRC field, which is always there (RFC 5044 6: sent as zero when CRCs are off). A stream
 * parser reads the first 2 bytes and knows how much to wait for. */
export function fpduLength(ulpduLength: number): number {
  return ((MPA_ULPDU_LENGTH_SIZE + ulpduLength + 3) & ~3) + MPA_CRC_SIZE;
}

/** Total bytes of an FPDU carrying `payloadLength` bytes (`crc` does not change the size). */
export function fpduSize(tagged: boolean, payloadLength: number, _crc = true): number {
  return fpduLength(ddpHeaderSize(tagged) + payloadLength);
}

/** The queue number an untagged opcode must travel on, or -1 for tagged or unknown opcodes. */
export function queueForOpcode(opcode: number): number {
  if (opcode >= RDMAP_SEND && opcode <= RDMAP_SEND_SE_INVALIDATE) return DDP_QN_SEND;
  if (opcode === RDMAP_READ_REQUEST) return DDP_QN_READ_REQUEST;
  if (opcode === RDMAP_TERMINATE) return DDP_QN_TERMINATE;
  return -1;
}

function isTaggedOpcode(opcode: number): boolean {
  return opcode === RDMAP_WRITE || opcode === RDMAP_READ_RESPONSE;
}

/** Writes the DDP/RDMAP header at `target[at]`; returns its size (14 or 18). */
export function writeDdpHeader(target: Uint8Array, at: number, h: DdpHeader): number {
  checkUint('opcode', h.opcode, 8);
  if (h.opcode > RDMAP_TERMINATE || isTaggedOpcode(h.opcode) !== h.tagged) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `RDMAP opcode ${h.opcode} cannot travel ${h.tagged ? 'tagged' : 'untagged'}`);
  }
  target[at] = (h.tagged ? DDP_TAGGED : 0) | (h.last ? DDP_LAST : 0) | DDP_VERSION;
  target[at + 1] = (RDMAP_VERSION << 6) | h.opcode;
  if (h.tagged) {
    putU32be(target, at + 2, checkUint('stag', h.stag, 32));
    putU64be(target, at + 6, checkU64('to', h.to));
    return DDP_TAGGED_HEADER_SIZE;
  }
  putU32be(target, at + 2, checkUint('invalidateStag', h.invalidateStag, 32));
  putU32be(target, at + 6, checkUint('qn', h.qn, 32));
  putU32be(target, at + 10, checkUint('msn', h.msn, 32));
  putU32be(target, at + 14, checkUint('mo', h.mo, 32));
  return DDP_UNTAGGED_HEADER_SIZE;
}

/**
 * Frames one DDP segment as an FPDU without copying the payload: returns
 * [ULPDU_Length + header, payload, pad + CRC] for a gathering write (socket.cork / writev).
 * With `crc` false the CRC field is zero (it is never left out: siw and RFC 5044 keep it).
 */
export function encodeFpdu(h: DdpHeader, payload: Uint8Array, crc = true): [Uint8Array, Uint8Array, Uint8Array] {
  const headerSize = ddpHeaderSize(h.tagged);
  const ulpdu = headerSize + payload.length;
  if (ulpdu > MPA_MAX_ULPDU) fail('ERR_FRAMING_INVALID_ARGUMENT', `DDP segment of ${ulpdu} bytes exceeds the ${MPA_MAX_ULPDU}-byte ULPDU limit`);
  const prefixSize = MPA_ULPDU_LENGTH_SIZE + headerSize;
  const pad = (4 - ((MPA_ULPDU_LENGTH_SIZE + ulpdu) & 3)) & 3;
  // Header and trailer share one slice of Node's pre-allocated pool: small typed arrays of their
  // own (or Buffer#subarray) cost more than the encoding itself.
  const total = prefixSize + pad + MPA_CRC_SIZE;
  const pool = Buffer.allocUnsafe(total);
  const prefix = new Uint8Array(pool.buffer, pool.byteOffset, prefixSize);
  const trailer = new Uint8Array(pool.buffer, pool.byteOffset + prefixSize, total - prefixSize);
  trailer.fill(0);
  putU16be(prefix, 0, ulpdu);
  writeDdpHeader(prefix, MPA_ULPDU_LENGTH_SIZE, h);
  // The CRC travels as the little-endian bytes of the CRC32c value, as in iSCSI and siw.
  if (crc) putU32le(trailer, pad, crc32c(trailer.subarray(0, pad), crc32c(payload, crc32c(prefix))));
  return [prefix, payload, trailer];
}

/**
 * Decodes the FPDU at the start of `bytes`. Returns undefined while the FPDU is incomplete;
 * `byteLength` says where the next one starts. The payload is a view, not a copy. Markers are not
 * supported (siw refuses them too). Checks the CRC, DDP and RDMAP versions, the buffer model and
 * queue number the opcode requires, and the shape of Read Request and Terminate messages.
 */
export function decodeFpdu(bytes: Uint8Array, crc = true): (DdpSegment & { byteLength: number }) | undefined {
  if (bytes.length < MPA_ULPDU_LENGTH_SIZE) return undefined;
  const ulpdu = u16be(bytes, 0);
  if (ulpdu < DDP_TAGGED_HEADER_SIZE) {
    fail('ERR_MPA_BAD_ULPDU_LENGTH', `ULPDU_Length ${ulpdu} is shorter than any DDP header (RFC 5044 6)`);
  }
  const byteLength = fpduLength(ulpdu);
  const crcAt = byteLength - MPA_CRC_SIZE; // the field is there even when CRCs are off (zero, unchecked)
  if (bytes.length < byteLength) return undefined;
  if (crc) {
    const expected = crc32c(bytes.subarray(0, crcAt));
    const got = u32le(bytes, crcAt);
    if (expected !== got) {
      fail('ERR_MPA_BAD_CRC', `FPDU CRC32c 0x${got.toString(16)} does not match 0x${expected.toString(16)} (RFC 5044 6)`);
    }
  }
  const seg = readSegment(bytes, MPA_ULPDU_LENGTH_SIZE, ulpdu, byteLength);
  const payloadLength = seg.payload.length;
  if (seg.opcode === RDMAP_READ_REQUEST && (!seg.last || payloadLength !== READ_REQUEST_SIZE)) {
    fail('ERR_RDMAP_BAD_READ_REQUEST', `RDMA Read Request must be one segment of ${READ_REQUEST_SIZE} bytes, got ${payloadLength}${seg.last ? '' : ' without L'}`);
  }
  if (seg.opcode === RDMAP_TERMINATE && (!seg.last || payloadLength < TERMINATE_CONTROL_SIZE)) {
    fail('ERR_RDMAP_BAD_TERMINATE', `Terminate must be one segment of at least ${TERMINATE_CONTROL_SIZE} bytes, got ${payloadLength}${seg.last ? '' : ' without L'}`);
  }
  return seg;
}

/** Reads and validates the DDP segment of `segmentLength` bytes at `bytes[at]`. */
function readSegment(bytes: Uint8Array, at: number, segmentLength: number, byteLength: number): DdpSegment & { byteLength: number } {
  const ddpCtrl = bytes[at];
  const rdmapCtrl = bytes[at + 1];
  if ((ddpCtrl & 0x03) !== DDP_VERSION) fail('ERR_DDP_BAD_VERSION', `DDP version ${ddpCtrl & 0x03} is not 1 (RFC 5041 5)`);
  if (rdmapCtrl >> 6 !== RDMAP_VERSION) fail('ERR_RDMAP_BAD_VERSION', `RDMAP version ${rdmapCtrl >> 6} is not 1 (RFC 5040 4)`);
  const opcode = rdmapCtrl & 0x0f;
  if (opcode > RDMAP_TERMINATE) fail('ERR_RDMAP_BAD_OPCODE', `RDMAP opcode ${opcode} is not defined (RFC 5040 4.2)`);
  const tagged = (ddpCtrl & DDP_TAGGED) !== 0;
  if (tagged !== isTaggedOpcode(opcode)) {
    fail('ERR_DDP_BAD_BUFFER_MODEL', `RDMAP opcode ${opcode} arrived ${tagged ? 'tagged' : 'untagged'} (RFC 5040 4.2)`);
  }
  const last = (ddpCtrl & DDP_LAST) !== 0;
  const end = at + segmentLength;
  if (tagged) {
    const payload = bytes.subarray(at + DDP_TAGGED_HEADER_SIZE, end);
    return { tagged, last, opcode, stag: u32be(bytes, at + 2), to: u64be(bytes, at + 6), payload, byteLength };
  }
  if (segmentLength < DDP_UNTAGGED_HEADER_SIZE) {
    fail('ERR_MPA_BAD_ULPDU_LENGTH', `ULPDU_Length ${segmentLength} is shorter than the untagged DDP header (RFC 5041 5)`);
  }
  const qn = u32be(bytes, at + 6);
  if (qn !== queueForOpcode(opcode)) fail('ERR_DDP_BAD_QN', `RDMAP opcode ${opcode} arrived on queue ${qn} (RFC 5040 5.1)`);
  const payload = bytes.subarray(at + DDP_UNTAGGED_HEADER_SIZE, end);
  return {
    tagged, last, opcode, invalidateStag: u32be(bytes, at + 2), qn, msn: u32be(bytes, at + 10), mo: u32be(bytes, at + 14), payload, byteLength,
  };
}

export interface ReadRequest {
  sinkStag: number;
  sinkTo: bigint;
  /** RDMARDSZ: bytes to read. */
  size: number;
  srcStag: number;
  srcTo: bigint;
}

/** The 28-byte RDMA Read Request body (RFC 5040 4.4). */
export function encodeReadRequest(r: ReadRequest): Uint8Array {
  const b = new Uint8Array(READ_REQUEST_SIZE);
  putU32be(b, 0, checkUint('sinkStag', r.sinkStag, 32));
  putU64be(b, 4, checkU64('sinkTo', r.sinkTo));
  putU32be(b, 12, checkUint('size', r.size, 32));
  putU32be(b, 16, checkUint('srcStag', r.srcStag, 32));
  putU64be(b, 20, checkU64('srcTo', r.srcTo));
  return b;
}

export function decodeReadRequest(body: Uint8Array): ReadRequest {
  if (body.length !== READ_REQUEST_SIZE) {
    fail('ERR_RDMAP_BAD_READ_REQUEST', `RDMA Read Request body is ${body.length} bytes, not ${READ_REQUEST_SIZE}`);
  }
  return { sinkStag: u32be(body, 0), sinkTo: u64be(body, 4), size: u32be(body, 12), srcStag: u32be(body, 16), srcTo: u64be(body, 20) };
}

export const TERM_LAYER_RDMAP = 0;
export const TERM_LAYER_DDP = 1;
export const TERM_LAYER_LLP = 2;

export interface Terminate {
  /** TERM_LAYER_RDMAP, TERM_LAYER_DDP or TERM_LAYER_LLP (MPA). */
  layer: number;
  etype: number;
  errorCode: number;
  /** M: ddpSegmentLength is valid. */
  m: boolean;
  /** D: ddpHeader is included. */
  d: boolean;
  /** R: the RDMAP header is included (the rdmaHeader bytes, for a Read Request). */
  r: boolean;
  ddpSegmentLength?: number;
  /** The terminated DDP header (14 or 18 bytes), raw: it may be the malformed one. */
  ddpHeader?: Uint8Array;
  /** The terminated RDMA Read Request body (28 bytes), raw. */
  rdmaHeader?: Uint8Array;
  /**
   * Bit order of the control word. 'rfc' (RFC 5040 4.8): Layer in the high nibble of byte 0,
   * M/D/R in the high bits of byte 2. 'siw': Linux siw on little-endian hosts sends its
   * little-endian bitfields as they lie in memory (iwarp.h): Layer in the low nibble, EType in the
   * high one, M/D/R in the low bits of byte 2. Seen on the wire from a 6.1 kernel siw.
   */
  bitOrder?: 'rfc' | 'siw';
}

/**
 * The Terminate message body (RFC 5040 4.8), laid out as siw does: the control word, then,
 * when any of M/D/R is set, the 16-bit DDP segment length, the DDP header and the RDMA header.
 */
export function encodeTerminate(t: Terminate): Uint8Array {
  const ddp = t.ddpHeader ?? new Uint8Array(0);
  const rdma = t.rdmaHeader ?? new Uint8Array(0);
  const extra = t.m || t.d || t.r;
  const b = new Uint8Array(TERMINATE_CONTROL_SIZE + (extra ? 2 + ddp.length + rdma.length : 0));
  const layer = checkUint('layer', t.layer, 4), etype = checkUint('etype', t.etype, 4);
  b[1] = checkUint('errorCode', t.errorCode, 8);
  if (t.bitOrder === 'siw') {
    b[0] = (etype << 4) | layer;
    b[2] = (t.m ? 0x01 : 0) | (t.d ? 0x02 : 0) | (t.r ? 0x04 : 0);
  } else {
    b[0] = (layer << 4) | etype;
    b[2] = (t.m ? 0x80 : 0) | (t.d ? 0x40 : 0) | (t.r ? 0x20 : 0);
  }
  if (extra) {
    putU16be(b, 4, checkUint('ddpSegmentLength', t.ddpSegmentLength ?? 0, 16));
    b.set(ddp, 6);
    b.set(rdma, 6 + ddp.length);
  }
  return b;
}

/** Decodes a Terminate message body (the payload of an RDMAP_TERMINATE segment). */
export function decodeTerminate(payload: Uint8Array): Terminate {
  if (payload.length < TERMINATE_CONTROL_SIZE) {
    fail('ERR_RDMAP_BAD_TERMINATE', `Terminate body is ${payload.length} bytes, needs ${TERMINATE_CONTROL_SIZE}`);
  }
  // siw's bit order shows as flags in the low bits of byte 2, where RFC 5040 has reserved zeros.
  // Without flags the two orders cannot be told apart: RFC 5040 is assumed.
  const siw = (payload[2] & 0xe0) === 0 && (payload[2] & 0x07) !== 0;
  const t: Terminate = siw ? {
    layer: payload[0] & 0x0f,
    etype: payload[0] >> 4,
    errorCode: payload[1],
    m: (payload[2] & 0x01) !== 0,
    d: (payload[2] & 0x02) !== 0,
    r: (payload[2] & 0x04) !== 0,
    bitOrder: 'siw',
  } : {
    layer: payload[0] >> 4,
    etype: payload[0] & 0x0f,
    errorCode: payload[1],
    m: (payload[2] & 0x80) !== 0,
    d: (payload[2] & 0x40) !== 0,
    r: (payload[2] & 0x20) !== 0,
    bitOrder: 'rfc',
  };
  if (!t.m && !t.d && !t.r) return t;
  let at = TERMINATE_CONTROL_SIZE;
  if (payload.length < at + 2) fail('ERR_RDMAP_BAD_TERMINATE', 'Terminate with M/D/R set lacks the DDP segment length');
  if (t.m) t.ddpSegmentLength = u16be(payload, at);
  at += 2;
  let readRequest = false;
  if (t.d) {
    if (payload.length < at + 2) fail('ERR_RDMAP_BAD_TERMINATE', 'Terminate with D set lacks the DDP header');
    const size = ddpHeaderSize((payload[at] & DDP_TAGGED) !== 0);
    if (payload.length < at + size) fail('ERR_RDMAP_BAD_TERMINATE', `Terminate carries ${payload.length - at} of the ${size}-byte DDP header`);
    readRequest = (payload[at] & DDP_TAGGED) === 0 && (payload[at + 1] & 0x0f) === RDMAP_READ_REQUEST;
    t.ddpHeader = payload.subarray(at, at + size);
    at += size;
  }
  // siw sets R for a terminated Send too; only a Read Request has RDMA header bytes of its own.
  if (t.r && readRequest) {
    if (payload.length < at + READ_REQUEST_SIZE) fail('ERR_RDMAP_BAD_TERMINATE', 'Terminate with R set lacks the Read Request header');
    t.rdmaHeader = payload.subarray(at, at + READ_REQUEST_SIZE);
  }
  return t;
}
