// NTLMSSP messages ([MS-NLMP] 2.2.1: NEGOTIATE, CHALLENGE, AUTHENTICATE) and AV pairs (2.2.2.1):
// pure codecs. Every field's (length, offset) is checked against the message; strings are UTF-16LE
// (NTLMSSP_NEGOTIATE_UNICODE, which SMB2 clients always set). The cryptography is in src/smb2/auth/.
import { putU16le, putU32le, u16le, u32le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const NTLMSSP_SIGNATURE = Uint8Array.from([0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00]); // "NTLMSSP\0"
export const NTLMSSP = Object.freeze({
  NEGOTIATE_UNICODE: 0x00000001, NEGOTIATE_OEM: 0x00000002, REQUEST_TARGET: 0x00000004, NEGOTIATE_SIGN: 0x00000010,
  NEGOTIATE_SEAL: 0x00000020, NEGOTIATE_LM_KEY: 0x00000080, NEGOTIATE_NTLM: 0x00000200, ANONYMOUS: 0x00000800,
  NEGOTIATE_ALWAYS_SIGN: 0x00008000, TARGET_TYPE_DOMAIN: 0x00010000, TARGET_TYPE_SERVER: 0x00020000,
  NEGOTIATE_EXTENDED_SESSIONSECURITY: 0x00080000, NEGOTIATE_TARGET_INFO: 0x00800000, NEGOTIATE_VERSION: 0x02000000,
  NEGOTIATE_128: 0x20000000, NEGOTIATE_KEY_EXCH: 0x40000000, NEGOTIATE_56: 0x80000000,
});
/** AV pair ids (2.2.2.1). */
export const MSV_AV = Object.freeze({
  EOL: 0, NB_COMPUTER_NAME: 1, NB_DOMAIN_NAME: 2, DNS_COMPUTER_NAME: 3, DNS_DOMAIN_NAME: 4, DNS_TREE_NAME: 5,
  FLAGS: 6, TIMESTAMP: 7, SINGLE_HOST: 8, TARGET_NAME: 9, CHANNEL_BINDINGS: 10,
});
/** MsvAvFlags bit: the AUTHENTICATE message carries a MIC. */
export const MSV_AV_FLAG_MIC = 0x00000002;

/** A message longer than this is refused (Windows' tokens are a few hundred bytes; a bound on what
 * a peer makes us parse). */
export const MAX_NTLMSSP_MESSAGE = 64 * 1024;

export interface AvPair { id: number; value: Uint8Array }

export interface NtlmNegotiate { flags: number; domain: string; workstation: string }
export interface NtlmChallenge { flags: number; targetName: string; serverChallenge: Uint8Array; targetInfo: AvPair[]; /** TargetInfo as sent (the client hashes it unchanged) */ targetInfoBytes: Uint8Array }
export interface NtlmAuthenticate {
  flags: number;
  lmChallengeResponse: Uint8Array;
  ntChallengeResponse: Uint8Array;
  domain: string;
  user: string;
  workstation: string;
  encryptedRandomSessionKey: Uint8Array;
  /** The 16-byte MIC at offset 72 when the payload leaves room for it, else undefined. */
  mic?: Uint8Array;
}

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_NTLM_BAD_MESSAGE', message, { status: STATUS_INVALID_PARAMETER });
}

function header(b: Uint8Array, type: number, fixed: number): void {
  if (b.length < fixed) invalid(`an NTLMSSP type ${type} message needs ${fixed} bytes, got ${b.length}`);
  if (b.length > MAX_NTLMSSP_MESSAGE) invalid(`an NTLMSSP message of ${b.length} bytes (at most ${MAX_NTLMSSP_MESSAGE})`);
  for (let i = 0; i < 8; i++) if (b[i] !== NTLMSSP_SIGNATURE[i]) invalid('not an NTLMSSP message (signature)');
  const t = u32le(b, 8);
  if (t !== type) invalid(`NTLMSSP MessageType ${t}, expected ${type}`);
}

/** A (Len, MaxLen, Offset) field at `at`: the bytes it names, checked to lie in the message. */
function field(b: Uint8Array, at: number, what: string): Uint8Array {
  const len = u16le(b, at), off = u32le(b, at + 4);
  if (len === 0) return b.subarray(0, 0);
  if (off > b.length || len > b.length - off) invalid(`${what}: [${off}, +${len}) outside the ${b.length}-byte message`);
  return b.subarray(off, off + len);
}

