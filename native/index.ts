/**
 * `smbdirect/native`: the typed face of the C++ verbs / rdma_cm binding.
 *
 * A thin, faithful binding: objects mirror libibverbs and librdmacm (device,
 * protection domain, memory region/window, completion channel and queue, RC
 * queue pair, rdma_cm event channel and id). No protocol policy lives here.
 * Without rdma-core at build time a stub loads and `available` is false with
 * the `reason`; the software iWARP provider needs none of this.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---- errors ----------------------------------------------------------------

/** Errors thrown by the binding (Error, TypeError, RangeError, or the class handed to
 * `useErrorClass`, which the providers do when they load): `code` is an errno name (EINVAL, ENODEV, ...)
 * for failed verbs/rdma_cm calls (with `errno` negative and `syscall` set), or
 * one of ERR_CLOSED, ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_WRONG_PD,
 * ERR_WRONG_DEVICE, ERR_DEVICE_LIMIT, ERR_QP_EXISTS, ERR_NO_DEVICE,
 * ERR_INVALID_IP_ADDRESS, ERR_REENTRANT, ERR_INVALID_HANDLE for misuse. */
export interface NativeError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
}

// ---- devices ---------------------------------------------------------------

export interface DeviceListEntry {
  name: string;
  nodeType: 'ca' | 'rnic' | 'other';
  /** 'ib' covers InfiniBand and RoCE (see the port's linkLayer); 'iwarp' is iWARP. */
  transport: 'ib' | 'iwarp' | 'other';
  guid: string;
}

export interface DeviceAttributes {
  name: string;
  nodeType: 'ca' | 'rnic';
  transport: 'ib' | 'iwarp';
  fwVer: string;
  vendorId: number;
  vendorPartId: number;
  maxMrSize: bigint;
  maxQp: number;
  maxQpWr: number;
  maxSge: number;
  maxSgeRd: number;
  maxCq: number;
  maxCqe: number;
  maxMr: number;
  maxPd: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxMw: number;
  physPortCnt: number;
  numCompVectors: number;
  deviceCapFlags: number;
  memoryWindows: boolean;
  memoryWindowType2: boolean;
}

export interface PortAttributes {
  port: number;
  state: 'down' | 'init' | 'armed' | 'active' | 'active-defer' | 'nop';
  linkLayer: 'ethernet' | 'infiniband' | 'unspecified';
  maxMtu: number;
  activeMtu: number;
  maxMsgSize: number;
  gidTableLength: number;
  lid: number;
  portCapFlags: number;
}

export interface GidEntry {
  index: number;
  gid: string;
  type: 'IB' | 'RoCEv1' | 'RoCEv2';
  ndevIfindex: number;
}

export interface AsyncEvent {
  type: 'CQ_ERR' | 'QP_FATAL' | 'QP_REQ_ERR' | 'QP_ACCESS_ERR' | 'COMM_EST' | 'SQ_DRAINED' | 'PATH_MIG' |
    'PATH_MIG_ERR' | 'DEVICE_FATAL' | 'PORT_ACTIVE' | 'PORT_ERR' | 'LID_CHANGE' | 'PKEY_CHANGE' | 'SM_CHANGE' |
    'SRQ_ERR' | 'SRQ_LIMIT_REACHED' | 'QP_LAST_WQE_REACHED' | 'CLIENT_REREGISTER' | 'GID_CHANGE' | 'WQ_FATAL' |
    'UNKNOWN';
  device: string;
  qpNum?: number;
  cqId?: number;
  port?: number;
}

interface Closable {
  readonly closed: boolean;
  /** Process-unique object number (used in async events, e.g. cqId). */
  readonly id: number;
  /** Idempotent; closes the object's children first. */
  close(): void;
}

/** One of librdmacm's device contexts (the one its cm_ids use), with one reference on it while
 * open. Closing it closes its children (PDs, CQs, channels and what hangs off them). After
 * rdma_cm reported DEVICE_REMOVAL for an id on it (to this thread's event channel) it closes by
 * itself once its last child is closed, so that librdmacm closes the context and the kernel can
 * finish removing the device; openDevice() then finds the device anew (or ENODEV). */
