// The `verbs` provider: the RdmaProvider interface over the native addon (libibverbs + librdmacm)
// and the completion pool (completion/), for RoCE, InfiniBand and iWARP NICs, soft-RoCE (rxe)
// and soft-iWARP (siw). Semantics follow the iwarp-tcp provider (docs/completion.md has the
// state machine): completions in batches with the same Completion shape, every outstanding work
// request completes ('flushed' when the connection goes), the first error is reported once
// ('error'), a graceful end is 'disconnected', then 'close' when everything is freed.
import { AsyncResource } from 'node:async_hooks';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { debuglog } from 'node:util';
import { markAsUntransferable } from 'node:worker_threads';

import { CompletionPool, type CompletionPoolOptions, type CompletionSink, type CqPlacement } from '../../completion/pool.js';
import { WR_KIND, WrRing, type WrKindCode, isRecvWrId, seqOf } from '../../completion/wr-ring.js';
import * as native from '../../native/index.js';
import type {
  CmEvent, CmEventType, CmId, CompletionBatch, Device, DeviceAttributes, EventChannel, NativeError, ProtectionDomain, QueuePair,
} from '../../native/index.js';
import type {
  Access, CapacityNeeds, Completion, CompletionOpcode, ConnectOptions, MemoryRegion, PostSendOptions, RdmaEndpoint, RdmaListener, RdmaProvider,
  Sge,
} from './types.js';
import { RdmaError, rdmaCode } from './errors.js';
import { checkRemote } from './checks.js';

const debug = debuglog('smbdirect');

export interface VerbsOptions {
  /** Send / receive queue depths (default 128 / 128), checked against max_qp_wr. */
  maxSendWr?: number;
  maxRecvWr?: number;
  /** SGEs per send / receive work request (default 4 / 1), checked against max_sge. */
  maxSendSge?: number;
  maxRecvSge?: number;
  maxInlineData?: number;
  /** Outbound RDMA Reads in flight (ORD, default 16; checked against max_qp_init_rd_atom) and
   * inbound ones served (IRD, default 16; checked against max_qp_rd_atom). */
  initiatorDepth?: number;
  responderResources?: number;
  /** The completion pool of each device (CQ count, entries, placement). */
  completion?: CompletionPoolOptions;
  /** Placement key of the next connections (with a hash placement), e.g. a client id. */
  placementKey?: (peer: native.SocketAddress | undefined) => number | undefined;
  /** Graceful disconnect: outstanding work, the DISCONNECTED event and the flush, each (default 10 s). */
  disconnectTimeoutMs?: number;
  /** Address / route resolution and connection establishment (default 5 s / 20 s). */
  resolveTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** RoCE/IB: the RNR NAK delay this side asks a sender to wait when no receive is posted (IB
   * code, default 12 = 0.64 ms; the CM's own is 655 ms). */
  minRnrTimer?: number;
  /** Send-queue slots reserved for memory-window binds (default 0: none). With some, and a
   * device with type-2 windows, `registerMemory(buffer, remote access)` gives a window bound in a
   * kept registration of the whole ArrayBuffer instead of a registration per call: a per-I/O key
   * the peer can invalidate remotely. maxSendWr must include these slots. */
  windowSlots?: number;
}

interface Settings {
  maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number; maxInlineData: number;
  initiatorDepth: number; responderResources: number; disconnectTimeoutMs: number; resolveTimeoutMs: number;
  connectTimeoutMs: number; minRnrTimer: number; windowSlots: number;
}

function settingsOf(o: VerbsOptions): Settings {
  const s: Settings = {
    maxSendWr: o.maxSendWr ?? 128, maxRecvWr: o.maxRecvWr ?? 128, maxSendSge: o.maxSendSge ?? 4, maxRecvSge: o.maxRecvSge ?? 1,
    maxInlineData: o.maxInlineData ?? 0, initiatorDepth: o.initiatorDepth ?? 16, responderResources: o.responderResources ?? 16,
    disconnectTimeoutMs: o.disconnectTimeoutMs ?? 10_000, resolveTimeoutMs: o.resolveTimeoutMs ?? 5000,
    connectTimeoutMs: o.connectTimeoutMs ?? 20_000, minRnrTimer: o.minRnrTimer ?? 12, windowSlots: o.windowSlots ?? 0,
  };
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 0) throw new RdmaError('ERR_OUT_OF_RANGE', `${k} must be a non-negative integer, got ${v}`);
  }
  if (s.maxSendWr < 1 || s.maxRecvWr < 1) throw new RdmaError('ERR_OUT_OF_RANGE', 'maxSendWr and maxRecvWr must be at least 1');
  if (s.initiatorDepth > 255 || s.responderResources > 255) throw new RdmaError('ERR_OUT_OF_RANGE', 'initiatorDepth and responderResources must be <= 255');
  return s;
}

/** Checks queue sizes and read depths against the device; the error names the limit. */
export function checkDeviceLimits(a: DeviceAttributes, s: Pick<Settings, 'maxSendWr' | 'maxRecvWr' | 'maxSendSge' | 'maxRecvSge' | 'initiatorDepth' | 'responderResources'>): void {
  const check = (want: number, max: number, what: string, limit: string) => {
    if (want > max) throw new RdmaError('ERR_DEVICE_LIMIT', `${what} ${want} exceeds the device's ${limit} (${max}) on ${a.name}`);
  };
  check(s.maxSendWr, a.maxQpWr, 'maxSendWr', 'max_qp_wr');
  check(s.maxRecvWr, a.maxQpWr, 'maxRecvWr', 'max_qp_wr');
  check(s.maxSendSge, a.maxSge, 'maxSendSge', 'max_sge');
  check(s.maxRecvSge, a.maxSge, 'maxRecvSge', 'max_sge');
  check(s.initiatorDepth, a.maxQpInitRdAtom, 'initiatorDepth', 'max_qp_init_rd_atom');
  check(s.responderResources, a.maxQpRdAtom, 'responderResources', 'max_qp_rd_atom');
}

/** An addon error as an RdmaError with the same code (errno name or ERR_*), cause kept. */
function wrap(err: unknown, what: string): RdmaError {
  if (err instanceof RdmaError) return err;
  const e = err as NativeError;
  return new RdmaError(rdmaCode(e.code, 'ERR_VERBS'), `${what}: ${e.message}`, { cause: err });
}

// ---- shared per-device resources and the rdma_cm event channel ----------------------------------

/** A device's PD and completion pool, shared by the provider's connections on it. */
class DeviceContext {
  refs = 0;
  readonly attrs: DeviceAttributes;
  readonly pd: ProtectionDomain;
  readonly pool: CompletionPool;
  constructor(readonly device: Device, poolOptions: CompletionPoolOptions | undefined, private readonly onIdle: () => void) {
    this.attrs = device.query();
    this.pd = device.allocPd();
    try {
      this.pool = new CompletionPool(device, poolOptions);
    } catch (err) {
      this.pd.close();
      throw err;
    }
  }
  release(): void {
    if (--this.refs > 0) return;
    this.pool.close();
    this.pd.close();
    this.onIdle();
  }
}

/** The provider's one rdma_cm event channel; events go to the handler of their cm_id. It is
 * closed when no id is left (an open channel keeps the event loop alive). */