function utf16(bytes: Uint8Array, what: string): string {
  if (bytes.length % 2 !== 0) invalid(`${what}: an odd number of bytes for UTF-16`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf16le');
}

export function decodeAvPairs(b: Uint8Array): AvPair[] {
  const out: AvPair[] = [];
  let at = 0;
  for (;;) {
    if (at + 4 > b.length) invalid('AV pairs without MsvAvEOL');
    const id = u16le(b, at), len = u16le(b, at + 2);
    if (at + 4 + len > b.length) invalid(`AV pair ${id} of ${len} bytes runs past TargetInfo`);
    if (id === MSV_AV.EOL) return out;
    out.push({ id, value: b.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
    if (out.length > 64) invalid('more than 64 AV pairs');
  }
}

export function encodeAvPairs(pairs: readonly AvPair[]): Uint8Array {
  const out = new Uint8Array(pairs.reduce((n, p) => n + 4 + p.value.length, 4));
  let at = 0;
  for (const p of pairs) {
    putU16le(out, at, p.id);
    putU16le(out, at + 2, p.value.length);
    out.set(p.value, at + 4);
    at += 4 + p.value.length;
  }
  return out; // MsvAvEOL: the 4 zero bytes left at the end
}

/** The UTF-16LE bytes of `s` (an AV pair's or a field's value). */
export function utf16le(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'utf16le'));
}

export function decodeNtlmNegotiate(b: Uint8Array): NtlmNegotiate {
  header(b, 1, 32);
  const flags = u32le(b, 12);
  // OEM strings here (2.2.1.1): ASCII in practice, and clients leave them empty
  const ascii = (x: Uint8Array) => Buffer.from(x.buffer, x.byteOffset, x.length).toString('latin1');
  return { flags, domain: ascii(field(b, 16, 'DomainName')), workstation: ascii(field(b, 24, 'Workstation')) };
}

export function decodeNtlmChallenge(b: Uint8Array): NtlmChallenge {
  header(b, 2, 48);
  const flags = u32le(b, 20);
  const targetInfoBytes = field(b, 40, 'TargetInfo');
  return {
    flags, targetName: utf16(field(b, 12, 'TargetName'), 'TargetName'), serverChallenge: b.subarray(24, 32),
    targetInfo: targetInfoBytes.length ? decodeAvPairs(targetInfoBytes) : [], targetInfoBytes,
  };
}

export function decodeNtlmAuthenticate(b: Uint8Array): NtlmAuthenticate {
  header(b, 3, 64);
  const fields = [12, 20, 28, 36, 44, 52].map((at, i) => field(b, at, ['LmChallengeResponse', 'NtChallengeResponse', 'DomainName', 'UserName', 'Workstation', 'EncryptedRandomSessionKey'][i]!));
  // the payload's lowest offset says whether Version (64) and MIC (72) are there
  let payloadStart = b.length;
  for (const at of [12, 20, 28, 36, 44, 52]) if (u16le(b, at) > 0) payloadStart = Math.min(payloadStart, u32le(b, at + 4));
  if (payloadStart < 64) invalid(`an AUTHENTICATE payload at offset ${payloadStart}, inside the fixed part`);
  return {
    flags: u32le(b, 60), lmChallengeResponse: fields[0]!, ntChallengeResponse: fields[1]!,
    domain: utf16(fields[2]!, 'DomainName'), user: utf16(fields[3]!, 'UserName'), workstation: utf16(fields[4]!, 'Workstation'),
    encryptedRandomSessionKey: fields[5]!, mic: payloadStart >= 88 ? b.subarray(72, 88) : undefined,
  };
}

// ---- encoders: the payload follows the fixed part, fields in the order given ----------------------

function build(type: number, fixed: number, parts: Array<{ at: number; bytes: Uint8Array }>, fill: (b: Uint8Array) => void): Uint8Array {
  const out = new Uint8Array(fixed + parts.reduce((n, p) => n + p.bytes.length, 0));
  if (out.length > MAX_NTLMSSP_MESSAGE) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `an NTLMSSP message of ${out.length} bytes`);
  out.set(NTLMSSP_SIGNATURE, 0);
  putU32le(out, 8, type);
  let off = fixed;
  for (const p of parts) {
    putU16le(out, p.at, p.bytes.length);
    putU16le(out, p.at + 2, p.bytes.length);
    putU32le(out, p.at + 4, off);
    out.set(p.bytes, off);
    off += p.bytes.length;
  }
  fill(out);
  return out;
}

export function encodeNtlmNegotiate(flags: number): Uint8Array {
  return build(1, 32, [], (b) => putU32le(b, 12, flags >>> 0));
}

export function encodeNtlmChallenge(c: { flags: number; targetName: string; serverChallenge: Uint8Array; targetInfo: readonly AvPair[] }): Uint8Array {
  if (c.serverChallenge.length !== 8) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', 'a server challenge is 8 bytes');
  return build(2, 56, [{ at: 12, bytes: utf16le(c.targetName) }, { at: 40, bytes: encodeAvPairs(c.targetInfo) }], (b) => {
    putU32le(b, 20, c.flags >>> 0);
    b.set(c.serverChallenge, 24);
    b.set([6, 1, 0, 0, 0, 0, 0, 15], 48); // Version: 6.1, build 0, NTLMSSP revision 15 (as Samba and ksmbd send)
  });
}

export function encodeNtlmAuthenticate(a: Omit<NtlmAuthenticate, 'mic'>): Uint8Array {
  return build(3, 88, [
    { at: 12, bytes: a.lmChallengeResponse }, { at: 20, bytes: a.ntChallengeResponse }, { at: 28, bytes: utf16le(a.domain) },
    { at: 36, bytes: utf16le(a.user) }, { at: 44, bytes: utf16le(a.workstation) }, { at: 52, bytes: a.encryptedRandomSessionKey },
  ], (b) => putU32le(b, 60, a.flags >>> 0)); // Version and MIC left zero (the MIC is computed over the message with it zeroed)
}