export interface Device extends Closable {
  readonly name: string;
  query(): DeviceAttributes;
  queryPort(port?: number): PortAttributes;
  queryGid(port: number, index: number): GidEntry;
  allocPd(): ProtectionDomain;
  createCompChannel(): CompletionChannel;
  /** A CQ of at least `cqe` entries on comp vector `compVector`. With a channel,
   * `onBatch(count)` is called once per batch of up to CQ_BATCH completions,
   * which are in `cq.batch` during the call only. */
  createCq(cqe: number, channel: CompletionChannel | null, compVector?: number, onBatch?: (count: number) => void): CompletionQueue;
  /** Async events (QP fatal, CQ error, port state) from the device's async fd; null stops. */
  onAsyncEvent(handler: ((events: AsyncEvent[]) => void) | null): void;
}

// ---- memory ----------------------------------------------------------------

export interface ProtectionDomain extends Closable {
  /** Page-aligned native memory, registered. `buffer` is detached on close. */
  allocSlab(size: number, access: number): MemoryRegion;
  /** Registers a whole JS ArrayBuffer (or a view spanning one); it is kept
   * referenced until close. Do not transfer or detach it while registered. */
  registerBuffer(buffer: ArrayBuffer | ArrayBufferView, access: number): MemoryRegion;
  /** A type-2 memory window (bind it with qp.postBindMw). */
  allocMw(): MemoryWindow;
}

export interface MemoryRegion extends Closable {
  readonly buffer: ArrayBuffer;
  readonly addr: bigint;
  readonly lkey: number;
  readonly rkey: number;
  readonly length: number;
  /** A number naming this region in the fast posts (postRecv1/postSend1); never reused. */
  readonly handle: number;
}

export interface MemoryWindow extends Closable {
  /** The rkey of the current binding (changes at every bind). */
  readonly rkey: number;
}

// ---- completions -----------------------------------------------------------

export type CompletionChannel = Closable & { readonly fd: number };

/** Struct-of-arrays view of the current batch (index < count). For error
 * completions only wrId, status, qpNum and vendorErr are defined. */
export interface CompletionBatch {
  wrId: Float64Array;
  status: Uint32Array;
  opcode: Uint32Array;
  byteLength: Uint32Array;
  qpNum: Uint32Array;
  immOrInvalidatedRkey: Uint32Array;
  flags: Uint32Array;
  vendorErr: Uint32Array;
  srcQp: Uint32Array;
}

export interface CqStats {
  events: number;
  polls: number;
  completions: number;
  batches: number;
  compVector: number;
}

export interface CompletionQueue extends Closable {
  readonly batch: CompletionBatch;
  readonly cqe: number;
  readonly compVector: number;
  /** Polls up to CQ_BATCH completions into `batch` and returns the count
   * (without calling onBatch). Not from inside this CQ's onBatch. */
  poll(): number;
  stats(): CqStats;
}

// ---- queue pairs -----------------------------------------------------------

export interface Sge {
  mr: MemoryRegion;
  offset: number;
  length: number;
}
export type Sges = Sge | Sge[] | null | undefined;

export interface QpCaps {
  maxSendWr?: number;
  maxRecvWr?: number;
  maxSendSge?: number;
  maxRecvSge?: number;
  maxInlineData?: number;
}

export interface QpAttributes {
  qpNum: number;
  state: 'RESET' | 'INIT' | 'RTR' | 'RTS' | 'SQD' | 'SQE' | 'ERR' | 'UNKNOWN';
  pathMtu: number;
  maxSendWr: number;
  maxRecvWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxInlineData: number;
  maxRdAtomic: number;
  maxDestRdAtomic: number;
}

/** RC queue pair. `flags` are SEND_FLAGS bits (default SIGNALED); wrId is an
 * integer below 2^53, returned in the completion. */