class CmChannel {
  channel?: EventChannel;
  /** Each bound to the async context it was registered in (connect()'s or listen()'s caller, and
   * for an accepted id its listener's): AsyncLocalStorage reads the same in the events as there,
   * though the addon calls in from libuv with no context of its own. */
  readonly handlers = new Map<CmId, (e: CmEvent) => void>();

  add(make: (ch: EventChannel) => CmId, handler: (e: CmEvent) => void): CmId {
    if (!this.channel) this.channel = native.createEventChannel((events) => this.dispatch(events));
    let id: CmId;
    try {
      id = make(this.channel);
    } catch (err) {
      this.closeIfIdle();
      throw err;
    }
    this.handlers.set(id, AsyncResource.bind(handler));
    return id;
  }

  /** Registers an id that arrived in a CONNECT_REQUEST. */
  adopt(id: CmId, handler: (e: CmEvent) => void): void {
    this.handlers.set(id, AsyncResource.bind(handler));
  }

  remove(id: CmId): void {
    this.handlers.delete(id);
    if (!id.closed) id.close();
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (this.handlers.size === 0 && this.channel) {
      const ch = this.channel;
      this.channel = undefined;
      setImmediate(() => { if (this.channel !== ch) ch.close(); });
    }
  }

  private dispatch(events: CmEvent[]): void {
    for (const e of events) {
      const target = e.type === 'CONNECT_REQUEST' ? e.listenId : e.id;
      const h = target ? this.handlers.get(target) : undefined;
      if (h) h(e);
      else if (e.type === 'CONNECT_REQUEST' && e.id) e.id.close(); // its listener is gone
    }
  }
}

// ---- memory ------------------------------------------------------------------------------------

class VerbsRegion implements MemoryRegion {
  readonly buffer: Uint8Array;
  /** mr.handle and the length, read once: staged posts name the region by its handle. */
  readonly handle: number;
  readonly size: number;
  constructor(private readonly owner: VerbsEndpoint, readonly mr: native.MemoryRegion, buffer: Uint8Array) {
    this.buffer = buffer;
    this.handle = mr.handle;
    this.size = buffer.byteLength;
  }
  get addr(): bigint { return this.mr.addr; }
  get lkey(): number { return this.mr.lkey; }
  get rkey(): number { return this.mr.rkey; }
  get closed(): boolean { return this.mr.closed; }
  close(): void {
    if (this.mr.closed) return;
    this.mr.close();
    this.owner.forget(this);
  }
}

/** A per-I/O token as a type-2 memory window bound over a long-lived registration of the whole
 * ArrayBuffer (`VerbsEndpoint.baseRegion`): a bind instead of a registration per I/O, and a key
 * the peer can invalidate remotely on RoCE/IB (rxe invalidates windows, not MRs). For the peer
 * only: it is not a local SGE region. */
class VerbsWindow implements MemoryRegion {
  /** The peer invalidated this key (a Send with Invalidate arrived for it): the window is free
   * again in the device and can be bound anew under the next key. */
  invalidatedByPeer = false;
  private released = false;
  constructor(private readonly owner: VerbsEndpoint, private readonly mw: native.MemoryWindow, private readonly base: native.MemoryRegion,
    readonly buffer: Uint8Array, readonly rkey: number) {}
  get addr(): bigint { return this.base.addr + BigInt(this.buffer.byteOffset); }
  get lkey(): number { return this.base.lkey; }
  get closed(): boolean { return this.released || this.mw.closed; }
  close(): void {
    if (this.closed) return;
    this.released = true;
    // A window the peer invalidated is kept for the next bind (ibv_alloc_mw and ibv_dealloc_mw are
    // a system call each: ~1.8 ms of the VM's ~20 ms per 1 MiB I/O). Any other is deallocated,
    // which invalidates it at once.
    if (!this.invalidatedByPeer || !this.owner.keepWindow(this.mw)) this.mw.close();
    this.owner.forgetWindow(this);
  }
}

/** Windows the peer invalidated, kept per endpoint for later binds: at most this many. */
const IDLE_WINDOWS = 64;

/** Whole-ArrayBuffer registrations kept for windows: at most this many, and bytes. */
const BASE_REGIONS = 8;
const BASE_BYTES = 256 * 1024 * 1024;

// ---- the endpoint -----------------------------------------------------------------------------

export type VerbsState = 'IDLE' | 'CONNECTING' | 'RTS' | 'CLOSING' | 'ERROR' | 'CLOSED';

const OPCODE_OF: Record<number, CompletionOpcode> = { [WR_KIND.SEND]: 'send', [WR_KIND.RECV]: 'recv', [WR_KIND.WRITE]: 'write', [WR_KIND.READ]: 'read' };
const STATUS_SUCCESS = 0;
/** How long a closing endpoint waits for the device's flushed completions. siw never completes work
 * posted after its QP went to error (the user doorbell does not flush it): what is still
 * outstanding then is reported as flushed by us. */
const FLUSH_WAIT_MS = 2000;
const STATUS_FLUSHED = 5;
const RESOLVED = Promise.resolve();

/**
 * Endpoints of this thread holding staged receives not yet posted. Any send-queue post in this
 * thread posts them first, so a receive posted before a send in program order is in place before
 * that send can reach a peer: on its own connection (ring() already orders that) and on another one
 * in this process, e.g. a client's receives and then, on the server's connection, the Send that
 * answers into them. Without this, siw terminated such a connection ("no buffer") when the Send
 * overtook the client's doorbell.
 */
const stagedReceivers = new Set<VerbsEndpoint>();
function postStagedReceives(): void {
  for (const ep of stagedReceivers) ep.postStagedReceives();
}

export class VerbsEndpoint extends EventEmitter implements RdmaEndpoint, CompletionSink {
  state: VerbsState;
  peerPrivateData: Uint8Array = new Uint8Array(0);
  /** The peer's read depths from its connect request (responder side). */
  peerInitiatorDepth = 0;
  peerResponderResources = 0;
  /** Our ORD and IRD as negotiated (RdmaEndpoint): what accept() grants, or what the peer's
   * REP / iWARP reply allowed of what connect() asked. */
  initiatorDepth = 0;
  responderResources = 0;
  /** accept() was called: the QP is in RTS from then on, whatever rdma_cm has said so far. */
  private accepting = false;
  /** disconnect()'s wait for the peer's DISCONNECTED (internal: not an event of the endpoint). */
  private peerDisconnectWaiter?: () => void;
  qp?: QueuePair;
  ctx?: DeviceContext;
  placement?: CqPlacement;
  private sq!: WrRing;
  private rq!: WrRing;
  private lastSignaled = 0;
  private readonly regions = new Set<VerbsRegion>();
  private handler: (batch: Iterable<Completion>) => void = () => {};
  private pending: Completion[] = [];
  private firstError?: Error;
  private latched?: Error;
  private cmWaiter?: { types: CmEventType[]; resolve: (e: CmEvent) => void; reject: (err: Error) => void };
  private drainWaiter?: () => void;
  private closedFlag = false;
  private closeWaiters: Array<() => void> = [];
  private peerDisconnected = false;

  constructor(readonly provider: VerbsProviderImpl, readonly id: CmId, state: VerbsState, readonly settings: Settings) {
    super();
    this.state = state;
  }

  get localAddress(): native.SocketAddress | undefined {
    return this.id.closed ? undefined : this.id.localAddress;
  }

  get peerAddress(): native.SocketAddress | undefined {
    return this.id.closed ? undefined : this.id.peerAddress;
  }

