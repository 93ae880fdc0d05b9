// Errors of the RDMA providers (src/providers/, completion/). Codes are stable; docs/errors.md lists
// them (a test keeps the table and this list in step). Besides these, an RdmaError's code can be a
// framing code (a malformed MPA frame or FPDU from the peer: framing/errors.ts) or an errno name
// (a failed system or verbs call: ECONNREFUSED, ENOMEM, EINVAL, ...).
import { ERROR_CODES, type SmbDirectErrorCode } from '../../framing/errors.js';

export const PROVIDER_ERROR_CODES = {
  // misuse: thrown synchronously by the call, the endpoint carries on
  ERR_INVALID_STATE: 'the call does not fit the endpoint\'s state: posting outside RTS (the endpoint is going down), accept()/reject() twice, listening on a closing pool',
  ERR_INVALID_ARG_TYPE: 'an SGE whose region is not this endpoint\'s, or an argument of the wrong type',
  ERR_OUT_OF_RANGE: 'an option or argument out of range: bad provider options, an SGE outside its region, a remote address + length past 2^64',
  ERR_QUEUE_FULL: 'more outstanding work requests than the queue holds (maxSendWr / maxRecvWr)',
  ERR_DEVICE_LIMIT: 'a queue size, read depth or SGE count beyond what the device (or the software provider) supports; the message names the limit',
  ERR_ACCESS: 'a post whose region lacks the access it needs (a receive or read sink without localWrite)',
  ERR_INVALID_STAG: 'invalidate() of an rkey not registered here',
  ERR_NO_STAG: 'the software provider ran out of STags (every index is registered)',
  ERR_NATIVE_UNAVAILABLE: 'the verbs provider needs the native addon, and the stub loaded (no rdma-core at build time)',
  ERR_NO_DEVICE: 'the connection is not bound to an RDMA device',
  ERR_CLOSED: 'the completion pool, or the native object called, is closed',
  ERR_WRONG_PD: 'the addon: a region, window or SGE registered on another protection domain than the queue pair\'s',
  ERR_WRONG_DEVICE: 'the addon: a PD, CQ or completion channel of another device than the cm_id\'s',
  ERR_QP_EXISTS: 'the addon: a second queue pair on a cm_id, or handing a cm_id with a queue pair to another thread',
  ERR_INVALID_IP_ADDRESS: 'the addon: an address that is not an IP literal (the providers resolve names first)',
  ERR_INVALID_HANDLE: 'the addon: adopting a cm_id handle that is not a detached one (worker hand-off)',
  ERR_REENTRANT: 'the addon: a CQ polled from inside its own completion handler',
  // connection setup
  ERR_CONNECT: 'a TCP connect failed without an errno name',
  ERR_MPA_TIMEOUT: 'no MPA Request / Reply within the timeout',
  ERR_MPA_CONNECTION_LOST: 'the TCP connection ended during the MPA exchange',
  ERR_MPA_REJECTED: 'the peer rejected the MPA Request (MpaRejectedError: error.privateData, error.socket)',
  ERR_MPA_MARKERS: 'the peer asked for MPA markers, which are refused (as siw does by default)',
  ERR_MPA_BAD_FRAME: 'a malformed MPA Request / Reply whose framing error had no code',
  ERR_VERBS: 'a native verbs or rdma_cm call failed without an errno name (the addon gives one; kept for callers that test for it)',
  ERR_VERBS_REJECTED: 'the peer rejected the connection (error.privateData)',
  ERR_VERBS_ADDR_ERROR: 'rdma_cm could not resolve the address',
  ERR_VERBS_ROUTE_ERROR: 'rdma_cm could not resolve the route',
  ERR_VERBS_UNREACHABLE: 'rdma_cm: the peer did not answer the connection request',
  ERR_VERBS_CONNECT_ERROR: 'rdma_cm: another event than the one expected while connecting',
  ERR_VERBS_CONNECTION_LOST: 'rdma_cm DISCONNECTED while connecting',
  ERR_VERBS_TIMEOUT: 'no rdma_cm event within the resolve / connect timeout',
  ERR_VERBS_DESTROYED: 'the endpoint was destroyed while connecting or accepting',
  // the end of an established endpoint ('error')
  ERR_VERBS_WC_ERROR: 'a work completion with an error status (then the endpoint is destroyed)',
  ERR_VERBS_DISCONNECT_TIMEOUT: 'a graceful disconnect did not finish within disconnectTimeoutMs',
  ERR_VERBS_DEVICE_REMOVED: 'the RDMA device went away: every endpoint on it, and a listener bound to it, ends with it',
  ERR_IWARP_INVALID_STAG: 'we sent a Terminate: the peer named an STag that is not valid here',
  ERR_IWARP_ACCESS: 'we sent a Terminate: the peer\'s access is not allowed by the region',
  ERR_IWARP_BASE_BOUNDS: 'we sent a Terminate: the peer\'s access runs outside the region',
  ERR_IWARP_TO_WRAP: 'we sent a Terminate: an RDMA Read Request whose sink TO + size runs past 2^64',
  ERR_IWARP_BAD_MSN: 'we sent a Terminate: an untagged message out of sequence (MSN)',
  ERR_IWARP_BAD_MO: 'we sent a Terminate: an untagged message at the wrong offset (MO)',
  ERR_IWARP_BAD_QN: 'we sent a Terminate: an untagged message for an unknown queue (QN)',
  ERR_IWARP_BAD_OPCODE: 'we sent a Terminate: an RDMAP opcode we do not accept',
  ERR_IWARP_BAD_FPDU: 'we sent a Terminate: a malformed FPDU whose framing error had no code',
  ERR_IWARP_NO_RECEIVE: 'we sent a Terminate: a Send arrived with no receive posted (DDP "no buffer")',
  ERR_IWARP_MESSAGE_TOO_LONG: 'we sent a Terminate: a Send longer than the posted receive',
  ERR_IWARP_CANNOT_INVALIDATE: 'we sent a Terminate: a Send-with-Invalidate of an STag that cannot be invalidated',
  ERR_IWARP_UNEXPECTED_READ_RESPONSE: 'we sent a Terminate: a Read Response to no outstanding read',
  ERR_IWARP_SHORT_READ_RESPONSE: 'we sent a Terminate: a Read Response shorter than the read',
  ERR_IWARP_TRUNCATED_FPDU: 'we sent a Terminate: the stream ended inside an FPDU',
  ERR_IWARP_IRD_EXCEEDED: 'we sent a Terminate: more RDMA Read Requests outstanding than our IRD',
  ERR_IWARP_INTERNAL: 'we sent a Terminate: an internal failure while handling the peer\'s FPDU',
  ERR_IWARP_TERMINATED: 'the peer sent a Terminate (TerminateError: layer, etype, errorCode)',
  ERR_IWARP_TCP: 'the TCP socket failed',
  ERR_IWARP_CONNECTION_LOST: 'the TCP connection ended without a graceful disconnect',
  ERR_IWARP_DISCONNECT_TIMEOUT: 'a graceful disconnect did not finish within disconnectTimeoutMs',
  ERR_IWARP_REGION_RELEASED: 'a region was closed while its bytes still answered the peer\'s RDMA Read: the connection is reset, no byte of it leaves',
  // the TCP stream before the switch to RDMA (upgradeToRdma, Smb2StreamFramer)
  ERR_STREAM_SWITCHED: 'the stream has switched to RDMA mode: no more stream messages',
  ERR_STREAM_BAD_BOUNDARY: 'a byte at a message boundary that is neither an SMB2-over-TCP header nor an MPA Request',
} as const;

export type ProviderErrorCode = keyof typeof PROVIDER_ERROR_CODES;

/** What an RdmaError's code can be: a provider code, a framing code of the peer's malformed frame,
 * or an errno name. */
export type RdmaErrorCode = ProviderErrorCode | SmbDirectErrorCode | `E${Uppercase<string>}`;

/** Errors of the providers: `code` is stable (docs/errors.md "Provider errors"). */
export class RdmaError extends Error {
  readonly code: RdmaErrorCode;
  /** Set by the addon for a failed system, verbs or rdma_cm call: the negative errno and the call. */
  declare readonly errno?: number;
  declare readonly syscall?: string;
  constructor(code: RdmaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RdmaError';
    this.code = code;
  }
}

/** A code from another error (a native call's errno name, a framing error's code, a `net` error's
 * code) as an RdmaError code: itself when it is one of the three kinds, else `fallback`. */
export function rdmaCode(code: unknown, fallback: ProviderErrorCode): RdmaErrorCode {
  if (typeof code !== 'string') return fallback;
  if (code in PROVIDER_ERROR_CODES || code in ERROR_CODES || /^E[A-Z0-9]+$/.test(code)) return code as RdmaErrorCode;
  return fallback;
}