export interface QueuePair extends Closable {
  readonly qpNum: number;
  query(): QpAttributes;
  /** Moves the QP to the error state: outstanding work completes as flushed. */
  toError(): void;
  /** The RNR NAK delay this (receiving) QP asks senders to wait when no receive
   * is posted, IB-encoded 0-31 (0 = 655 ms, 1 = 0.01 ms, 12 = 0.64 ms). RTS only;
   * an InfiniBand/RoCE attribute (iWARP has no RNR). */
  setMinRnrTimer(code: number): void;
  postRecv(wrId: number, sges: Sges): void;
  /** Staging rows for postStaged: STAGE_ROWS rows of STAGE_COLS numbers each, (wrId, mrHandle
   * (0: no data), offset, length, send flags). Kept while the QP lives. */
  readonly sendStage: Float64Array;
  readonly recvStage: Float64Array;
  /** Posts rows 0..n-1 of sendStage (kind 0: plain sends) or recvStage (kind 1: receives) as one
   * chained list: one call and one doorbell for a burst. All rows are checked before any is
   * posted; if the device refuses part way, the error's `posted` says how many went. */
  postStaged(kind: 0 | 1, n: number): void;
  /** Send; with invalidateRkey a Send-with-Invalidate, with imm a Send-with-Immediate. */
  postSend(wrId: number, sges: Sges, flags?: number, invalidateRkey?: number | null, imm?: number | null): void;
  /** RDMA Write; with imm a Write-with-Immediate. */
  postWrite(wrId: number, sges: Sges, remoteAddr: bigint | number, rkey: number, flags?: number, imm?: number | null): void;
  postRead(wrId: number, sges: Sges, remoteAddr: bigint | number, rkey: number, flags?: number): void;
  /** Binds a type-2 window over [offset, offset+length) of mr; returns the new rkey. */
  postBindMw(wrId: number, mw: MemoryWindow, mr: MemoryRegion, offset: number, length: number, access: number, flags?: number): number;
  postLocalInvalidate(wrId: number, rkey: number, flags?: number): void;
}

// ---- rdma_cm -----------------------------------------------------------------

export interface SocketAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface ConnParams {
  /** At most 196 bytes (IB CM); iWARP peers see it in the MPA frame. */
  privateData?: Uint8Array;
  initiatorDepth?: number;
  responderResources?: number;
  retryCount?: number;
  rnrRetryCount?: number;
}

export interface CmId extends Closable {
  readonly deviceName: string | undefined;
  readonly device: Device | undefined;
  readonly portNum: number;
  readonly localAddress: SocketAddress | undefined;
  readonly peerAddress: SocketAddress | undefined;
  readonly qp: QueuePair | undefined;
  /** Literal IP addresses only; resolve names first (node:dns). */
  resolveAddr(host: string, port: number, timeoutMs?: number, srcHost?: string): void;
  resolveRoute(timeoutMs?: number): void;
  bind(host: string, port: number): void;
  listen(backlog?: number): void;
  connect(params?: ConnParams): void;
  accept(params?: ConnParams): void;
  reject(privateData?: Uint8Array): void;
  disconnect(): void;
  createQp(pd: ProtectionDomain, sendCq: CompletionQueue, recvCq: CompletionQueue, caps: QpCaps): QueuePair;
  /** rdma_migrate_id: this id's events now arrive on `channel`. */
  migrate(channel: EventChannel): void;
  /** Gives this id (no QP yet) up for `EventChannel.adoptId()` on another thread (worker_threads):
   * this object closes without destroying the id; returns the handle to post to the thread.
   * Events reaching the old channel before the adoption are dropped. */
  detach(): bigint;
}

export type CmEventType = 'ADDR_RESOLVED' | 'ADDR_ERROR' | 'ROUTE_RESOLVED' | 'ROUTE_ERROR' | 'CONNECT_REQUEST' |
  'CONNECT_RESPONSE' | 'CONNECT_ERROR' | 'UNREACHABLE' | 'REJECTED' | 'ESTABLISHED' | 'DISCONNECTED' |
  'DEVICE_REMOVAL' | 'MULTICAST_JOIN' | 'MULTICAST_ERROR' | 'ADDR_CHANGE' | 'TIMEWAIT_EXIT';

export interface CmEvent {
  type: CmEventType;
  /** Negative errno for errors; the reject reason for REJECTED. */
  status: number;
  /** errno name when status < 0. */
  code?: string;
  /** The id the event is for; for CONNECT_REQUEST a new id (accept or reject it). */
  id?: CmId;
  listenId?: CmId;
  privateData?: Buffer;
  initiatorDepth?: number;
  responderResources?: number;
}

export interface EventChannel extends Closable {
  readonly fd: number;
  createId(): CmId;
  /** Takes a detached id (`CmId.detach()`, any thread of this process) onto this channel with
   * rdma_migrate_id. Throws ERR_INVALID_HANDLE for a handle not detached or already adopted. */
  adoptId(handle: bigint): CmId;
}

