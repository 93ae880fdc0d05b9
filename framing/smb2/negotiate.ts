// SMB2 NEGOTIATE request and response ([MS-SMB2] 2.2.3 / 2.2.4) with the 3.1.1 negotiate contexts
// (2.2.3.1): pure codecs over whole PDUs (header included), offsets counted from the header's start.
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_FLAGS, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit, decodeSmb2Header, writeSmb2Header } from './header.js';
import { STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED } from './ntstatus.js';

export const SMB2_DIALECT = Object.freeze({ SMB202: 0x0202, SMB210: 0x0210, SMB300: 0x0300, SMB302: 0x0302, SMB311: 0x0311, WILDCARD: 0x02ff });
export const SMB2_NEGOTIATE_SIGNING_ENABLED = 0x0001;
export const SMB2_NEGOTIATE_SIGNING_REQUIRED = 0x0002;
/** Capabilities (2.2.3). */
export const SMB2_GLOBAL_CAP = Object.freeze({
  DFS: 0x01, LEASING: 0x02, LARGE_MTU: 0x04, MULTI_CHANNEL: 0x08, PERSISTENT_HANDLES: 0x10, DIRECTORY_LEASING: 0x20, ENCRYPTION: 0x40,
});
/** Negotiate context types (2.2.3.1). */
export const SMB2_CONTEXT = Object.freeze({
  PREAUTH_INTEGRITY_CAPABILITIES: 0x0001, ENCRYPTION_CAPABILITIES: 0x0002, COMPRESSION_CAPABILITIES: 0x0003,
  NETNAME_NEGOTIATE_CONTEXT_ID: 0x0005, TRANSPORT_CAPABILITIES: 0x0006, RDMA_TRANSFORM_CAPABILITIES: 0x0007,
  SIGNING_CAPABILITIES: 0x0008,
});
export const SMB2_PREAUTH_INTEGRITY_SHA512 = 0x0001;
export const SMB2_CIPHER = Object.freeze({ AES_128_CCM: 0x0001, AES_128_GCM: 0x0002, AES_256_CCM: 0x0003, AES_256_GCM: 0x0004 });
export const SMB2_SIGNING = Object.freeze({ HMAC_SHA256: 0x0000, AES_CMAC: 0x0001, AES_GMAC: 0x0002 });

const REQUEST_FIXED = 36; // StructureSize 36, the dialects follow
const RESPONSE_FIXED = 64; // StructureSize 65 counts one byte of the buffer
/** A request offers at most this many dialects and contexts (Windows sends 5 and 6): a bound on
 * what a peer makes us parse. */
export const MAX_DIALECTS = 64;
export const MAX_NEGOTIATE_CONTEXTS = 32;

/** A negotiate context as it is on the wire; the known types are also given parsed. */
export interface NegotiateContext {
  type: number;
  /** A view of the context's data (not a copy). */
  data: Uint8Array;
}

export interface PreauthIntegrity { hashAlgorithms: number[]; salt: Uint8Array }

export interface Smb2NegotiateRequest {
  header: Smb2Header;
  dialects: number[];
  securityMode: number;
  capabilities: number;
  clientGuid: Uint8Array;
  /** 3.1.1 only (present when 0x0311 is offered). */
  contexts: NegotiateContext[];
  preauthIntegrity?: PreauthIntegrity;
  /** Ciphers offered (ENCRYPTION_CAPABILITIES), in the client's order. */
  ciphers?: number[];
  /** Signing algorithms offered (SIGNING_CAPABILITIES), in the client's order. */
  signingAlgorithms?: number[];
}

export interface Smb2NegotiateResponse {
  header: Smb2Header;
  securityMode: number;
  dialect: number;
  serverGuid: Uint8Array;
  capabilities: number;
  maxTransactSize: number;
  maxReadSize: number;
  maxWriteSize: number;
  systemTime: bigint;
  serverStartTime: bigint;
  /** A view of the security buffer (SPNEGO NegTokenInit, or empty). */
  securityBuffer: Uint8Array;
  contexts: NegotiateContext[];
  preauthIntegrity?: PreauthIntegrity;
  cipher?: number;
  signingAlgorithm?: number;
}

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_NEGOTIATE', message, { status: STATUS_INVALID_PARAMETER });
}

