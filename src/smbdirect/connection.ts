// One SMB Direct connection ([MS-SMBD] 3.1) over any RdmaProvider endpoint: negotiation, credits,
// fragmentation and reassembly, keepalive, direct placement (RDMA read/write with per-I/O tokens
// and invalidation) and the close. The state names and credit rules follow the spec and the
// Linux implementations (fs/smb/server/transport_rdma.c, fs/smb/client/smbdirect.c); the lessons
// they learned the hard way are called out where they apply (see docs/smbdirect/credits.md).
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';

import type { BufferDescriptor } from '../../framing/buffer-descriptor.js';
import {
  DT_CREDITS_GRANTED, DT_CREDITS_REQUESTED, DT_DATA_LENGTH, DT_DATA_OFFSET, DT_FLAGS,
  DT_REMAINING_DATA_LENGTH, RESPONSE_REQUESTED, dataTransferValid, decodeDataTransfer, putDataTransferHeader,
} from '../../framing/data-transfer.js';
import type { SmbDirectProtocolError } from '../../framing/errors.js';
import { type Fragment as OutFragment, Fragmenter, Reassembler, nextFragmentDue } from '../../framing/fragment.js';
import {
  MIN_RECEIVE_SIZE, type NegotiateRequest, SMBD_VERSION_1, STATUS_NOT_SUPPORTED, STATUS_SUCCESS, decodeNegotiateRequest,
  decodeNegotiateResponse, encodeNegotiateRequest, encodeNegotiateResponse,
} from '../../framing/negotiate.js';
import type { Access, Completion, MemoryRegion, RdmaEndpoint, Sge } from '../providers/types.js';
import { CreditLedger } from './credits.js';
import { RegistrationCache, descriptorsProblem, planTransfer } from './placement.js';
import { SmbDirectError } from './errors.js';
import { Histogram, type HistogramSummary } from './histogram.js';
import { type MemoryAccount, connectionAccount } from './limits.js';
import type { ResolvedOptions } from './options.js';
import { SmbDirectStream } from './stream.js';

// NODE_DEBUG=smbdirect: negotiation and the end of each connection (smbdirect_verbs and
// smbdirect_iwarp are the providers' sections; smbdirect* all of them)
const debug = debuglog('smbdirect');
let connectionIds = 0;

export type ConnectionState = 'negotiating' | 'connected' | 'closing' | 'closed';
export type Role = 'initiator' | 'acceptor';

/** What both sides agreed on (the [MS-SMBD] 3.1.1.1 connection sizes). */
export interface Negotiated {
  /** Largest message we send. */
  maxSendSize: number;
  /** Largest message the peer sends us. */
  maxReceiveSize: number;
  /** Largest upper-layer message we may send (the peer's MaxFragmentedSize). */
  maxFragmentedSendSize: number;
  /** Largest upper-layer message we reassemble (ours). */
  maxFragmentedReceiveSize: number;
  maxReadWriteSize: number;
  /** Send credits the peer asked us to keep at its side (its receive target). */
  peerCreditsRequested: number;
}

export interface ConnectionStats {
  state: ConnectionState;
  role: Role;
  provider: string;
  negotiated?: Negotiated;
  sendCredits: number;
  sendCreditTarget: number;
  receiveCredits: number;
  receiveCreditTarget: number;
  receiveCreditMax: number;
  receivesPosted: number;
  /** Send work requests (messages and RDMA operations) handed to the provider, not yet completed. */
  sendPending: number;
  /** Messages and RDMA operations queued, not yet (fully) handed to the provider. */
  sendQueued: number;
  writableLength: number;
  messagesSent: number;
  messagesReceived: number;
  fragmentsSent: number;
  fragmentsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Empty messages sent (credit grants and keepalive answers). */
  emptySends: number;
  keepalivesSent: number;
  reassemblyDepth: number;
  reassemblyBytes: number;
  /** Receives held back while paused or while no one listens for 'message' (their credits are not returned to the peer). */
  pausedReceives: number;
  /** Fragments that arrived while no one listened for 'message' (held, delivered once someone did). */
  heldForListener: number;
  registrationsInUse: number;
  /** Our own transfer buffers kept registered for reuse (rdmaRead/rdmaWrite's `into`/`from`). */
  cachedRegistrations: number;
  /** Bytes this connection has registered now (slabs, registrations, transfer buffers), and at most. */
  registeredBytes: number;
  registeredBytesPeak: number;
  remoteInvalidations: number;
  rdmaReads: number;
  rdmaWrites: number;
  rdmaBytesRead: number;
  rdmaBytesWritten: number;
  creditWait: HistogramSummary;
  rdmaLatency: HistogramSummary;
}

export type PlacementAccess = 'read' | 'write' | 'readwrite';

/** A client buffer the peer may read or write by RDMA: send `descriptors` in an SMB2 READ/WRITE. */
export interface Registration {
  readonly descriptors: readonly BufferDescriptor[];
  /** The token the peer names for Send-with-Invalidate (the first descriptor's). */
  readonly token: number;
  /** True once the peer invalidated it (Send-with-Invalidate) or it was released. */
  readonly invalidated: boolean;
  /** Makes every token unusable and frees the registration. Idempotent. */
  release(): void;
}

export interface SendOptions {
  /** Send the (last fragment of the) message as Send-with-Invalidate of this peer token. */
  invalidate?: number;
}

export interface PlacementOptions {
  /** Byte offset into the space the descriptors describe, where the transfer starts. */
  offset?: number;
}

// wr_id = kind << 24 | index
const WR_RECV = 1;
const WR_SEND = 2;
const WR_RDMA = 3;
const KIND_SHIFT = 24;
const INDEX_MASK = (1 << KIND_SHIFT) - 1;
/** A send completion at least this often (see #postFragment). */
const SIGNAL_EVERY = 16;
const SIGNALED = Object.freeze({ signaled: true });
const UNSIGNALED = Object.freeze({ signaled: false });
const RESOLVED = Promise.resolve();
/** The one fragment of an empty message (a credit grant or a keepalive answer: no upper-layer data). */
const EMPTY_FRAGMENT: OutFragment = Object.freeze({ remainingDataLength: 0, data: new Uint8Array(0) });
/** Registrations of our own transfer buffers kept for reuse: at most this many, and bytes. */
const LOCAL_CACHE_ENTRIES = 16;
const LOCAL_CACHE_BYTES = 256 * 1024 * 1024;

interface OutMessage {
  kind: 'message';
  /** [start, end) of each fragment's payload in `data`, and what remains after it. */
  data: Uint8Array;
  next: number;
  count: number;
  invalidate?: number;
  empty: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  waitSince: number;
}

interface RdmaOp {
  kind: 'rdma';
  read: boolean;
  sge: Sge;
  remoteAddr: bigint;
  rkey: number;
  transfer: Transfer;
}

interface Transfer {
  pending: number;
  failed?: Error;
  resolve: (n: number) => void;
  reject: (e: Error) => void;
  length: number;
}

type Work = OutMessage | RdmaOp;

/** One received data transfer message's reassembly fields; `data` views the receive slot. */
/** A received fragment (its data transfer header's fields). */
interface Fragment { remainingDataLength: number; dataLength: number; data: Uint8Array }

