// Connection options, their defaults (the Windows values, see docs/smbdirect/negotiate.md) and
// the checks that keep a configuration live.
import { MIN_FRAGMENTED_SIZE, MIN_RECEIVE_SIZE } from '../../framing/negotiate.js';
import { SmbDirectError } from './errors.js';

export interface SmbDirectOptions {
  /** Receive credits we offer (receive buffers posted) and send credits we ask for. Default 255. */
  credits?: number;
  /** Largest message we send (PreferredSendSize). Default 1364, at most 8136 (Windows refuses more). */
  maxSendSize?: number;
  /** Largest message we receive: the size of each receive buffer. Default 8192. */
  maxReceiveSize?: number;
  /** Largest upper-layer message we reassemble. Default 1 MiB, capped at credits x maxReceiveSize / 2
   * so one unfinished message can never hold every receive buffer. */
  maxFragmentedSize?: number;
  /** Largest RDMA read/write transfer. Default 8 MiB. */
  maxReadWriteSize?: number;
  /** Send work requests (sends and RDMA operations) in flight. Default 256. */
  sendQueueDepth?: number;
  /** RDMA reads in flight (bounded by what the provider negotiated, its ORD). Default 16. */
  rdmaReadDepth?: number;
  /** Largest single RDMA work request a transfer is cut into. Default 1 MiB. */
  maxRdmaOpSize?: number;
  /** Initiator: wait for the negotiate response (default 120 s). */
  negotiateTimeoutMs?: number;
  /** Acceptor: wait for the negotiate request (default 5 s). */
  acceptTimeoutMs?: number;
  /** Idle time after the last receive before a keepalive is sent (default 120 s; 0 disables). */
  keepaliveIntervalMs?: number;
  /** Time to answer a keepalive before the connection is terminated (default 5 s). */
  keepaliveTimeoutMs?: number;
  /** Graceful close: time to drain queued work before the connection is destroyed (default 30 s). */
  closeTimeoutMs?: number;
  /** writableLength above which 'drain' is owed (default 1 MiB). */
  writableHighWaterMark?: number;
  /** Memory this connection may register at once: its receive and send buffers (credits x
   * maxReceiveSize + sendQueueDepth x maxSendSize), registerBuffer() buffers and the buffers of
   * its RDMA reads and writes. Default 256 MiB. Past it, ERR_SMBD_RESOURCE_LIMIT. The process
   * has a limit of its own over all connections (setRegisteredMemoryLimit()). */
  maxRegisteredBytes?: number;
}

export type ResolvedOptions = Required<SmbDirectOptions>;

export const DEFAULTS: ResolvedOptions = Object.freeze({
  credits: 255,
  maxSendSize: 1364,
  maxReceiveSize: 8192,
  maxFragmentedSize: 1024 * 1024,
  maxReadWriteSize: 8 * 1024 * 1024,
  sendQueueDepth: 256,
  rdmaReadDepth: 16,
  maxRdmaOpSize: 1024 * 1024,
  negotiateTimeoutMs: 120_000,
  acceptTimeoutMs: 5_000,
  keepaliveIntervalMs: 120_000,
  keepaliveTimeoutMs: 5_000,
  closeTimeoutMs: 30_000,
  writableHighWaterMark: 1024 * 1024,
  maxRegisteredBytes: 256 * 1024 * 1024,
});

/** Windows refuses a PreferredSendSize above this. */
export const MAX_PREFERRED_SEND_SIZE = 8136;

function int(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `${name} must be an integer in [${min}, ${max}], got ${v}`);
  }
  return v;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

export function resolveOptions(o: SmbDirectOptions = {}): ResolvedOptions {
  const r = { ...DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as ResolvedOptions;
  int('credits', r.credits, 3, 65535); // 1 or 2 cannot be both live and quiet (credits.ts MIN_CREDIT_TARGET, connection.ts #scheduleEmpty)
  int('maxSendSize', r.maxSendSize, MIN_RECEIVE_SIZE, MAX_PREFERRED_SEND_SIZE);
  int('maxReceiveSize', r.maxReceiveSize, 512, 1 << 24); // the initiator's first receive must hold >= 512
  int('maxReadWriteSize', r.maxReadWriteSize, 1, 0xffffffff);
  int('sendQueueDepth', r.sendQueueDepth, 2, 65536);
  int('rdmaReadDepth', r.rdmaReadDepth, 1, 1024);
  int('maxRdmaOpSize', r.maxRdmaOpSize, 4096, 1 << 30);
  for (const k of ['negotiateTimeoutMs', 'acceptTimeoutMs', 'keepaliveTimeoutMs', 'closeTimeoutMs'] as const) int(k, r[k], 1, 2 ** 31 - 1);
  int('keepaliveIntervalMs', r.keepaliveIntervalMs, 0, 2 ** 31 - 1);
  int('writableHighWaterMark', r.writableHighWaterMark, 0, 2 ** 40);
  int('maxRegisteredBytes', r.maxRegisteredBytes, 0, 2 ** 50);
  // the buffers every connection registers up front must fit its own limit
  const slabs = r.credits * align8(r.maxReceiveSize) + r.sendQueueDepth * align8(r.maxSendSize);
  if (slabs > r.maxRegisteredBytes) {
    throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `credits x maxReceiveSize + sendQueueDepth x maxSendSize = ${slabs} bytes of receive and send buffers per connection exceed maxRegisteredBytes (${r.maxRegisteredBytes})`);
  }
  // One unfinished message must not be able to hold every receive buffer ([MS-SMBD] 3.1.5.6 note,
  // and both Windows and Linux keep it so): clamp, but never below the protocol minimum.
  const cap = Math.floor((r.credits * r.maxReceiveSize) / 2);
  int('maxFragmentedSize', r.maxFragmentedSize, MIN_FRAGMENTED_SIZE, 0xffffffff);
  r.maxFragmentedSize = Math.max(MIN_FRAGMENTED_SIZE, Math.min(r.maxFragmentedSize, cap));
  return r;
}
