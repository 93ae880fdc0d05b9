// [MS-SMBD] 2.2.1 / 2.2.2 negotiate messages, with the checks of 3.1.5.6 (acceptor) and 3.1.5.7 (initiator).
import { checkUint, putU16le, putU32le, u16le, u32le } from './bytes.js';
import { fail, SmbDirectProtocolError } from './errors.js';

export const SMBD_VERSION_1 = 0x0100;
export const NEGOTIATE_REQUEST_SIZE = 20;
export const NEGOTIATE_RESPONSE_SIZE = 32;
export const MIN_RECEIVE_SIZE = 128;
export const MIN_FRAGMENTED_SIZE = 131072;
export const STATUS_SUCCESS = 0;
export const STATUS_NOT_SUPPORTED = 0xc00000bb;
export const STATUS_INSUFFICIENT_RESOURCES = 0xc000009a;

export interface NegotiateRequest {
  minVersion: number;
  maxVersion: number;
  creditsRequested: number;
  preferredSendSize: number;
  maxReceiveSize: number;
  maxFragmentedSize: number;
}

export interface NegotiateResponse {
  minVersion: number;
  maxVersion: number;
  negotiatedVersion: number;
  creditsRequested: number;
  creditsGranted: number;
  status: number;
  maxReadWriteSize: number;
  preferredSendSize: number;
  maxReceiveSize: number;
  maxFragmentedSize: number;
}

export function encodeNegotiateRequest(r: NegotiateRequest): Uint8Array {
  const b = new Uint8Array(NEGOTIATE_REQUEST_SIZE);
  putU16le(b, 0, checkUint('minVersion', r.minVersion, 16));
  putU16le(b, 2, checkUint('maxVersion', r.maxVersion, 16));
  putU16le(b, 6, checkUint('creditsRequested', r.creditsRequested, 16));
  putU32le(b, 8, checkUint('preferredSendSize', r.preferredSendSize, 32));
  putU32le(b, 12, checkUint('maxReceiveSize', r.maxReceiveSize, 32));
  putU32le(b, 16, checkUint('maxFragmentedSize', r.maxFragmentedSize, 32));
  return b;
}

/**
 * Decodes and validates a negotiate request as the acceptor must (3.1.5.6).
 * ERR_SMBD_NO_COMMON_VERSION means "answer with STATUS_NOT_SUPPORTED"; every other error
 * means "terminate without a response".
 */
export function decodeNegotiateRequest(bytes: Uint8Array): NegotiateRequest {
  if (bytes.length < NEGOTIATE_REQUEST_SIZE) {
    fail('ERR_SMBD_SHORT_MESSAGE', `negotiate request is ${bytes.length} bytes, needs ${NEGOTIATE_REQUEST_SIZE} ([MS-SMBD] 3.1.5.6)`);
  }
  const r: NegotiateRequest = {
    minVersion: u16le(bytes, 0),
    maxVersion: u16le(bytes, 2),
    creditsRequested: u16le(bytes, 6),
    preferredSendSize: u32le(bytes, 8),
    maxReceiveSize: u32le(bytes, 12),
    maxFragmentedSize: u32le(bytes, 16),
  };
  if (r.minVersion > SMBD_VERSION_1 || r.maxVersion < SMBD_VERSION_1 || r.minVersion > r.maxVersion) {
    fail('ERR_SMBD_NO_COMMON_VERSION', `peer offers versions 0x${hex16(r.minVersion)}-0x${hex16(r.maxVersion)}, only 0x0100 is supported`);
  }
  if (r.creditsRequested === 0) fail('ERR_SMBD_ZERO_CREDITS_REQUESTED', 'negotiate request asks for 0 credits ([MS-SMBD] 3.1.5.6)');
  checkSizes(r.maxReceiveSize, r.maxFragmentedSize, '3.1.5.6');
  return r;
}

