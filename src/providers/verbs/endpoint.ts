// The verbs endpoint: an RC queue pair on an rdma_cm id, as an RdmaEndpoint. Work is staged and
// posted in bursts (one doorbell per JS task), completions arrive from the device's completion pool
// (completion/) in batches, and the end follows the contract (endpoint-base.ts, docs/completion.md
// has the state machine): every outstanding work request completes ('flushed' when the connection
// goes), the first error is reported once, a graceful end is 'disconnected', then 'close'.
import { debuglog } from 'node:util';

import type { CompletionSink, CqPlacement } from '../../../completion/pool.js';
import { WR_KIND, WrRing, type WrKindCode, isRecvWrId, seqOf } from '../../../completion/wr-ring.js';
import * as native from '../../../native/index.js';
import type { CmEvent, CmEventType, CmId, CompletionBatch, QueuePair } from '../../../native/index.js';
import { checkRemote } from '../checks.js';
import { EndpointBase, checkSgeRange, queueFullError } from '../endpoint-base.js';
import { RdmaError } from '../errors.js';
import type { Access, Completion, CompletionOpcode, MemoryRegion, PostSendOptions, RdmaEndpoint, Sge } from '../types.js';
import { EndpointMemory, type VerbsRegion, type VerbsWindow } from './memory.js';
import type { DeviceContext, VerbsProviderImpl } from './provider.js';
import { type Settings, checkDeviceLimits } from './settings.js';

// NODE_DEBUG=smbdirect_verbs (or smbdirect*): rdma_cm events, disconnects, refused requests
const debug = debuglog('smbdirect_verbs');

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

export class VerbsEndpoint extends EndpointBase implements RdmaEndpoint, CompletionSink {
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
  /** Registrations and windows (made in setup(), on the device's PD). */
  private memory?: EndpointMemory;
  private pending: Completion[] = [];
  private latched?: Error;
  private cmWaiter?: { types: CmEventType[]; resolve: (e: CmEvent) => void; reject: (err: Error) => void };
  private drainWaiter?: () => void;
  private peerDisconnected = false;
  /** The device is being removed (rdma_cm said so, or it is gone from the device list). */
  private removed = false;
  /** free() ran: resources released once. */
  private freed = false;
  /** Memory-window binds posted and not yet completed (at most settings.windowSlots). */
  private bindsInFlight = 0;
  // staged posts: a burst of sends or receives goes to the device in one call, one doorbell
  private sendStaged = 0;
  private recvStaged = 0;
  private ringScheduled = false;
  private sendRows?: Float64Array;
  private recvRows?: Float64Array;
  private readonly ringNow = (): void => this.ring();

