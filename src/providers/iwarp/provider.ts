// The `iwarp-tcp` provider: RDMA semantics in TypeScript over plain TCP (MPA + DDP + RDMAP),
// wire-compatible with the kernel's siw. Also the stream -> RDMA transition (upgradeToRdma).
import { EventEmitter, once } from 'node:events';
import { type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';

import { encodeMpaRequest } from '../../../framing/mpa.js';
import type { CapacityNeeds, ConnectOptions, RdmaListener, RdmaProvider } from '../types.js';
import { RdmaError, rdmaCode } from '../errors.js';
import { IwarpEndpoint, type IwarpSettings } from './endpoint.js';
import {
  MPA_REPLY_TIMEOUT_MS, MPA_REQUEST_TIMEOUT_MS, type MpaParams, mpaPrivateData, readMpaFrame, refuseMarkers, splitPrivateData,
} from './mpa.js';

export interface IwarpOptions {
  /** CRC32c on FPDUs (default true; on whenever either side asks). */
  crc?: boolean;
  /** MPA revision (default 2). */
  revision?: 1 | 2;
  /** RFC 6581 peer-to-peer RTR the initiator sends (default none, like siw). */
  rtr?: false | 'write' | 'read';
  /** Inbound / outbound RDMA Read depth (default 16 / 16). */
  ird?: number;
  ord?: number;
  /** Largest FPDU payload we send (max 65517, a whole MPA ULPDU). Default 65512: the largest
   * whose FPDU, pad and CRC included, fits in 64 KiB; with CRC on, siw (Linux 6.1) resets the
   * connection on a longer one (found in the VM suite). Fewer FPDUs per byte is most of the
   * speed: bench/iwarp.ts has a 16 KiB row. */
  maxFpduPayload?: number;
  maxSendWr?: number;
  maxRecvWr?: number;
  /** Bytes of the buffer each connection's socket reads into and FPDUs are parsed from in place
   * (default 256 KiB, at least one maximal FPDU + 64 KiB); 0: read through 'data' events, a new
   * Buffer per read, copied in (slower: reader.ts says why). */
  readBufferSize?: number;
  disconnectTimeoutMs?: number;
  /** MPA timeouts (siw: 10 s for the Reply, 5 s for the Request). */
  replyTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** A listener's TCP connections still waiting for their MPA Request, at most (default 64); more
   * are closed at once, so a peer opening sockets and sending nothing holds a bounded number,
   * each for requestTimeoutMs. */
  maxPendingMpa?: number;
}

/** The largest payload whose FPDU (2 + 18 + payload + pad + 4 CRC bytes) is at most 64 KiB. */
export const DEFAULT_MAX_FPDU_PAYLOAD = 65512;

function settingsOf(o: IwarpOptions): IwarpSettings & { params: MpaParams; replyTimeoutMs: number; requestTimeoutMs: number } {
  const maxFpduPayload = o.maxFpduPayload ?? DEFAULT_MAX_FPDU_PAYLOAD;
  if (!(maxFpduPayload >= 1 && maxFpduPayload <= 65517)) throw new RdmaError('ERR_OUT_OF_RANGE', 'maxFpduPayload must be in [1, 65517]');
  const readBufferSize = o.readBufferSize ?? 256 * 1024;
  if (!(Number.isInteger(readBufferSize) && readBufferSize >= 0 && readBufferSize <= 1 << 24)) throw new RdmaError('ERR_OUT_OF_RANGE', 'readBufferSize must be an integer in [0, 16 MiB]');
  const maxPendingMpa = o.maxPendingMpa ?? 64;
  if (!(Number.isInteger(maxPendingMpa) && maxPendingMpa >= 1)) throw new RdmaError('ERR_OUT_OF_RANGE', 'maxPendingMpa must be a positive integer');
  const params: MpaParams = { crc: o.crc ?? true, revision: o.revision ?? 2, ird: o.ird ?? 16, ord: o.ord ?? 16, rtr: o.rtr ?? false };
  return {
    crc: params.crc, ird: params.ird, ord: params.ord, maxFpduPayload, readBufferSize,
    maxSendWr: o.maxSendWr ?? 1024, maxRecvWr: o.maxRecvWr ?? 1024, disconnectTimeoutMs: o.disconnectTimeoutMs ?? 10_000,
    params, replyTimeoutMs: o.replyTimeoutMs ?? MPA_REPLY_TIMEOUT_MS, requestTimeoutMs: o.requestTimeoutMs ?? MPA_REQUEST_TIMEOUT_MS,
  };
}

export interface UpgradeOptions extends IwarpOptions {
  role: 'initiator' | 'responder';
  /** Initiator: private data for the MPA Request. */
  privateData?: Uint8Array;
  /** Responder: bytes the stream parser already read, starting at the MPA Request. */
  head?: Uint8Array;
  /** After a reject: close the TCP connection (default) or return it to stream mode. */
  onReject?: 'close' | 'stream';
  /** Initiator: called with the endpoint before anything from the peer reaches it (ConnectOptions.prepare). */
  prepare?(endpoint: IwarpEndpoint): void | Promise<void>;
}

/** A rejected MPA Request, seen by the initiator. */
export class MpaRejectedError extends RdmaError {
  constructor(readonly privateData: Uint8Array, readonly socket: Socket | undefined, readonly leftover: Uint8Array) {
    super('ERR_MPA_REJECTED', 'the peer rejected the MPA Request');
  }
}

/**
 * Takes a connected TCP socket (which may have carried stream traffic) into RDMA mode.
 * Rules (docs/iwarp.md): the initiator quiesces first (nothing of its own unsent); the responder
 * calls this only at a stream message boundary where the MPA Request starts, passing what its
 * parser already read as `head`; bytes after the MPA frame belong to the RDMA layer. The socket's
 * 'data' listeners are removed: from here on the endpoint owns it.
 * Initiator: resolves with an endpoint in RTS. Responder: resolves with an endpoint to accept()
 * or reject().
 */
export async function upgradeToRdma(socket: Socket, opts: UpgradeOptions): Promise<IwarpEndpoint> {
  const s = settingsOf(opts);
  socket.pause();
  socket.removeAllListeners('data');
  if (opts.role === 'initiator') {
    if (socket.writableLength > 0) await once(socket, 'drain');
    const pd = mpaPrivateData(s.params, opts.privateData, 'initiator');
    socket.write(encodeMpaRequest({ revision: s.params.revision, crc: s.params.crc, markers: false, privateData: pd, enhanced: s.params.revision === 2 }));
    const { frame, leftover } = await readMpaFrame(socket, 'reply', s.replyTimeoutMs).catch((err: unknown) => {
      socket.destroy(); // no usable reply (timeout, bad frame, closed): the connection is spent
      throw err;
    });
    const { user, irdOrd } = splitPrivateData(frame);
    if (frame.reject) {
      const keep = opts.onReject === 'stream';
      if (!keep) socket.destroy();
      throw new MpaRejectedError(user, keep ? socket : undefined, leftover);
    }
    try {
      refuseMarkers(frame);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    const ep = new IwarpEndpoint(socket, { ...s, crc: s.params.crc || frame.crc }, user);
    if (irdOrd) ep.settings.ord = Math.max(1, Math.min(s.ord, irdOrd.ird));
    if (opts.prepare) {
      // the socket is paused and the Reply's trailing bytes wait in `leftover`: nothing of the
      // peer's reaches the endpoint before its receives are posted
      try {
        await opts.prepare(ep);
      } catch (err) {
        ep.abandon(err as Error);
        throw err;
      }
    }
    ep.start(leftover);
    // RFC 6581 RTR: the first FPDU, a zero-length Write (or Read) the responder consumes
    if (s.params.rtr && irdOrd?.peerToPeer) ep.sendRtr(irdOrd.writeRtr ? 'write' : 'read');
    return ep;
  }
  const { frame, leftover } = await readMpaFrame(socket, 'request', s.requestTimeoutMs, opts.head).catch((err: unknown) => {
    socket.destroy();
    throw err;
  });
  try {
    refuseMarkers(frame);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const { user } = splitPrivateData(frame);
  const ep = new IwarpEndpoint(socket, s, user);
  ep.mpaRequest = { frame, leftover, params: s.params, onReject: opts.onReject ?? 'close' };
  return ep;
}

class IwarpListener extends EventEmitter implements RdmaListener {
  /** Sockets accepted and still waiting for their MPA Request. */
  readonly pending = new Set<Socket>();
  closed = false;
  constructor(private readonly server: Server) {
    super();
  }
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }
  /** Stops accepting and drops the sockets still waiting for their MPA Request. Endpoints
   * already delivered live on (net.Server's own callback would wait for all of them to end). */
  close(): Promise<void> {
    this.closed = true;
    if (this.server.listening) this.server.close();
    for (const s of this.pending) s.destroy();
    this.pending.clear();
    return Promise.resolve();
  }
}

/** Queue sizes for connections that need `n`: a receive WR per receive, a send WR per send and a
 * spare, the read depth both ways (IRD and ORD). */
export function iwarpOptionsForNeeds(n: CapacityNeeds): IwarpOptions {
  return { maxRecvWr: n.receives + 1, maxSendWr: n.sends + 1, ird: n.readDepth, ord: n.readDepth };
}

/** The software iWARP provider. */
export function createIwarpProvider(options: IwarpOptions = {}): RdmaProvider {
  settingsOf(options); // validate now
  return {
    name: 'iwarp-tcp',
    async listen({ host, port, backlog }) {
      const server = createServer({ noDelay: true, pauseOnConnect: true });
      const listener = new IwarpListener(server);
      const maxPending = options.maxPendingMpa ?? 64;
      server.on('connection', (socket) => {
        socket.on('error', () => {}); // reported by the endpoint once it exists; before, the MPA read fails
        if (listener.closed || listener.pending.size >= maxPending) { socket.destroy(); return; }
        listener.pending.add(socket);
        upgradeToRdma(socket, { ...options, role: 'responder' }).then(
          (ep) => {
            listener.pending.delete(socket);
            if (listener.closed) ep.destroy();
            else listener.emit('connection', ep);
          },
          () => {
            listener.pending.delete(socket);
            socket.destroy(); // no valid MPA Request: not a connection
          },
        );
      });
      server.listen({ host, port, backlog });
      // a failure to listen (EADDRINUSE, EACCES) rejects here; only later errors go to the
      // listener, which nobody could have subscribed to before it was returned
      await once(server, 'listening');
      server.on('error', (err) => listener.emit('error', err));
      return listener;
    },
    checkCapacity(needs) {
      const s = settingsOf(options);
      if (needs.receives > s.maxRecvWr) throw new RdmaError('ERR_OUT_OF_RANGE', `${needs.receives} receives exceed this provider's maxRecvWr (${s.maxRecvWr})`);
      if (needs.sends > s.maxSendWr) throw new RdmaError('ERR_OUT_OF_RANGE', `${needs.sends} send work requests exceed this provider's maxSendWr (${s.maxSendWr})`);
    },
    async connect(opts: ConnectOptions) {
      const socket = tcpConnect({ host: opts.host, port: opts.port, noDelay: true });
      socket.pause();
      // (not events.once(socket, 'connect'): that one rejects with the raw net error first)
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void => {
          socket.off('connect', onConnect);
          socket.destroy();
          reject(new RdmaError(rdmaCode(err.code, 'ERR_CONNECT'), `TCP connect to ${opts.host}:${opts.port} failed: ${err.message}`, { cause: err }));
        };
        const onConnect = (): void => {
          socket.off('error', onError);
          resolve();
        };
        socket.once('connect', onConnect);
        socket.once('error', onError);
      });
      return upgradeToRdma(socket, {
        ...options, role: 'initiator', privateData: opts.privateData, prepare: opts.prepare,
        ord: opts.initiatorDepth ?? options.ord, ird: opts.responderResources ?? options.ird,
      });
    },
  };
}