  /** Which of the pool's CQs this endpoint's completions are on. */
  get cqIndex(): number {
    return this.placement?.index ?? -1;
  }

  // ---- setup --------------------------------------------------------------------------------

  /** PD, CQ placement and QP on the id's device (after route resolution / on a connect request). */
  setup(key?: number): void {
    const device = this.id.device;
    if (!device) throw new RdmaError('ERR_NO_DEVICE', 'the connection is not bound to an RDMA device');
    const ctx = this.provider.context(device);
    ctx.refs++;
    this.ctx = ctx;
    const s = this.settings;
    checkDeviceLimits(ctx.attrs, s);
    this.placement = ctx.pool.place(this, key);
    try {
      this.qp = this.id.createQp(ctx.pd, this.placement.cq, this.placement.cq, {
        maxSendWr: s.maxSendWr, maxRecvWr: s.maxRecvWr, maxSendSge: s.maxSendSge, maxRecvSge: s.maxRecvSge, maxInlineData: s.maxInlineData,
      });
    } catch (err) {
      throw wrap(err, 'rdma_create_qp');
    }
    this.placement.bind(this.qp.qpNum);
    this.sendRows = this.qp.sendStage;
    this.recvRows = this.qp.recvStage;
    this.sq = new WrRing(s.maxSendWr, false);
    this.rq = new WrRing(s.maxRecvWr, true);
  }

  // ---- rdma_cm events ---------------------------------------------------------------------------

  onCm(e: CmEvent): void {
    const w = this.cmWaiter;
    if (w) {
      this.cmWaiter = undefined;
      if (w.types.includes(e.type)) return w.resolve(e);
      return w.reject(this.cmError(e, w.types));
    }
    debug('verbs: QP %d: rdma_cm %s in state %s', this.qp?.qpNum ?? -1, e.type, this.state);
    switch (e.type) {
      case 'DISCONNECTED':
        this.peerDisconnected = true;
        // a removal tears down the connections on the device one by one: the peer's end may reach
        // us before our own DEVICE_REMOVAL does
        if (this.state === 'RTS') {
          if (this.deviceGone()) this.destroy(this.removedError());
          else void this.gracefulEnd(false);
        } else if (this.state === 'CLOSING') { const w = this.peerDisconnectWaiter; this.peerDisconnectWaiter = undefined; w?.(); }
        break;
      case 'DEVICE_REMOVAL':
        this.removed = true;
        this.destroy(this.removedError());
        break;
      case 'TIMEWAIT_EXIT':
      case 'ADDR_CHANGE':
        break;
      default:
        if (this.state === 'RTS' || this.state === 'CLOSING') this.destroy(this.deviceGone() ? this.removedError() : this.cmError(e, []));
    }
  }

  /** The device is being removed (rdma_cm said so, or it is gone from the device list). */
  private removed = false;

  private removedError(): RdmaError {
    return new RdmaError('ERR_VERBS_DEVICE_REMOVED', `the RDMA device ${this.ctx?.device.name ?? this.id.deviceName ?? ''} was removed`);
  }

  /** Whether the device is going: the kernel tears down the connections on it one by one (a siw
   * QP's work fails, a peer's disconnect arrives) before our own rdma_cm DEVICE_REMOVAL is read,
   * and the device has left the device list by then. Asked on failed completions and on the end
   * of a connection only. */
  private deviceGone(): boolean {
    if (this.removed) return true;
    const name = this.ctx?.device.name;
    if (!name) return false;
    try {
      this.removed = !native.listDevices().some((d) => d.name === name);
    } catch {
      return false; // no device list to ask: not known to be gone
    }
    return this.removed;
  }

  private cmError(e: CmEvent, expected: CmEventType[]): RdmaError {
    if (e.type === 'REJECTED') {
      const err = new RdmaError('ERR_VERBS_REJECTED', `the peer rejected the connection (reason ${e.status})`);
      return Object.assign(err, { privateData: e.privateData ?? new Uint8Array(0) });
    }
    const what = expected.length ? `expected ${expected.join('|')}, got ` : '';
    const code = e.type === 'ADDR_ERROR' ? 'ERR_VERBS_ADDR_ERROR' : e.type === 'ROUTE_ERROR' ? 'ERR_VERBS_ROUTE_ERROR'
      : e.type === 'UNREACHABLE' ? 'ERR_VERBS_UNREACHABLE' : e.type === 'DISCONNECTED' ? 'ERR_VERBS_CONNECTION_LOST'
        : e.type === 'DEVICE_REMOVAL' ? 'ERR_VERBS_DEVICE_REMOVED' : 'ERR_VERBS_CONNECT_ERROR';
    return new RdmaError(code, `rdma_cm: ${what}${e.type} (status ${e.status}${e.code ? ' ' + e.code : ''})`);
  }