// ---- the binding -------------------------------------------------------------

interface Binding {
  available: boolean;
  withRdmaCore: boolean;
  reason?: string;
  listDevices(): DeviceListEntry[];
  openDevice(name: string): Device;
  createEventChannel(onEvents: (events: CmEvent[]) => void): EventChannel;
  destroyDetachedId(handle: bigint): boolean;
  setErrorClass?(cls: ErrorClass): void;
  ACCESS: Record<string, number>;
  SEND_FLAGS: Record<string, number>;
  CQ_BATCH: number;
  STAGE_ROWS: number;
  crc32c?: Crc32c;
  crc32cHardware?: boolean;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('smbdirect: package root (binding.gyp) not found');
    dir = up;
  }
  return dir;
}

type Crc32c = (data: Uint8Array, initial?: number) => number;

function load(): { binding?: Binding; reason?: string; crc32c?: Crc32c } {
  try {
    const require = createRequire(import.meta.url);
    // SMBDIRECT_NATIVE_ADDON: an explicit .node file (the VM suite's AddressSanitizer build)
    const explicit = process.env['SMBDIRECT_NATIVE_ADDON'];
    const b = explicit ? (require(explicit) as Binding) : (require('node-gyp-build') as (dir: string) => Binding)(packageRoot());
    const crc = b.crc32cHardware ? b.crc32c : undefined; // the stub has it too
    return b.available ? { binding: b, crc32c: crc } : { reason: b.reason ?? 'stub addon', crc32c: crc };
  } catch (err) {
    return { reason: `native addon failed to load: ${(err as Error).message}` };
  }
}

const loaded = load();

/** The addon's CRC32c (three interleaved SSE4.2 lanes, in the stub build too), where the CPU has
 * SSE4.2; the iwarp provider installs it into smbdirect/framing with `useCrc32c`. */
export const crc32c: Crc32c | undefined = loaded.crc32c;

/** True when the addon was built and loaded with rdma-core. Devices may still
 * be absent: see `status()`. */
export const available: boolean = loaded.binding !== undefined;
/** Why `available` is false. */
export const reason: string | undefined = loaded.reason;

/** A class the addon's errors are made with: `new cls(code, message)`. */
export type ErrorClass = new (code: string, message: string) => Error;
let errorClass: ErrorClass | undefined;

/**
 * Makes the addon throw `cls` (constructed as `new cls(code, message)`, then `errno` and `syscall`
 * set where a system call failed) instead of Error / TypeError / RangeError with a code, in this
 * thread (each worker thread's addon instance is its own). The providers hand over their RdmaError
 * when they load, so an addon failure reaches their callers as it is, with no wrap at each call.
 */
export function useErrorClass(cls: ErrorClass): void {
  errorClass = cls;
  loaded.binding?.setErrorClass?.(cls);
}

function binding(): Binding {
  if (!loaded.binding) {
    const message = `smbdirect native addon unavailable: ${loaded.reason}`;
    if (errorClass) throw new errorClass('ERR_NATIVE_UNAVAILABLE', message);
    const err = new Error(message) as NativeError;
    err.code = 'ERR_NATIVE_UNAVAILABLE';
    throw err;
  }
  return loaded.binding;
}

/** Memory access bits (IBV_ACCESS_*). */
export const ACCESS = Object.freeze({ LOCAL_WRITE: 1, REMOTE_WRITE: 2, REMOTE_READ: 4, REMOTE_ATOMIC: 8, MW_BIND: 16, ZERO_BASED: 32 });
/** Send flags (IBV_SEND_*). */
export const SEND_FLAGS = Object.freeze({ FENCE: 1, SIGNALED: 2, SOLICITED: 4, INLINE: 8 });
/** Completions per onBatch call at most. */
export const CQ_BATCH = 64;
/** Rows of a QP's sendStage/recvStage, and numbers per row (wrId, mrHandle, offset, length, flags). */
export const STAGE_ROWS = 64;
export const STAGE_COLS = 5;

