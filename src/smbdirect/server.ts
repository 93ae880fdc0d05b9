// The public entry points: createServer() and connect(). Both run the SMB Direct negotiation on a
// provider endpoint and hand out SmbDirectConnection objects only once it has succeeded.
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';

import { defaultProvider } from '../providers/default.js';
import { type IwarpOptions, createIwarpProvider, iwarpOptionsForNeeds } from '../providers/iwarp/provider.js';
import { type VerbsOptions, createVerbsProvider, verbsOptionsForNeeds } from '../providers/verbs/provider.js';
import type { CapacityNeeds, RdmaEndpoint, RdmaListener, RdmaProvider } from '../providers/types.js';
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
  /** Connections at once, negotiating ones included (default 128); past it, a request is
   * rejected and reported as 'connectionError' (ERR_SMBD_RESOURCE_LIMIT). */
  maxConnections?: number;
  /** Connections still negotiating at once (default 32): a peer that opens many and never sends
   * a negotiate request holds at most this many, each for acceptTimeoutMs. */
  maxNegotiating?: number;
}

const debug = debuglog('smbdirect');

/** Server defaults: ksmbd's `max connections` is 128 too. At the default options a connection
 * registers ~2.4 MiB (255 x 8 KiB receive + 256 x 1368 send buffers), so 128 hold ~300 MiB. */
export const SERVER_DEFAULTS = Object.freeze({ maxConnections: 128, maxNegotiating: 32 });

/** What one SMB Direct connection posts at most at once: a receive per credit, a send per send slot
 * (messages and RDMA operations share them), RDMA reads each way. The providers size their queues
 * from it (verbsOptionsForNeeds, iwarpOptionsForNeeds). */
export function connectionNeeds(o: ResolvedOptions): CapacityNeeds {
  return { receives: o.credits, sends: o.sendQueueDepth, readDepth: o.rdmaReadDepth };
}

/** The verbs provider's options for connections with these options. */
export function verbsOptionsFor(o: ResolvedOptions): VerbsOptions {
  return verbsOptionsForNeeds(connectionNeeds(o));
}

/** The software provider's options for connections with these options. */
export function iwarpOptionsFor(o: ResolvedOptions): IwarpOptions {
  return iwarpOptionsForNeeds(connectionNeeds(o));
}

/** The provider a name (or nothing) stands for. A provider object is used as given: its queues must
 * hold `credits` receives and `sendQueueDepth` sends (smbdirect/providers' verbsOptionsForNeeds and
 * iwarpOptionsForNeeds give the sizes for { receives, sends, readDepth }). */
export function resolveProvider(p: ProviderChoice | undefined, o: ResolvedOptions, host?: string): RdmaProvider {
  let provider: RdmaProvider;
  if (p === 'iwarp-tcp') provider = createIwarpProvider(iwarpOptionsFor(o));
  else if (p === 'verbs') provider = createVerbsProvider(verbsOptionsFor(o));
  else if (p === undefined) {
    const wildcard = host === undefined || host === '0.0.0.0' || host === '::';
    provider = defaultProvider({ host: wildcard ? undefined : host, verbs: verbsOptionsFor(o), iwarp: iwarpOptionsFor(o) });
  } else if (typeof p === 'object' && p !== null && typeof p.listen === 'function' && typeof p.connect === 'function') provider = p;
  else throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `provider must be an RdmaProvider, 'verbs' or 'iwarp-tcp', got ${String(p)}`);
  checkCapacity(provider, o);
  return provider;
}

/** Refuses now (ERR_SMBD_INVALID_ARGUMENT) options the provider's connections could not hold,
 * rather than failing every connection later. */
function checkCapacity(provider: RdmaProvider, o: ResolvedOptions): void {
  try {
    provider.checkCapacity?.(connectionNeeds(o));
  } catch (err) {
    throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `the ${provider.name} provider cannot carry these options (credits ${o.credits}, sendQueueDepth ${o.sendQueueDepth}): ${(err as Error).message}`, { cause: err });
  }
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
  await conn._startInitiator(); // on failure the connection has freed everything
  return conn;
}

/**
 * An SMB Direct server. Events: 'connection' (conn, once negotiated), 'connectionError' (err: a
 * peer that failed negotiation, a request refused by a limit or one the provider could not set
 * up; the server keeps serving), 'listening', 'error' (the listener itself failed), 'close'.
 */
export class SmbDirectServer extends EventEmitter {
  #provider?: RdmaProvider;
  #choice?: ProviderChoice;
  readonly connections = new Set<SmbDirectConnection>();
  #options: ResolvedOptions;
  readonly #limits: { maxConnections: number; maxNegotiating: number };
  #listener?: RdmaListener;
  #negotiating = new Set<SmbDirectConnection>();
  #closing?: Promise<void>;

  constructor(opts: ServerOptions = {}, onConnection?: (conn: SmbDirectConnection) => void) {
    super();
    const { maxConnections = SERVER_DEFAULTS.maxConnections, maxNegotiating = SERVER_DEFAULTS.maxNegotiating, ...connOpts } = opts;
    for (const [k, v] of [['maxConnections', maxConnections], ['maxNegotiating', maxNegotiating]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 1_000_000) throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `${k} must be an integer in [1, 1000000], got ${v}`);
    }
    this.#limits = { maxConnections, maxNegotiating };
    this.#options = resolveOptions(connOpts);
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
    listener.on('connectionError', (err: Error) => this.#connectionError(new SmbDirectError('ERR_SMBD_SETUP_FAILED',
      `a connection request could not be set up: ${err.message}`, { cause: err })));
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
    if (this.#closing) { this.#reject(ep); return; } // quietly: the server is going away
    const { maxConnections, maxNegotiating } = this.#limits;
    if (this.connections.size + this.#negotiating.size >= maxConnections) {
      this.#reject(ep);
      this.#connectionError(new SmbDirectError('ERR_SMBD_RESOURCE_LIMIT', `connection refused: maxConnections (${maxConnections}) reached`));
      return;
    }
    if (this.#negotiating.size >= maxNegotiating) {
      this.#reject(ep);
      this.#connectionError(new SmbDirectError('ERR_SMBD_RESOURCE_LIMIT', `connection refused: ${maxNegotiating} connections are negotiating (maxNegotiating)`));
      return;
    }
    let conn: SmbDirectConnection;
    try {
      conn = new SmbDirectConnection(ep, 'acceptor', this.#options, this.provider.name);
    } catch (err) {
      this.#reject(ep);
      this.#connectionError(err as Error);
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
      this.#connectionError(err);
    });
  }

  /** Turns a connection request away at the transport (an MPA reject / rdma_reject). */
  #reject(ep: RdmaEndpoint): void {
    ep.reject().catch(() => ep.destroy());
  }

  #connectionError(err: Error): void {
    debug('server: connection failed: %s', err.message);
    if (this.listenerCount('connectionError')) this.emit('connectionError', err);
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