  /** The next CM event of this id, one of `types` (else an error), within `ms`. */
  nextCm(types: CmEventType[], ms: number): Promise<CmEvent> {
    return new Promise<CmEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.cmWaiter = undefined;
        reject(new RdmaError('ERR_VERBS_TIMEOUT', `no rdma_cm ${types.join('|')} within ${ms} ms`));
      }, ms);
      this.cmWaiter = {
        types,
        resolve: (e) => { clearTimeout(timer); resolve(e); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      };
    });
  }

  /** After ESTABLISHED: RTS. */
  established(e: CmEvent, initiator: boolean): void {
    if (initiator) {
      this.peerPrivateData = e.privateData ? new Uint8Array(e.privateData) : new Uint8Array(0);
      // IB/RoCE: the REP's depths as this side's to use (IB CM swaps its fields). iWARP (siw): the
      // kernel's own IRD as initiator_depth and ORD as responder_resources, MPA's negotiation done
      // below us: the peer's IRD is not told, so the ORD is what we asked for as the kernel left it
      const ib = this.ctx?.attrs.transport !== 'iwarp';
      const ord = ib ? e.initiatorDepth : e.responderResources;
      const ird = ib ? e.responderResources : e.initiatorDepth;
      this.initiatorDepth = Math.min(this.settings.initiatorDepth, ord ?? this.settings.initiatorDepth);
      this.responderResources = Math.min(this.settings.responderResources, ird ?? this.settings.responderResources);
    }
    // (already RTS when the peer's first message came first; never revive one that is ending)
    if (this.state === 'CONNECTING') this.state = 'RTS';
    if (this.ctx?.attrs.transport === 'ib' && this.qp) {
      try { this.qp.setMinRnrTimer(this.settings.minRnrTimer); } catch { /* RTS only; not fatal */ }
    }
  }

  // ---- the RdmaEndpoint surface -------------------------------------------------------------------

  async accept(privateData?: Uint8Array): Promise<void> {
    if (this.state !== 'IDLE') throw new RdmaError('ERR_INVALID_STATE', 'accept() is for a connection request not yet answered');
    this.state = 'CONNECTING';
    this.accepting = true;
    const s = this.settings;
    const est = this.nextCm(['ESTABLISHED'], s.connectTimeoutMs);
    try {
      this.id.accept({ privateData, initiatorDepth: this.initiatorDepth, responderResources: this.responderResources });
    } catch (err) {
      this.cmWaiter = undefined;
      est.catch(() => {});
      const e = wrap(err, 'rdma_accept');
      this.finish(e, true);
      throw e;
    }
    try {
      this.established(await est, false);
    } catch (err) {
      this.finish(err as Error, true);
      throw err;
    }
  }

  async reject(privateData?: Uint8Array): Promise<void> {
    if (this.state !== 'IDLE') throw new RdmaError('ERR_INVALID_STATE', 'reject() is for a connection request not yet answered');
    try {
      this.id.reject(privateData);
    } finally {
      this.state = 'CLOSING';
      this.free();
      this.state = 'CLOSED';
      this.closeEvents(undefined, true);
    }
  }

  registerMemory(sizeOrBuffer: number | Uint8Array, access: Access): MemoryRegion {
    const ctx = this.ctx;
    if (!ctx || this.state === 'CLOSED') throw new RdmaError('ERR_INVALID_STATE', `cannot register memory in state ${this.state}`);
    if (access.remoteWrite && !access.localWrite) throw new RdmaError('ERR_OUT_OF_RANGE', 'access: remoteWrite requires localWrite');
    if (sizeOrBuffer instanceof Uint8Array && (access.remoteRead || access.remoteWrite)) {
      const w = this.bindWindow(sizeOrBuffer, access);
      if (w) return w;
    }
    const bits = native.accessFlags({ localWrite: access.localWrite, remoteRead: access.remoteRead, remoteWrite: access.remoteWrite });
    let mr: native.MemoryRegion;
    let buffer: Uint8Array;
    try {
      if (typeof sizeOrBuffer === 'number') {
        mr = ctx.pd.allocSlab(sizeOrBuffer, bits);
        buffer = new Uint8Array(mr.buffer);
      } else if (sizeOrBuffer instanceof Uint8Array) {
        pin(sizeOrBuffer.buffer);
        mr = ctx.pd.registerBuffer(sizeOrBuffer, bits);
        buffer = sizeOrBuffer;
      } else {
        throw new RdmaError('ERR_INVALID_ARG_TYPE', 'registerMemory needs a size or a Uint8Array');
      }
    } catch (err) {
      throw wrap(err, 'registerMemory');
    }
    const r = new VerbsRegion(this, mr, buffer);
    this.regions.add(r);
    return r;
  }

  // ---- memory windows: per-I/O remote tokens on devices with type-2 windows ------------------------

  private readonly windows = new Map<number, VerbsWindow>();
  private readonly idleWindows: native.MemoryWindow[] = [];
  private bindsInFlight = 0;
  private readonly bases = new Map<ArrayBufferLike, { mr: native.MemoryRegion; size: number }>();
  private baseBytes = 0;

  /** A window over `buffer` for the peer, or undefined where windows are not to be had (no
   * type-2 windows, not connected, a buffer too large to keep registered, the send queue full):
   * the caller registers the buffer itself then. */
  private bindWindow(buffer: Uint8Array, access: Access): VerbsWindow | undefined {
    const ctx = this.ctx!;
    if (!ctx.attrs.memoryWindowType2 || this.state !== 'RTS' || buffer.byteLength === 0) return undefined;
    if (this.bindsInFlight >= this.settings.windowSlots) return undefined; // the slots reserved for binds are taken
    const base = this.baseRegion(buffer.buffer);
    if (!base) return undefined;
    let mw = this.idleWindows.pop();
    if (!mw) {
      try {
        mw = ctx.pd.allocMw();
      } catch {
        return undefined;
      }
    }
    const bits = native.accessFlags({ remoteRead: access.remoteRead, remoteWrite: access.remoteWrite });
    let rkey = 0;
    try {
      // signaled, so that its slot is known to be free again (bindsInFlight)
      this.postSq(0, WR_KIND.BIND, [], true, 0, (nwr, _sgl, f) => {
        rkey = this.qp!.postBindMw(nwr, mw, base, buffer.byteOffset, buffer.byteLength, bits, f);
      });
    } catch {
      mw.close();
      return undefined;
    }
    this.bindsInFlight++;
    const w = new VerbsWindow(this, mw, base, buffer, rkey);
    this.windows.set(rkey, w);
    return w;
  }

  /** The registration of a whole ArrayBuffer that windows are bound in (local write and bind
   * rights only: its own rkey grants nothing remotely), kept for later I/Os in LRU order. */
  private baseRegion(ab: ArrayBufferLike): native.MemoryRegion | undefined {
    const hit = this.bases.get(ab);
    if (hit && !hit.mr.closed && hit.size === ab.byteLength) {
      this.bases.delete(ab);
      this.bases.set(ab, hit);
      return hit.mr;
    }
    if (hit) this.dropBase(ab);
    if (ab.byteLength > BASE_BYTES / 4) return undefined;
    for (const key of this.bases.keys()) {
      if (this.bases.size < BASE_REGIONS && this.baseBytes + ab.byteLength <= BASE_BYTES) break;
      this.dropBase(key); // windows bound in it stay valid until closed: the MR waits for them
    }
    let mr: native.MemoryRegion;
    try {
      pin(ab);
      mr = this.ctx!.pd.registerBuffer(new Uint8Array(ab), native.ACCESS.LOCAL_WRITE | native.ACCESS.MW_BIND);
    } catch {
      return undefined;
    }
    this.bases.set(ab, { mr, size: ab.byteLength });
    this.baseBytes += ab.byteLength;
    return mr;
  }

  private dropBase(key: ArrayBufferLike): void {
    const e = this.bases.get(key);
    if (!e) return;
    this.bases.delete(key);
    this.baseBytes -= e.size;
    if (![...this.windows.values()].some((w) => w.lkey === e.mr.lkey && !w.closed)) e.mr.close();
    else this.retiredBases.add(e.mr);
  }

  /** Base registrations dropped from the cache while windows were bound in them. */
  private readonly retiredBases = new Set<native.MemoryRegion>();

  /** Called by VerbsWindow.close() for a window the peer invalidated: true if it is kept. */
  keepWindow(mw: native.MemoryWindow): boolean {
    if (this.freed || this.state !== 'RTS' || this.idleWindows.length >= IDLE_WINDOWS) return false;
    this.idleWindows.push(mw);
    return true;
  }

  /** Called by VerbsWindow.close(). */
  forgetWindow(w: VerbsWindow): void {
    this.windows.delete(w.rkey);
    for (const mr of this.retiredBases) {
      if (![...this.windows.values()].some((x) => x.lkey === mr.lkey)) {
        mr.close();
        this.retiredBases.delete(mr);
      }
    }
  }

  /** Called by VerbsRegion.close(). */
  forget(r: VerbsRegion): void {
    this.regions.delete(r);
    if (this.lastRegion === r) this.lastRegion = undefined;
  }

  onCompletions(handler: (batch: Iterable<Completion>) => void): void {
    this.handler = handler;
    // completions, and what they end (errors, close), run in the caller's async context, as a
    // net.Socket's events run in the one it was made in: the addon calls in with none of its own
    this.scope = new AsyncResource('SMBDIRECT_VERBS_ENDPOINT');
  }

  private scope?: AsyncResource;

  postRecv(wrId: number, sge: Sge): void {
    if (this.state !== 'IDLE' && this.state !== 'CONNECTING') this.checkPost();
    if (this.rq.full) throw new RdmaError('ERR_QUEUE_FULL', `receive queue full (${this.rq.capacity})`);
    const r = this.stageable(sge);
    if (this.recvStaged === native.STAGE_ROWS) this.ring();
    const nwr = this.rq.push(wrId, WR_KIND.RECV, true, sge.length);
    this.stage(this.recvRows!, this.recvStaged++, nwr, r.handle, sge.offset, sge.length, 0);
    if (this.state === 'RTS') {
      if (this.recvStaged === 1) stagedReceivers.add(this);
      return this.scheduleRing();
    }
    // before the connection is up the receive is posted now (a failure is the caller's)
    try {
      this.recvStaged = 0;
      this.qp!.postStaged(1, 1);
    } catch (err) {
      this.rq.unpush();
      throw wrap(err, 'postRecv');
    }
  }

  postSend(wrId: number, sges: Sge[], opts: PostSendOptions = {}): void {
    const flags = opts.solicited ? native.SEND_FLAGS.SOLICITED : 0;
    if (sges.length === 1 && opts.invalidateRkey === undefined) {
      // the common case: staged, and posted with the rest of this burst
      this.checkPost();
      const sq = this.sq;
      if (sq.full) throw new RdmaError('ERR_QUEUE_FULL', `send queue full (${sq.capacity})`);
      const s = sges[0]!;
      const r = this.stageable(s);
      if (this.sendStaged === native.STAGE_ROWS) this.ring();
      const signaled = opts.signaled ?? true;
      const forced = !signaled && sq.head - this.lastSignaled >= sq.capacity >> 1;
      const nwr = sq.push(wrId, WR_KIND.SEND, signaled, s.length);
      if (signaled || forced) this.lastSignaled = sq.head;
      this.stage(this.sendRows!, this.sendStaged++, nwr, r.handle, s.offset, s.length, flags | (signaled || forced ? native.SEND_FLAGS.SIGNALED : 0));
      this.scheduleRing();
      return;
    }
    this.postSq(wrId, WR_KIND.SEND, sges, opts.signaled ?? true, flags, (nwr, sgl, f) => this.qp!.postSend(nwr, sgl, f, opts.invalidateRkey));
  }

  postWrite(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void {
    checkRemote(remoteAddr, sgeBytes(sges), rkey);
    this.postSq(wrId, WR_KIND.WRITE, sges, true, 0, (nwr, sgl, f) => this.qp!.postWrite(nwr, sgl, remoteAddr, rkey, f));
  }

  postRead(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void {
    checkRemote(remoteAddr, sgeBytes(sges), rkey);
    this.postSq(wrId, WR_KIND.READ, sges, true, 0, (nwr, sgl, f) => this.qp!.postRead(nwr, sgl, remoteAddr, rkey, f));
  }

  /** Invalidates one of this endpoint's own rkeys: on iWARP a Local Invalidate work request
   * (unreported); on InfiniBand/RoCE, where only windows and fast-registered MRs can be
   * invalidated, the region is deregistered (closed) instead. */
  invalidate(rkey: number): void {
    const w = this.windows.get(rkey);
    if (w) { w.close(); return; }
    const r = [...this.regions].find((x) => x.rkey === rkey);
    if (!r) throw new RdmaError('ERR_INVALID_STAG', `rkey 0x${rkey.toString(16)} is not registered here`);
    if (this.ctx?.attrs.transport === 'iwarp' && this.state === 'RTS') {
      try {
        this.postSq(0, WR_KIND.INTERNAL, [], false, 0, (nwr, _sgl, f) => this.qp!.postLocalInvalidate(nwr, rkey, f));
        return;
      } catch (err) {
        // siw's user-space provider has no Local Invalidate (libsiw maps IBV_WR_LOCAL_INV to no
        // opcode: EINVAL, which rdma-core returns negated): deregistering kills the key as well
        debug('verbs: local invalidate refused (%s): deregistering rkey 0x%s', (err as Error).message, rkey.toString(16));
      }
    }
    r.close();
  }

  // ---- staged posts: a burst of sends or receives goes to the device in one call, one doorbell --

  private sendStaged = 0;
  private recvStaged = 0;
  private ringScheduled = false;
  private sendRows?: Float64Array;
  private recvRows?: Float64Array;
  private readonly ringNow = (): void => this.ring();

  /** The region of the last staged SGE: the next one is usually in it too. */
  private lastRegion?: VerbsRegion;

  /** Checks an SGE as the addon would, so a staged row cannot fail later for a caller's mistake. */
  private stageable(s: Sge): VerbsRegion {
    const r = s.mr === this.lastRegion ? this.lastRegion : (this.lastRegion = this.region(s.mr));
    const { offset, length } = s;
    if (!(offset >= 0 && length >= 0 && offset + length <= r.size) || !Number.isInteger(offset) || !Number.isInteger(length)) {
      throw new RdmaError('ERR_OUT_OF_RANGE', `sge [${offset}, +${length}) is outside the memory region (${r.size} bytes)`);
    }
    return r;
  }

  private stage(rows: Float64Array, i: number, nwr: number, handle: number, offset: number, length: number, flags: number): void {
    const o = i * native.STAGE_COLS;
    rows[o] = nwr;
    rows[o + 1] = handle;
    rows[o + 2] = offset;
    rows[o + 3] = length;
    rows[o + 4] = flags;
  }

  /** The doorbell goes when the current JS task ends (after a completion batch's handler, say). */
  private scheduleRing(): void {
    if (this.ringScheduled) return;
    this.ringScheduled = true;
    // a promise reaction, not queueMicrotask: that one makes an AsyncResource per call
    RESOLVED.then(this.ringNow);
  }

  /** Posts what is staged: receives first (a peer's reply to the sends may need them). A device
   * refusing staged work ends the connection, as a failed completion would. */
  private ring(): void {
    this.ringScheduled = false;
    const ns = this.sendStaged;
    if (ns && stagedReceivers.size) postStagedReceives(); // ours among them
    else this.postStagedReceives();
    if (!ns) return;
    this.sendStaged = 0;
    this.postRows(0, ns);
  }

  /** @internal Posts the receives staged so far (before any send of this thread goes). */
  postStagedReceives(): void {
    stagedReceivers.delete(this);
    const nr = this.recvStaged;
    if (!nr) return;
    this.recvStaged = 0;
    this.postRows(1, nr);
  }

  /** Posts `n` staged rows of the send (0) or receive (1) stage. */
  private postRows(kind: 0 | 1, n: number): void {
    if (!this.qp || this.qp.closed) return;
    try {
      this.qp.postStaged(kind, n);
    } catch (err) {
      const e = wrap(err, kind ? 'postRecv' : 'postSend');
      if (this.state === 'RTS' || this.state === 'CLOSING') this.destroy(e);
      else this.latch(e);
    }
  }

  private postSq(wrId: number, kind: WrKindCode, sges: Sge[], signaled: boolean, flags: number,
    post: (nwr: number, sgl: native.Sge[], flags: number) => void): void {
    this.checkPost();
    if (stagedReceivers.size) postStagedReceives();
    if (this.sendStaged) this.ring(); // the send queue keeps the order of posting
    const sq = this.sq;
    if (sq.full) throw new RdmaError('ERR_QUEUE_FULL', `send queue full (${sq.capacity})`);
    // an unsignaled run may not fill the queue: every half queue one is signaled (unreported),
    // so its completion retires the slots before it
    const forced = !signaled && sq.head - this.lastSignaled >= sq.capacity >> 1;
    let length = 0;
    const sgl: native.Sge[] = new Array(sges.length);
    for (let i = 0; i < sges.length; i++) {
      sgl[i] = this.sge(sges[i]!);
      length += sges[i]!.length;
    }
    const nwr = sq.push(wrId, kind, signaled, length);
    const lastSignaled = this.lastSignaled;
    if (signaled || forced) this.lastSignaled = sq.head;
    try {
      post(nwr, sgl, flags | (signaled || forced ? native.SEND_FLAGS.SIGNALED : 0));
    } catch (err) {
      // refused: as if never posted (a graceful disconnect waits for the last signaled one)
      this.lastSignaled = lastSignaled;
      sq.unpush();
      throw wrap(err, 'post');
    }
  }

  private sge(s: Sge): native.Sge {
    return { mr: this.region(s.mr).mr, offset: s.offset, length: s.length };
  }

  private region(mr: Sge['mr']): VerbsRegion {
    const r = mr as VerbsRegion;
    if (!(r instanceof VerbsRegion) || !this.regions.has(r)) throw new RdmaError('ERR_INVALID_ARG_TYPE', 'sge.mr is not a memory region of this endpoint');
    return r;
  }

  private checkPost(): void {
    if (this.state !== 'RTS') throw new RdmaError('ERR_INVALID_STATE', `cannot post work in state ${this.state}`);
  }

  // ---- completions (CompletionSink) --------------------------------------------------------------

  take(batch: CompletionBatch, i: number): void {
    const nwr = batch.wrId[i]!;
    const ring = isRecvWrId(nwr) ? this.rq : this.sq;
    const slot = ring.retire(seqOf(nwr));
    if (slot < 0) return;
    const kind = ring.kind[slot]!;
    let status = batch.status[i]!;
    if (status !== STATUS_SUCCESS && status !== STATUS_FLUSHED && this.deviceGone()) {
      // not this work request's failure: the device went, and the endpoint ends with that
      status = STATUS_FLUSHED;
      this.latch(this.removedError());
    }
    if (kind === WR_KIND.BIND) {
      this.bindsInFlight--;
      if (status !== STATUS_SUCCESS && status !== STATUS_FLUSHED) this.latch(new RdmaError('ERR_VERBS_WC_ERROR', `a memory window bind completed with ${native.wcStatusName(status)}`));
      return;
    }
    if (kind === WR_KIND.INTERNAL && status === STATUS_SUCCESS) return;
    if (!ring.signaled[slot] && status === STATUS_SUCCESS) return; // a forced signal
    const statusName = status === STATUS_SUCCESS ? 'success' : status === STATUS_FLUSHED ? 'flushed' : native.wcStatusName(status);
    if (kind === WR_KIND.INTERNAL) {
      if (status !== STATUS_FLUSHED) this.latch(new RdmaError('ERR_VERBS_WC_ERROR', `local invalidate completed with ${statusName}`));
      return;
    }
    if (kind === WR_KIND.RECV && status === STATUS_SUCCESS && this.state === 'CONNECTING' && this.accepting) {
      // The peer's first message, before rdma_cm's ESTABLISHED was read: the peer is up (IB calls
      // this COMM_EST, data before the RTU; under load the CQ's fd is often read before the CM's),
      // and our QP has been in RTS since rdma_accept. Without this the answer to that message was
      // refused (ERR_INVALID_STATE, "going down") and the peer waited for it forever.
      debug('verbs: QP %d: the peer\'s first message came before rdma_cm ESTABLISHED: in RTS now', this.qp?.qpNum ?? -1);
      this.state = 'RTS';
    }
    const opcode = OPCODE_OF[kind]!;
    let byteLength = 0;
    if (status === STATUS_SUCCESS) byteLength = kind === WR_KIND.RECV ? batch.byteLength[i]! : ring.length[slot]!;
    const c: Completion = { wrId: ring.userWrId[slot]!, opcode, status: statusName, byteLength };
    if (status === STATUS_SUCCESS && kind === WR_KIND.RECV && (batch.flags[i]! & native.WC_FLAGS.WITH_INV)) {
      c.invalidatedRkey = batch.immOrInvalidatedRkey[i]!;
      const w = this.windows.get(c.invalidatedRkey);
      if (w) w.invalidatedByPeer = true;
    }
    this.pending.push(c);
    if (status !== STATUS_SUCCESS && status !== STATUS_FLUSHED) {
      this.latch(new RdmaError('ERR_VERBS_WC_ERROR', `${opcode} (wrId ${c.wrId}) completed with ${statusName}`));
    }
  }

  flush(): void {
    this.inScope(this.deliver);
  }

  private inScope(fn: () => void): void {
    if (this.scope) this.scope.runInAsyncScope(fn, this);
    else fn.call(this);
  }

  private deliver(): void {
    if (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      this.handler(batch);
    }
    if (this.latched && (this.state === 'RTS' || this.state === 'CLOSING')) {
      const err = this.latched;
      this.latched = undefined;
      this.destroy(err);
    }
    if (this.drainWaiter) {
      const w = this.drainWaiter;
      this.drainWaiter = undefined;
      w();
    }
  }

  private latch(err: Error): void {
    if (!this.latched) this.latched = err;
  }

  private drained(): boolean {
    return (!this.sq || this.sq.outstanding === 0) && (!this.rq || this.rq.outstanding === 0);
  }

  /** Every signaled send-queue WR has completed (unsignaled ones after the last are not awaited). */
  private sqDrained(): boolean {
    return !this.sq || this.sq.tail >= this.lastSignaled;
  }

  /** Resolves when `done()` holds (checked after every batch), or after `ms`. */
  private waitFor(done: () => boolean, ms: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.drainWaiter = undefined; resolve(false); }, ms);
      const check = () => {
        if (done()) { clearTimeout(timer); resolve(true); } else this.drainWaiter = check;
      };
      this.drainWaiter = check;
    });
  }

  // ---- close -----------------------------------------------------------------------------------

  /** Graceful: no new work, outstanding sends/writes/reads finish, rdma_disconnect, DISCONNECTED,
   * the receive queue flushes (marker work requests), everything is freed. */
  async disconnect(): Promise<void> {
    if (this.state === 'CLOSED') return;
    if (this.state === 'IDLE') return this.reject();
    if (this.state !== 'RTS') return this.waitClosed();
    return this.gracefulEnd(true);
  }

  private async gracefulEnd(local: boolean): Promise<void> {
    this.state = 'CLOSING';
    const ms = this.settings.disconnectTimeoutMs;
    let err: Error | undefined;
    if (local && !(await this.waitFor(() => this.sqDrained(), ms))) {
      err = new RdmaError('ERR_VERBS_DISCONNECT_TIMEOUT', `outstanding work did not finish within ${ms} ms`);
    }
    if (this.state !== 'CLOSING') return this.waitClosed(); // destroyed meanwhile
    try { this.id.disconnect(); } catch { /* the peer may have gone already */ }
    if (!this.peerDisconnected && !err) {
      const got = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        this.peerDisconnectWaiter = () => { clearTimeout(timer); resolve(true); };
      });
      if (!got) err = new RdmaError('ERR_VERBS_DISCONNECT_TIMEOUT', `no DISCONNECTED from the peer within ${ms} ms`);
    }
    if (this.state !== 'CLOSING') return this.waitClosed();
    const flushed = await this.flushQueues(Math.min(ms, FLUSH_WAIT_MS));
    debug('verbs: %s disconnect of QP %d: %s', local ? 'local' : 'peer', this.qp?.qpNum ?? -1,
      flushed ? 'queues flushed' : `flush incomplete after ${Math.min(ms, FLUSH_WAIT_MS)} ms (sq ${this.sq.outstanding}, rq ${this.rq.outstanding} outstanding: reported as flushed)`);
    this.free();
    this.state = 'CLOSED';
    this.closeEvents(err, false);
  }

  /** QP to error, a marker on each queue; waits until every outstanding WR has completed. */
  private async flushQueues(ms: number): Promise<boolean> {
    if (!this.qp || this.qp.closed) return true;
    this.ring(); // staged work is posted, then flushed like the rest
    try { this.qp.toError(); } catch { /* already in error */ }
    if (this.drained()) return true;
    // markers: their flushed completions come after everything posted before them (and retire
    // unsignaled sends that finished silently); we wait for what came before them
    const rqTarget = this.rq.head, sqTarget = Math.max(this.lastSignaled, this.sq.tail);
    try {
      if (!this.rq.full) this.qp.postRecv(this.rq.push(0, WR_KIND.INTERNAL, false, 0), null);
    } catch { this.rq.unpush(); }
    try {
      if (!this.sq.full) this.qp.postSend(this.sq.push(0, WR_KIND.INTERNAL, false, 0), null, native.SEND_FLAGS.SIGNALED);
    } catch { this.sq.unpush(); }
    return this.waitFor(() => this.rq.tail >= rqTarget && this.sq.tail >= sqTarget, ms);
  }

  /** Abortive: the QP goes to error (outstanding work is flushed), the connection is torn down. */
  destroy(err?: Error): void {
    if (this.state === 'CLOSED' || this.state === 'ERROR') return;
    const was = this.state;
    this.state = 'ERROR';
    if (this.cmWaiter) {
      const w = this.cmWaiter;
      this.cmWaiter = undefined;
      w.reject(err ?? new RdmaError('ERR_VERBS_DESTROYED', 'the endpoint was destroyed'));
    }
    if (was === 'IDLE') {
      try { this.id.reject(); } catch { /* gone */ }
    }
    void this.flushQueues(Math.min(this.settings.disconnectTimeoutMs, FLUSH_WAIT_MS)).then(() => {
      this.free();
      this.state = 'CLOSED';
      this.closeEvents(err, false);
    });
  }

  /** After a failed setup or establishment: free and end. */
  finish(err: Error, silent: boolean): void {
    if (this.state === 'CLOSED') return;
    this.state = 'ERROR';
    this.free();
    this.state = 'CLOSED';
    this.closeEvents(silent ? undefined : err, true);
  }

  private freed = false;
  private free(): void {
    if (this.freed) return;
    this.freed = true;
    this.placement?.release(); // polls what is still queued for us first
    this.flushRemaining();
    for (const r of [...this.regions]) r.close();
    for (const w of [...this.windows.values()]) w.close();
    for (const mw of this.idleWindows) mw.close();
    this.idleWindows.length = 0;
    for (const key of [...this.bases.keys()]) this.dropBase(key);
    for (const mr of this.retiredBases) mr.close();
    this.retiredBases.clear();
    this.provider.cm.remove(this.id); // closes the cm_id and with it the QP
    if (this.ctx) {
      const ctx = this.ctx;
      this.ctx = undefined;
      // out of any CQ callback before the pool may close
      setImmediate(() => ctx.release());
    }
    this.flushPending();
  }

  /** Work requests the device never completed: reported as flushed, in posting order. */
  private flushRemaining(): void {
    for (const ring of [this.sq, this.rq]) {
      if (!ring) continue;
      while (ring.tail < ring.head) {
        const slot = ring.retire(ring.tail);
        const kind = ring.kind[slot]!;
        if (kind === WR_KIND.INTERNAL) continue;
        if (kind === WR_KIND.BIND) { this.bindsInFlight--; continue; }
        this.pending.push({ wrId: ring.userWrId[slot]!, opcode: OPCODE_OF[kind]!, status: 'flushed', byteLength: 0 });
      }
    }
  }

  private flushPending(): void {
    if (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      this.inScope(() => this.handler(batch));
    }
  }

  private closing = false;
  private closeEvents(err: Error | undefined, quiet: boolean): void {
    if (this.closing) return;
    this.closing = true;
    if (err && !this.firstError) this.firstError = err;
    queueMicrotask(() => this.inScope(() => {
      if (!quiet) {
        if (err) { if (this.listenerCount('error') > 0) this.emit('error', err); } else this.emit('disconnected');
      }
      this.closedFlag = true;
      this.emit('close');
      for (const w of this.closeWaiters.splice(0)) w();
    }));
  }

  private waitClosed(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** The first error, if the endpoint ended with one. */
  get error(): Error | undefined {
    return this.firstError;
  }
}