function expectCommand(h: Smb2Header, response: boolean): void {
  if (h.command !== SMB2_COMMAND.NEGOTIATE) invalid(`command 0x${h.command.toString(16)} is not NEGOTIATE`);
  if (((h.flags & SMB2_FLAGS.SERVER_TO_REDIR) !== 0) !== response) invalid(`a NEGOTIATE ${response ? 'response' : 'request'} with SERVER_TO_REDIR ${response ? 'clear' : 'set'}`);
}

/** Reads `count` negotiate contexts at `offset` (each 8-byte aligned from the header's start). */
export function decodeNegotiateContexts(pdu: Uint8Array, offset: number, count: number): NegotiateContext[] {
  if (count > MAX_NEGOTIATE_CONTEXTS) invalid(`${count} negotiate contexts (at most ${MAX_NEGOTIATE_CONTEXTS})`);
  const out: NegotiateContext[] = [];
  let at = offset;
  for (let i = 0; i < count; i++) {
    if (i > 0) at = (at + 7) & ~7;
    if (at % 8 !== 0 || at < SMB2_HEADER_SIZE || at + 8 > pdu.length) invalid(`negotiate context ${i} at offset ${at}: not 8-byte aligned or past the ${pdu.length}-byte PDU`);
    const type = u16le(pdu, at), len = u16le(pdu, at + 2);
    if (at + 8 + len > pdu.length) invalid(`negotiate context ${i} (type ${type}) of ${len} bytes runs past the PDU`);
    out.push({ type, data: pdu.subarray(at + 8, at + 8 + len) });
    at += 8 + len;
  }
  return out;
}

