// SMB2 IOCTL request and response ([MS-SMB2] 2.2.31 / 2.2.32) and the FSCTLs a server answers
// first: VALIDATE_NEGOTIATE_INFO (2.2.31.4 / 2.2.32.6) and QUERY_NETWORK_INTERFACE_INFO
// (2.2.32.5). Pure codecs over whole PDUs; offsets from the header's start.
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit } from './header.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';
import { type Smb2FileId, readFileId, smb2Body, smb2Pdu, writeFileId } from './tree.js';

export const FSCTL = Object.freeze({
  DFS_GET_REFERRALS: 0x00060194, DFS_GET_REFERRALS_EX: 0x000601b0, PIPE_TRANSCEIVE: 0x0011c017,
  VALIDATE_NEGOTIATE_INFO: 0x00140204, QUERY_NETWORK_INTERFACE_INFO: 0x001401fc, SRV_REQUEST_RESUME_KEY: 0x00140078,
});
export const SMB2_0_IOCTL_IS_FSCTL = 0x00000001;
/** A request's input or a response's output longer than this is refused (a bound; Windows' is 64 KiB). */
export const MAX_IOCTL_BUFFER = 64 * 1024;

export interface Smb2IoctlRequest {
  header: Smb2Header;
  ctlCode: number;
  fileId: Smb2FileId;
  /** A view of the input buffer. */
  input: Uint8Array;
  maxOutputResponse: number;
  flags: number;
}

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

export function decodeSmb2IoctlRequest(pdu: Uint8Array): Smb2IoctlRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.IOCTL, 57, 56, false);
  const inOff = u32le(pdu, b + 24), inLen = u32le(pdu, b + 28);
  if (inLen > MAX_IOCTL_BUFFER) invalid(`an IOCTL input of ${inLen} bytes (at most ${MAX_IOCTL_BUFFER})`);
  if (inLen > 0 && (inOff < b + 56 || inOff > pdu.length || inLen > pdu.length - inOff)) invalid(`IOCTL input [${inOff}, +${inLen}) outside the PDU's buffer`);
  return {
    header, ctlCode: u32le(pdu, b + 4), fileId: readFileId(pdu, b + 8), input: inLen ? pdu.subarray(inOff, inOff + inLen) : pdu.subarray(0, 0),
    maxOutputResponse: u32le(pdu, b + 44), flags: u32le(pdu, b + 48),
  };
}

export function encodeSmb2IoctlRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; ctlCode: number; fileId: Smb2FileId; input?: Uint8Array; maxOutputResponse?: number; flags?: number }): Uint8Array {
  const input = r.input ?? new Uint8Array(0);
  const out = smb2Pdu(SMB2_COMMAND.IOCTL, r.header, false, 57, 56 + input.length);
  const b = SMB2_HEADER_SIZE;
  putU32le(out, b + 4, checkUint('ctlCode', r.ctlCode, 32));
  writeFileId(out, b + 8, r.fileId);
  putU32le(out, b + 24, input.length ? b + 56 : 0);
  putU32le(out, b + 28, input.length);
  putU32le(out, b + 44, checkUint('maxOutputResponse', r.maxOutputResponse ?? MAX_IOCTL_BUFFER, 32));
  putU32le(out, b + 48, checkUint('flags', r.flags ?? SMB2_0_IOCTL_IS_FSCTL, 32));
  out.set(input, b + 56);
  return out;
}

export function encodeSmb2IoctlResponse(r: { header?: Omit<Smb2HeaderInit, 'command'>; ctlCode: number; fileId: Smb2FileId; output: Uint8Array }): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.IOCTL, r.header, true, 49, 48 + Math.max(0, r.output.length));
  const b = SMB2_HEADER_SIZE;
  putU32le(out, b + 4, checkUint('ctlCode', r.ctlCode, 32));
  writeFileId(out, b + 8, r.fileId);
  putU32le(out, b + 24, b + 48); // InputOffset: no input echoed back
  putU32le(out, b + 32, b + 48);
  putU32le(out, b + 36, r.output.length);
  out.set(r.output, b + 48);
  return out;
}

export function decodeSmb2IoctlResponse(pdu: Uint8Array): { header: Smb2Header; ctlCode: number; fileId: Smb2FileId; output: Uint8Array } {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.IOCTL, 49, 48, true);
  const off = u32le(pdu, b + 32), len = u32le(pdu, b + 36);
  if (len > 0 && (off < b + 48 || off > pdu.length || len > pdu.length - off)) invalid(`IOCTL output [${off}, +${len}) outside the PDU's buffer`);
  return { header, ctlCode: u32le(pdu, b + 4), fileId: readFileId(pdu, b + 8), output: len ? pdu.subarray(off, off + len) : pdu.subarray(0, 0) };
}