// ---- listener and provider ------------------------------------------------------------------

/** A listening cm_id as an RdmaListener (also the worker pool's). */
export class VerbsListener extends EventEmitter implements RdmaListener {
  constructor(private readonly provider: VerbsProviderImpl, readonly id: CmId) {
    super();
  }
  get port(): number {
    return this.id.localAddress?.port ?? 0;
  }
  /** Stops accepting; endpoints already delivered live on. */
  close(): Promise<void> {
    if (!this.id.closed) this.provider.cm.remove(this.id);
    return Promise.resolve();
  }

  /** rdma_cm DEVICE_REMOVAL for the listening id (bound to an address of that device): it can
   * never accept again and must let go of the device, whose removal waits for that. */
  deviceRemoved(): void {
    if (this.id.closed) return;
    const what = `the RDMA device ${this.id.deviceName ?? ''} of the listener on port ${this.port} was removed`;
    this.provider.cm.remove(this.id);
    if (this.listenerCount('error') > 0) this.emit('error', new RdmaError('ERR_VERBS_DEVICE_REMOVED', what));
  }
}

/**
 * A registered JS-owned ArrayBuffer must not be detached: a transfer to a worker (postMessage,
 * structuredClone) would move its memory to another owner that may free it while the device still
 * reads and writes it. Marked untransferable, Node copies it on such a transfer instead, and the
 * registration keeps its memory. (Node 20 has no ArrayBuffer.prototype.transfer(); on later Nodes
 * that one call is not prevented, docs/completion.md.)
 */
