// SPNEGO (RFC 4178) as SMB2 carries it in NEGOTIATE and SESSION_SETUP security buffers: the
// GSS-API InitialContextToken around a NegTokenInit ([MS-SPNG] NegTokenInit2 with negHints from a
// server), and NegTokenResp. A small DER reader and writer: definite lengths only, bounded depth
// and size, every length checked against what holds it (ERR_SPNEGO_BAD_TOKEN).
import { SmbDirectProtocolError } from '../errors.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const OID_SPNEGO = '1.3.6.1.5.5.2';
export const OID_NTLMSSP = '1.3.6.1.4.1.311.2.2.10';
export const OID_KERBEROS = '1.2.840.113554.1.2.2';
export const OID_MS_KERBEROS = '1.2.840.48018.1.2.2';
/** negState (RFC 4178 4.2.2). */
export const NEG_STATE = Object.freeze({ ACCEPT_COMPLETED: 0, ACCEPT_INCOMPLETE: 1, REJECT: 2, REQUEST_MIC: 3 });
/** The negHints name Windows and Samba servers send. */
export const SPNEGO_HINT_IGNORE = 'not_defined_in_RFC4178@please_ignore';
/** A token longer than this is refused (a bound on what a peer makes us parse). */
export const MAX_SPNEGO_TOKEN = 64 * 1024;

export interface SpnegoInit {
  kind: 'init';
  mechTypes: string[];
  /** The DER of the mechTypes list as sent (a mechListMIC is computed over it). */
  mechTypesDer: Uint8Array;
  mechToken?: Uint8Array;
  mechListMIC?: Uint8Array;
}
export interface SpnegoResp {
  kind: 'resp';
  negState?: number;
  supportedMech?: string;
  responseToken?: Uint8Array;
  mechListMIC?: Uint8Array;
}

function bad(message: string): never {
  throw new SmbDirectProtocolError('ERR_SPNEGO_BAD_TOKEN', message, { status: STATUS_INVALID_PARAMETER });
}

interface Tlv { tag: number; value: Uint8Array; end: number }

/** One TLV at `at` of `b` (definite length, at most 4 length bytes), inside `b`. */
function tlv(b: Uint8Array, at: number): Tlv {
  if (at + 2 > b.length) bad(`a DER element at ${at} past the ${b.length}-byte token`);
  const tag = b[at]!;
  let len = b[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) bad(`a DER length of ${n} bytes (indefinite or too long)`);
    if (p + n > b.length) bad('a DER length past the token');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    p += n;
  }
  if (len > b.length - p) bad(`a DER element of ${len} bytes at ${at} runs past its container`);
  return { tag, value: b.subarray(p, p + len), end: p + len };
}

/** The elements of a constructed value, in order. */
function children(value: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < value.length;) {
    const t = tlv(value, at);
    out.push(t);
    at = t.end;
    if (out.length > 64) bad('more than 64 elements in one DER value');
  }
  return out;
}

