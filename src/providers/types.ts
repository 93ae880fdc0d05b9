// The provider contract both RDMA providers implement (iwarp-tcp: iwarp/endpoint.ts, provider.ts;
// verbs: verbs/), and all the SMB Direct layer (src/smbdirect/) knows of RDMA: verbs-shaped, so
// the connection does not care whether a NIC or TypeScript moves the bytes. docs/providers.md
// states every rule with the provider code that keeps it; docs/architecture.md shows where it sits.
import type { EventEmitter } from 'node:events';

/** What a registration allows. The peer's every access is checked against it (a Terminate on
 * iwarp-tcp, an error completion on a NIC). */
export interface Access {
  /** Needed by receive buffers and RDMA Read sinks (iwarp-tcp refuses the post with ERR_ACCESS
   * without it; a verbs device fails the work request). */
  localWrite?: boolean;
  remoteRead?: boolean;
  /** Requires localWrite (registerMemory throws ERR_OUT_OF_RANGE otherwise). */
  remoteWrite?: boolean;
}

/** Memory registered with one endpoint. From a post until the completion that retires it, the
 * bytes a work request names belong to the provider: leave a send's or write's source unchanged,
 * do not read a receive's or read's sink. Do not close a region that outstanding work uses. */
export interface MemoryRegion {
  /** The registered bytes: provider memory for registerMemory(size) (on verbs a native slab,
   * detached when the region or its endpoint closes), else the caller's own view. */
  readonly buffer: Uint8Array;
  /** The tagged offset (TO) of buffer[0] as the peer addresses it (verbs: a virtual address). */
  readonly addr: bigint;
  /** Names the region in local SGEs (iwarp-tcp: the rkey). A verbs memory window (remote access
   * on a device with type-2 windows) is for the peer only: no local SGE may name it. */
  readonly lkey: number;
  /** The STag a peer uses; a fresh one per registration (a per-I/O token). */
  readonly rkey: number;
  /** True once close() ran; on verbs also once the endpoint freed its regions (iwarp-tcp regions
   * stop working with their endpoint but turn `closed` only on close()). */
  readonly closed: boolean;
  /** Deregisters: the key stops working at once. Idempotent. On iwarp-tcp, closing a region whose
   * bytes still answer the peer's RDMA Read resets the connection (ERR_IWARP_REGION_RELEASED). */
  close(): void;
}

/** One scatter/gather element. A post call reads its SGE objects during the call only: the caller
 * may reuse or change them once it returns (the registered bytes stay the provider's). */
export interface Sge {
  mr: MemoryRegion;
  offset: number;
  length: number;
}

export type CompletionOpcode = 'send' | 'recv' | 'write' | 'read';

/** One reported completion. Reported: every receive, every signaled work request, and every one
 * that fails or is flushed; not reported: unsignaled sends that succeed (a signaled send completion
 * retires the unsignaled sends posted before it) and the provider's own work requests. */
export interface Completion {
  wrId: number;
  opcode: CompletionOpcode;
  /** 'success', 'flushed' (the endpoint is going down: normal at close), or an error name such
   * as 'remote-access', 'local-length' (verbs: the ibv_wc_status names); an error ends the
   * endpoint ('error' follows). A write or send's success means its source may be reused, not
   * that the peer has placed the data (iwarp-tcp completes it when the kernel has it). */
  status: string;
  /** Bytes received (receive), the posted length (other successes), 0 when not successful. */
  byteLength: number;
  /** Set on a receive completion of a Send-with-Invalidate: the STag the peer invalidated
   * (iwarp-tcp always; verbs where the device reports it: rxe does, siw never). */
  invalidatedRkey?: number;
}

export interface PostSendOptions {
  /** Send-with-Invalidate of this STag of the peer. */
  invalidateRkey?: number;
  /** Default true. An unsignaled send is reported only if it fails or is flushed; on verbs,
   * disconnect() does not wait for unsignaled sends after the last signaled one. */
  signaled?: boolean;
  /** Send-with-Solicited-Event. */
  solicited?: boolean;
}

/**
 * One RDMA connection. Events, once each and in this order: the completion batches of everything
 * still outstanding ('flushed'; an error completion before them), then at most one of 'error'
 * (Error with a code: the first error, emitted only if someone listens) or 'disconnected' (ended
 * without an error of its own: a graceful disconnect by either side, or destroy() without an
 * error), then 'close' (everything freed). Exceptions: reject() (verbs: 'close' only; iwarp-tcp:
 * no event) and a failed verbs accept() ('close' only; accept() rejects with the error).
 *
 * Posts: misuse throws synchronously and the endpoint carries on (ERR_INVALID_ARG_TYPE,
 * ERR_OUT_OF_RANGE, ERR_QUEUE_FULL, ERR_DEVICE_LIMIT, ...). ERR_INVALID_STATE from a post on an
 * endpoint that was established means it is going down: the work is lost and its own event
 * follows. Each queue keeps the posting order.
 */