// ---- FSCTL_VALIDATE_NEGOTIATE_INFO -----------------------------------------------------------------

export interface ValidateNegotiateInfo { capabilities: number; guid: Uint8Array; securityMode: number; dialects: number[] }

export function decodeValidateNegotiateInfo(input: Uint8Array): ValidateNegotiateInfo {
  if (input.length < 24) invalid(`VALIDATE_NEGOTIATE_INFO input of ${input.length} bytes (at least 24)`);
  const n = u16le(input, 22);
  if (n === 0 || 24 + 2 * n > input.length) invalid(`VALIDATE_NEGOTIATE_INFO with ${n} dialects in ${input.length} bytes`);
  const dialects: number[] = [];
  for (let i = 0; i < n; i++) dialects.push(u16le(input, 24 + 2 * i));
  return { capabilities: u32le(input, 0), guid: input.subarray(4, 20), securityMode: u16le(input, 20), dialects };
}

export function encodeValidateNegotiateInfo(v: ValidateNegotiateInfo): Uint8Array {
  const out = new Uint8Array(24 + 2 * v.dialects.length);
  putU32le(out, 0, checkUint('capabilities', v.capabilities, 32));
  out.set(v.guid, 4);
  putU16le(out, 20, checkUint('securityMode', v.securityMode, 16));
  putU16le(out, 22, v.dialects.length);
  v.dialects.forEach((d, i) => putU16le(out, 24 + 2 * i, d));
  return out;
}

/** The response's output: the server's capabilities, GUID, security mode and chosen dialect. */
export function encodeValidateNegotiateResponse(v: { capabilities: number; guid: Uint8Array; securityMode: number; dialect: number }): Uint8Array {
  const out = new Uint8Array(24);
  putU32le(out, 0, checkUint('capabilities', v.capabilities, 32));
  out.set(v.guid, 4);
  putU16le(out, 20, checkUint('securityMode', v.securityMode, 16));
  putU16le(out, 22, checkUint('dialect', v.dialect, 16));
  return out;
}

// ---- FSCTL_QUERY_NETWORK_INTERFACE_INFO -----------------------------------------------------------

export const NETWORK_INTERFACE_CAP = Object.freeze({ RSS: 0x1, RDMA: 0x2 });

export interface NetworkInterfaceInfo {
  ifIndex: number;
  capability: number;
  /** Bits per second. */
  linkSpeed: bigint;
  /** An IPv4 address (a.b.c.d) or IPv6. */
  address: string;
}

/** NETWORK_INTERFACE_INFO entries (152 bytes each, Next chaining them; 2.2.32.5). */
export function encodeNetworkInterfaceInfo(list: readonly NetworkInterfaceInfo[]): Uint8Array {
  const out = new Uint8Array(152 * list.length);
  list.forEach((x, i) => {
    const at = 152 * i;
    putU32le(out, at, i < list.length - 1 ? 152 : 0);
    putU32le(out, at + 4, checkUint('ifIndex', x.ifIndex, 32));
    putU32le(out, at + 8, checkUint('capability', x.capability, 32));
    putU64le(out, at + 16, x.linkSpeed);
    const sa = at + 24;
    const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(x.address);
    if (v4) {
      putU16le(out, sa, 0x0002); // AF_INET
      out.set(v4.slice(1).map(Number), sa + 4);
    } else {
      putU16le(out, sa, 0x0017); // AF_INET6
      const full = expandIpv6(x.address);
      for (let k = 0; k < 8; k++) { out[sa + 8 + 2 * k] = full[k]! >> 8; out[sa + 9 + 2 * k] = full[k]! & 0xff; }
    }
  });
  return out;
}

function expandIpv6(a: string): number[] {
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, undefined];
  const h = head ? head.split(':').map((x) => Number.parseInt(x, 16)) : [];
  const t = tail ? tail.split(':').map((x) => Number.parseInt(x, 16)) : [];
  const mid = tail === undefined ? [] : new Array(8 - h.length - t.length).fill(0);
  const out = [...h, ...mid, ...t];
  if (out.length !== 8 || out.some((x) => !(x >= 0 && x <= 0xffff))) throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `not an IPv6 address: ${a}`);
  return out;
}