function expectTag(t: Tlv, tag: number, what: string): Uint8Array {
  if (t.tag !== tag) bad(`${what}: tag 0x${t.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return t.value;
}

function decodeOid(v: Uint8Array): string {
  if (v.length === 0 || v.length > 64) bad(`an OID of ${v.length} bytes`);
  const parts: number[] = [];
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    n = n * 128 + (v[i]! & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 128) bad('an OID arc too large');
    if (!(v[i]! & 0x80)) {
      if (parts.length === 0) parts.push(n < 80 ? Math.floor(n / 40) : 2, n < 80 ? n % 40 : n - 80);
      else parts.push(n);
      n = 0;
    } else if (i === v.length - 1) bad('an OID that ends inside an arc');
  }
  return parts.join('.');
}

function encodeOid(oid: string): Uint8Array {
  const arcs = oid.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isInteger(a) || a < 0)) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `not an OID: ${oid}`);
  const out: number[] = [];
  const push = (n: number) => {
    const bytes = [n & 0x7f];
    for (n = Math.floor(n / 128); n > 0; n = Math.floor(n / 128)) bytes.unshift((n & 0x7f) | 0x80);
    out.push(...bytes);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return der(0x06, Uint8Array.from(out));
}

function der(tag: number, ...values: Uint8Array[]): Uint8Array {
  const len = values.reduce((n, v) => n + v.length, 0);
  const head = len < 0x80 ? [tag, len] : len < 0x100 ? [tag, 0x81, len] : len < 0x10000 ? [tag, 0x82, len >> 8, len & 0xff] : [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(head.length + len);
  out.set(head, 0);
  let at = head.length;
  for (const v of values) { out.set(v, at); at += v.length; }
  return out;
}

/** Decodes a security buffer holding SPNEGO: a GSS-wrapped or bare NegTokenInit, or a NegTokenResp. */
export function decodeSpnego(token: Uint8Array): SpnegoInit | SpnegoResp {
  if (token.length > MAX_SPNEGO_TOKEN) bad(`a ${token.length}-byte token (at most ${MAX_SPNEGO_TOKEN})`);
  let outer = tlv(token, 0);
  if (outer.end !== token.length) bad('bytes after the token');
  if (outer.tag === 0x60) {
    const inner = children(outer.value);
    if (inner.length !== 2 || decodeOid(expectTag(inner[0]!, 0x06, 'GSS thisMech')) !== OID_SPNEGO) bad('a GSS token that is not SPNEGO');
    outer = inner[1]!;
  }
  if (outer.tag === 0xa0) {
    const seq = children(expectTag(children(outer.value)[0] ?? bad('an empty NegTokenInit'), 0x30, 'NegTokenInit'));
    const out: SpnegoInit = { kind: 'init', mechTypes: [], mechTypesDer: new Uint8Array(0) };
    for (const f of seq) {
      if (f.tag === 0xa0) {
        const list = children(f.value);
        if (list.length !== 1) bad('mechTypes is not one SEQUENCE');
        out.mechTypesDer = f.value;
        out.mechTypes = children(expectTag(list[0]!, 0x30, 'mechTypes')).map((o) => decodeOid(expectTag(o, 0x06, 'a mechType')));
      } else if (f.tag === 0xa2) out.mechToken = expectTag(children(f.value)[0] ?? bad('an empty mechToken'), 0x04, 'mechToken');
      else if (f.tag === 0xa3) {
        // mechListMIC (RFC 4178) or, from a server, negHints (NegTokenInit2): the latter is a SEQUENCE
        const v = children(f.value)[0];
        if (v?.tag === 0x04) out.mechListMIC = v.value;
      } else if (f.tag === 0xa4) out.mechListMIC = expectTag(children(f.value)[0] ?? bad('an empty mechListMIC'), 0x04, 'mechListMIC');
    }
    if (out.mechTypes.length === 0) bad('a NegTokenInit without mechTypes');
    return out;
  }
  if (outer.tag === 0xa1) {
    const seq = children(expectTag(children(outer.value)[0] ?? bad('an empty NegTokenResp'), 0x30, 'NegTokenResp'));
    const out: SpnegoResp = { kind: 'resp' };
    for (const f of seq) {
      const v = children(f.value)[0] ?? bad(`an empty field [${f.tag & 0x1f}]`);
      if (f.tag === 0xa0) {
        const e = expectTag(v, 0x0a, 'negState');
        if (e.length !== 1 || e[0]! > 3) bad('negState is not 0..3');
        out.negState = e[0];
      } else if (f.tag === 0xa1) out.supportedMech = decodeOid(expectTag(v, 0x06, 'supportedMech'));
      else if (f.tag === 0xa2) out.responseToken = expectTag(v, 0x04, 'responseToken');
      else if (f.tag === 0xa3) out.mechListMIC = expectTag(v, 0x04, 'mechListMIC');
    }
    return out;
  }
  return bad(`not SPNEGO: first tag 0x${outer.tag.toString(16)}`);
}

/** A NegTokenInit in its GSS wrapper: a client's first token (with the NTLM NEGOTIATE as mechToken),
 * or a server's in the NEGOTIATE response (with `hint`, as [MS-SPNG] NegTokenInit2). */
export function encodeSpnegoInit(o: { mechTypes: readonly string[]; mechToken?: Uint8Array; hint?: string }): Uint8Array {
  const fields = [der(0xa0, der(0x30, ...o.mechTypes.map(encodeOid)))];
  if (o.mechToken) fields.push(der(0xa2, der(0x04, o.mechToken)));
  if (o.hint !== undefined) fields.push(der(0xa3, der(0x30, der(0xa0, der(0x1b, Buffer.from(o.hint, 'latin1'))))));
  return der(0x60, encodeOid(OID_SPNEGO), der(0xa0, der(0x30, ...fields)));
}

/** A NegTokenResp (no GSS wrapper, as both sides send it after the first token). */
export function encodeSpnegoResp(o: { negState?: number; supportedMech?: string; responseToken?: Uint8Array; mechListMIC?: Uint8Array }): Uint8Array {
  const fields: Uint8Array[] = [];
  if (o.negState !== undefined) fields.push(der(0xa0, der(0x0a, Uint8Array.of(o.negState))));
  if (o.supportedMech) fields.push(der(0xa1, encodeOid(o.supportedMech)));
  if (o.responseToken) fields.push(der(0xa2, der(0x04, o.responseToken)));
  if (o.mechListMIC) fields.push(der(0xa3, der(0x04, o.mechListMIC)));
  return der(0xa1, der(0x30, ...fields));
}
