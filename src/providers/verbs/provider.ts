// The `verbs` provider: the RdmaProvider interface over the native addon (libibverbs + librdmacm)
// and the completion pool (completion/), for RoCE, InfiniBand and iWARP NICs, soft-RoCE (rxe)
// and soft-iWARP (siw). Here: the per-device resources (PD, completion pool) shared by the
// provider's connections, the one rdma_cm event channel, listen/connect/accept. The endpoint
// (endpoint.ts) and its memory (memory.ts) are beside it; semantics follow the iwarp-tcp provider.
import { AsyncResource } from 'node:async_hooks';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { debuglog } from 'node:util';

import { CompletionPool, type CompletionPoolOptions } from '../../../completion/pool.js';
import * as native from '../../../native/index.js';
import type { CmEvent, CmId, Device, DeviceAttributes, EventChannel, ProtectionDomain } from '../../../native/index.js';
import { RdmaError } from '../errors.js';
import type { CapacityNeeds, ConnectOptions, RdmaListener, RdmaProvider } from '../types.js';
import { VerbsEndpoint } from './endpoint.js';
import { type Settings, type VerbsOptions, checkDeviceLimits, settingsOf } from './settings.js';

export { type VerbsOptions, checkDeviceLimits } from './settings.js';
export { VerbsEndpoint, type VerbsState } from './endpoint.js';

// NODE_DEBUG=smbdirect_verbs (or smbdirect*): rdma_cm events, disconnects, refused requests
const debug = debuglog('smbdirect_verbs');

// the addon's errors are RdmaErrors from here on (in this thread; a worker loads this module too),
// with the addon's code (an errno name or ERR_*): no wrap at each call
native.useErrorClass(RdmaError as unknown as native.ErrorClass); // its codes are the addon's: errno names and ERR_*

// ---- shared per-device resources and the rdma_cm event channel ----------------------------------

/** A device's PD and completion pool, shared by the provider's connections on it. */
export class DeviceContext {
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
export class CmChannel {
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
      if (err instanceof Error) err.message = `listen on ${host}:${opts.port}: ${err.message}`;
      throw err;
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
      ep.endFailedSetup();
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
      debug('connect request refused: %s', (err as Error).message);
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
      try { id.resolveAddr(host, opts.port, s.resolveTimeoutMs); } catch (err) { addr.catch(() => {}); throw err; }
      await addr;
      const route = ep.nextCm(['ROUTE_RESOLVED'], s.resolveTimeoutMs);
      try { id.resolveRoute(s.resolveTimeoutMs); } catch (err) { route.catch(() => {}); throw err; }
      await route;
      ep.setup(this.options.placementKey?.(id.peerAddress));
      // the QP exists and is not connected: receives posted now are in place before the peer's
      // first message can arrive
      if (opts.prepare) await opts.prepare(ep);
      const est = ep.nextCm(['ESTABLISHED'], s.connectTimeoutMs);
      try {
        id.connect({ privateData: opts.privateData, initiatorDepth: s.initiatorDepth, responderResources: s.responderResources });
      } catch (err) {
        est.catch(() => {});
        throw err;
      }
      ep.established(await est, true);
      debug('connected to %s:%d on %s (CQ %d)', host, opts.port, id.deviceName, ep.cqIndex);
      return ep;
    } catch (err) {
      ep.endFailedSetup();
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