export interface RdmaEndpoint extends EventEmitter {
  /** The peer's private data (connect request or reply), without the MPA IRD/ORD word. */
  readonly peerPrivateData: Uint8Array;
  /** RDMA Reads this side may have in flight at the peer (its ORD), as negotiated: at most what this
   * side asked for and what the peer offered as IRD. Final on the initiator when connect() resolves,
   * on the responder when accept() resolves (verbs knows it when the request arrives; iwarp-tcp
   * lowers it in accept()). An upper layer keeps its reads in flight at or below it (a provider
   * queues the excess, which holds send-queue slots; iwarp-tcp terminates a peer past its IRD). */
  readonly initiatorDepth: number;
  /** RDMA Reads the peer may have in flight at this side (this side's IRD): verbs lowers it to the
   * peer's ORD, iwarp-tcp reports its own IRD as advertised. */
  readonly responderResources: number;
  /** The first error the endpoint ended with (what 'error' reported, or would have with a listener);
   * undefined while it lives and after a clean end. */
  readonly error: Error | undefined;
  /** Responder: answers the connection request; resolves once established. Post receives first:
   * the initiator may send at once, and iWARP has no receiver-not-ready retry. A receive may
   * complete before it resolves, and posts are allowed from then on (verbs: the peer's first
   * message can come before rdma_cm's ESTABLISHED). Rejects with ERR_INVALID_STATE for a request
   * already answered. */
  accept(privateData?: Uint8Array): Promise<void>;
  /** Responder: turns the request away (an MPA Reply with the Reject bit / rdma_reject). */
  reject(privateData?: Uint8Array): Promise<void>;
  /** A size: provider memory (verbs: a page-aligned slab); a Uint8Array: registered in place
   * (verbs: a view of a whole ArrayBuffer only, marked untransferable). remoteWrite needs
   * localWrite. With remote access, verbs may return a memory window (for the peer only). */
  registerMemory(sizeOrBuffer: number | Uint8Array, access: Access): MemoryRegion;
  /** The post calls read their SGE objects during the call only: a caller may reuse them.
   * Receives may be posted before accept() (IDLE); the initiator can post only once connect()
   * resolved, so its peer must not send first (open issue #23: a prepare() hook is planned). */
  postRecv(wrId: number, sge: Sge): void;
  postSend(wrId: number, sges: Sge[], opts?: PostSendOptions): void;
  /** Always signaled. Completes when the source may be reused, not when the peer has the data:
   * send the message that tells the peer after it. */
  postWrite(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void;
  /** Always signaled; one sink SGE on iwarp-tcp and siw (ERR_DEVICE_LIMIT otherwise). Completes
   * when the data is in the sink; on siw possibly after sends posted behind it. */
  postRead(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void;
  /** Invalidates one of this endpoint's own STags (local invalidate): iwarp-tcp marks the region
   * invalid; verbs deallocates a window, posts a Local Invalidate on iWARP devices (unreported),
   * deregisters the region on IB/RoCE. ERR_INVALID_STAG if unknown. Close the region afterwards. */
  invalidate(rkey: number): void;
  /** Sets the one handler (a second call replaces it; completions before it is set are lost). A
   * batch is never delivered from inside a post call. Receives complete in posting order. */
  onCompletions(handler: (batch: Iterable<Completion>) => void): void;
  /** Graceful: posts are refused from now on, outstanding send-queue work finishes (verbs: signaled
   * work only: make the last send signaled), the transport ends, the receives flush; then
   * 'disconnected' (or 'error' on a timeout) and 'close'. Resolves after 'close'; never rejects. */
  disconnect(): Promise<void>;
  /** Abortive, idempotent: iwarp-tcp sends a Terminate and resets the socket; verbs moves the QP to
   * error, waits for the flushes (at most 2 s) and frees. Then 'error' (err) or 'disconnected'
   * (none), and 'close'. */
  destroy(err?: Error): void;
}

/** 'connection' (an endpoint to accept() or reject()), 'connectionError' (a connection request
 * that could not be set up: the listener keeps listening; verbs only), 'error' (the listener itself
 * failed). close() stops accepting and resolves at once; endpoints already delivered live on. */
export interface RdmaListener extends EventEmitter {
  readonly port: number;
  close(): Promise<void>;
}

export interface ConnectOptions {
  host: string;
  port: number;
  privateData?: Uint8Array;
  /** The ORD and IRD this side asks for (default: the provider's settings). */
  initiatorDepth?: number;
  responderResources?: number;
  /**
   * Called with the endpoint before anything from the peer can be delivered to it (iwarp-tcp:
   * before the MPA Reply's trailing bytes and any later FPDU are processed; verbs: before
   * rdma_connect): register memory and post receives here when the peer may send first (a server
   * that greets). iWARP has no receiver-not-ready retry: a Send that finds no receive posted
   * terminates the connection. A throw (or rejection) aborts connect() with that error and leaves
   * nothing behind. The responder's counterpart: post receives before accept().
   */
  prepare?(endpoint: RdmaEndpoint): void | Promise<void>;
}

/** What one connection of an upper layer will post at most at once. */
export interface CapacityNeeds {
  /** Receives posted at once. */
  receives: number;
  /** Send-queue work requests (sends, writes, reads) in flight at once. */
  sends: number;
  /** RDMA Reads in flight at once, each way (neither provider checks it: the negotiated
   * initiatorDepth bounds reads). */
  readDepth: number;
}

export interface RdmaProvider {
  readonly name: 'verbs' | 'iwarp-tcp';
  /** Resolves once listening; a failure to listen (EADDRINUSE, ...) rejects. */
  listen(opts: { host: string; port: number; backlog?: number }): Promise<RdmaListener>;
  /** Resolves with an established endpoint (every post allowed, initiatorDepth final); rejects
   * with an RdmaError and leaves nothing behind. */
  connect(opts: ConnectOptions): Promise<RdmaEndpoint>;
  /** Throws (ERR_OUT_OF_RANGE / ERR_DEVICE_LIMIT, naming the limit) when this provider's
   * connections cannot hold `needs`: so an upper layer refuses a configuration when it is made,
   * not on every connection later. */
  checkCapacity?(needs: CapacityNeeds): void;
}

export { RdmaError, type RdmaErrorCode } from './errors.js';
