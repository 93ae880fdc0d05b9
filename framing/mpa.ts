// MPA connection setup frames (RFC 5044 section 7.1) and the RFC 6581 enhanced IRD/ORD word.
// Big-endian, unlike SMB Direct.
import { checkUint, putU16be, u16be } from './bytes.js';
import { fail } from './errors.js';

export const MPA_KEY_REQUEST = 'MPA ID Req Frame';
export const MPA_KEY_REPLY = 'MPA ID Rep Frame';
export const MPA_FRAME_HEADER_SIZE = 20;
export const MPA_MAX_PRIVATE_DATA = 512;
export const MPA_IRD_ORD_SIZE = 4;
export const MPA_IRD_ORD_MAX = 0x3fff;

const FLAG_MARKERS = 0x80;
const FLAG_CRC = 0x40;
const FLAG_REJECT = 0x20;
const FLAG_ENHANCED = 0x10;
const KEY_REQUEST = new TextEncoder().encode(MPA_KEY_REQUEST);
const KEY_REPLY = new TextEncoder().encode(MPA_KEY_REPLY);
// The two keys differ only in byte 9 ('q' / 'p'), after the common "MPA ID Re".
const KEY_DIFF_AT = 9;

export interface MpaFrame {
  kind: 'request' | 'reply';
  markers: boolean;
  crc: boolean;
  reject: boolean;
  revision: number;
  /** Rev 2 enhanced connection setup: privateData starts with the IRD/ORD word. */
  enhanced: boolean;
  /** The private data as on the wire (including IRD/ORD when enhanced); a view, not a copy. */
  privateData: Uint8Array;
}

export interface MpaFrameInit {
  markers?: boolean;
  /** Default true. */
  crc?: boolean;
  reject?: boolean;
  /** 1 or 2; default 2. */
  revision?: number;
  /** Default: true for revision 2 when privateData holds at least the IRD/ORD word. */
  enhanced?: boolean;
  privateData?: Uint8Array;
}

export interface IrdOrd {
  ird: number;
  ord: number;
  /** IRD bit A: peer-to-peer model (an RTR message follows the reply). */
  peerToPeer: boolean;
  /** IRD bit B: zero-length Send as RTR. */
  sendRtr: boolean;
  /** ORD bit C: zero-length RDMA Write as RTR. */
  writeRtr: boolean;
  /** ORD bit D: zero-length RDMA Read as RTR. */
  readRtr: boolean;
}

export function encodeMpaRequest(f: MpaFrameInit): Uint8Array {
  return encodeFrame(KEY_REQUEST, f);
}

export function encodeMpaReply(f: MpaFrameInit): Uint8Array {
  return encodeFrame(KEY_REPLY, f);
}

function encodeFrame(key: Uint8Array, f: MpaFrameInit): Uint8Array {
  const pd = f.privateData ?? new Uint8Array(0);
  const revision = f.revision ?? 2;
  if (revision !== 1 && revision !== 2) fail('ERR_FRAMING_INVALID_ARGUMENT', `MPA revision must be 1 or 2, got ${revision}`);
  if (pd.length > MPA_MAX_PRIVATE_DATA) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', `MPA private data of ${pd.length} bytes exceeds ${MPA_MAX_PRIVATE_DATA}`);
  }
  const enhanced = f.enhanced ?? (revision === 2 && pd.length >= MPA_IRD_ORD_SIZE);
  if (enhanced && (revision !== 2 || pd.length < MPA_IRD_ORD_SIZE)) {
    fail('ERR_FRAMING_INVALID_ARGUMENT', 'an enhanced MPA frame needs revision 2 and private data starting with IRD/ORD');
  }
  const out = new Uint8Array(MPA_FRAME_HEADER_SIZE + pd.length);
  out.set(key, 0);
  out[16] =
    (f.markers ? FLAG_MARKERS : 0) | ((f.crc ?? true) ? FLAG_CRC : 0) | (f.reject ? FLAG_REJECT : 0) | (enhanced ? FLAG_ENHANCED : 0);
  out[17] = revision;
  putU16be(out, 18, pd.length);
  out.set(pd, MPA_FRAME_HEADER_SIZE);
  return out;
}

/**
 * For stream parsing: the total length of the MPA frame at the start of `bytes`, or undefined
 * while fewer than 20 bytes are there. Checks the key and PD_Length as soon as they are visible.
 */