/** A FIFO with O(1) shift (Array#shift copies, and a send queue can hold 100k messages). */
class Fifo<T> {
  #items: Array<T | undefined> = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(v: T): void {
    this.#items.push(v);
  }
  peek(): T | undefined {
    return this.#items[this.#head];
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const v = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return v;
  }
  popLast(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    return this.#items.pop();
  }
  drain(): T[] {
    const out = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return out;
  }
}

class PlacementRegistration implements Registration {
  readonly descriptors: BufferDescriptor[];
  readonly token: number;
  invalidated = false;
  constructor(private readonly conn: SmbDirectConnection, readonly regions: MemoryRegion[]) {
    this.descriptors = regions.map((r) => ({ offset: r.addr, token: r.rkey, length: r.buffer.length }));
    this.token = regions[0]!.rkey;
  }
  release(): void {
    this.conn._release(this);
  }
}

const now = (): number => performance.now();

export class SmbDirectConnection extends EventEmitter {
  readonly role: Role;
  readonly endpoint: RdmaEndpoint;
  #o: ResolvedOptions;
  #state: ConnectionState = 'negotiating';
  #negotiated?: Negotiated;
  #error?: Error;

  /** Both credit flows (credits.ts). */
  readonly #credits: CreditLedger;
  // receive side: one registered slab, one slot per credit
  readonly #recvMr: MemoryRegion;
  readonly #recvView: DataView;
  readonly #recvSlot: number;
  #reassembler?: Reassembler;
  #paused = false;
  #backlog: Array<{ slot: number; fragment: Fragment }> = [];
  #pendingFragments = 0;
  /** Bytes the message in progress still announces, as the fragments arrive (framing's
   * nextFragmentDue): fragments held for a listener are checked where they enter, not when delivered. */
  #fragmentDue = 0;

  // send side: one registered slab, one slot per send work request
  readonly #sendMr: MemoryRegion;
  readonly #sendView: DataView;
  readonly #sendSlot: number;
  readonly #sendSges: Array<[Sge]>;
  readonly #recvSges: Sge[];
  #freeSendSlots: number[];
  /** Send slots in the order they were posted; a signaled completion frees it and all before it. */
  #sendRing = new Fifo<number>();
  #unsignaled = 0;
  #sqUsed = 0;
  #readsInFlight = 0;
  #readDepth: number;
  #queue = new Fifo<Work>();
  #writableLength = 0;
  #needDrain = false;
  #fragmenter?: Fragmenter;
  #responseOwed = false;
  #lostWork = false;             // a send or RDMA operation was flushed while connected
  #emptyScheduled = false;
  /** close() has handed over to the provider's disconnect: nothing more is sent (a keepalive or
   * grant queued now could only be refused, and would look like work lost). */
  #disconnecting = false;

