// The provider interface both RDMA providers implement (../shared/DESIGN.md "The provider
// interface"): verbs-shaped, so the SMB Direct layer does not care whether a NIC or TypeScript
// moves the bytes.
import type { EventEmitter } from 'node:events';

export interface Access {
  localWrite?: boolean;
  remoteRead?: boolean;
  remoteWrite?: boolean;
}

export interface MemoryRegion {
  readonly buffer: Uint8Array;
  /** The tagged offset (TO) of buffer[0] as the peer addresses it. */
  readonly addr: bigint;
  readonly lkey: number;
  /** The STag a peer uses; a fresh one per registration (a per-I/O token). */
  readonly rkey: number;
  /** True once closed (by close(), or with its endpoint). */
  readonly closed: boolean;
  close(): void;
}

export interface Sge {
  mr: MemoryRegion;
  offset: number;
  length: number;
}

export type CompletionOpcode = 'send' | 'recv' | 'write' | 'read';

export interface Completion {
  wrId: number;
  opcode: CompletionOpcode;
  /** 'success', 'flushed', or an error name such as 'remote-access', 'local-length'. */
  status: string;
  byteLength: number;
  /** Set on a receive completion of a Send-with-Invalidate: the STag the peer invalidated. */
  invalidatedRkey?: number;
}

export interface PostSendOptions {
  /** Send-with-Invalidate of this STag of the peer. */
  invalidateRkey?: number;
  /** Default true. */
  signaled?: boolean;
  /** Send-with-Solicited-Event. */
  solicited?: boolean;
}

/** 'disconnected' (graceful end), 'error' (Error with a code), 'close' (everything freed). */
export interface RdmaEndpoint extends EventEmitter {
  readonly peerPrivateData: Uint8Array;
  accept(privateData?: Uint8Array): Promise<void>;
  reject(privateData?: Uint8Array): Promise<void>;
  registerMemory(sizeOrBuffer: number | Uint8Array, access: Access): MemoryRegion;
  /** The post calls read their SGE objects during the call only: a caller may reuse them. */
  postRecv(wrId: number, sge: Sge): void;
  postSend(wrId: number, sges: Sge[], opts?: PostSendOptions): void;
  postWrite(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void;
  postRead(wrId: number, sges: Sge[], remoteAddr: bigint, rkey: number): void;
  /** Invalidates one of this endpoint's own STags (local invalidate). */
  invalidate(rkey: number): void;
  onCompletions(handler: (batch: Iterable<Completion>) => void): void;
  disconnect(): Promise<void>;
  destroy(err?: Error): void;
}

/** 'connection' (an endpoint to accept() or reject()), 'connectionError' (a connection request
 * that could not be set up: the listener keeps listening), 'error' (the listener itself failed). */
export interface RdmaListener extends EventEmitter {
  readonly port: number;
  close(): Promise<void>;
}

export interface ConnectOptions {
  host: string;
  port: number;
  privateData?: Uint8Array;
  initiatorDepth?: number;
  responderResources?: number;
}

/** What one connection of an upper layer will post at most at once. */
export interface CapacityNeeds {
  /** Receives posted at once. */
  receives: number;
  /** Send-queue work requests (sends, writes, reads) in flight at once. */
  sends: number;
  /** RDMA Reads in flight at once, each way. */
  readDepth: number;
}

export interface RdmaProvider {
  readonly name: 'verbs' | 'iwarp-tcp';
  listen(opts: { host: string; port: number; backlog?: number }): Promise<RdmaListener>;
  connect(opts: ConnectOptions): Promise<RdmaEndpoint>;
  /** Throws (ERR_OUT_OF_RANGE / ERR_DEVICE_LIMIT, naming the limit) when this provider's
   * connections cannot hold `needs`: so an upper layer refuses a configuration when it is made,
   * not on every connection later. */
  checkCapacity?(needs: CapacityNeeds): void;
}

/** Errors of the providers: `code` is stable (see docs/errors.md). */
export class RdmaError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RdmaError';
    this.code = code;
  }
}