export function encodeNegotiateResponse(r: NegotiateResponse): Uint8Array {
  const b = new Uint8Array(NEGOTIATE_RESPONSE_SIZE);
  putU16le(b, 0, checkUint('minVersion', r.minVersion, 16));
  putU16le(b, 2, checkUint('maxVersion', r.maxVersion, 16));
  putU16le(b, 4, checkUint('negotiatedVersion', r.negotiatedVersion, 16));
  putU16le(b, 8, checkUint('creditsRequested', r.creditsRequested, 16));
  putU16le(b, 10, checkUint('creditsGranted', r.creditsGranted, 16));
  putU32le(b, 12, checkUint('status', r.status, 32));
  putU32le(b, 16, checkUint('maxReadWriteSize', r.maxReadWriteSize, 32));
  putU32le(b, 20, checkUint('preferredSendSize', r.preferredSendSize, 32));
  putU32le(b, 24, checkUint('maxReceiveSize', r.maxReceiveSize, 32));
  putU32le(b, 28, checkUint('maxFragmentedSize', r.maxFragmentedSize, 32));
  return b;
}

/**
 * Decodes and validates a negotiate response as the initiator must (3.1.5.7).
 * Pass the request that was sent to also check PreferredSendSize against its MaxReceiveSize.
 */
export function decodeNegotiateResponse(bytes: Uint8Array, sent?: Pick<NegotiateRequest, 'maxReceiveSize'>): NegotiateResponse {
  if (bytes.length < NEGOTIATE_RESPONSE_SIZE) {
    fail('ERR_SMBD_SHORT_MESSAGE', `negotiate response is ${bytes.length} bytes, needs ${NEGOTIATE_RESPONSE_SIZE} ([MS-SMBD] 3.1.5.7)`);
  }
  const r: NegotiateResponse = {
    minVersion: u16le(bytes, 0),
    maxVersion: u16le(bytes, 2),
    negotiatedVersion: u16le(bytes, 4),
    creditsRequested: u16le(bytes, 8),
    creditsGranted: u16le(bytes, 10),
    status: u32le(bytes, 12),
    maxReadWriteSize: u32le(bytes, 16),
    preferredSendSize: u32le(bytes, 20),
    maxReceiveSize: u32le(bytes, 24),
    maxFragmentedSize: u32le(bytes, 28),
  };
  if (r.status !== STATUS_SUCCESS) {
    throw new SmbDirectProtocolError('ERR_SMBD_NEGOTIATE_FAILED', `peer refused negotiation with status 0x${r.status.toString(16).toUpperCase().padStart(8, '0')}`, { status: r.status });
  }
  if (r.negotiatedVersion !== SMBD_VERSION_1) {
    fail('ERR_SMBD_BAD_NEGOTIATED_VERSION', `negotiated version 0x${hex16(r.negotiatedVersion)} is not 0x0100 ([MS-SMBD] 3.1.5.7)`);
  }
  if (r.creditsRequested === 0) fail('ERR_SMBD_ZERO_CREDITS_REQUESTED', 'negotiate response asks for 0 credits ([MS-SMBD] 3.1.5.7)');
  if (r.creditsGranted === 0) fail('ERR_SMBD_ZERO_CREDITS_GRANTED', 'negotiate response grants 0 credits ([MS-SMBD] 3.1.5.7)');
  checkSizes(r.maxReceiveSize, r.maxFragmentedSize, '3.1.5.7');
  if (sent && r.preferredSendSize > sent.maxReceiveSize) {
    fail('ERR_SMBD_PREFERRED_SEND_SIZE_TOO_LARGE', `peer PreferredSendSize ${r.preferredSendSize} exceeds our MaxReceiveSize ${sent.maxReceiveSize} ([MS-SMBD] 3.1.5.7)`);
  }
  return r;
}

function checkSizes(maxReceiveSize: number, maxFragmentedSize: number, section: string): void {
  // The spec says "at least"; ksmbd's `<= 128` is off by one, so 128 and 131072 are accepted here.
  if (maxReceiveSize < MIN_RECEIVE_SIZE) {
    fail('ERR_SMBD_RECEIVE_SIZE_TOO_SMALL', `MaxReceiveSize ${maxReceiveSize} is below ${MIN_RECEIVE_SIZE} ([MS-SMBD] ${section})`);
  }
  if (maxFragmentedSize < MIN_FRAGMENTED_SIZE) {
    fail('ERR_SMBD_FRAGMENTED_SIZE_TOO_SMALL', `MaxFragmentedSize ${maxFragmentedSize} is below ${MIN_FRAGMENTED_SIZE} ([MS-SMBD] ${section})`);
  }
}

function hex16(v: number): string {
  return v.toString(16).padStart(4, '0');
}
