// An RDMA endpoint in TypeScript over a TCP socket in RDMA mode: DDP placement (RFC 5041) and
// RDMAP (RFC 5040) over MPA FPDUs (RFC 5044), wire-compatible with the kernel's siw.
//
// State machine (docs/iwarp.md):  IDLE --accept/connect--> RTS --disconnect()--> CLOSING --FIN both ways--> CLOSED
//                                  RTS/CLOSING --Terminate received/sent, bad FPDU--> TERMINATE --> CLOSED
//                                  RTS/CLOSING --TCP error, destroy()--> ERROR --> CLOSED
// Every WR still queued when the endpoint leaves RTS completes as 'flushed'; the first error is
// reported once ('error'), then 'close'.
import type { Socket } from 'node:net';

import {
  DDP_QN_READ_REQUEST, DDP_QN_SEND, DDP_QN_TERMINATE, MPA_MAX_ULPDU, RDMAP_READ_REQUEST, RDMAP_READ_RESPONSE,
  RDMAP_SEND, RDMAP_SEND_INVALIDATE, RDMAP_SEND_SE, RDMAP_SEND_SE_INVALIDATE, RDMAP_TERMINATE, RDMAP_WRITE,
  TERM_LAYER_DDP, TERM_LAYER_LLP, TERM_LAYER_RDMAP, type DdpHeader, type DdpSegment, decodeFpdu, decodeReadRequest,
  decodeTerminate, encodeFpdu, encodeReadRequest, encodeTerminate, fpduLength,
} from '../../../framing/ddp.js';
import { SmbDirectProtocolError } from '../../../framing/errors.js';
import { useCrc32c } from '../../../framing/crc32c.js';
import { crc32c as addonCrc32c } from '../../../native/index.js';
import { type MpaFrame, encodeMpaReply } from '../../../framing/mpa.js';
import { type MpaParams, mpaPrivateData, splitPrivateData } from './mpa.js';
import { readIntoBuffer } from './reader.js';
import { StagAllocator } from './stag.js';
import type {
  Access, Completion, CompletionOpcode, MemoryRegion, PostSendOptions, RdmaEndpoint, Sge,
} from '../types.js';
import { RdmaError, type RdmaErrorCode } from '../errors.js';
import { debuglog } from 'node:util';

import { checkRemote } from '../checks.js';
import { EndpointBase, checkSgeRange, foreignRegionError, queueFullError } from '../endpoint-base.js';
import { ADDRESS_END } from '../../../framing/buffer-descriptor.js';

export type IwarpState = 'IDLE' | 'RTS' | 'CLOSING' | 'TERMINATE' | 'ERROR' | 'CLOSED';

export interface IwarpSettings {
  crc: boolean;
  /** Inbound RDMA Reads we serve at once (our IRD) and outbound ones we issue (our ORD). */
  ird: number;
  ord: number;
  /** Largest payload per FPDU we send. */
  maxFpduPayload: number;
  maxSendWr: number;
  maxRecvWr: number;
  /** Bytes of the receive buffer the socket reads into (raised to MIN_READ_BUFFER); 0: 'data' events. */
  readBufferSize: number;
  /** Graceful disconnect: how long to wait for outstanding work and the peer's FIN. */
  disconnectTimeoutMs: number;
}

// Terminate error types and codes (RFC 5040 7.2, RFC 5041 7.2, RFC 5044 8)
const RDMAP_ETYPE_CATASTROPHIC = 0;
const RDMAP_ETYPE_REMOTE_PROTECTION = 1;
const RDMAP_ETYPE_REMOTE_OPERATION = 2;
const RDMAP_ECODE_INVALID_STAG = 0x00;
const RDMAP_ECODE_BASE_BOUNDS = 0x01;
const RDMAP_ECODE_ACCESS_RIGHTS = 0x02;
const RDMAP_ECODE_TO_WRAP = 0x04;
const RDMAP_ECODE_UNEXPECTED_OPCODE = 0x06;
const RDMAP_ECODE_CATASTROPHIC_STREAM = 0x07;
const RDMAP_ECODE_CANNOT_INVALIDATE = 0x09;
const DDP_ETYPE_CATASTROPHIC = 0;
const DDP_ETYPE_TAGGED = 1;
const DDP_ETYPE_UNTAGGED = 2;
const DDP_ECODE_T_INVALID_STAG = 0x00;
const DDP_ECODE_T_BASE_BOUNDS = 0x01;
const DDP_ECODE_UT_INVALID_QN = 0x01;
const DDP_ECODE_UT_NO_BUFFER = 0x02;
const DDP_ECODE_UT_INVALID_MSN = 0x03;
const DDP_ECODE_UT_INVALID_MO = 0x04;
const DDP_ECODE_UT_TOO_LONG = 0x05;
const LLP_ETYPE_MPA = 0;
const LLP_ECODE_CRC = 0x02;
const LLP_ECODE_BAD_FPDU = 0x04;

const MAX_FPDU_BYTES = fpduLength(MPA_MAX_ULPDU);
/** The least a read asks for, and so the smallest receive buffer: one maximal FPDU + READ_SIZE. */
const READ_SIZE = 64 * 1024;
export const MIN_READ_BUFFER = MAX_FPDU_BYTES + READ_SIZE;
/** How much the socket may hold that the kernel has not taken yet before we stop cutting FPDUs. */
const TX_QUEUE_BYTES = 512 * 1024;
const U64 = 0xffffffffffffffffn;

// every FPDU is checksummed on both sides: use the addon's 3-lane SSE4.2 CRC32c where it loads
if (addonCrc32c) useCrc32c(addonCrc32c, 'addon');