function pin(ab: ArrayBufferLike): void {
  if (ab instanceof ArrayBuffer) markAsUntransferable(ab);
}

function sgeBytes(sges: Sge[]): number {
  let n = 0;
  for (const s of sges) n += s.length;
  return n;
}

async function literal(host: string): Promise<string> {
  if (isIP(host)) return host;
  return (await lookup(host)).address;
}

export interface VerbsProvider extends RdmaProvider {
  readonly name: 'verbs';
  connect(opts: ConnectOptions): Promise<VerbsEndpoint>;
  /** Per-CQ counters of each device's completion pool (empty while no connection is open). */
  stats(): Record<string, ReturnType<CompletionPool['stats']>>;
}

export class VerbsProviderImpl implements VerbsProvider {
  readonly name = 'verbs' as const;
  readonly cm = new CmChannel();
  readonly settings: Settings;
  private readonly contexts = new Map<Device, DeviceContext>();

  constructor(readonly options: VerbsOptions = {}) {
    this.settings = settingsOf(options);
  }

  context(device: Device): DeviceContext {
    let c = this.contexts.get(device);
    if (!c) {
      const ctx: DeviceContext = new DeviceContext(device, this.options.completion, () => {
        if (this.contexts.get(device) === ctx) this.contexts.delete(device);
      });
      this.contexts.set(device, ctx);
      c = ctx;
    }
    return c;
  }