/** A list of u16 ids after a u16 count (and, for preauth, a salt length). */
function u16List(data: Uint8Array, at: number, count: number, what: string): number[] {
  if (count === 0 || at + 2 * count > data.length) invalid(`${what}: ${count} entries do not fit its ${data.length}-byte context`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(u16le(data, at + 2 * i));
  return out;
}

function parsePreauth(data: Uint8Array): PreauthIntegrity {
  if (data.length < 4) invalid('PREAUTH_INTEGRITY_CAPABILITIES shorter than 4 bytes');
  const n = u16le(data, 0), saltLength = u16le(data, 2);
  const hashAlgorithms = u16List(data, 4, n, 'PREAUTH_INTEGRITY_CAPABILITIES');
  const saltAt = 4 + 2 * n;
  if (saltAt + saltLength > data.length) invalid('PREAUTH_INTEGRITY_CAPABILITIES: the salt runs past its context');
  return { hashAlgorithms, salt: data.subarray(saltAt, saltAt + saltLength) };
}

function parseIdList(data: Uint8Array, what: string): number[] {
  if (data.length < 2) invalid(`${what} shorter than 2 bytes`);
  return u16List(data, 2, u16le(data, 0), what);
}

/** The known contexts' fields (each at most once: a duplicate is STATUS_INVALID_PARAMETER, 3.3.5.4). */
function parseKnown(contexts: NegotiateContext[]): Pick<Smb2NegotiateRequest, 'preauthIntegrity' | 'ciphers' | 'signingAlgorithms'> {
  const out: Pick<Smb2NegotiateRequest, 'preauthIntegrity' | 'ciphers' | 'signingAlgorithms'> = {};
  const seen = new Set<number>();
  for (const c of contexts) {
    if (c.type === SMB2_CONTEXT.PREAUTH_INTEGRITY_CAPABILITIES || c.type === SMB2_CONTEXT.ENCRYPTION_CAPABILITIES || c.type === SMB2_CONTEXT.SIGNING_CAPABILITIES) {
      if (seen.has(c.type)) invalid(`negotiate context type ${c.type} more than once`);
      seen.add(c.type);
    }
    if (c.type === SMB2_CONTEXT.PREAUTH_INTEGRITY_CAPABILITIES) out.preauthIntegrity = parsePreauth(c.data);
    else if (c.type === SMB2_CONTEXT.ENCRYPTION_CAPABILITIES) out.ciphers = parseIdList(c.data, 'ENCRYPTION_CAPABILITIES');
    else if (c.type === SMB2_CONTEXT.SIGNING_CAPABILITIES) out.signingAlgorithms = parseIdList(c.data, 'SIGNING_CAPABILITIES');
  }
  return out;
}

/** Decodes a NEGOTIATE request PDU (header included). */
export function decodeSmb2NegotiateRequest(pdu: Uint8Array): Smb2NegotiateRequest {
  const header = decodeSmb2Header(pdu);
  expectCommand(header, false);
  const b = SMB2_HEADER_SIZE;
  if (pdu.length < b + REQUEST_FIXED) invalid(`a NEGOTIATE request needs ${b + REQUEST_FIXED} bytes, got ${pdu.length}`);
  if (u16le(pdu, b) !== 36) invalid(`NEGOTIATE request StructureSize ${u16le(pdu, b)} (must be 36)`);
  const count = u16le(pdu, b + 2);
  if (count === 0) throw new SmbDirectProtocolError('ERR_SMB2_BAD_NEGOTIATE', 'a NEGOTIATE request with no dialect', { status: STATUS_INVALID_PARAMETER });
  if (count > MAX_DIALECTS) invalid(`${count} dialects (at most ${MAX_DIALECTS})`);
  const dialectsAt = b + REQUEST_FIXED;
  if (dialectsAt + 2 * count > pdu.length) invalid(`${count} dialects run past the ${pdu.length}-byte PDU`);
  const dialects: number[] = [];
  for (let i = 0; i < count; i++) dialects.push(u16le(pdu, dialectsAt + 2 * i));
  let contexts: NegotiateContext[] = [];
  if (dialects.includes(SMB2_DIALECT.SMB311)) {
    const ctxOffset = u32le(pdu, b + 28), ctxCount = u16le(pdu, b + 32);
    if (ctxCount === 0) invalid('a NEGOTIATE request offering 3.1.1 without negotiate contexts');
    if (ctxOffset < dialectsAt + 2 * count) invalid(`NegotiateContextOffset ${ctxOffset} inside the dialects`);
    contexts = decodeNegotiateContexts(pdu, ctxOffset, ctxCount);
  }
  const known = parseKnown(contexts);
  if (dialects.includes(SMB2_DIALECT.SMB311) && !known.preauthIntegrity) invalid('3.1.1 offered without PREAUTH_INTEGRITY_CAPABILITIES');
  return {
    header, dialects, securityMode: u16le(pdu, b + 4), capabilities: u32le(pdu, b + 8),
    clientGuid: pdu.subarray(b + 12, b + 28), contexts, ...known,
  };
}

/** Decodes a NEGOTIATE response PDU (header included). A failure status (an error response body)
 * throws ERR_SMB2_NEGOTIATE_FAILED with the server's NTSTATUS as `status`. */
export function decodeSmb2NegotiateResponse(pdu: Uint8Array): Smb2NegotiateResponse {
  const header = decodeSmb2Header(pdu);
  expectCommand(header, true);
  if (header.status !== 0) throw new SmbDirectProtocolError('ERR_SMB2_NEGOTIATE_FAILED', `NEGOTIATE failed with status 0x${header.status.toString(16)}`, { status: header.status });
  const b = SMB2_HEADER_SIZE;
  if (pdu.length < b + RESPONSE_FIXED) invalid(`a NEGOTIATE response needs ${b + RESPONSE_FIXED} bytes, got ${pdu.length}`);
  if (u16le(pdu, b) !== 65) invalid(`NEGOTIATE response StructureSize ${u16le(pdu, b)} (must be 65)`);
  const dialect = u16le(pdu, b + 4);
  const secOffset = u16le(pdu, b + 56), secLength = u16le(pdu, b + 58);
  if (secLength > 0 && (secOffset < b + RESPONSE_FIXED || secOffset + secLength > pdu.length)) invalid(`security buffer [${secOffset}, +${secLength}) outside the PDU's buffer`);
  let contexts: NegotiateContext[] = [];
  if (dialect === SMB2_DIALECT.SMB311) {
    const ctxCount = u16le(pdu, b + 6), ctxOffset = u32le(pdu, b + 60);
    if (ctxCount === 0) invalid('a 3.1.1 NEGOTIATE response without negotiate contexts');
    contexts = decodeNegotiateContexts(pdu, ctxOffset, ctxCount);
  }
  const known = parseKnown(contexts);
  // the server picks one of each (3.3.5.4): a list of several is not a choice
  if (known.ciphers && known.ciphers.length !== 1) invalid(`the server answered ${known.ciphers.length} ciphers (must choose one)`);
  if (known.signingAlgorithms && known.signingAlgorithms.length !== 1) invalid(`the server answered ${known.signingAlgorithms.length} signing algorithms (must choose one)`);
  if (known.preauthIntegrity && known.preauthIntegrity.hashAlgorithms.length !== 1) invalid('the server answered several preauth hash algorithms');
  return {
    header, securityMode: u16le(pdu, b + 2), dialect, serverGuid: pdu.subarray(b + 8, b + 24), capabilities: u32le(pdu, b + 24),
    maxTransactSize: u32le(pdu, b + 28), maxReadSize: u32le(pdu, b + 32), maxWriteSize: u32le(pdu, b + 36),
    systemTime: u64le(pdu, b + 40), serverStartTime: u64le(pdu, b + 48),
    securityBuffer: pdu.subarray(secOffset, secOffset + secLength), contexts,
    preauthIntegrity: known.preauthIntegrity, cipher: known.ciphers?.[0], signingAlgorithm: known.signingAlgorithms?.[0],
  };
}

// ---- encoders ----------------------------------------------------------------------------------

export interface NegotiateContextInit { type: number; data: Uint8Array }

export function preauthContext(salt: Uint8Array, hashAlgorithms: readonly number[] = [SMB2_PREAUTH_INTEGRITY_SHA512]): NegotiateContextInit {
  const data = new Uint8Array(4 + 2 * hashAlgorithms.length + salt.length);
  putU16le(data, 0, checkUint('hash algorithm count', hashAlgorithms.length, 16));
  putU16le(data, 2, checkUint('salt length', salt.length, 16));
  hashAlgorithms.forEach((h, i) => putU16le(data, 4 + 2 * i, checkUint('hash algorithm', h, 16)));
  data.set(salt, 4 + 2 * hashAlgorithms.length);
  return { type: SMB2_CONTEXT.PREAUTH_INTEGRITY_CAPABILITIES, data };
}

function idListContext(type: number, ids: readonly number[]): NegotiateContextInit {
  const data = new Uint8Array(2 + 2 * ids.length);
  putU16le(data, 0, checkUint('count', ids.length, 16));
  ids.forEach((id, i) => putU16le(data, 2 + 2 * i, checkUint('id', id, 16)));
  return { type, data };
}

export const encryptionContext = (ciphers: readonly number[]): NegotiateContextInit => idListContext(SMB2_CONTEXT.ENCRYPTION_CAPABILITIES, ciphers);
export const signingContext = (algorithms: readonly number[]): NegotiateContextInit => idListContext(SMB2_CONTEXT.SIGNING_CAPABILITIES, algorithms);

/** Contexts laid out from `start` (8-byte aligned), each padded to 8 but the last. */
function contextsSize(start: number, contexts: readonly NegotiateContextInit[]): number {
  let at = start;
  contexts.forEach((c, i) => { at = (i > 0 ? (at + 7) & ~7 : at) + 8 + c.data.length; });
  return at;
}

function writeContexts(out: Uint8Array, start: number, contexts: readonly NegotiateContextInit[]): void {
  let at = start;
  contexts.forEach((c, i) => {
    if (i > 0) at = (at + 7) & ~7;
    putU16le(out, at, checkUint('context type', c.type, 16));
    putU16le(out, at + 2, checkUint('context length', c.data.length, 16));
    out.set(c.data, at + 8);
    at += 8 + c.data.length;
  });
}

export interface Smb2NegotiateRequestInit {
  header?: Omit<Smb2HeaderInit, 'command'>;
  dialects: readonly number[];
  securityMode?: number;
  capabilities?: number;
  clientGuid: Uint8Array;
  /** Sent only when 0x0311 is offered. */
  contexts?: readonly NegotiateContextInit[];
}

export function encodeSmb2NegotiateRequest(r: Smb2NegotiateRequestInit): Uint8Array {
  if (r.dialects.length === 0 || r.dialects.length > MAX_DIALECTS) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `1..${MAX_DIALECTS} dialects, got ${r.dialects.length}`);
  if (r.clientGuid.length !== 16) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `a client GUID is 16 bytes, got ${r.clientGuid.length}`);
  const b = SMB2_HEADER_SIZE;
  const dialectsEnd = b + REQUEST_FIXED + 2 * r.dialects.length;
  const contexts = r.dialects.includes(SMB2_DIALECT.SMB311) ? (r.contexts ?? []) : [];
  const ctxAt = contexts.length ? (dialectsEnd + 7) & ~7 : 0;
  const out = new Uint8Array(contexts.length ? contextsSize(ctxAt, contexts) : dialectsEnd);
  writeSmb2Header(out, 0, { ...r.header, command: SMB2_COMMAND.NEGOTIATE });
  putU16le(out, b, 36);
  putU16le(out, b + 2, r.dialects.length);
  putU16le(out, b + 4, checkUint('securityMode', r.securityMode ?? SMB2_NEGOTIATE_SIGNING_ENABLED, 16));
  putU32le(out, b + 8, checkUint('capabilities', r.capabilities ?? 0, 32));
  out.set(r.clientGuid, b + 12);
  if (contexts.length) {
    putU32le(out, b + 28, ctxAt);
    putU16le(out, b + 32, checkUint('context count', contexts.length, 16));
  }
  r.dialects.forEach((d, i) => putU16le(out, b + REQUEST_FIXED + 2 * i, checkUint('dialect', d, 16)));
  if (contexts.length) writeContexts(out, ctxAt, contexts);
  return out;
}

