// Security descriptors ([MS-DTYP] 2.4.6, self-relative form; 2.4.2 SIDs; 2.4.5 ACLs; 2.4.4 ACEs) as
// SMB2 QUERY_INFO / SET_INFO (SMB2_0_INFO_SECURITY) and the SecD create context carry them: pure
// codecs. The parts are kept as the exact bytes they came in (a SID, a whole ACL), checked on the
// way in, so that what a client sets comes back byte for byte; `encodeAcl` and `sidFromString`
// build new ones.
import { putU16le, putU32le, u16le, u32le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

/** SECURITY_INFORMATION bits of AdditionalInformation ([MS-DTYP] 2.4.7). */
export const SECINFO = Object.freeze({ OWNER: 0x1, GROUP: 0x2, DACL: 0x4, SACL: 0x8, LABEL: 0x10 });
/** SECURITY_DESCRIPTOR Control bits ([MS-DTYP] 2.4.6). */
export const SE_CONTROL = Object.freeze({
  OWNER_DEFAULTED: 0x0001, GROUP_DEFAULTED: 0x0002, DACL_PRESENT: 0x0004, DACL_DEFAULTED: 0x0008, SACL_PRESENT: 0x0010,
  SACL_DEFAULTED: 0x0020, DACL_AUTO_INHERIT_REQ: 0x0100, SACL_AUTO_INHERIT_REQ: 0x0200, DACL_AUTO_INHERITED: 0x0400, SACL_AUTO_INHERITED: 0x0800, DACL_PROTECTED: 0x1000,
  SACL_PROTECTED: 0x2000, SELF_RELATIVE: 0x8000,
});
/** ACE types this server builds ([MS-DTYP] 2.4.4.1). */
export const ACE_TYPE = Object.freeze({ ACCESS_ALLOWED: 0, ACCESS_DENIED: 1, SYSTEM_AUDIT: 2 });
/** ACE flags ([MS-DTYP] 2.4.4.1). */
export const ACE_FLAG = Object.freeze({ OBJECT_INHERIT: 0x1, CONTAINER_INHERIT: 0x2, NO_PROPAGATE_INHERIT: 0x4, INHERIT_ONLY: 0x8, INHERITED: 0x10 });

/** A self-relative security descriptor; each part is its wire bytes (a SID, an ACL). A DACL_PRESENT
 * control without `dacl` is a NULL DACL (everyone may do everything). */
export interface SecurityDescriptor {
  control: number;
  owner?: Uint8Array;
  group?: Uint8Array;
  sacl?: Uint8Array;
  dacl?: Uint8Array;
}

export interface Ace { type: number; flags: number; mask: number; sid: Uint8Array }

/** At most this many bytes in a descriptor (an ACL's size is 16 bits; the server keeps what clients
 * set in memory, so a bound per descriptor bounds what one SET_INFO can make it keep). */
export const MAX_SECURITY_DESCRIPTOR = 65536;

function bad(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

/** The length of the SID at `at` (revision 1, at most 15 sub-authorities, inside `b`). */
function sidLength(b: Uint8Array, at: number, end: number, what: string): number {
  if (at + 8 > end) bad(`${what}: a SID needs 8 bytes at ${at}, ${end - at} there`);
  if (b[at] !== 1) bad(`${what}: SID revision ${b[at]}`);
  const n = b[at + 1]!;
  if (n > 15) bad(`${what}: ${n} sub-authorities (at most 15)`);
  const len = 8 + 4 * n;
  if (at + len > end) bad(`${what}: a SID of ${len} bytes past the end`);
  return len;
}

/** The SID at the start of `b`, checked: its own bytes. */
export function decodeSid(b: Uint8Array): Uint8Array {
  return b.subarray(0, sidLength(b, 0, b.length, 'SID'));
}

/** ACE types with an object GUID before their SID ([MS-DTYP] 2.4.4.3 and kin). */
const OBJECT_ACE_TYPES = new Set([0x5, 0x6, 0x7, 0x8, 0xb, 0xc, 0xf, 0x10]);

/** The length of the ACL at `at`, checked: revision 2 or 4, AclSize inside the buffer, every ACE
 * inside the ACL with a size of at least 8 that is a multiple of 4, and allow/deny/audit ACEs
 * holding a SID. */
function aclLength(b: Uint8Array, at: number, end: number, what: string): number {
  if (at + 8 > end) bad(`${what}: an ACL needs 8 bytes at ${at}`);
  const rev = b[at]!;
  if (rev !== 2 && rev !== 4) bad(`${what}: ACL revision ${rev}`);
  const size = u16le(b, at + 2);
  const count = u16le(b, at + 4);
  if (size < 8 || at + size > end) bad(`${what}: AclSize ${size} past the descriptor`);
  let p = at + 8;
  for (let i = 0; i < count; i++) {
    if (p + 4 > at + size) bad(`${what}: ACE ${i} of ${count} past AclSize ${size}`);
    const aceSize = u16le(b, p + 2);
    if (aceSize < 8 || aceSize % 4 !== 0 || p + aceSize > at + size) bad(`${what}: ACE ${i} of size ${aceSize}`);
    const type = b[p]!;
    if (type <= 0x13 && !OBJECT_ACE_TYPES.has(type)) {
      // ACEs of the non-object kinds: a mask then a SID filling the rest (application data may follow)
      sidLength(b, p + 8, p + aceSize, `${what}, ACE ${i}`);
    }
    p += aceSize;
  }
  return size;
}

/** A self-relative security descriptor, every offset and length checked (ERR_SMB2_BAD_REQUEST,
 * STATUS_INVALID_PARAMETER). */
export function decodeSecurityDescriptor(b: Uint8Array): SecurityDescriptor {
  if (b.length < 20) bad(`a security descriptor needs 20 bytes, got ${b.length}`);
  if (b.length > MAX_SECURITY_DESCRIPTOR) bad(`a security descriptor of ${b.length} bytes`);
  if (b[0] !== 1) bad(`security descriptor revision ${b[0]}`);
  const control = u16le(b, 2);
  if (!(control & SE_CONTROL.SELF_RELATIVE)) bad('a security descriptor that is not self-relative');
  const part = (off: number, kind: 'sid' | 'acl', what: string): Uint8Array | undefined => {
    if (off === 0) return undefined;
    if (off < 20 || off >= b.length) bad(`${what} at offset ${off} outside the ${b.length}-byte descriptor`);
    const len = kind === 'sid' ? sidLength(b, off, b.length, what) : aclLength(b, off, b.length, what);
    return b.subarray(off, off + len);
  };
  const sd: SecurityDescriptor = { control };
  const owner = part(u32le(b, 4), 'sid', 'the owner');
  const group = part(u32le(b, 8), 'sid', 'the group');
  const sacl = control & SE_CONTROL.SACL_PRESENT ? part(u32le(b, 12), 'acl', 'the SACL') : undefined;
  const dacl = control & SE_CONTROL.DACL_PRESENT ? part(u32le(b, 16), 'acl', 'the DACL') : undefined;
  if (owner) sd.owner = owner;
  if (group) sd.group = group;
  if (sacl) sd.sacl = sacl;
  if (dacl) sd.dacl = dacl;
  return sd;
}

/** The self-relative bytes: the 20-byte header, then the owner, group, SACL and DACL present. */
export function encodeSecurityDescriptor(sd: SecurityDescriptor): Uint8Array {
  const parts = [sd.owner, sd.group, sd.sacl, sd.dacl];
  const out = new Uint8Array(20 + parts.reduce((n, p) => n + (p?.length ?? 0), 0));
  out[0] = 1;
  putU16le(out, 2, sd.control | SE_CONTROL.SELF_RELATIVE);
  let at = 20;
  parts.forEach((p, i) => {
    if (!p) return;
    putU32le(out, 4 + 4 * i, at);
    out.set(p, at);
    at += p.length;
  });
  return out;
}

/** "S-1-5-32-544" as SID bytes. */
export function sidFromString(s: string): Uint8Array {
  const m = /^S-1-(\d+)((?:-\d+){0,15})$/i.exec(s);
  if (!m) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `not a SID: ${s}`);
  const subs = m[2] ? m[2].slice(1).split('-').map(Number) : [];
  const b = new Uint8Array(8 + 4 * subs.length);
  b[0] = 1;
  b[1] = subs.length;
  const auth = BigInt(m[1]!);
  for (let i = 0; i < 6; i++) b[2 + i] = Number((auth >> BigInt(8 * (5 - i))) & 0xffn);
  subs.forEach((v, i) => {
    if (v > 0xffffffff) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `a sub-authority past 32 bits in ${s}`);
    putU32le(b, 8 + 4 * i, v);
  });
  return b;
}

/** SID bytes as "S-1-5-32-544". */
export function sidToString(b: Uint8Array): string {
  const sid = decodeSid(b);
  let auth = 0n;
  for (let i = 0; i < 6; i++) auth = (auth << 8n) | BigInt(sid[2 + i]!);
  const subs = Array.from({ length: sid[1]! }, (_, i) => u32le(sid, 8 + 4 * i));
  return ['S', '1', auth.toString(), ...subs.map(String)].join('-');
}

/** An ACL (revision 2) of allow/deny/audit ACEs. */
export function encodeAcl(aces: readonly Ace[]): Uint8Array {
  const size = 8 + aces.reduce((n, a) => n + 8 + a.sid.length, 0);
  const out = new Uint8Array(size);
  out[0] = 2;
  putU16le(out, 2, size);
  putU16le(out, 4, aces.length);
  let at = 8;
  for (const a of aces) {
    out[at] = a.type;
    out[at + 1] = a.flags;
    putU16le(out, at + 2, 8 + a.sid.length);
    putU32le(out, at + 4, a.mask >>> 0);
    out.set(a.sid, at + 8);
    at += 8 + a.sid.length;
  }
  return out;
}