  // RDMA operations in flight, by index
  #ops = new Map<number, RdmaOp>();
  #nextOp = 0;
  #registrations = new Map<number, PlacementRegistration>();
  /**
   * Registrations of our own transfer buffers' whole ArrayBuffers, kept between transfers (local
   * access only: the peer never learns these, it targets the client's per-I/O tokens). The
   * connection's and the process's registered memory limits count too: a full cache gives way to
   * transfers. Buffers too large to pin whole are registered per transfer.
   */
  readonly #localRegions = new RegistrationCache<MemoryRegion>({
    maxEntries: LOCAL_CACHE_ENTRIES, maxBytes: LOCAL_CACHE_BYTES,
    register: (ab) => {
      try {
        return this.#register(new Uint8Array(ab), { localWrite: true }, 'transfer buffer');
      } catch {
        return undefined; // e.g. a SharedArrayBuffer the provider will not pin: per transfer then
      }
    },
    deregister: (mr) => this.#deregister(mr),
    usable: (mr) => !mr.closed,
    fits: (bytes) => this.#mem.fits(bytes),
  });
  // every byte this connection registers, against its own and the process-wide limit (limits.ts)
  readonly #mem: MemoryAccount;
  readonly #accounted = new Map<MemoryRegion, number>();

  // keepalive ([MS-SMBD] 3.1.6.2): idle timer from the last receive, then a deadline for the answer
  #lastReceive = now();
  #idleTimer?: NodeJS.Timeout;
  #keepalive: 'idle' | 'pending' | 'sent' = 'idle';
  #keepaliveDeadline?: NodeJS.Timeout;

  // negotiation
  #negotiateTimer?: NodeJS.Timeout;
  #sentRequest?: NegotiateRequest;
  #negotiatedPromise: Promise<void>;
  #settleNegotiation!: (err?: Error) => void;
  #closePromise?: Promise<void>;
  #closeEmitted!: () => void;
  /** Settles after 'close' has been emitted. */
  readonly #closedP = new Promise<void>((resolve) => { this.#closeEmitted = resolve; });
  #idleWaiters: Array<() => void> = [];

  // counters
  #s = {
    messagesSent: 0, messagesReceived: 0, fragmentsSent: 0, fragmentsReceived: 0, bytesSent: 0, bytesReceived: 0,
    emptySends: 0, keepalivesSent: 0, remoteInvalidations: 0, rdmaReads: 0, rdmaWrites: 0, rdmaBytesRead: 0,
    rdmaBytesWritten: 0, heldForListener: 0,
  };
  #creditWait = new Histogram();
  #rdmaLatency = new Histogram();
  readonly providerName: string;
  /** For the debug log: role, a number, and the QP number where the provider has one. */
  readonly #label: string;

  /** @internal use connect() / createServer() */
  constructor(endpoint: RdmaEndpoint, role: Role, options: ResolvedOptions, providerName: string) {
    super();
    this.endpoint = endpoint;
    this.role = role;
    this.#o = options;
    this.#credits = new CreditLedger(options.credits);
    this.providerName = providerName;
    const qpNum = (endpoint as { qp?: { qpNum?: number } }).qp?.qpNum;
    this.#label = `${role} ${++connectionIds}${qpNum === undefined ? '' : ` (QP ${qpNum})`}`;
    this.#readDepth = this.#negotiatedReadDepth();
    this.#recvSlot = align8(options.maxReceiveSize);
    this.#sendSlot = align8(options.maxSendSize);
    this.#mem = connectionAccount(options.maxRegisteredBytes);
    this.#recvMr = this.#register(options.credits * this.#recvSlot, { localWrite: true }, 'receive buffers');
    try {
      this.#sendMr = this.#register(options.sendQueueDepth * this.#sendSlot, {}, 'send buffers');
    } catch (err) {
      this.#deregister(this.#recvMr);
      throw err;
    }
    this.#recvView = new DataView(this.#recvMr.buffer.buffer, this.#recvMr.buffer.byteOffset, this.#recvMr.buffer.byteLength);
    this.#sendView = new DataView(this.#sendMr.buffer.buffer, this.#sendMr.buffer.byteOffset, this.#sendMr.buffer.byteLength);
    this.#freeSendSlots = Array.from({ length: options.sendQueueDepth }, (_, i) => options.sendQueueDepth - 1 - i);
    // one SGE list per slot, reused for every post of that slot (a provider reads SGEs during the
    // post call only): no objects per fragment
    this.#sendSges = Array.from({ length: options.sendQueueDepth }, (_, i) => [{ mr: this.#sendMr, offset: i * this.#sendSlot, length: 0 }]);
    this.#recvSges = Array.from({ length: options.credits }, (_, i) => ({ mr: this.#recvMr, offset: i * this.#recvSlot, length: this.#recvSlot }));
    this.#negotiatedPromise = new Promise<void>((resolve, reject) => {
      this.#settleNegotiation = (err) => (err ? reject(err) : resolve());
    });
    this.#negotiatedPromise.catch(() => {}); // the caller of connect()/accept sees it; never unhandled
    endpoint.onCompletions((batch) => this.#onCompletions(batch));
    endpoint.on('error', (err: Error) => this.#finish(err));
    endpoint.on('disconnected', () => this.#onDisconnected());
    endpoint.on('close', () => this.#onDisconnected());
    // the first 'message' listener takes what arrived before it (after it is in place)
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message' && this.#backlog.length) queueMicrotask(() => this.#deliverBacklog());
    });
  }

  // ---- public surface ----------------------------------------------------------------

  get state(): ConnectionState {
    return this.#state;
  }

  /** The sizes both sides agreed on; undefined until negotiation completes. */
  get negotiated(): Negotiated | undefined {
    return this.#negotiated;
  }

  /** The first error (latched), if any. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Bytes given to send() that are not yet handed to the provider. */
  get writableLength(): number {
    return this.#writableLength;
  }

  /**
   * Sends one upper-layer message (an SMB2 PDU, at most the peer's MaxFragmentedSize), fragmented
   * as needed. Resolves when every fragment is handed to the provider (the bytes are copied into the
   * send slab: `message` may be reused then). Messages go out whole and in call order.
   */
  send(message: Uint8Array, opts: SendOptions = {}): Promise<void> {
    if (this.#state !== 'connected') return Promise.reject(this.#closedError('send'));
    if (!(message instanceof Uint8Array)) return Promise.reject(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', 'send() needs a Uint8Array'));
    if (message.length === 0) return Promise.reject(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', 'cannot send an empty message ([MS-SMBD] 3.1.4.1)'));
    const max = this.#negotiated!.maxFragmentedSendSize;
    if (message.length > max) {
      return Promise.reject(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `message of ${message.length} bytes exceeds the peer's MaxFragmentedSize ${max}`));
    }
    if (opts.invalidate !== undefined && !(Number.isInteger(opts.invalidate) && opts.invalidate >= 0 && opts.invalidate <= 0xffffffff)) {
      return Promise.reject(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `invalidate must be a 32-bit token, got ${opts.invalidate}`));
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({
        kind: 'message', data: message, next: 0, count: this.#fragmenter!.count(message.length),
        invalidate: opts.invalidate, empty: false, resolve, reject, waitSince: 0,
      });
      this.#writableLength += message.length;
      if (this.#writableLength > this.#o.writableHighWaterMark) this.#needDrain = true;
      this.#pump();
    });
  }

  /** Stops delivering 'message' events; received messages are held with their receive buffers,
   * so the peer runs out of credits instead of us buffering without bound. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#deliverBacklog();
  }

  /** Messages wait, with their receive buffers (so their credits), while paused and while no one
   * listens for them: a server hands out a connection once rdma_cm's ESTABLISHED is read, which on
   * verbs can come after the peer's first messages, and a client's first message can come with
   * the negotiate response, before connect()'s caller has attached a listener. Emitted to no
   * listener they were lost, and the peer waited for answers forever. */
  get #holding(): boolean {
    return this.#paused || this.listenerCount('message') === 0;
  }

  #deliverBacklog(): void {
    while (this.#backlog.length && !this.#holding && this.#state !== 'closed') {
      const { slot, fragment } = this.#backlog.shift()!;
      this.#deliver(slot, fragment);
    }
    this.#pump();
  }

  get isPaused(): boolean {
    return this.#paused;
  }

  /**
   * Registers `buffers` for the peer to read ('read': we send data, the peer RDMA-reads it, as for an
   * SMB2 WRITE) or write ('write': the peer RDMA-writes into it, as for an SMB2 READ). Each buffer
   * gets its own fresh token (a per-I/O registration, never a long-lived key). Call release() once
   * the I/O is over, whether or not the peer invalidated it.
   */
  registerBuffer(buffers: Uint8Array | readonly Uint8Array[], access: PlacementAccess): Registration {
    if (this.#state !== 'connected') throw this.#closedError('registerBuffer');
    const list = buffers instanceof Uint8Array ? [buffers] : [...buffers];
    if (list.length === 0 || list.some((b) => !(b instanceof Uint8Array) || b.length === 0)) {
      throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', 'registerBuffer needs one or more non-empty Uint8Arrays');
    }
    if (access !== 'read' && access !== 'write' && access !== 'readwrite') {
      throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `access must be 'read', 'write' or 'readwrite', got ${String(access)}`);
    }
    const acc: Access = access === 'read' ? { remoteRead: true } : access === 'write' ? { localWrite: true, remoteWrite: true }
      : { localWrite: true, remoteRead: true, remoteWrite: true };
    const regions: MemoryRegion[] = [];
    try {
      for (const b of list) regions.push(this.#register(b, acc, 'registerBuffer'));
    } catch (err) {
      for (const r of regions) this.#deregister(r);
      throw err;
    }
    const reg = new PlacementRegistration(this, regions);
    for (const r of regions) this.#registrations.set(r.rkey, reg);
    return reg;
  }

  /** RDMA-reads `into.length` bytes from the peer buffers `descriptors` name ([MS-SMBD] 3.1.4.6,
   * the server side of an SMB2 WRITE). Resolves with the byte count. */
  rdmaRead(descriptors: readonly BufferDescriptor[], into: Uint8Array, opts: PlacementOptions = {}): Promise<number> {
    try {
      return this.#transfer(true, descriptors, into, opts);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** RDMA-writes `from` into the peer buffers `descriptors` name ([MS-SMBD] 3.1.4.5, the server
   * side of an SMB2 READ). Resolves with the byte count when the provider completes the writes:
   * on iWARP that means sent, not yet placed, so (as the spec does) send the response afterwards:
   * a reliable connection delivers it only after the data is placed. `from` may be reused then. */
  rdmaWrite(descriptors: readonly BufferDescriptor[], from: Uint8Array, opts: PlacementOptions = {}): Promise<number> {
    try {
      return this.#transfer(false, descriptors, from, opts);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * rdmaWrite for a caller that sends its response right behind the Write instead of waiting for
   * its completion (a reliable connection delivers a Send only after the RDMA Writes posted before
   * it are placed): whatever fails before the Write is queued (a closed connection, bad
   * descriptors, a size or registration limit) is thrown here, so the caller knows at once that
   * no data will arrive. The promise settles as rdmaWrite's; `from` stays in use until then.
   */
  startRdmaWrite(descriptors: readonly BufferDescriptor[], from: Uint8Array, opts: PlacementOptions = {}): Promise<number> {
    return this.#transfer(false, descriptors, from, opts);
  }

  /**
   * Graceful close: no new work; queued messages and RDMA operations finish, then the provider's
   * graceful disconnect. Resolves when everything is freed ('close' has been emitted).
   */
  close(): Promise<void> {
    if (this.#closePromise) return this.#closePromise;
    if (this.#state === 'closed') return this.#closedP;
    if (this.#state === 'negotiating') {
      this.destroy(new SmbDirectError('ERR_SMBD_CLOSED', 'closed during negotiation'));
      return this.#closedP;
    }
    this.#state = 'closing';
    if (this.#unsignaled > 0 && this.#queue.length === 0) {
      // the last sends went unsignaled and their completion is silent: an empty message, signaled,
      // completes after them, so the disconnect below cannot cut them off (siw dropped the tail
      // of a message that way: its disconnect does not wait for unsignaled sends)
      this.#sendEmpty();
    }
    this.#closePromise = (async () => {
      const timer = setTimeout(() => this.destroy(new SmbDirectError('ERR_SMBD_CLOSE_TIMEOUT',
        `close did not drain ${this.#queue.length} queued item(s) and ${this.#sqUsed} in flight within ${this.#o.closeTimeoutMs} ms`)), this.#o.closeTimeoutMs);
      timer.unref();
      try {
        await this.#whenIdle();
        if (this.#state === 'closing') {
          this.#disconnecting = true;
          clearTimeout(this.#keepaliveDeadline); // closeTimeoutMs bounds the rest
          await this.endpoint.disconnect().catch((err: unknown) => this.#finish(asError(err)));
        }
      } finally {
        clearTimeout(timer);
      }
      this.#finish(undefined);
      await this.#closedP;
    })();
    return this.#closePromise;
  }

  /** Abortive close: the provider resets the connection; every pending promise rejects with `err`
   * (or ERR_SMBD_CLOSED). 'error' (when err is given and someone listens), then 'close'. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    this.#finish(err ?? null);
  }

  /** The connection as a Duplex of 4-byte length-prefixed frames (see stream.ts). One per connection. */
  toStream(): SmbDirectStream {
    return new SmbDirectStream(this);
  }

  stats(): ConnectionStats {
    return {
      state: this.#state, role: this.role, provider: this.providerName, negotiated: this.#negotiated && { ...this.#negotiated },
      sendCredits: this.#credits.send, sendCreditTarget: this.#o.credits,
      receiveCredits: this.#credits.granted, receiveCreditTarget: this.#credits.target, receiveCreditMax: this.#o.credits,
      receivesPosted: this.#credits.posted, sendPending: this.#sqUsed, sendQueued: this.#queue.length,
      writableLength: this.#writableLength, ...this.#s,
      reassemblyDepth: this.#reassembler?.pending ? this.#pendingFragments : 0,
      reassemblyBytes: this.#reassembler?.receivedLength ?? 0,
      pausedReceives: this.#backlog.length,
      registrationsInUse: this.#registrations.size,
      cachedRegistrations: this.#localRegions.size,
      registeredBytes: this.#mem.used, registeredBytesPeak: this.#mem.peak,
      creditWait: this.#creditWait.summary(), rdmaLatency: this.#rdmaLatency.summary(),
    };
  }

  // ---- negotiation ([MS-SMBD] 3.1.5.2 - 3.1.5.7) ----------------------------------------

  /** @internal Initiator: post receives, send the request, wait for the response. */
  async _startInitiator(): Promise<void> {
    if (!this.#setupReceives()) return this.#negotiatedPromise;
    const req: NegotiateRequest = {
      minVersion: SMBD_VERSION_1, maxVersion: SMBD_VERSION_1, creditsRequested: this.#o.credits,
      preferredSendSize: this.#o.maxSendSize, maxReceiveSize: this.#o.maxReceiveSize, maxFragmentedSize: this.#o.maxFragmentedSize,
    };
    this.#sentRequest = req;
    this.#armNegotiateTimer(this.#o.negotiateTimeoutMs, 'response');
    this.#postRaw(encodeNegotiateRequest(req));
    debug('smbd: %s: negotiate request posted', this.#label);
    return this.#negotiatedPromise;
  }

  /** @internal Acceptor: post receives, accept the transport, wait for the request and answer it. */
  async _startAcceptor(): Promise<void> {
    if (!this.#setupReceives()) return this.#negotiatedPromise;
    this.#armNegotiateTimer(this.#o.acceptTimeoutMs, 'request');
    try {
      await this.endpoint.accept();
      this.#readDepth = this.#negotiatedReadDepth();
    } catch (err) {
      this.#finish(asError(err));
    }
    return this.#negotiatedPromise;
  }

  /** RDMA Reads in flight at most: rdmaReadDepth, lowered to the transport's negotiated ORD (the
   * peer's IRD). At least 1: a peer that granted none fails the read at the transport, visibly,
   * rather than leaving it queued here forever. */
  #negotiatedReadDepth(): number {
    const ord = this.endpoint.initiatorDepth;
    return Number.isInteger(ord) ? Math.max(1, Math.min(this.#o.rdmaReadDepth, ord)) : this.#o.rdmaReadDepth;
  }

  #armNegotiateTimer(ms: number, what: string): void {
    this.#negotiateTimer = setTimeout(() => {
      this.#finish(new SmbDirectError('ERR_SMBD_NEGOTIATE_TIMEOUT', `no negotiate ${what} within ${ms} ms`));
    }, ms);
    this.#negotiateTimer.unref();
  }

  #onNegotiateMessage(bytes: Uint8Array): void {
    debug('smbd: %s: negotiate %s received (%d bytes)', this.#label, this.role === 'acceptor' ? 'request' : 'response', bytes.length);
    clearTimeout(this.#negotiateTimer);
    if (this.role === 'acceptor') this.#onNegotiateRequest(bytes);
    else this.#onNegotiateResponse(bytes);
  }

  #onNegotiateRequest(bytes: Uint8Array): void {
    let req: NegotiateRequest;
    try {
      req = decodeNegotiateRequest(bytes);
    } catch (err) {
      const e = asError(err);
      if ((e as SmbDirectProtocolError).code === 'ERR_SMBD_NO_COMMON_VERSION') {
        // the one case the acceptor answers (STATUS_NOT_SUPPORTED), then disconnects
        this.#postRaw(encodeNegotiateResponse({
          minVersion: SMBD_VERSION_1, maxVersion: SMBD_VERSION_1, negotiatedVersion: 0, creditsRequested: 0, creditsGranted: 0,
          status: STATUS_NOT_SUPPORTED, maxReadWriteSize: 0, preferredSendSize: 0, maxReceiveSize: 0, maxFragmentedSize: 0,
        }));
        this.#settleNegotiation(e);
        this.#state = 'closing';
        void this.#whenIdle().then(() => this.endpoint.disconnect()).catch(() => {}).then(() => this.#finish(e));
        return;
      }
      this.#finish(e); // 3.1.5.6: every other violation terminates without a response
      return;
    }
    const o = this.#o;
    const maxReceiveSize = Math.max(MIN_RECEIVE_SIZE, Math.min(o.maxReceiveSize, req.preferredSendSize));
    const maxSendSize = Math.min(o.maxSendSize, req.maxReceiveSize);
    this.#credits.peerRequested(req.creditsRequested);
    this.#negotiated = {
      maxSendSize, maxReceiveSize, maxFragmentedSendSize: req.maxFragmentedSize, maxFragmentedReceiveSize: o.maxFragmentedSize,
      maxReadWriteSize: o.maxReadWriteSize, peerCreditsRequested: req.creditsRequested,
    };
    const granted = this.#credits.grantable();
    this.#credits.granted += granted; // the response grants without using a credit (3.1.5.2)
    this.#postRaw(encodeNegotiateResponse({
      minVersion: SMBD_VERSION_1, maxVersion: SMBD_VERSION_1, negotiatedVersion: SMBD_VERSION_1,
      creditsRequested: o.credits, creditsGranted: granted, status: STATUS_SUCCESS, maxReadWriteSize: o.maxReadWriteSize,
      preferredSendSize: maxSendSize, maxReceiveSize: o.maxReceiveSize, maxFragmentedSize: o.maxFragmentedSize,
    }));
    this.#established();
  }

  #onNegotiateResponse(bytes: Uint8Array): void {
    let res;
    try {
      res = decodeNegotiateResponse(bytes, this.#sentRequest);
    } catch (err) {
      const e = asError(err);
      if ((e as SmbDirectProtocolError).status === STATUS_NOT_SUPPORTED) {
        this.#finish(new SmbDirectError('ERR_SMBD_NEGOTIATE_REFUSED', 'the peer supports no SMB Direct version we offer (STATUS_NOT_SUPPORTED)', { cause: e }));
      } else this.#finish(e);
      return;
    }
    const o = this.#o;
    this.#credits.peerGranted(res.creditsGranted);
    this.#credits.peerRequested(res.creditsRequested);
    this.#negotiated = {
      maxSendSize: Math.min(o.maxSendSize, res.maxReceiveSize),
      maxReceiveSize: Math.max(MIN_RECEIVE_SIZE, Math.min(o.maxReceiveSize, res.preferredSendSize)),
      maxFragmentedSendSize: res.maxFragmentedSize, maxFragmentedReceiveSize: o.maxFragmentedSize,
      maxReadWriteSize: Math.min(o.maxReadWriteSize, res.maxReadWriteSize), peerCreditsRequested: res.creditsRequested,
    };
    this.#established();
  }

  #established(): void {
    debug('smbd: %s: negotiated', this.#label);
    const n = this.#negotiated!;
    this.#fragmenter = new Fragmenter(n.maxSendSize, n.maxFragmentedSendSize);
    this.#reassembler = new Reassembler(n.maxFragmentedReceiveSize);
    this.#state = 'connected';
    this.#lastReceive = now();
    this.#armIdleTimer();
    this.#settleNegotiation();
    // the peer holds no credits of ours yet (initiator) or fewer than it wants: grant now
    this.#scheduleEmpty();
  }

  /** Sends a negotiate message from send slot 0 outside the credit rules (3.1.5.2/3.1.5.6). */
  #postRaw(bytes: Uint8Array): void {
    const slot = this.#freeSendSlots.pop()!;
    this.#sendMr.buffer.set(bytes, slot * this.#sendSlot);
    this.#postSlot(slot, bytes.length, undefined, true);
  }

  // ---- receive side ------------------------------------------------------------------

  /** Posts every receive before the peer can send; a failure (a queue too small, say) ends the
   * connection and frees it, so a half-set-up endpoint is never left behind. */
  #setupReceives(): boolean {
    try {
      for (let i = 0; i < this.#o.credits; i++) this.#postReceive(i);
      return true;
    } catch (err) {
      this.#finish(asError(err));
      return false;
    }
  }

  #postReceive(slot: number): void {
    if (this.#state === 'closed') return;
    try {
      this.endpoint.postRecv((WR_RECV << KIND_SHIFT) | slot, this.#recvSges[slot]!);
    } catch (err) {
      // refused while the endpoint goes down: no message can arrive any more, so nothing is lost
      // (on verbs the peer's DISCONNECTED can be read before its last messages' completions)
      if ((err as { code?: string }).code === 'ERR_INVALID_STATE') return;
      throw err;
    }
    this.#credits.posted++;
  }

  /** Runs a post; false when the endpoint is already going down (its own event will end us). */
  #post(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      return !this.#postRefused(err);
    }
  }

  /** A post that threw: true if the endpoint refused it for its state (going down: the work is
   * lost, not an error of ours); anything else is rethrown. */
  #postRefused(err: unknown): boolean {
    if ((err as { code?: string }).code === 'ERR_INVALID_STATE') {
      this.#lostWork ||= this.#state === 'connected';
      return true;
    }
    throw err;
  }

  #onCompletions(batch: Iterable<Completion>): void {
    const received = this.#s.fragmentsReceived;
    for (const c of batch) {
      if (this.#state === 'closed') return;
      const kind = c.wrId >>> KIND_SHIFT;
      const index = c.wrId & INDEX_MASK;
      try {
        if (kind === WR_RECV) this.#onReceive(index, c);
        else if (kind === WR_SEND) this.#onSendDone(index, c);
        else if (kind === WR_RDMA) this.#onRdmaDone(index, c);
      } catch (err) {
        this.#finish(asError(err));
      }
    }
    // the idle clock is read once per batch, not per receive: a clock read costs ~7 us in the VM
    if (this.#s.fragmentsReceived !== received) this.#lastReceive = now();
    if (this.#state !== 'closed') {
      // a failure here ends this connection, never the process (it runs in the provider's
      // completion handler: seen once in the VM, a send region released while the server stopped)
      try {
        this.#pump();
        this.#checkIdle();
      } catch (err) {
        this.#finish(asError(err));
      }
    }
  }

  #onReceive(slot: number, c: Completion): void {
    this.#credits.posted--;
    if (c.status !== 'success') {
      // flushed: the endpoint is going down; its 'disconnected' or 'error' event says why
      if (c.status === 'flushed') return;
      throw transportError('receive', c);
    }
    this.#s.fragmentsReceived++;
    this.#s.bytesReceived += c.byteLength;
    this.#keepaliveAnswered();
    const base = slot * this.#recvSlot;
    const length = c.byteLength;
    if (c.invalidatedRkey !== undefined) this.#onRemoteInvalidate(c.invalidatedRkey);
    if (this.#state === 'negotiating') {
      const bytes = Buffer.from(this.#recvMr.buffer.subarray(base, base + length)); // the slot is reposted first
      this.#postReceive(slot);
      this.#onNegotiateMessage(bytes);
      return;
    }
    this.#credits.received();
    if (c.byteLength > this.#negotiated!.maxReceiveSize) {
      throw new SmbDirectError('ERR_SMBD_RECEIVE_TOO_LARGE', `received ${c.byteLength} bytes, MaxReceiveSize is ${this.#negotiated!.maxReceiveSize}`);
    }
    // framing's 3.1.5.8 checks in place (no object per message); on any violation
    // decodeDataTransfer itself throws the typed error and the connection ends
    const v = this.#recvView;
    if (!dataTransferValid(v, base, length)) {
      decodeDataTransfer(this.#recvMr.buffer.subarray(base, base + length));
      throw new Error('unreachable: decodeDataTransfer accepted what dataTransferValid refused');
    }
    const dataOffset = v.getUint32(base + DT_DATA_OFFSET, true);
    const dataLength = v.getUint32(base + DT_DATA_LENGTH, true);
    this.#credits.peerRequested(v.getUint16(base + DT_CREDITS_REQUESTED, true));
    this.#credits.peerGranted(v.getUint16(base + DT_CREDITS_GRANTED, true));
    if (v.getUint16(base + DT_FLAGS, true) & RESPONSE_REQUESTED) this.#responseOwed = true;
    const remainingDataLength = v.getUint32(base + DT_REMAINING_DATA_LENGTH, true);
    this.#fragmentDue = nextFragmentDue(this.#fragmentDue, dataLength, remainingDataLength, this.#negotiated!.maxFragmentedReceiveSize);
    if (dataLength === 0 && remainingDataLength === 0) {
      this.#postReceive(slot);
    } else {
      const fragment: Fragment = { remainingDataLength, dataLength, data: this.#recvMr.buffer.subarray(base + dataOffset, base + dataOffset + dataLength) };
      // held (paused, or no listener yet): the buffer stays ours, so its credit is not returned
      if (this.#holding || this.#backlog.length) {
        if (!this.listenerCount('message')) this.#s.heldForListener++;
        this.#backlog.push({ slot, fragment });
      }
      else this.#deliver(slot, fragment);
    }
    this.#scheduleEmpty();
  }

  #deliver(slot: number, dt: Fragment): void {
    const r = this.#reassembler!;
    let message: Uint8Array | undefined;
    try {
      message = r.push(dt);
    } catch (err) {
      this.#finish(asError(err));
      return;
    }
    if (message === dt.data) message = Buffer.from(dt.data); // a view into the slot: copy it out
    this.#pendingFragments = r.pending ? this.#pendingFragments + 1 : 0;
    this.#postReceive(slot);
    if (message) {
      this.#s.messagesReceived++;
      this.#emitSafely('message', message);
    }
  }

  #onRemoteInvalidate(rkey: number): void {
    const reg = this.#registrations.get(rkey);
    if (!reg) throw new SmbDirectError('ERR_SMBD_BAD_INVALIDATE', `the peer invalidated token 0x${rkey.toString(16)}, which is no live registration here`);
    this.#s.remoteInvalidations++;
    // the first token was invalidated by the peer; the others we make unusable ourselves
    reg.invalidated = true;
    for (const r of reg.regions) if (r.rkey !== rkey) tryInvalidate(this.endpoint, r.rkey);
  }

  /** @internal Registration.release() */
  _release(reg: PlacementRegistration): void {
    if (!this.#registrations.has(reg.token)) return;
    reg.invalidated = true;
    for (const r of reg.regions) {
      this.#registrations.delete(r.rkey);
      this.#deregister(r); // deregistration: the token stops working at once
    }
    this.#checkIdle();
  }

  // ---- send side ---------------------------------------------------------------------

  /** A message may go when a send slot is free and the ledger allows it (credits.ts). */
  #canSend(grant: number): boolean {
    return this.#sqUsed < this.#o.sendQueueDepth && this.#freeSendSlots.length > 0 && this.#credits.canSend(grant);
  }

  #pump(): void {
    while (this.#queue.length && this.#state !== 'closed') {
      const w = this.#queue.peek()!;
      if (w.kind === 'rdma') {
        if (this.#sqUsed >= this.#o.sendQueueDepth || (w.read && this.#readsInFlight >= this.#readDepth)) return;
        this.#queue.shift();
        this.#postRdma(w);
        continue;
      }
      // one logical message at a time: its fragments go back to back, nothing in between
      while (w.next < w.count) {
        if (!this.#canSend(this.#credits.grantable())) {
          if (w.waitSince === 0) w.waitSince = now();
          return;
        }
        if (w.waitSince !== 0) {
          this.#creditWait.record((now() - w.waitSince) * 1000);
          w.waitSince = 0;
        }
        const f = w.empty ? EMPTY_FRAGMENT : this.#fragmenter!.at(w.data, w.next);
        if (!this.#postFragment(f.data, f.remainingDataLength, f.remainingDataLength === 0 ? w.invalidate : undefined)) return;
        w.next++;
        this.#writableLength -= f.data.length;
      }
      this.#queue.shift();
      if (!w.empty) this.#s.messagesSent++;
      w.resolve();
    }
    if (this.#queue.length === 0 && this.#needDrain && this.#writableLength <= this.#o.writableHighWaterMark) {
      this.#needDrain = false;
      this.#emitSafely('drain');
    }
    this.#scheduleEmpty();
  }

  /** One fragment into a free send slot: header and payload, the credits it grants, then the post. */
  #postFragment(data: Uint8Array, remaining: number, invalidate: number | undefined): boolean {
    const slot = this.#freeSendSlots.pop()!;
    const off = slot * this.#sendSlot;
    const grant = this.#credits.grantable();
    // the [MS-SMBD] 2.2.3 header in place (all values in range: credits <= 0xffff, a fragment < 2^32)
    const hdr = putDataTransferHeader(this.#sendView, off, this.#o.credits, grant, this.#keepaliveFlag(), remaining, data.length);
    if (data.length > 0) this.#sendMr.buffer.set(data, off + hdr);
    this.#credits.spend(grant);
    this.#responseOwed = false;
    this.#s.fragmentsSent++;
    this.#s.bytesSent += hdr + data.length;
    if (data.length === 0) this.#s.emptySends++;
    return this.#postSlot(slot, hdr + data.length, invalidate);
  }

  /** RESPONSE_REQUESTED when a keepalive is due: this message asks for it (3.1.6.2); its deadline
   * runs since the keepalive fell due (#onIdleTimer). */
  #keepaliveFlag(): number {
    if (this.#keepalive !== 'pending') return 0;
    this.#keepalive = 'sent';
    this.#s.keepalivesSent++;
    return RESPONSE_REQUESTED;
  }

  /** Completions free slots, not messages: one every SIGNAL_EVERY sends, or sooner when slots run
   * low (a signaled completion frees every slot posted before it, as on a verbs send queue). Each
   * completion is a wakeup; on soft-RoCE a wakeup costs more than the message. While closing every
   * send is signaled: the disconnect must not overtake sends nobody will hear of. */
  #signalNext(): boolean {
    const signaled = ++this.#unsignaled >= SIGNAL_EVERY || this.#freeSendSlots.length < SIGNAL_EVERY || this.#state === 'closing';
    if (signaled) this.#unsignaled = 0;
    return signaled;
  }

  /** Posts send slot `slot` (`length` bytes written), signaled as #signalNext says unless told;
   * false when the endpoint refused it (going down: the slot is taken back) or the connection
   * ended (any other failure ends it). */
  #postSlot(slot: number, length: number, invalidate: number | undefined, signaled = this.#signalNext()): boolean {
    this.#sqUsed++;
    this.#sendRing.push(slot);
    const sges = this.#sendSges[slot]!;
    sges[0].length = length;
    try {
      this.endpoint.postSend((WR_SEND << KIND_SHIFT) | slot, sges,
        invalidate === undefined ? (signaled ? SIGNALED : UNSIGNALED) : { invalidateRkey: invalidate, signaled });
    } catch (err) {
      let refused: boolean;
      try {
        refused = this.#postRefused(err);
      } catch (e) {
        this.#finish(asError(e));
        return false;
      }
      if (refused) this.#unpost();
      return !refused;
    }
    return true;
  }

  /**
   * An empty message (a credit grant or a keepalive answer) goes only when no message is being
   * sent (never between two fragments of one message) and:
   * - the peer asked for a response (RESPONSE_REQUESTED; the answer does not ask back), or
   * - a keepalive is due, or
   * - the peer is down to a quarter of its target, or to one credit, and we have credits to give.
   *   A peer with one credit cannot send unless it can grant with it, so one is the floor. Refills
   *   come in bulk: a refill leaves the peer far above the threshold, so an empty message never
   *   answers an empty message (the ping-pong Linux removed). That needs targets of 3 or more:
   *   with 1 or 2, every message leaves its sender at the floor and the two sides would answer each
   *   other forever, so credits >= 3 and a peer's smaller request is raised to 3 (granting above a
   *   peer's target is allowed; the peer's own limit stays its posted receives).
   */
  #scheduleEmpty(): void {
    if (this.#emptyScheduled || this.#disconnecting || this.#state !== 'connected' && this.#state !== 'closing') return;
    this.#emptyScheduled = true;
    RESOLVED.then(this.#emptyCheck);
  }

  // a promise reaction, not queueMicrotask (which makes an AsyncResource per call): this runs
  // after every receive
  readonly #emptyCheck = (): void => {
    this.#emptyScheduled = false;
    if ((this.#state !== 'connected' && this.#state !== 'closing') || this.#queue.length) return;
    const grant = this.#credits.grantable();
    const lowOnCredits = this.#credits.lowOnCredits(grant);
    if (!this.#responseOwed && this.#keepalive !== 'pending' && !lowOnCredits) return;
    if (!this.#canSend(grant)) return; // a receive or send completion calls us again
    this.#sendEmpty();
  };

  /** Queues an empty message (it carries credits, flags, or a signaled completion) and sends it. */
  #sendEmpty(): void {
    this.#queue.push({
      kind: 'message', data: new Uint8Array(0), next: 0, count: 1, empty: true,
      resolve: () => {}, reject: () => {}, waitSince: 0,
    });
    this.#pump();
  }

  /** Takes back the send slot posted last (the provider refused it). */
  #unpost(): void {
    const items = this.#sendRing;
    const slot = items.popLast();
    if (slot !== undefined) this.#freeSendSlots.push(slot);
    this.#sqUsed--;
    if (this.#unsignaled > 0) this.#unsignaled--;
  }

  #onSendDone(slot: number, c: Completion): void {
    for (;;) {
      const s = this.#sendRing.shift();
      if (s === undefined) break;
      this.#freeSendSlots.push(s);
      this.#sqUsed--;
      if (s === slot) break;
    }
    if (this.#sendRing.length === 0) this.#unsignaled = 0;
    // flushed: the endpoint is going down. Not counted as lost work: send() resolved when the
    // message was posted, and a flushed send may well have been delivered (unsignaled sends, and
    // sends whose acknowledgement raced the peer's disconnect, come back flushed too).
    if (c.status !== 'success' && c.status !== 'flushed') throw transportError('send', c);
  }

  // ---- direct placement ([MS-SMBD] 3.1.4.5 / 3.1.4.6) -----------------------------------

  /** Queues an RDMA Read or Write; what fails before it is queued throws (rdmaRead/rdmaWrite turn
   * that into a rejection, startRdmaWrite does not). */
  #transfer(read: boolean, descriptors: readonly BufferDescriptor[], buf: Uint8Array, opts: PlacementOptions): Promise<number> {
    const what = read ? 'rdmaRead' : 'rdmaWrite';
    if (this.#state !== 'connected') throw this.#closedError(what);
    if (!(buf instanceof Uint8Array)) throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `${what} needs a Uint8Array`);
    const length = buf.length;
    const max = this.#negotiated!.maxReadWriteSize;
    if (length === 0 || length > max) {
      throw new SmbDirectError('ERR_SMBD_TRANSFER_SIZE', `${what} of ${length} bytes: must be 1..MaxReadWriteSize (${max})`);
    }
    const skip = opts.offset ?? 0;
    if (!Number.isInteger(skip) || skip < 0) throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `offset must be a non-negative integer, got ${skip}`);
    // descriptors come from the peer (an SMB2 READ/WRITE's channel info): each is checked here,
    // where they enter the transport, before any of it reaches a provider
    const problem = descriptorsProblem(descriptors, skip, length);
    if (problem) throw new SmbDirectError('ERR_SMBD_BAD_DESCRIPTORS', `${what}: ${problem}`);
    let mr: MemoryRegion;
    let base = 0; // where buf starts in mr
    let bounced = false;
    const cached = this.#localRegions.acquire(buf.buffer);
    try {
      if (cached) {
        mr = cached.region;
        base = buf.byteOffset;
      } else {
        mr = this.#register(buf, read ? { localWrite: true } : {}, what);
      }
    } catch (err) {
      if ((err as SmbDirectError).code === 'ERR_SMBD_RESOURCE_LIMIT') throw err;
      // a provider may refuse this memory (verbs registers only whole ArrayBuffers, not pool
      // slices): go through a registered bounce buffer instead, one copy
      try {
        mr = this.#register(length, { localWrite: true }, what);
      } catch (e) {
        throw asError(e);
      }
      bounced = true;
      if (!read) mr.buffer.set(buf);
    }
    const started = now();
    const p = new Promise<number>((resolve, reject) => {
      const t: Transfer = { pending: 0, resolve, reject, length };
      for (const g of planTransfer(descriptors, skip, length, this.#o.maxRdmaOpSize)) {
        this.#queue.push({ kind: 'rdma', read, sge: { mr, offset: base + g.at, length: g.length }, remoteAddr: g.remoteAddr, rkey: g.rkey, transfer: t });
        t.pending++;
      }
      this.#pump();
    });
    return p.then((n) => {
      if (bounced && read) buf.set(mr.buffer.subarray(0, length));
      this.#rdmaLatency.record((now() - started) * 1000);
      if (read) { this.#s.rdmaReads++; this.#s.rdmaBytesRead += n; } else { this.#s.rdmaWrites++; this.#s.rdmaBytesWritten += n; }
      return n;
    }).finally(() => {
      if (!cached) this.#deregister(mr);
      else this.#localRegions.release(cached);
      this.#checkIdle();
    });
  }

  /** Registers memory against this connection's and the process's limits (ERR_SMBD_RESOURCE_LIMIT). */
  #register(what: number | Uint8Array, access: Access, purpose: string): MemoryRegion {
    const n = typeof what === 'number' ? what : what.byteLength;
    this.#mem.take(n, purpose);
    let mr: MemoryRegion;
    try {
      mr = this.endpoint.registerMemory(what, access);
    } catch (err) {
      this.#mem.give(n);
      throw err;
    }
    this.#accounted.set(mr, n);
    return mr;
  }

  /** Closes a region #register made and gives its bytes back; idempotent. */
  #deregister(mr: MemoryRegion): void {
    const n = this.#accounted.get(mr);
    if (n !== undefined) {
      this.#accounted.delete(mr);
      this.#mem.give(n);
    }
    mr.close();
  }

  #postRdma(op: RdmaOp): void {
    if (op.transfer.failed) { this.#settleOp(op, op.transfer.failed); return; }
    const index = this.#nextOp;
    this.#nextOp = (this.#nextOp + 1) & INDEX_MASK;
    this.#ops.set(index, op);
    this.#sqUsed++;
    if (op.read) this.#readsInFlight++;
    const wrId = (WR_RDMA << KIND_SHIFT) | index;
    let posted = false;
    try {
      posted = this.#post(() => {
        if (op.read) this.endpoint.postRead(wrId, [op.sge], op.remoteAddr, op.rkey);
        else this.endpoint.postWrite(wrId, [op.sge], op.remoteAddr, op.rkey);
      });
    } catch (err) {
      this.#finish(asError(err));
      return;
    }
    if (!posted) {
      // refused: the endpoint is going down, and its own event says why; like a flushed
      // operation it stays in #ops for #finish to reject with that (latched) error
      this.#sqUsed--;
      if (op.read) this.#readsInFlight--;
    }
  }

  #onRdmaDone(index: number, c: Completion): void {
    const op = this.#ops.get(index);
    if (!op) return;
    this.#sqUsed--;
    if (op.read) this.#readsInFlight--;
    if (c.status === 'flushed') {
      // the endpoint is going down and its own event, which says why, follows this batch: the
      // operation stays in #ops and #finish rejects it with that (latched) error
      this.#lostWork = true;
      return;
    }
    this.#ops.delete(index);
    if (c.status === 'success') { this.#settleOp(op); return; }
    const err = this.#state === 'closed' ? this.#closedError(op.read ? 'rdmaRead' : 'rdmaWrite') : transportError(op.read ? 'RDMA read' : 'RDMA write', c);
    this.#settleOp(op, err);
    // on a reliable connection a failed operation takes the queue pair down: so does the connection
    throw err;
  }

  #settleOp(op: RdmaOp, err?: Error): void {
    const t = op.transfer;
    t.pending--;
    if (err && !t.failed) {
      t.failed = err;
      t.reject(err);
    }
    if (t.pending === 0 && !t.failed) t.resolve(t.length);
  }

  // ---- keepalive ([MS-SMBD] 3.1.6.2) ---------------------------------------------------

  #armIdleTimer(): void {
    if (this.#o.keepaliveIntervalMs === 0) return;
    const due = this.#lastReceive + this.#o.keepaliveIntervalMs - now();
    this.#idleTimer = setTimeout(() => this.#onIdleTimer(), Math.max(1, due));
    this.#idleTimer.unref();
  }

  #onIdleTimer(): void {
    if ((this.#state !== 'connected' && this.#state !== 'closing') || this.#disconnecting) return;
    if (now() - this.#lastReceive >= this.#o.keepaliveIntervalMs && this.#keepalive === 'idle') {
      this.#keepalive = 'pending'; // the next message (an empty one if nothing else) asks for an answer
      // The deadline starts now, not when the keepalive goes out: sending it needs a credit, and a
      // peer that took our credits and went silent never gives us one. Any message from the peer
      // within keepaliveTimeoutMs (an answer, a credit grant, data) proves it alive.
      this.#armKeepaliveDeadline();
      this.#scheduleEmpty();
    }
    this.#armIdleTimer();
  }

  #armKeepaliveDeadline(): void {
    this.#keepaliveDeadline = setTimeout(() => {
      // paused, or holding messages no one listens for yet, we hold the peer's credits ourselves:
      // its silence is ours
      if (this.#paused || this.#backlog.length) return this.#armKeepaliveDeadline();
      const sent = this.#keepalive === 'sent';
      this.#finish(new SmbDirectError('ERR_SMBD_KEEPALIVE_TIMEOUT', sent
        ? `no message within ${this.#o.keepaliveTimeoutMs} ms of a keepalive request`
        : `no message for ${this.#o.keepaliveIntervalMs + this.#o.keepaliveTimeoutMs} ms, and no send credit to ask with (the peer holds ${this.#credits.granted} of ours)`));
    }, this.#o.keepaliveTimeoutMs);
    this.#keepaliveDeadline.unref();
  }

  #keepaliveAnswered(): void {
    if (this.#keepalive !== 'idle') {
      clearTimeout(this.#keepaliveDeadline);
      this.#keepalive = 'idle';
    }
  }

  // ---- close ------------------------------------------------------------------------

  #whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Work requests whose completion is still to come: all but the unsignaled sends after the last
   * signaled one (they complete silently; the provider's disconnect waits for them). */
  #awaitingCompletion(): number {
    return Math.max(0, this.#sqUsed - this.#unsignaled);
  }

  #isIdle(): boolean {
    return this.#queue.length === 0 && this.#awaitingCompletion() === 0;
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length && (this.#isIdle() || this.#state === 'closed')) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }

  #onDisconnected(): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'negotiating') {
      this.#finish(new SmbDirectError('ERR_SMBD_DISCONNECTED', 'the peer disconnected during negotiation'));
      return;
    }
    const busy = this.#lostWork || this.#queue.length > 0 || this.#ops.size > 0 || this.#awaitingCompletion() > 0;
    this.#finish(busy ? new SmbDirectError('ERR_SMBD_DISCONNECTED', `the peer disconnected while work was pending (${this.#queue.length} queued, ` +
      `${this.#ops.size} RDMA operation(s), ${this.#awaitingCompletion()} send(s) not completed${this.#lostWork ? ', work refused by the provider' : ''})`) : undefined);
  }

  /** Frees everything once. err: an error to latch and report; null: destroy() without one. */
  #finish(err: Error | null | undefined): void {
    if (this.#state === 'closed') return;
    const wasNegotiating = this.#state === 'negotiating';
    debug('smbd: %s: closed in state %s%s', this.#label, this.#state, err ? `: ${(err as { code?: string }).code ?? ''} ${err.message}` : '');
    this.#state = 'closed';
    if (err) this.#error ??= err;
    clearTimeout(this.#negotiateTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#keepaliveDeadline);
    const reason = this.#error ?? new SmbDirectError('ERR_SMBD_CLOSED', 'the connection was closed');
    if (wasNegotiating) this.#settleNegotiation(reason);
    const queue = this.#queue;
    this.#queue = new Fifo<Work>();
    for (const w of queue.drain()) {
      if (w.kind === 'message') w.reject(reason);
      else this.#settleOp(w, reason);
    }
    for (const [, op] of this.#ops) this.#settleOp(op, reason);
    this.#ops.clear();
    this.#writableLength = 0;
    // abortive unless the provider already ended (a graceful close ran disconnect() first)
    this.endpoint.destroy(err ?? undefined);
    for (const reg of new Set(this.#registrations.values())) this._release(reg);
    this.#localRegions.clear(); // busy ones at their transfer's end
    this.#deregister(this.#recvMr);
    this.#deregister(this.#sendMr);
    this.#backlog = [];
    this.#checkIdle();
    const report = this.#error;
    process.nextTick(() => {
      // a network peer must never crash the process: 'error' only goes to listeners
      if (report && !wasNegotiating && this.listenerCount('error') > 0) this.emit('error', report);
      this.emit('close', report);
      this.#closeEmitted();
    });
  }

  #emitSafely(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      // a throwing listener is the application's bug: surface it as Node does, outside our state
      process.nextTick(() => { throw err; });
    }
  }

  #closedError(what: string): Error {
    return this.#error ?? new SmbDirectError('ERR_SMBD_CLOSED', `${what}: the connection is ${this.#state}`);
  }
}

function transportError(what: string, c: Completion): SmbDirectError {
  return new SmbDirectError('ERR_SMBD_TRANSPORT', `${what} completed with status ${c.status}`, { completionStatus: c.status });
}

function tryInvalidate(ep: RdmaEndpoint, rkey: number): void {
  try {
    ep.invalidate(rkey);
  } catch { /* already gone */ }
}

/** Why a buffer descriptor cannot be used, or undefined when it can. */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function align8(n: number): number {
  return (n + 7) & ~7;
}