export interface Smb2NegotiateResponseInit {
  header?: Omit<Smb2HeaderInit, 'command'>;
  securityMode?: number;
  dialect: number;
  serverGuid: Uint8Array;
  capabilities?: number;
  maxTransactSize: number;
  maxReadSize: number;
  maxWriteSize: number;
  systemTime?: bigint;
  serverStartTime?: bigint;
  securityBuffer?: Uint8Array;
  /** Sent only for 3.1.1 (one of each: the server's choices). */
  contexts?: readonly NegotiateContextInit[];
}

export function encodeSmb2NegotiateResponse(r: Smb2NegotiateResponseInit): Uint8Array {
  if (r.serverGuid.length !== 16) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `a server GUID is 16 bytes, got ${r.serverGuid.length}`);
  const b = SMB2_HEADER_SIZE;
  const sec = r.securityBuffer ?? new Uint8Array(0);
  const secAt = b + RESPONSE_FIXED;
  const contexts = r.dialect === SMB2_DIALECT.SMB311 ? (r.contexts ?? []) : [];
  const ctxAt = contexts.length ? (secAt + sec.length + 7) & ~7 : 0;
  // StructureSize 65: at least one byte of buffer
  const out = new Uint8Array(contexts.length ? contextsSize(ctxAt, contexts) : Math.max(secAt + sec.length, secAt + 1));
  writeSmb2Header(out, 0, { ...r.header, command: SMB2_COMMAND.NEGOTIATE, flags: (r.header?.flags ?? 0) | SMB2_FLAGS.SERVER_TO_REDIR });
  putU16le(out, b, 65);
  putU16le(out, b + 2, checkUint('securityMode', r.securityMode ?? SMB2_NEGOTIATE_SIGNING_ENABLED, 16));
  putU16le(out, b + 4, checkUint('dialect', r.dialect, 16));
  if (contexts.length) putU16le(out, b + 6, contexts.length);
  out.set(r.serverGuid, b + 8);
  putU32le(out, b + 24, checkUint('capabilities', r.capabilities ?? 0, 32));
  putU32le(out, b + 28, checkUint('maxTransactSize', r.maxTransactSize, 32));
  putU32le(out, b + 32, checkUint('maxReadSize', r.maxReadSize, 32));
  putU32le(out, b + 36, checkUint('maxWriteSize', r.maxWriteSize, 32));
  putU64le(out, b + 40, r.systemTime ?? 0n);
  putU64le(out, b + 48, r.serverStartTime ?? 0n);
  putU16le(out, b + 56, sec.length ? secAt : 0);
  putU16le(out, b + 58, checkUint('security buffer length', sec.length, 16));
  if (contexts.length) putU32le(out, b + 60, ctxAt);
  out.set(sec, secAt);
  if (contexts.length) writeContexts(out, ctxAt, contexts);
  return out;
}

/**
 * The dialect a server picks from a request ([MS-SMB2] 3.3.5.4): the highest it supports that the
 * client offers, or undefined (the server answers STATUS_NOT_SUPPORTED; see
 * SMB2_NEGOTIATE_NO_COMMON_DIALECT_STATUS).
 */
export function chooseSmb2Dialect(offered: readonly number[], supported: readonly number[]): number | undefined {
  let best: number | undefined;
  for (const d of offered) if (supported.includes(d) && d !== SMB2_DIALECT.WILDCARD && (best === undefined || d > best)) best = d;
  return best;
}

export const SMB2_NEGOTIATE_NO_COMMON_DIALECT_STATUS = STATUS_NOT_SUPPORTED;