/** One registration: an STag over a Uint8Array, with its rights. */
class Region implements MemoryRegion {
  valid = true;
  closed = false;
  /** Read Responses from this region not yet wholly cut into FPDUs. */
  uncutReads = 0;
  /** Where the last FPDU cut from this region ends in the socket's byte stream (endpoint.written):
   * until the kernel has taken that far, the socket's queue holds live views of `buffer`.
   * Closing or invalidating the region before then resets the connection, so no byte written into
   * the buffer afterwards leaves (endpoint.ts retire()). */
  cutEnd = 0;
  constructor(
    private readonly owner: IwarpEndpoint,
    readonly buffer: Uint8Array,
    readonly addr: bigint,
    readonly rkey: number,
    readonly access: Access,
  ) {}
  get lkey(): number { return this.rkey; }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.valid = false;
    this.owner.forget(this);
  }
}

interface SendWr {
  wrId: number;
  opcode: CompletionOpcode;
  signaled: boolean;
  done: boolean;
  status: string;
  byteLength: number;
  /** tagged target of a write / source of a read, to match a Terminate */
  stag?: number;
}

interface ReadWr extends SendWr {
  sink: Region;
  sinkOffset: number;
  length: number;
  received: number;
  remoteAddr: bigint;
  rkey: number;
  issued: boolean;
}

/** A message on its way out: FPDUs are cut from `payload` at `off` as the socket has room. */
interface TxMessage {
  tagged: boolean;
  opcode: number;
  /** tagged: the sink STag; untagged: the STag to invalidate (0 if none) */
  stag: number;
  to: bigint;
  qn: number;
  msn: number;
  payload: Uint8Array;
  off: number;
  /** called once the last FPDU is handed to the kernel */
  done?: () => void;
  /** called once the last FPDU is cut (handed to the socket's queue, maybe not yet the kernel's) */
  cut?: () => void;
  /** the region a Read Response is cut from */
  source?: Region;
}

interface RecvWr {
  wrId: number;
  region: Region;
  offset: number;
  length: number;
}

/** A Terminate we send or receive, as an error with the layer/type/code. */
// NODE_DEBUG=smbdirect_iwarp (or smbdirect*): RTS, Terminates sent and received, the end
const debug = debuglog('smbdirect_iwarp');

export class TerminateError extends RdmaError {
  constructor(code: RdmaErrorCode, message: string, readonly layer: number, readonly etype: number, readonly errorCode: number) {
    super(code, message);
  }
}

export class IwarpEndpoint extends EndpointBase implements RdmaEndpoint {
  state: IwarpState = 'IDLE';
  readonly settings: IwarpSettings;
  peerPrivateData: Uint8Array;
  /** Our ORD and IRD, as negotiated in the MPA exchange (the ORD lowered to the peer's IRD). */
  get initiatorDepth(): number { return this.settings.ord; }
  get responderResources(): number { return this.settings.ird; }

  private readonly regions = new Map<number, Region>();
  private readonly stags = new StagAllocator();
  private readonly rq: RecvWr[] = [];
  private readonly sq: SendWr[] = [];
  private readonly orq: ReadWr[] = [];   // reads issued, awaiting responses (<= ord)
  private readonly pendingReads: ReadWr[] = []; // reads waiting for an ORD slot
  private inboundReads = 0;              // peer's reads being answered (<= IRD)
  private sendMsn = 1;
  private readReqMsn = 1;
  private recvMsn = 1;                   // expected MSN on queue 0
  private inReadMsn = 1;                 // expected MSN on queue 1
  private current?: { wr: RecvWr; received: number }; // the receive being placed
  // The receive buffer (see onRead): FPDUs are parsed in place from rx[rxStart, rxEnd).
  private readonly rx: Uint8Array;
  private rxStart = 0;
  private rxEnd = 0;
  private completions: Completion[] = [];
  /** Messages waiting to be cut into FPDUs, in order (pump()). */
  private tx: TxMessage[] = [];
  private flushScheduled = false;
  private peerEnded = false;
  /** peer-to-peer RTR still expected as the first FPDU (responder side) */
  expectRtr: 'write' | 'read' | false = false;
  private awaitRtrResponse = false;
  /** Bytes handed to socket.write() so far: a position in the socket's byte stream. */
  private written = 0;
  /** pump() corked the socket for a burst of FPDUs / waits for its 'drain'. */
  private corked = false;
  private awaitingDrain = false;
  /** Whether the socket reads into one reused buffer (reader.ts) rather than a Buffer per read. */
  readsIntoBuffer = false;
  /** Responder side before accept/reject: the peer's MPA Request and what followed it. */
  mpaRequest?: { frame: MpaFrame; leftover: Uint8Array; params: MpaParams; onReject: 'close' | 'stream' };
  /** disconnect()'s wait for the send queue to empty (internal: not an event of the endpoint). */
  private drainWaiters: Array<() => void> = [];

  constructor(readonly socket: Socket, settings: IwarpSettings, peerPrivateData: Uint8Array) {
    super('SMBDIRECT_ENDPOINT');
    this.settings = settings;
    this.peerPrivateData = peerPrivateData;
    this.rx = new Uint8Array(Math.max(settings.readBufferSize, MIN_READ_BUFFER));
  }