  constructor(readonly provider: VerbsProviderImpl, readonly id: CmId, state: VerbsState, readonly settings: Settings) {
    super('SMBDIRECT_VERBS_ENDPOINT');
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
    this.qp = this.id.createQp(ctx.pd, this.placement.cq, this.placement.cq, {
      maxSendWr: s.maxSendWr, maxRecvWr: s.maxRecvWr, maxSendSge: s.maxSendSge, maxRecvSge: s.maxRecvSge, maxInlineData: s.maxInlineData,
    });
    this.placement.bind(this.qp.qpNum);
    this.memory = new EndpointMemory(ctx.pd, () => this.state === 'RTS');
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
    debug('QP %d: rdma_cm %s in state %s', this.qp?.qpNum ?? -1, e.type, this.state);
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
      this.endFailedSetup();
      throw err;
    }
    try {
      this.established(await est, false);
    } catch (err) {
      this.endFailedSetup();
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
      this.endEvents(undefined, true);
    }
  }

  registerMemory(sizeOrBuffer: number | Uint8Array, access: Access): MemoryRegion {
    const memory = this.memory;
    if (!memory || this.state === 'CLOSED') throw new RdmaError('ERR_INVALID_STATE', `cannot register memory in state ${this.state}`);
    if (access.remoteWrite && !access.localWrite) throw new RdmaError('ERR_OUT_OF_RANGE', 'access: remoteWrite requires localWrite');
    if (sizeOrBuffer instanceof Uint8Array && (access.remoteRead || access.remoteWrite)) {
      const w = this.bindWindow(memory, sizeOrBuffer, access);
      if (w) return w;
    }
    try {
      return memory.register(sizeOrBuffer, access);
    } catch (err) {
      throw this.refused(err);
    }
  }

  // ---- memory windows: per-I/O remote tokens on devices with type-2 windows ------------------------

  /** A window over `buffer` for the peer, or undefined where windows are not to be had (no
   * type-2 windows, not connected, the slots reserved for binds taken, or what memory.window()
   * refuses): the caller registers the buffer itself then. */
  private bindWindow(memory: EndpointMemory, buffer: Uint8Array, access: Access): VerbsWindow | undefined {
    if (!this.ctx!.attrs.memoryWindowType2 || this.state !== 'RTS' || buffer.byteLength === 0) return undefined;
    if (this.bindsInFlight >= this.settings.windowSlots) return undefined;
    const w = memory.window(buffer, access, (mw, base, buf, bits) => {
      let rkey = 0;
      // signaled, so that its slot is known to be free again (bindsInFlight)
      this.postSq(0, WR_KIND.BIND, [], true, 0, (nwr, _sgl, f) => {
        rkey = this.qp!.postBindMw(nwr, mw, base, buf.byteOffset, buf.byteLength, bits, f);
      });
      return rkey;
    });
    if (w) this.bindsInFlight++;
    return w;
  }

  postRecv(wrId: number, sge: Sge): void {
    if (this.state !== 'IDLE' && this.state !== 'CONNECTING') this.checkPost();
    if (this.rq.full) throw queueFullError('receive', this.rq.capacity);
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
      throw this.refused(err);
    }
  }

  postSend(wrId: number, sges: Sge[], opts: PostSendOptions = {}): void {
    const flags = opts.solicited ? native.SEND_FLAGS.SOLICITED : 0;
    if (sges.length === 1 && opts.invalidateRkey === undefined) {
      // the common case: staged, and posted with the rest of this burst
      this.checkPost();
      const sq = this.sq;
      if (sq.full) throw queueFullError('send', sq.capacity);
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
    const w = this.memory?.windowOf(rkey);
    if (w) { w.close(); return; }
    const r = this.memory?.regionOf(rkey);
    if (!r) throw new RdmaError('ERR_INVALID_STAG', `rkey 0x${rkey.toString(16)} is not registered here`);
    if (this.ctx?.attrs.transport === 'iwarp' && this.state === 'RTS') {
      try {
        this.postSq(0, WR_KIND.INTERNAL, [], false, 0, (nwr, _sgl, f) => this.qp!.postLocalInvalidate(nwr, rkey, f));
        return;
      } catch (err) {
        // siw's user-space provider has no Local Invalidate (libsiw maps IBV_WR_LOCAL_INV to no
        // opcode: EINVAL, which rdma-core returns negated): deregistering kills the key as well
        debug('local invalidate refused (%s): deregistering rkey 0x%s', (err as Error).message, rkey.toString(16));
      }
    }
    r.close();
  }

  // ---- staged posts: a burst of sends or receives goes to the device in one call, one doorbell --


  /** Checks an SGE as the addon would, so a staged row cannot fail later for a caller's mistake. */
  private stageable(s: Sge): VerbsRegion {
    const r = this.memory!.region(s.mr);
    checkSgeRange(s.offset, s.length, r.size);
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
      const e = this.refused(err);
      if (this.state === 'RTS' || this.state === 'CLOSING') this.destroy(e);
      else this.latch(e);
    }
  }

  /** What a post the device refused means: on a device being removed, the removal (the kernel's
   * errno then depends on how far the teardown got: siw0 once gave one ErrnoName() does not know). */
  private refused(err: unknown): Error {
    return this.deviceGone() ? this.removedError() : err as Error;
  }

  private postSq(wrId: number, kind: WrKindCode, sges: Sge[], signaled: boolean, flags: number,
    post: (nwr: number, sgl: native.Sge[], flags: number) => void): void {
    this.checkPost();
    if (stagedReceivers.size) postStagedReceives();
    if (this.sendStaged) this.ring(); // the send queue keeps the order of posting
    const sq = this.sq;
    if (sq.full) throw queueFullError('send', sq.capacity);
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
      throw this.refused(err);
    }
  }

  private sge(s: Sge): native.Sge {
    return { mr: this.memory!.region(s.mr).mr, offset: s.offset, length: s.length };
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
      debug('QP %d: the peer\'s first message came before rdma_cm ESTABLISHED: in RTS now', this.qp?.qpNum ?? -1);
      this.state = 'RTS';
    }
    const opcode = OPCODE_OF[kind]!;
    let byteLength = 0;
    if (status === STATUS_SUCCESS) byteLength = kind === WR_KIND.RECV ? batch.byteLength[i]! : ring.length[slot]!;
    const c: Completion = { wrId: ring.userWrId[slot]!, opcode, status: statusName, byteLength };
    if (status === STATUS_SUCCESS && kind === WR_KIND.RECV && (batch.flags[i]! & native.WC_FLAGS.WITH_INV)) {
      c.invalidatedRkey = batch.immOrInvalidatedRkey[i]!;
      const w = this.memory?.windowOf(c.invalidatedRkey);
      if (w) w.invalidatedByPeer = true;
    }
    this.pending.push(c);
    if (status !== STATUS_SUCCESS && status !== STATUS_FLUSHED) {
      this.latch(new RdmaError('ERR_VERBS_WC_ERROR', `${opcode} (wrId ${c.wrId}) completed with ${statusName}`));
    }
  }

  batchDone(): void {
    this.inScope(this.deliver);
  }

  private deliver(): void {
    if (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      this.completionHandler(batch);
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
    debug('%s disconnect of QP %d: %s', local ? 'local' : 'peer', this.qp?.qpNum ?? -1,
      flushed ? 'queues flushed' : `flush incomplete after ${Math.min(ms, FLUSH_WAIT_MS)} ms (sq ${this.sq.outstanding}, rq ${this.rq.outstanding} outstanding: reported as flushed)`);
    this.free();
    this.state = 'CLOSED';
    this.endEvents(err, false);
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
      this.endEvents(err, false);
    });
  }

  /** After a failed setup, connect or accept (whose caller has the error): free, and 'close'. */
  endFailedSetup(): void {
    if (this.state === 'CLOSED') return;
    this.state = 'ERROR';
    this.free();
    this.state = 'CLOSED';
    this.endEvents(undefined, true);
  }

  private free(): void {
    if (this.freed) return;
    this.freed = true;
    this.placement?.release(); // polls what is still queued for us first
    this.flushRemaining();
    // the last completions (received messages among them) reach their handler while its memory is
    // still registered: closed first, a handler that read a message or filled a send slot touched a
    // detached buffer (seen in the VM: a TypeError out of the completion handler at server stop);
    // its posts are refused meanwhile (state CLOSING/ERROR: ERR_INVALID_STATE)
    this.flushPending();
    this.memory?.close();
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
      this.inScope(() => this.completionHandler(batch));
    }
  }
}

function sgeBytes(sges: Sge[]): number {
  let n = 0;
  for (const s of sges) n += s.length;
  return n;
}