if (loaded.binding) {
  // the constants above are the verbs ABI; fail loudly if a build disagrees
  for (const [k, v] of Object.entries(ACCESS)) if (loaded.binding.ACCESS[k] !== v) throw new Error(`ACCESS.${k} mismatch`);
  for (const [k, v] of Object.entries(SEND_FLAGS)) if (loaded.binding.SEND_FLAGS[k] !== v) throw new Error(`SEND_FLAGS.${k} mismatch`);
  if (loaded.binding.CQ_BATCH !== CQ_BATCH) throw new Error('CQ_BATCH mismatch');
  if (loaded.binding.STAGE_ROWS !== STAGE_ROWS) throw new Error('STAGE_ROWS mismatch');
}

export interface Access {
  localWrite?: boolean;
  remoteRead?: boolean;
  remoteWrite?: boolean;
  remoteAtomic?: boolean;
  mwBind?: boolean;
}

/** `{ localWrite, remoteRead, remoteWrite }` -> ACCESS bits. */
export function accessFlags(a: Access): number {
  return (a.localWrite ? ACCESS.LOCAL_WRITE : 0) | (a.remoteWrite ? ACCESS.REMOTE_WRITE : 0) |
    (a.remoteRead ? ACCESS.REMOTE_READ : 0) | (a.remoteAtomic ? ACCESS.REMOTE_ATOMIC : 0) | (a.mwBind ? ACCESS.MW_BIND : 0);
}

/** Work completion status names, by ibv_wc_status value. */
export const WC_STATUS = Object.freeze([
  'success', 'local-length', 'local-qp-operation', 'local-eec-operation', 'local-protection', 'flushed',
  'memory-window-bind', 'bad-response', 'local-access', 'remote-invalid-request', 'remote-access',
  'remote-operation', 'retry-exceeded', 'rnr-retry-exceeded', 'local-rdd-violation', 'remote-invalid-rd-request',
  'remote-aborted', 'invalid-eecn', 'invalid-eec-state', 'fatal', 'response-timeout', 'general',
  'tag-matching', 'tag-matching-rndv-incomplete',
] as const);
export type WcStatus = (typeof WC_STATUS)[number];
export function wcStatusName(status: number): string {
  return WC_STATUS[status] ?? `status-${status}`;
}

/** Work completion opcodes (ibv_wc_opcode). */
export const WC_OPCODE = Object.freeze({
  SEND: 0, RDMA_WRITE: 1, RDMA_READ: 2, COMP_SWAP: 3, FETCH_ADD: 4, BIND_MW: 5, LOCAL_INV: 6,
  RECV: 128, RECV_RDMA_WITH_IMM: 129,
});
/** Work completion flags (ibv_wc_flags). */
export const WC_FLAGS = Object.freeze({ GRH: 1, WITH_IMM: 2, IP_CSUM_OK: 4, WITH_INV: 8 });

/** Names, transport and GUID of the RDMA devices (throws ENOSYS/ENODEV-coded errors
 * where the kernel has no RDMA). */
export function listDevices(): DeviceListEntry[] {
  return binding().listDevices();
}

/** Opens a device by name (as librdmacm lists it now: a device created later is found). The same
 * Device object is returned while it is open and its device is not being removed. */
export function openDevice(name: string): Device {
  return binding().openDevice(name);
}

/** An rdma_cm event channel watched by uv_poll; events are delivered in batches. */
export function createEventChannel(onEvents: (events: CmEvent[]) => void): EventChannel {
  return binding().createEventChannel(onEvents);
}

/** Destroys a detached cm_id nobody adopted (its thread died first); false if it was adopted. */
export function destroyDetachedId(handle: bigint): boolean {
  return binding().destroyDetachedId(handle);
}

export interface RdmaStatus {
  /** The addon is built with rdma-core and loaded. */
  addon: boolean;
  /** Devices the kernel reports (empty when none or no RDMA support). */
  devices: DeviceListEntry[];
  /** Why no device is usable, e.g. "ibv_get_device_list failed: ENOSYS (...)". */
  reason?: string;
}

/** What this machine can do, never throwing: for `smbdirect devices` and defaultProvider(). */
export function status(): RdmaStatus {
  if (!loaded.binding) return { addon: false, devices: [], reason: loaded.reason };
  try {
    const devices = loaded.binding.listDevices();
    return devices.length ? { addon: true, devices } : { addon: true, devices, reason: 'no RDMA devices' };
  } catch (err) {
    return { addon: true, devices: [], reason: (err as Error).message };
  }
}
