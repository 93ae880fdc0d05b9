// The public entry points: createServer() and connect(). Both run the SMB Direct negotiation on a
// provider endpoint and hand out SmbDirectConnection objects only once it has succeeded.
import { EventEmitter } from 'node:events';

import { defaultProvider } from '../providers/default.js';
import { createIwarpProvider } from '../providers/iwarp/provider.js';
import { type VerbsOptions, createVerbsProvider } from '../providers/verbs.js';
import type { RdmaEndpoint, RdmaListener, RdmaProvider } from '../providers/types.js';
import { SmbDirectConnection } from './connection.js';
import { SmbDirectError } from './errors.js';
import { type ResolvedOptions, type SmbDirectOptions, resolveOptions } from './options.js';

/** Ports of [MS-SMBD] 2.1: 445 on InfiniBand / RoCE, 5445 on iWARP (cifs tries 5445 first). */
export const SMB_DIRECT_PORT = 445;
export const SMB_DIRECT_IWARP_PORT = 5445;

export type ProviderChoice = RdmaProvider | 'iwarp-tcp' | 'verbs';

export interface ConnectOptions extends SmbDirectOptions {
  host: string;
  /** Default 5445 on the software iWARP provider, else 445. */
  port?: number;
  /** An RdmaProvider, 'verbs' or 'iwarp-tcp'. Default: defaultProvider() for `host` (verbs where
   * an active RDMA port serves it, else the software iWARP provider). */
  provider?: ProviderChoice;
  /** RDMA reads we may issue / serve at once (the provider's ORD / IRD). */
  initiatorDepth?: number;
  responderResources?: number;
}

export interface ServerOptions extends SmbDirectOptions {
  provider?: ProviderChoice;
}

/** Queue sizes a verbs QP needs for one SMB Direct connection: a receive per credit, a send work
 * request per send slot (messages and RDMA operations share them), one spare each for drain markers. */
export function verbsOptionsFor(o: ResolvedOptions): VerbsOptions {
  return {
    maxRecvWr: o.credits + 1, maxSendWr: o.sendQueueDepth + 1 + WINDOW_SLOTS, windowSlots: WINDOW_SLOTS,
    initiatorDepth: o.rdmaReadDepth, responderResources: o.rdmaReadDepth,
  };
}

/** Send-queue slots for memory-window binds: registerBuffer's per-I/O tokens are windows where the
 * device has type-2 windows (rxe), up to this many binds in flight; past that, registrations. */
const WINDOW_SLOTS = 32;

/** The provider a name (or nothing) stands for. A provider object is used as given: its queues must
 * hold `credits` receives and `sendQueueDepth` sends (verbsOptionsFor() gives the sizes). */
export function resolveProvider(p: ProviderChoice | undefined, o: ResolvedOptions, host?: string): RdmaProvider {
  if (p === 'iwarp-tcp') return createIwarpProvider();
  if (p === 'verbs') return createVerbsProvider(verbsOptionsFor(o));
  if (p === undefined) {
    const wildcard = host === undefined || host === '0.0.0.0' || host === '::';
    return defaultProvider({ host: wildcard ? undefined : host, verbs: verbsOptionsFor(o) });
  }
  if (typeof p === 'object' && p !== null && typeof p.listen === 'function' && typeof p.connect === 'function') return p;
  throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `provider must be an RdmaProvider, 'verbs' or 'iwarp-tcp', got ${String(p)}`);
}

export function defaultPort(provider: RdmaProvider): number {
  return provider.name === 'iwarp-tcp' ? SMB_DIRECT_IWARP_PORT : SMB_DIRECT_PORT;
}

/** Connects and negotiates; resolves with a connection in state 'connected'. */
export async function connect(opts: ConnectOptions): Promise<SmbDirectConnection> {
  const options = resolveOptions(opts);
  const provider = resolveProvider(opts.provider, options, opts.host);
  const endpoint = await provider.connect({
    host: opts.host, port: opts.port ?? defaultPort(provider),
    initiatorDepth: opts.initiatorDepth, responderResources: opts.responderResources,
  });
  let conn: SmbDirectConnection;
  try {
    conn = new SmbDirectConnection(endpoint, 'initiator', options, provider.name);
  } catch (err) {
    endpoint.destroy();
    throw err;
  }
  await conn._startInitiator();
  return conn;
}

/**
 * An SMB Direct server. Events: 'connection' (conn, once negotiated), 'connectionError' (err, a
 * peer that failed negotiation: the server keeps serving), 'listening', 'error', 'close'.
 */
export class SmbDirectServer extends EventEmitter {
  #provider?: RdmaProvider;
  #choice?: ProviderChoice;
  readonly connections = new Set<SmbDirectConnection>();
  #options: ResolvedOptions;
  #listener?: RdmaListener;
  #negotiating = new Set<SmbDirectConnection>();
  #closing?: Promise<void>;

  constructor(opts: ServerOptions = {}, onConnection?: (conn: SmbDirectConnection) => void) {
    super();
    this.#options = resolveOptions(opts);
    this.#choice = opts.provider;
    // a named or given provider is known now; the default one depends on the address listened on
    if (opts.provider !== undefined) this.#provider = resolveProvider(opts.provider, this.#options);
    if (onConnection) this.on('connection', onConnection);
  }

  /** Listens on host:port (default port: 5445 for iwarp-tcp, else 445; 0 picks a free one). */
  async listen(opts: { host?: string; port?: number; backlog?: number } = {}): Promise<{ host: string; port: number }> {
    if (this.#listener) throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', 'the server is already listening');
    const host = opts.host ?? '0.0.0.0';
    this.#provider ??= resolveProvider(this.#choice, this.#options, host);
    const listener = await this.#provider.listen({ host, port: opts.port ?? defaultPort(this.#provider), backlog: opts.backlog });
    this.#listener = listener;
    listener.on('connection', (ep: RdmaEndpoint) => this.#onEndpoint(ep));
    listener.on('error', (err: Error) => this.emit('error', err));
    this.emit('listening');
    return { host, port: listener.port };
  }

  /** The provider connections run on (known once listening when none was named). */
  get provider(): RdmaProvider {
    this.#provider ??= resolveProvider(this.#choice, this.#options);
    return this.#provider;
  }

  address(): { port: number } | null {
    return this.#listener ? { port: this.#listener.port } : null;
  }

  #onEndpoint(ep: RdmaEndpoint): void {
    if (this.#closing) { void ep.reject().catch(() => {}); return; }
    let conn: SmbDirectConnection;
    try {
      conn = new SmbDirectConnection(ep, 'acceptor', this.#options, this.provider.name);
    } catch (err) {
      ep.destroy();
      this.emit('connectionError', err);
      return;
    }
    this.#negotiating.add(conn);
    conn._startAcceptor().then(() => {
      this.#negotiating.delete(conn);
      if (this.#closing) { void conn.close(); return; }
      this.connections.add(conn);
      conn.once('close', () => this.connections.delete(conn));
      this.emit('connection', conn);
    }, (err: Error) => {
      this.#negotiating.delete(conn);
      if (this.listenerCount('connectionError')) this.emit('connectionError', err);
    });
  }

  /** Stops listening, closes every connection gracefully, resolves when all are closed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#listener?.close();
      for (const c of this.#negotiating) c.destroy();
      await Promise.all([...this.connections].map((c) => c.close()));
      this.emit('close');
    })();
    return this.#closing;
  }
}

export function createServer(opts: ServerOptions = {}, onConnection?: (conn: SmbDirectConnection) => void): SmbDirectServer {
  return new SmbDirectServer(opts, onConnection);
}