  /** Enters RTS: from here on every byte on the socket is an FPDU. `head` are bytes already read. */
  start(head?: Uint8Array): void {
    if (this.state !== 'IDLE') return;
    this.state = 'RTS';
    debug('%s: RTS (CRC %s, ORD %d, IRD %d, max FPDU payload %d)', this.#name(), this.settings.crc ? 'on' : 'off', this.settings.ord, this.settings.ird, this.settings.maxFpduPayload);
    this.socket.setNoDelay(true);
    const onChunk = (chunk: Uint8Array) => this.onChunk(chunk);
    this.readsIntoBuffer = this.settings.readBufferSize > 0 && readIntoBuffer(this.socket, {
      nextBuffer: () => this.nextReadBuffer(), onRead: (n) => this.onRead(n), onChunk,
    });
    if (!this.readsIntoBuffer) this.socket.on('data', onChunk);
    this.socket.on('end', () => this.onPeerEnd());
    this.socket.on('error', (err) => this.fail(new RdmaError('ERR_IWARP_TCP', `TCP error: ${err.message}`, { cause: err }), 'ERROR', false));
    this.socket.on('close', () => this.onSocketClose());
    if (head?.length) this.onChunk(head);
    this.socket.resume();
  }

  // ---- the RdmaEndpoint surface ------------------------------------------------


  /** Sends the MPA Reply and enters RTS (responder side). */
  async accept(privateData?: Uint8Array): Promise<void> {
    const req = this.mpaRequest;
    if (!req || this.state !== 'IDLE') throw new RdmaError('ERR_INVALID_STATE', 'accept() is for a connection request not yet answered');
    this.mpaRequest = undefined;
    const { irdOrd } = splitPrivateData(req.frame);
    const revision = Math.min(req.frame.revision, req.params.revision) as 1 | 2;
    const crc = req.params.crc || req.frame.crc;
    const rtr = irdOrd?.peerToPeer ? (irdOrd.writeRtr ? 'write' : irdOrd.readRtr ? 'read' : false) : false;
    const pd = mpaPrivateData({ ...req.params, revision }, privateData, 'responder', irdOrd);
    this.socket.write(encodeMpaReply({ revision, crc, markers: false, privateData: pd, enhanced: revision === 2 && req.frame.enhanced }));
    this.settings.crc = crc;
    if (irdOrd) this.settings.ord = Math.max(1, Math.min(this.settings.ord, irdOrd.ird));
    this.expectRtr = rtr;
    this.start(req.leftover);
  }

  /** Sends an MPA Reply with the Reject bit; then closes, or hands the socket back to stream mode. */
  async reject(privateData?: Uint8Array): Promise<void> {
    const req = this.mpaRequest;
    if (!req || this.state !== 'IDLE') throw new RdmaError('ERR_INVALID_STATE', 'reject() is for a connection request not yet answered');
    this.mpaRequest = undefined;
    const revision = Math.min(req.frame.revision, req.params.revision) as 1 | 2;
    this.socket.write(encodeMpaReply({ revision, crc: false, reject: true, markers: false, privateData: privateData ?? new Uint8Array(0), enhanced: false }));
    this.state = 'CLOSED';
    if (req.onReject === 'close') this.socket.end();
  }

  registerMemory(sizeOrBuffer: number | Uint8Array, access: Access): MemoryRegion {
    const buffer = typeof sizeOrBuffer === 'number' ? new Uint8Array(sizeOrBuffer) : sizeOrBuffer;
    if (!(buffer instanceof Uint8Array)) throw new RdmaError('ERR_INVALID_ARG_TYPE', 'registerMemory needs a size or a Uint8Array');
    if (access.remoteWrite && !access.localWrite) throw new RdmaError('ERR_OUT_OF_RANGE', 'access: remoteWrite requires localWrite');
    const stag = this.stags.allocate();
    const index = stag >>> 8;
    const region = new Region(this, buffer, BigInt(index) << 32n, stag, { ...access });
    this.regions.set(stag, region);
    return region;
  }

  /** Called by Region.close(). */
  forget(r: Region): void {
    this.regions.delete(r.rkey);
    this.stags.release(r.rkey);
    this.retire(r);
  }

  invalidate(rkey: number): void {
    const r = this.regions.get(rkey);
    if (!r) throw new RdmaError('ERR_INVALID_STAG', `STag 0x${rkey.toString(16)} is not registered here`);
    r.valid = false;
    this.retire(r);
  }

  /**
   * A region stopped being usable by the peer (closed or invalidated). A Read Response we are still
   * sending from it is a live view of the caller's buffer, queued in pieces: the caller may now
   * reuse that memory, and nothing of what it writes there may reach the peer. Bytes the kernel
   * already holds were copied before this call; the rest cannot be recalled from the socket's queue,
   * so the connection is reset (a NIC fails such a read too: its key is gone).
   */
  private retire(r: Region): void {
    if (!this.live() || (r.uncutReads === 0 && r.cutEnd <= this.written - this.unsent())) return;
    this.fail(new RdmaError('ERR_IWARP_REGION_RELEASED', `STag 0x${r.rkey.toString(16)} was closed or invalidated while the peer's RDMA Read of it was still being answered: the connection is reset`), 'ERROR', true);
  }

  postRecv(wrId: number, sge: Sge): void {
    // receives may be posted before accept()/the first FPDU, as on a verbs QP
    if (this.state !== 'IDLE') this.checkPost();
    if (this.rq.length >= this.settings.maxRecvWr) throw queueFullError('receive', this.settings.maxRecvWr);
    const region = this.local(sge, true);
    this.rq.push({ wrId, region, offset: sge.offset, length: sge.length });
  }

  postSend(wrId: number, sges: Sge[], opts: PostSendOptions = {}): void {
    this.checkPost();
    const payload = this.gather(sges);
    const inv = opts.invalidateRkey !== undefined;
    const opcode = inv ? (opts.solicited ? RDMAP_SEND_SE_INVALIDATE : RDMAP_SEND_INVALIDATE) : (opts.solicited ? RDMAP_SEND_SE : RDMAP_SEND);
    const wr = this.enqueue(wrId, 'send', opts.signaled ?? true, payload.length);
    const msn = this.sendMsn++;
    this.emitUntagged(opcode, DDP_QN_SEND, msn, inv ? opts.invalidateRkey! >>> 0 : 0, payload, () => this.complete(wr, 'success'));
  }

  postWrite(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void {
    this.checkPost();
    const payload = this.gather(sges);
    checkRemote(remoteAddr, payload.length, rkey);
    const wr = this.enqueue(wrId, 'write', true, payload.length);
    wr.stag = rkey;
    this.emitTagged(RDMAP_WRITE, rkey, remoteAddr, payload, () => this.complete(wr, 'success'));
  }

  postRead(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void {
    this.checkPost();
    // iWARP names one sink STag per read: one SGE (siw's max_sge_rd is 1 too)
    if (sges.length !== 1) throw new RdmaError('ERR_DEVICE_LIMIT', `an RDMA read takes exactly one sink SGE (max_sge_rd 1), got ${sges.length}`);
    const sink = this.local(sges[0]!, true);
    checkRemote(remoteAddr, sges[0]!.length, rkey);
    if (this.sq.length >= this.settings.maxSendWr) throw queueFullError('send', this.settings.maxSendWr);
    const wr: ReadWr = {
      wrId, opcode: 'read', signaled: true, done: false, status: '', byteLength: sges[0]!.length, stag: rkey,
      sink, sinkOffset: sges[0]!.offset, length: sges[0]!.length, received: 0, remoteAddr, rkey, issued: false,
    };
    this.sq.push(wr);
    this.pendingReads.push(wr);
    this.issueReads();
  }

  async disconnect(): Promise<void> {
    if (this.state === 'CLOSED') return;
    if (this.state !== 'RTS') return this.waitClosed();
    this.state = 'CLOSING';
    const deadline = setTimeout(() => this.fail(new RdmaError('ERR_IWARP_DISCONNECT_TIMEOUT',
      `graceful disconnect did not finish in ${this.settings.disconnectTimeoutMs} ms`), 'ERROR', true), this.settings.disconnectTimeoutMs);
    // the send queue drains as writes flush and reads are answered; then half-close and wait
    // for the peer's FIN (onPeerEnd finishes the close)
    if (this.sq.length) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    if (this.state === 'CLOSING') {
      this.socket.end();
      if (this.peerEnded) this.finish('CLOSED', undefined);
    }
    this.once('close', () => clearTimeout(deadline));
    return this.waitClosed();
  }

  destroy(err?: Error): void {
    if (this.state === 'CLOSED') return;
    if (this.state === 'RTS' || this.state === 'CLOSING') {
      // abortive: a Terminate first (local catastrophic error), then a reset
      this.sendTerminate(TERM_LAYER_RDMAP, RDMAP_ETYPE_CATASTROPHIC, 0);
    }
    this.finish('ERROR', err, true);
  }

  /** Initiator, before start(): a prepare() that failed. The socket is reset, posted receives
   * complete as flushed, and only 'close' follows (connect()'s caller has the error). */
  abandon(err: Error): void {
    if (this.state !== 'IDLE') return;
    this.finish('ERROR', err, true, true);
  }

  /** RFC 6581 ready-to-receive: the initiator's first FPDU in the peer-to-peer model. */
  sendRtr(kind: 'write' | 'read'): void {
    if (kind === 'write') this.emitTagged(RDMAP_WRITE, 0, 0n, new Uint8Array(0));
    else {
      this.awaitRtrResponse = true;
      this.emitUntagged(RDMAP_READ_REQUEST, DDP_QN_READ_REQUEST, this.readReqMsn++, 0,
        encodeReadRequest({ sinkStag: 0, sinkTo: 0n, size: 0, srcStag: 0, srcTo: 0n }));
    }
  }

  // ---- send side ---------------------------------------------------------------------

  private local(sge: Sge, write: boolean): Region {
    const r = sge.mr as Region;
    if (!(r instanceof Region) || this.regions.get(r.rkey) !== r) throw foreignRegionError();
    if (!r.valid) throw new RdmaError('ERR_INVALID_STAG', 'sge.mr has been invalidated');
    if (write && !r.access.localWrite) throw new RdmaError('ERR_ACCESS', 'the memory region lacks localWrite');
    checkSgeRange(sge.offset, sge.length, r.buffer.length);
    return r;
  }

  private gather(sges: Sge[]): Uint8Array {
    if (sges.length === 1) {
      const s = sges[0]!;
      return this.local(s, false).buffer.subarray(s.offset, s.offset + s.length);
    }
    const parts = sges.map((s) => this.local(s, false).buffer.subarray(s.offset, s.offset + s.length));
    return parts.length === 0 ? new Uint8Array(0) : Buffer.concat(parts);
  }

  private enqueue(wrId: number, opcode: CompletionOpcode, signaled: boolean, byteLength: number): SendWr {
    if (this.sq.length >= this.settings.maxSendWr) throw queueFullError('send', this.settings.maxSendWr);
    const wr: SendWr = { wrId, opcode, signaled, done: false, status: '', byteLength };
    this.sq.push(wr);
    return wr;
  }

  private write(h: DdpHeader, payload: Uint8Array, done?: () => void): void {
    const [prefix, body, trailer] = encodeFpdu(h, payload, this.settings.crc);
    this.socket.write(prefix);
    if (body.length) this.socket.write(body);
    this.socket.write(trailer, done ? () => done() : undefined);
    this.written += prefix.length + body.length + trailer.length;
  }

  /** Bytes handed to the socket that the kernel has not taken yet: those still in the Writable's
   * buffer (not yet dispatched) and those libuv still holds (`writeQueueSize`, exact as partial
   * writes progress; a write callback only comes once a whole writev batch is out). Where Node's
   * internals are not as expected, every byte not yet acknowledged counts (never less). */
  private unsent(): number {
    const socket = this.socket as Socket & { _writableState?: { writing?: boolean; writelen?: number }; _handle?: { writeQueueSize?: number } | null };
    const st = socket._writableState, queued = socket._handle?.writeQueueSize;
    if (!st || typeof st.writelen !== 'number' || typeof queued !== 'number') return socket.writableLength;
    return (st.writing ? socket.writableLength - st.writelen : socket.writableLength) + queued;
  }

  private emitUntagged(opcode: number, qn: number, msn: number, invalidateStag: number, payload: Uint8Array, done?: () => void): void {
    this.tx.push({ tagged: false, opcode, stag: invalidateStag, to: 0n, qn, msn, payload, off: 0, done });
    this.pump();
  }

  private emitTagged(opcode: number, stag: number, to: bigint, payload: Uint8Array, done?: () => void): void {
    this.tx.push({ tagged: true, opcode, stag: stag >>> 0, to: to & U64, qn: 0, msn: 0, payload, off: 0, done });
    this.pump();
  }

  /**
   * Cuts FPDUs off the head of the transmit queue while the socket holds less than TX_QUEUE_BYTES
   * not yet taken by the kernel; 'drain' brings us back. Like siw, which builds FPDUs only as the
   * TCP socket has room: handing everything over at once (16 MiB of posted writes) made each byte
   * cost ~2x the kernel time (cold caches, deep queues) and the data rate fell to a third.
   * Everything cut in one tick leaves in one writev (cork until the next tick).
   */
  private pump(): void {
    const tx = this.tx, socket = this.socket, max = this.settings.maxFpduPayload;
    // RFC 6581 peer-to-peer mode: the responder sends nothing before the initiator's RTR has
    // arrived (its receives are posted by then); what is posted meanwhile waits here, in order
    if (!this.live() || this.expectRtr) return;
    while (tx.length && socket.writableLength < TX_QUEUE_BYTES && !socket.destroyed) {
      if (!this.corked) {
        this.corked = true;
        socket.cork();
        process.nextTick(() => this.uncork());
      }
      const m = tx[0]!;
      const n = Math.min(max, m.payload.length - m.off);
      const last = m.off + n === m.payload.length;
      const h: DdpHeader = m.tagged
        ? { tagged: true, last, opcode: m.opcode, stag: m.stag, to: m.off ? (m.to + BigInt(m.off)) & U64 : m.to }
        : { tagged: false, last, opcode: m.opcode, invalidateStag: m.stag, qn: m.qn, msn: m.msn, mo: m.off };
      this.write(h, m.payload.subarray(m.off, m.off + n), last ? m.done : undefined);
      if (m.source) m.source.cutEnd = this.written;
      m.off += n;
      if (last) {
        tx.shift();
        m.cut?.();
      }
    }
    if (tx.length && !this.awaitingDrain && !socket.destroyed) {
      this.awaitingDrain = true;
      socket.once('drain', () => { this.awaitingDrain = false; this.pump(); });
    }
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }


  /** Issues queued reads while fewer than ORD are outstanding. */
  private issueReads(): void {
    while (this.pendingReads.length && this.orq.length < this.settings.ord && this.state === 'RTS') {
      const wr = this.pendingReads.shift()!;
      wr.issued = true;
      this.orq.push(wr);
      const body = encodeReadRequest({
        sinkStag: wr.sink.rkey, sinkTo: wr.sink.addr + BigInt(wr.sinkOffset), size: wr.length, srcStag: wr.rkey >>> 0, srcTo: wr.remoteAddr,
      });
      this.emitUntagged(RDMAP_READ_REQUEST, DDP_QN_READ_REQUEST, this.readReqMsn++, 0, body);
    }
  }

  /** Marks a send-queue WR done and releases completions in posting order. */
  private complete(wr: SendWr, status: string): void {
    if (wr.done) return;
    wr.done = true;
    wr.status = status;
    while (this.sq.length && this.sq[0]!.done) {
      const w = this.sq.shift()!;
      if (w.signaled || w.status !== 'success') this.push({ wrId: w.wrId, opcode: w.opcode, status: w.status, byteLength: w.status === 'success' ? w.byteLength : 0 });
    }
    if (this.sq.length === 0) this.drained();
  }

  private drained(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private push(c: Completion): void {
    this.completions.push(c);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.inScope(() => {
      this.flushScheduled = false;
      const batch = this.completions;
      this.completions = [];
      if (batch.length) this.completionHandler(batch);
    }));
  }

  // ---- receive side -------------------------------------------------------------------

  // Receiving. The socket reads straight into rx at rxEnd (reader.ts); whole FPDUs are handled in
  // place; a partial one stays where it is until the free tail gets shorter than READ_SIZE, then
  // moves to the front. So nothing is copied but that partial FPDU now and then, and rx (at least
  // one maximal FPDU + READ_SIZE) never needs to grow: the bound on what a peer makes us buffer.

  /** Where the next read lands: the free tail of rx, made long enough first. */
  private nextReadBuffer(): Uint8Array {
    if (this.rx.length - this.rxEnd < READ_SIZE) {
      this.rx.copyWithin(0, this.rxStart, this.rxEnd);
      this.rxEnd -= this.rxStart;
      this.rxStart = 0;
    }
    return this.rx.subarray(this.rxEnd);
  }

  /** `n` bytes were read into nextReadBuffer(). */
  private onRead(n: number): void {
    this.rxEnd += n;
    this.parse();
  }

  /** Bytes that arrived in a buffer of their own ('data' events, the head of the stream): copied in. */
  private onChunk(chunk: Uint8Array): void {
    for (let off = 0; off < chunk.length && this.live();) {
      const into = this.nextReadBuffer();
      const n = Math.min(into.length, chunk.length - off);
      into.set(chunk.subarray(off, off + n));
      off += n;
      this.onRead(n);
    }
  }

  /** Handles every whole FPDU in rx[rxStart, rxEnd). */
  private parse(): void {
    const rx = this.rx;
    let at = this.rxStart;
    try {
      while (this.live() && this.rxEnd - at >= 2) {
        const len = fpduLength((rx[at]! << 8) | rx[at + 1]!);
        if (this.rxEnd - at < len) break;
        this.onFpdu(rx.subarray(at, at + len));
        at += len;
      }
    } catch (err) {
      // a bug of ours, never a peer's input: it ends this connection, not the process
      this.terminate('ERR_IWARP_INTERNAL', `internal error on the receive path: ${(err as Error)?.message ?? err}`, TERM_LAYER_RDMAP, RDMAP_ETYPE_CATASTROPHIC, 0xff);
      return;
    }
    if (at === this.rxEnd) this.rxStart = this.rxEnd = 0;
    else this.rxStart = at;
  }

  private live(): boolean {
    return this.state === 'RTS' || this.state === 'CLOSING';
  }

  private onFpdu(bytes: Uint8Array): void {
    let seg: DdpSegment | undefined;
    try {
      seg = decodeFpdu(bytes, this.settings.crc);
    } catch (err) {
      const code: RdmaErrorCode = err instanceof SmbDirectProtocolError ? err.code : 'ERR_IWARP_BAD_FPDU';
      const crcError = code === 'ERR_MPA_BAD_CRC';
      this.terminate(code, (err as Error).message, crcError ? TERM_LAYER_LLP : TERM_LAYER_DDP,
        crcError ? LLP_ETYPE_MPA : DDP_ETYPE_CATASTROPHIC, crcError ? LLP_ECODE_CRC : LLP_ECODE_BAD_FPDU, bytes);
      return;
    }
    if (!seg) return; // cannot happen: parse() hands over whole FPDUs
    const held = this.expectRtr;
    if (seg.tagged) this.onTagged(seg, bytes);
    else this.onUntagged(seg, bytes);
    if (held) {
      // the initiator's first FPDU has arrived (the RTR, consumed above, or, from a peer that
      // negotiated peer-to-peer mode and then sent something else first, that): what we held goes
      this.expectRtr = false;
      this.pump();
    }
  }

  private onTagged(seg: DdpSegment & { tagged: true }, raw: Uint8Array): void {
    if (seg.opcode === RDMAP_WRITE) {
      if (this.expectRtr === 'write' && seg.stag === 0 && seg.payload.length === 0) { this.expectRtr = false; return; }
      const r = this.regions.get(seg.stag);
      if (!r?.valid) return this.terminate('ERR_IWARP_INVALID_STAG', `RDMA Write to unknown or invalidated STag 0x${seg.stag.toString(16)}`, TERM_LAYER_DDP, DDP_ETYPE_TAGGED, DDP_ECODE_T_INVALID_STAG, raw);
      if (!r.access.remoteWrite) return this.terminate('ERR_IWARP_ACCESS', `RDMA Write to STag 0x${seg.stag.toString(16)} without remote write access`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_PROTECTION, RDMAP_ECODE_ACCESS_RIGHTS, raw);
      const at = this.offsetIn(r, seg.to, seg.payload.length);
      if (at < 0) return this.terminate('ERR_IWARP_BASE_BOUNDS', `RDMA Write of ${seg.payload.length} bytes at TO 0x${seg.to.toString(16)} is outside STag 0x${seg.stag.toString(16)}`, TERM_LAYER_DDP, DDP_ETYPE_TAGGED, DDP_ECODE_T_BASE_BOUNDS, raw);
      r.buffer.set(seg.payload, at);
      return;
    }
    if (this.awaitRtrResponse && seg.stag === 0 && seg.payload.length === 0) { this.awaitRtrResponse = false; return; }
    // Read Response: placed into the sink of the oldest outstanding read, in order
    const wr = this.orq[0];
    if (!wr || seg.stag !== wr.sink.rkey || seg.to !== wr.sink.addr + BigInt(wr.sinkOffset + wr.received) ||
        wr.received + seg.payload.length > wr.length) {
      return this.terminate('ERR_IWARP_UNEXPECTED_READ_RESPONSE', 'Read Response does not match the outstanding Read Request', TERM_LAYER_DDP, DDP_ETYPE_TAGGED, DDP_ECODE_T_BASE_BOUNDS, raw);
    }
    wr.sink.buffer.set(seg.payload, wr.sinkOffset + wr.received);
    wr.received += seg.payload.length;
    if (seg.last) {
      if (wr.received !== wr.length) return this.terminate('ERR_IWARP_SHORT_READ_RESPONSE', `Read Response carried ${wr.received} of ${wr.length} bytes`, TERM_LAYER_DDP, DDP_ETYPE_TAGGED, DDP_ECODE_T_BASE_BOUNDS, raw);
      this.orq.shift();
      this.complete(wr, 'success');
      this.issueReads();
    }
  }

  private onUntagged(seg: DdpSegment & { tagged: false }, raw: Uint8Array): void {
    if (seg.qn === DDP_QN_TERMINATE) {
      let t;
      try {
        t = decodeTerminate(seg.payload);
      } catch {
        t = { layer: TERM_LAYER_RDMAP, etype: RDMAP_ETYPE_CATASTROPHIC, errorCode: 0xff, bitOrder: 'rfc' as const };
      }
      return this.onTerminate(t.layer, t.etype, t.errorCode, t.bitOrder ?? 'rfc');
    }
    if (seg.qn === DDP_QN_READ_REQUEST) {
      if (seg.msn !== this.inReadMsn) return this.terminate('ERR_IWARP_BAD_MSN', `Read Request MSN ${seg.msn}, expected ${this.inReadMsn}`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_INVALID_MSN, raw);
      if (seg.mo !== 0) return this.terminate('ERR_IWARP_BAD_MO', `Read Request MO ${seg.mo}`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_INVALID_MO, raw);
      this.inReadMsn++;
      // RFC 5040 IRD: at most `ird` inbound reads are answered at once (we advertised it in the MPA
      // exchange); a peer issuing more is terminated, as siw does, instead of queued without bound
      if (this.inboundReads >= this.settings.ird) {
        return this.terminate('ERR_IWARP_IRD_EXCEEDED', `more than IRD ${this.settings.ird} RDMA Read Requests outstanding`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_OPERATION, RDMAP_ECODE_CATASTROPHIC_STREAM, raw);
      }
      const rr = decodeReadRequest(seg.payload);
      // the sink is the peer's, but the Read Response we would send names it: its tagged offsets
      // must not run past 2^64 (RFC 5040 7.4: Tagged Offset wrap)
      if (rr.sinkTo + BigInt(rr.size) > ADDRESS_END) {
        return this.terminate('ERR_IWARP_TO_WRAP', `RDMA Read Request sink TO 0x${rr.sinkTo.toString(16)} + ${rr.size} bytes runs past 2^64`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_PROTECTION, RDMAP_ECODE_TO_WRAP, raw);
      }
      if (this.expectRtr === 'read' && rr.size === 0) {
        this.expectRtr = false;
        this.emitTagged(RDMAP_READ_RESPONSE, rr.sinkStag, rr.sinkTo, new Uint8Array(0));
        return;
      }
      const r = this.regions.get(rr.srcStag);
      if (!r?.valid) return this.terminate('ERR_IWARP_INVALID_STAG', `RDMA Read from unknown or invalidated STag 0x${rr.srcStag.toString(16)}`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_PROTECTION, RDMAP_ECODE_INVALID_STAG, raw);
      if (!r.access.remoteRead) return this.terminate('ERR_IWARP_ACCESS', `RDMA Read from STag 0x${rr.srcStag.toString(16)} without remote read access`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_PROTECTION, RDMAP_ECODE_ACCESS_RIGHTS, raw);
      const at = this.offsetIn(r, rr.srcTo, rr.size);
      if (at < 0) return this.terminate('ERR_IWARP_BASE_BOUNDS', `RDMA Read of ${rr.size} bytes at TO 0x${rr.srcTo.toString(16)} is outside STag 0x${rr.srcStag.toString(16)}`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_PROTECTION, RDMAP_ECODE_BASE_BOUNDS, raw);
      // Queued in order. It counts against IRD until its last FPDU is cut, as siw frees an IRQ
      // entry once the response is transmitted: the peer cannot have it whole before then, so a
      // peer within its ORD is never refused. (Not until the kernel has it: a writev batch reports
      // that for all its FPDUs at once, after the peer may already hold this response and have
      // issued the next read.) It stays a live view of the region until the kernel has it.
      this.inboundReads++;
      r.uncutReads++;
      this.tx.push({
        tagged: true, opcode: RDMAP_READ_RESPONSE, stag: rr.sinkStag >>> 0, to: rr.sinkTo & U64, qn: 0, msn: 0,
        payload: r.buffer.subarray(at, at + rr.size), off: 0, source: r,
        cut: () => { this.inboundReads--; r.uncutReads--; },
      });
      this.pump();
      return;
    }
    if (seg.qn !== DDP_QN_SEND) return this.terminate('ERR_IWARP_BAD_QN', `untagged queue ${seg.qn}`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_INVALID_QN, raw);
    if (seg.opcode < RDMAP_SEND || seg.opcode > RDMAP_SEND_SE_INVALIDATE) return this.terminate('ERR_IWARP_BAD_OPCODE', `opcode ${seg.opcode} on the send queue`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_OPERATION, RDMAP_ECODE_UNEXPECTED_OPCODE, raw);
    if (seg.msn !== this.recvMsn) return this.terminate('ERR_IWARP_BAD_MSN', `Send MSN ${seg.msn}, expected ${this.recvMsn}`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_INVALID_MSN, raw);
    if (!this.current) {
      if (seg.mo !== 0) return this.terminate('ERR_IWARP_BAD_MO', `a message starts at MO ${seg.mo}`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_INVALID_MO, raw);
      const wr = this.rq.shift();
      if (!wr) return this.terminate('ERR_IWARP_NO_RECEIVE', 'a Send arrived with no receive posted', TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_NO_BUFFER, raw);
      this.current = { wr, received: 0 };
    }
    const cur = this.current;
    if (seg.mo !== cur.received) return this.terminate('ERR_IWARP_BAD_MO', `MO ${seg.mo}, expected ${cur.received}`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_INVALID_MO, raw);
    if (cur.received + seg.payload.length > cur.wr.length) {
      this.current = undefined;
      this.push({ wrId: cur.wr.wrId, opcode: 'recv', status: 'local-length', byteLength: 0 });
      return this.terminate('ERR_IWARP_MESSAGE_TOO_LONG', `a Send of more than ${cur.wr.length} bytes (the posted receive)`, TERM_LAYER_DDP, DDP_ETYPE_UNTAGGED, DDP_ECODE_UT_TOO_LONG, raw);
    }
    cur.wr.region.buffer.set(seg.payload, cur.wr.offset + cur.received);
    cur.received += seg.payload.length;
    if (!seg.last) return;
    this.current = undefined;
    this.recvMsn++;
    const c: Completion = { wrId: cur.wr.wrId, opcode: 'recv', status: 'success', byteLength: cur.received };
    if (seg.opcode === RDMAP_SEND_INVALIDATE || seg.opcode === RDMAP_SEND_SE_INVALIDATE) {
      const r = this.regions.get(seg.invalidateStag);
      if (!r) {
        this.push({ ...c, status: 'remote-invalid-request' });
        return this.terminate('ERR_IWARP_CANNOT_INVALIDATE', `Send-with-Invalidate of unknown STag 0x${seg.invalidateStag.toString(16)}`, TERM_LAYER_RDMAP, RDMAP_ETYPE_REMOTE_OPERATION, RDMAP_ECODE_CANNOT_INVALIDATE, raw);
      }
      r.valid = false;
      c.invalidatedRkey = seg.invalidateStag;
    }
    this.push(c);
  }

  /** Offset of [to, to+len) inside r, or -1. */
  private offsetIn(r: Region, to: bigint, len: number): number {
    const off = to - r.addr;
    if (off < 0n || off + BigInt(len) > BigInt(r.buffer.length)) return -1;
    return Number(off);
  }

  // ---- errors and close --------------------------------------------------------------------

  private sendTerminate(layer: number, etype: number, errorCode: number, raw?: Uint8Array): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    debug('%s: Terminate sent: layer %d, type %d, code 0x%s', this.#name(), layer, etype, errorCode.toString(16));
    let ddpHeader: Uint8Array | undefined;
    if (raw && raw.length >= 2 + 14) ddpHeader = raw.subarray(2, 2 + ((raw[2]! & 0x80) ? 14 : Math.min(18, raw.length - 2)));
    const body = encodeTerminate({ layer, etype, errorCode, m: !!ddpHeader, d: !!ddpHeader, r: false, ddpSegmentLength: raw ? (raw[0]! << 8) | raw[1]! : 0, ddpHeader });
    try {
      this.write({ tagged: false, last: true, opcode: RDMAP_TERMINATE, invalidateStag: 0, qn: DDP_QN_TERMINATE, msn: 1, mo: 0 }, body);
    } catch { /* the socket is going anyway */ }
    this.uncork(); // out before the reset that may follow
  }

  /** A protocol violation by the peer: Terminate it, report, flush, close. Never places bytes. */
  private terminate(code: RdmaErrorCode, message: string, layer: number, etype: number, errorCode: number, raw?: Uint8Array): void {
    this.sendTerminate(layer, etype, errorCode, raw);
    this.fail(new TerminateError(code, message, layer, etype, errorCode), 'TERMINATE', false);
  }

  private onTerminate(layer: number, etype: number, errorCode: number, bitOrder: 'rfc' | 'siw'): void {
    const names = ['RDMAP', 'DDP', 'MPA'];
    debug('%s: Terminate received: layer %d, type %d, code 0x%s (%s bit order)', this.#name(), layer, etype, errorCode.toString(16), bitOrder);
    const err = new TerminateError('ERR_IWARP_TERMINATED', `the peer terminated the connection: ${names[layer] ?? layer} error type ${etype}, code 0x${errorCode.toString(16)}${bitOrder === 'siw' ? ' (siw bit order)' : ''}`, layer, etype, errorCode);
    // a protection error answers our oldest outstanding tagged operation
    const protection = (layer === TERM_LAYER_RDMAP && etype === RDMAP_ETYPE_REMOTE_PROTECTION) || (layer === TERM_LAYER_DDP && etype === DDP_ETYPE_TAGGED);
    if (protection) {
      const victim = this.orq[0] ?? this.sq.find((w) => !w.done && (w.opcode === 'write' || w.opcode === 'read'));
      if (victim) this.complete(victim, 'remote-access');
    }
    this.fail(err, 'TERMINATE', false);
  }

  private onPeerEnd(): void {
    this.peerEnded = true;
    if (this.rxEnd > this.rxStart && this.live()) {
      return this.terminate('ERR_IWARP_TRUNCATED_FPDU', `the peer closed the stream inside an FPDU (${this.rxEnd - this.rxStart} bytes of it)`,
        TERM_LAYER_LLP, LLP_ETYPE_MPA, LLP_ECODE_BAD_FPDU);
    }
    if (this.state === 'CLOSING' && this.sq.length === 0) return this.finish('CLOSED', undefined);
    if (this.state === 'RTS') {
      // the peer closed gracefully: answer with our FIN, flush, done
      this.socket.end();
      this.finish('CLOSED', undefined);
    }
  }

  private onSocketClose(): void {
    if (this.state === 'RTS' || this.state === 'CLOSING') {
      this.fail(new RdmaError('ERR_IWARP_CONNECTION_LOST', 'the TCP connection closed'), 'ERROR', false);
    }
  }

  private fail(err: Error, state: 'TERMINATE' | 'ERROR', reset: boolean): void {
    if (this.state === 'CLOSED' || this.state === 'TERMINATE' || this.state === 'ERROR') return;
    this.finish(state, err, reset);
  }

  /** The connection as debug lines name it: the peer's address and port. */
  #name(): string {
    return `iWARP ${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /** Leaves RTS/CLOSING: flush every queue, free, report the first error once, then 'close'. */
  private finish(state: IwarpState, err: Error | undefined, reset = false, quiet = false): void {
    if (this.state === 'CLOSED') return;
    debug('%s: %s -> %s%s%s', this.#name(), this.state, state, err ? `: ${(err as RdmaError).code ?? ''} ${err.message}` : '', reset ? ' (reset)' : '');
    this.state = state;
    for (const w of [...this.sq]) if (!w.done) this.complete(w, 'flushed'); // a copy: complete() shifts sq
    this.pendingReads.length = 0;
    this.orq.length = 0;
    this.tx.length = 0;
    if (this.current) {
      this.push({ wrId: this.current.wr.wrId, opcode: 'recv', status: 'flushed', byteLength: 0 });
      this.current = undefined;
    }
    for (const r of this.rq.splice(0)) this.push({ wrId: r.wrId, opcode: 'recv', status: 'flushed', byteLength: 0 });
    for (const r of this.regions.values()) r.valid = false;
    this.regions.clear();
    this.rxStart = this.rxEnd = 0;
    if (reset || err) {
      if (reset) this.socket.resetAndDestroy(); else this.socket.destroy();
    } else if (!this.socket.destroyed) {
      this.socket.end();
      this.socket.destroySoon();
    }
    this.state = 'CLOSED';
    this.drained();
    this.endEvents(err, quiet); // after the flushed completions of this tick
  }
}