export function mpaFrameLength(bytes: Uint8Array, expect?: 'request' | 'reply'): number | undefined {
  checkKeyPrefix(bytes, expect);
  if (bytes.length < MPA_FRAME_HEADER_SIZE) return undefined;
  const pdLength = u16be(bytes, 18);
  if (pdLength > MPA_MAX_PRIVATE_DATA) {
    fail('ERR_MPA_PRIVATE_DATA_TOO_LONG', `MPA PD_Length ${pdLength} exceeds ${MPA_MAX_PRIVATE_DATA} (RFC 5044 7.1)`);
  }
  return MPA_FRAME_HEADER_SIZE + pdLength;
}

/** Decodes the MPA request or reply at the start of `bytes`; bytes after it are not looked at. */
export function decodeMpaFrame(bytes: Uint8Array, expect?: 'request' | 'reply'): MpaFrame & { byteLength: number } {
  const byteLength = mpaFrameLength(bytes, expect);
  if (byteLength === undefined || bytes.length < byteLength) {
    fail('ERR_MPA_SHORT_FRAME', `MPA frame needs ${byteLength ?? MPA_FRAME_HEADER_SIZE} bytes, have ${bytes.length}`);
  }
  const flags = bytes[16];
  const revision = bytes[17];
  if (revision !== 1 && revision !== 2) fail('ERR_MPA_BAD_REVISION', `MPA revision ${revision} is not 1 or 2 (RFC 6581)`);
  const privateData = bytes.subarray(MPA_FRAME_HEADER_SIZE, byteLength);
  // Rev 1 has no enhanced mode: the bit is reserved there and ignored, like other reserved bits.
  const enhanced = revision === 2 && (flags & FLAG_ENHANCED) !== 0;
  if (enhanced && privateData.length < MPA_IRD_ORD_SIZE) {
    fail('ERR_MPA_BAD_IRD_ORD', `enhanced MPA frame has ${privateData.length} bytes of private data, IRD/ORD needs 4 (RFC 6581)`);
  }
  return {
    kind: bytes[KEY_DIFF_AT] === KEY_REQUEST[KEY_DIFF_AT] ? 'request' : 'reply',
    markers: (flags & FLAG_MARKERS) !== 0,
    crc: (flags & FLAG_CRC) !== 0,
    reject: (flags & FLAG_REJECT) !== 0,
    revision,
    enhanced,
    privateData,
    byteLength,
  };
}

function checkKeyPrefix(bytes: Uint8Array, expect: 'request' | 'reply' | undefined): void {
  const n = Math.min(bytes.length, 16);
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    const ok = expect === 'request' ? b === KEY_REQUEST[i] : expect === 'reply' ? b === KEY_REPLY[i] : b === KEY_REQUEST[i] || b === KEY_REPLY[i];
    if (!ok) fail('ERR_MPA_BAD_KEY', `not an MPA ${expect ?? 'request or reply'} key at byte ${i} (RFC 5044 7.1)`);
  }
}

/** The 4-byte IRD/ORD word that starts enhanced private data. */
export function encodeIrdOrd(v: IrdOrd): Uint8Array {
  const out = new Uint8Array(MPA_IRD_ORD_SIZE);
  writeIrdOrd(out, 0, v);
  return out;
}

export function writeIrdOrd(target: Uint8Array, at: number, v: IrdOrd): void {
  checkUint('ird', v.ird, 14);
  checkUint('ord', v.ord, 14);
  putU16be(target, at, v.ird | (v.peerToPeer ? 0x8000 : 0) | (v.sendRtr ? 0x4000 : 0));
  putU16be(target, at + 2, v.ord | (v.writeRtr ? 0x8000 : 0) | (v.readRtr ? 0x4000 : 0));
}

export function decodeIrdOrd(privateData: Uint8Array): IrdOrd {
  if (privateData.length < MPA_IRD_ORD_SIZE) {
    fail('ERR_MPA_BAD_IRD_ORD', `IRD/ORD needs 4 bytes of private data, have ${privateData.length}`);
  }
  const ird = u16be(privateData, 0);
  const ord = u16be(privateData, 2);
  return {
    ird: ird & MPA_IRD_ORD_MAX,
    ord: ord & MPA_IRD_ORD_MAX,
    peerToPeer: (ird & 0x8000) !== 0,
    sendRtr: (ird & 0x4000) !== 0,
    writeRtr: (ord & 0x8000) !== 0,
    readRtr: (ord & 0x4000) !== 0,
  };
}