  stats(): Record<string, ReturnType<CompletionPool['stats']>> {
    const out: Record<string, ReturnType<CompletionPool['stats']>> = {};
    for (const [d, c] of this.contexts) if (!c.pool.closed) out[d.name] = c.pool.stats();
    return out;
  }

  /** Against this provider's queue sizes (a spare receive and send for drain markers, the window
   * slots) and, where the addon has devices, against the largest of them. */
  checkCapacity(needs: CapacityNeeds): void {
    const s = this.settings;
    if (needs.receives + 1 > s.maxRecvWr) throw new RdmaError('ERR_OUT_OF_RANGE', `${needs.receives} receives (+1 spare) exceed this provider's maxRecvWr (${s.maxRecvWr})`);
    if (needs.sends + 1 + s.windowSlots > s.maxSendWr) {
      throw new RdmaError('ERR_OUT_OF_RANGE', `${needs.sends} send work requests (+1 spare, +${s.windowSlots} window slots) exceed this provider's maxSendWr (${s.maxSendWr})`);
    }
    const st = native.status();
    if (!st.addon || !st.devices.length) return;
    const reasons: string[] = [];
    for (const d of st.devices) {
      try {
        // not closed after: openDevice() gives the process's one Device object of that device, the
        // one its connections' PDs, CQs and QPs hang off; closing it would close them all
        checkDeviceLimits(native.openDevice(d.name).query(), s);
        return; // one device can carry it
      } catch (err) {
        reasons.push((err as Error).message);
      }
    }
    throw new RdmaError('ERR_DEVICE_LIMIT', `no RDMA device can carry these queues: ${reasons.join('; ')}`);
  }

  async listen(opts: { host: string; port: number; backlog?: number }): Promise<RdmaListener> {
    if (!native.available) throw new RdmaError('ERR_NATIVE_UNAVAILABLE', `the verbs provider needs the native addon: ${native.reason}`);
    const host = await literal(opts.host);
    let listener!: VerbsListener;
    const id = this.cm.add((ch) => ch.createId(), (e) => {
      if (e.type === 'CONNECT_REQUEST' && e.id) this.onRequest(listener, e);
      else if (e.type === 'DEVICE_REMOVAL') listener.deviceRemoved();
    });
    listener = new VerbsListener(this, id);
    try {
      id.bind(host, opts.port);
      id.listen(opts.backlog ?? 128);
    } catch (err) {
      this.cm.remove(id);
      throw wrap(err, `listen on ${host}:${opts.port}`);
    }
    return listener;
  }

  /** Wraps a connect request's id as an unaccepted endpoint (also for ids handed to a worker). */
  requestEndpoint(id: CmId, e: { privateData?: Uint8Array; initiatorDepth?: number; responderResources?: number }, register = true): VerbsEndpoint {
    const ep = new VerbsEndpoint(this, id, 'IDLE', this.settings);
    if (register) this.cm.adopt(id, (ev) => ep.onCm(ev));
    ep.peerPrivateData = e.privateData ? new Uint8Array(e.privateData) : new Uint8Array(0);
    // rdma_cm gives the request's depths as this side's to use (IB CM swaps the REQ's fields, and
    // so does iw_cm): initiator_depth is the peer's IRD, responder_resources the peer's ORD
    ep.peerInitiatorDepth = e.responderResources ?? 0;
    ep.peerResponderResources = e.initiatorDepth ?? 0;
    ep.initiatorDepth = Math.min(ep.settings.initiatorDepth, ep.peerResponderResources);
    ep.responderResources = Math.min(ep.settings.responderResources, ep.peerInitiatorDepth);
    try {
      ep.setup(this.options.placementKey?.(id.peerAddress));
    } catch (err) {
      try { id.reject(); } catch { /* gone */ }
      ep.finish(err as Error, true);
      throw err;
    }
    return ep;
  }

  private onRequest(listener: VerbsListener, e: CmEvent): void {
    let ep: VerbsEndpoint;
    try {
      ep = this.requestEndpoint(e.id!, e);
    } catch (err) {
      // one connection request that could not be set up (rdma_create_qp failing, say): the
      // listener itself is fine and keeps listening
      debug('verbs: connect request refused: %s', (err as Error).message);
      listener.emit('connectionError', err);
      return;
    }
    listener.emit('connection', ep);
  }

  async connect(opts: ConnectOptions): Promise<VerbsEndpoint> {
    if (!native.available) throw new RdmaError('ERR_NATIVE_UNAVAILABLE', `the verbs provider needs the native addon: ${native.reason}`);
    const host = await literal(opts.host);
    const s: Settings = {
      ...this.settings,
      initiatorDepth: opts.initiatorDepth ?? this.settings.initiatorDepth,
      responderResources: opts.responderResources ?? this.settings.responderResources,
    };
    let ep!: VerbsEndpoint;
    const id = this.cm.add((ch) => ch.createId(), (e) => ep.onCm(e));
    ep = new VerbsEndpoint(this, id, 'CONNECTING', s);
    try {
      const addr = ep.nextCm(['ADDR_RESOLVED'], s.resolveTimeoutMs);
      try { id.resolveAddr(host, opts.port, s.resolveTimeoutMs); } catch (err) { addr.catch(() => {}); throw wrap(err, 'rdma_resolve_addr'); }
      await addr;
      const route = ep.nextCm(['ROUTE_RESOLVED'], s.resolveTimeoutMs);
      try { id.resolveRoute(s.resolveTimeoutMs); } catch (err) { route.catch(() => {}); throw wrap(err, 'rdma_resolve_route'); }
      await route;
      ep.setup(this.options.placementKey?.(id.peerAddress));
      const est = ep.nextCm(['ESTABLISHED'], s.connectTimeoutMs);
      try {
        id.connect({ privateData: opts.privateData, initiatorDepth: s.initiatorDepth, responderResources: s.responderResources });
      } catch (err) {
        est.catch(() => {});
        throw wrap(err, 'rdma_connect');
      }
      ep.established(await est, true);
      debug('verbs: connected to %s:%d on %s (CQ %d)', host, opts.port, id.deviceName, ep.cqIndex);
      return ep;
    } catch (err) {
      ep.finish(err as Error, true);
      throw err;
    }
  }
}

/** Send-queue slots reserved for memory-window binds: per-I/O registrations of caller buffers are
 * windows where the device has type-2 windows (rxe), up to this many binds in flight; past that,
 * registrations of their own. */
export const WINDOW_SLOTS = 32;

/** Queue sizes for connections that need `n`: a receive WR per receive and a send WR per send
 * (messages and RDMA operations share them), one spare each for the drain markers of a graceful
 * disconnect, the window binds' slots, and the read depth both ways. */
export function verbsOptionsForNeeds(n: CapacityNeeds): VerbsOptions {
  return {
    maxRecvWr: n.receives + 1, maxSendWr: n.sends + 1 + WINDOW_SLOTS, windowSlots: WINDOW_SLOTS,
    initiatorDepth: n.readDepth, responderResources: n.readDepth,
  };
}

/** The `verbs` provider (needs the native addon built with rdma-core and an RDMA device). */
export function createVerbsProvider(options: VerbsOptions = {}): VerbsProvider {
  return new VerbsProviderImpl(options);
}
