// A TCP proxy on 127.0.0.1 that breaks connections on purpose: the fault-injection harness of
// test/fault.test.ts. Each accepted connection gets a plan: per direction (c2s: client -> server,
// s2c: server -> client) a fault, triggered after N bytes in that direction, after T ms, or
// together with the other direction's fault. Before its trigger a direction passes bytes (and the
// FIN or reset that ends them) unchanged; from the trigger on:
//
//   drop      a black hole: bytes vanish, and so does the source's FIN or reset; both sockets stay open
//   delay     every chunk (and the FIN) is held `ms` before it is passed on; order is kept
//   split     the next `bytes` bytes (default all) go out in pieces of `size` bytes (or a random
//             size in [min, max]), each its own write, one event-loop turn apart; nothing is lost
//   truncate  the destination gets a FIN at once; later bytes (and the source's FIN) are dropped;
//             whatever the destination does next is passed back as usual
//   reset     both sockets are reset (RST) at once
//   halfOpen  'swallowFin': bytes pass, but the source's FIN or reset never reaches the destination
//             (it keeps a connection whose peer is gone);
//             'oneWay': this direction is closed (FIN to the destination, later bytes dropped) and
//             the source never hears of anything again: the other direction's bytes, FIN and reset
//             are dropped too (the source is left with an open, silent connection)
//
// Test infrastructure: small on purpose. Everything is logged per connection (`log`) so a failing
// case can say what the wire saw.
import { once } from 'node:events';
import { type AddressInfo, type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';

export type Direction = 'c2s' | 's2c';

export type Fault =
  | { kind: 'drop' }
  | { kind: 'delay'; ms: number }
  | { kind: 'split'; size: number | [number, number]; bytes?: number; seed?: number }
  | { kind: 'truncate' }
  | { kind: 'reset' }
  | { kind: 'halfOpen'; mode: 'swallowFin' | 'oneWay' };

export interface DirectionPlan {
  fault: Fault;
  /** Bytes passed on in this direction before the fault starts (default 0: at once). */
  afterBytes?: number;
  /** Or: milliseconds after the connection was accepted. */
  afterMs?: number;
  /** Or: when the other direction's fault starts. */
  withOther?: boolean;
  /** Or: when the test calls ProxiedConnection.fire(dir). */
  manual?: boolean;
}

export interface FaultPlan {
  c2s?: DirectionPlan;
  s2c?: DirectionPlan;
}

export type Trigger = { dir: Direction; afterBytes: number } | { afterMs: number } | { manual: Direction };

/** The plan for `fault` in one direction at `trigger` (a time or manual trigger: client -> server). */
export function faultAt(trigger: Trigger, fault: Fault): FaultPlan {
  if ('afterMs' in trigger) return { c2s: { fault, afterMs: trigger.afterMs } };
  if ('manual' in trigger) return { [trigger.manual]: { fault, manual: true } };
  return { [trigger.dir]: { fault, afterBytes: trigger.afterBytes } };
}

/** A black hole in both directions from `trigger` on. */
export function blackHole(trigger: Trigger): FaultPlan {
  const drop: Fault = { kind: 'drop' };
  const plan = faultAt(trigger, drop);
  const first: Direction = plan.c2s ? 'c2s' : 's2c';
  return { ...plan, [first === 'c2s' ? 's2c' : 'c2s']: { fault: drop, withOther: true } };
}

/** Bytes queued in one direction above which the source is paused (backpressure through the proxy). */
const HIGH_WATER = 4 << 20;

interface Item { data?: Buffer; end?: true; at: number; piece?: boolean }

/** One direction of one proxied connection. */
class Flow {
  /** Bytes read from the source. */
  seen = 0;
  /** Bytes written to the destination. */
  passed = 0;
  dropped = 0;
  active?: Fault;
  firedAt?: number;
  /** The source's FIN is not passed on (drop, truncate, halfOpen), nor its reset (drop, halfOpen). */
  hideFin = false;
  hideReset = false;
  /** Set on the reverse flow of a oneWay fault: everything it carries is dropped. */
  silenced = false;
  private queue: Item[] = [];
  private queued = 0;
  private waiting = false;
  private pausedSrc = false;
  private splitLeft = 0;
  private rng = 1;
  private lastAt = 0;

  constructor(
    readonly conn: ProxiedConnection,
    readonly dir: Direction,
    readonly src: Socket,
    readonly dst: Socket,
    readonly plan: DirectionPlan | undefined,
  ) {}

  /** Bytes of the source this direction passes before its fault (undefined: not by bytes). */
  get byteTrigger(): number | undefined {
    const p = this.plan;
    if (!p || p.withOther || p.manual || p.afterMs !== undefined) return undefined;
    return p.afterBytes ?? 0;
  }

  onData(chunk: Buffer): void {
    const t = this.byteTrigger;
    if (!this.active && t !== undefined && this.seen + chunk.length >= t) {
      const head = t - this.seen;
      this.seen += head;
      if (head > 0) this.handle(chunk.subarray(0, head));
      this.conn.fire(this.dir);
      chunk = chunk.subarray(head);
      if (chunk.length === 0) return;
    }
    this.seen += chunk.length;
    this.handle(chunk);
  }

  private finSeen = false;

  onEnd(): void {
    if (this.finSeen) return;
    this.finSeen = true;
    this.conn.log.push(`${this.dir}: source FIN${this.hideFin ? ' (hidden)' : ''}`);
    if (this.hideFin) return;
    this.enqueue({ end: true, at: this.delayedAt() });
  }

  /** The fault starts now. */
  start(fault: Fault): void {
    if (this.active) return;
    this.active = fault;
    this.firedAt = Date.now();
    this.conn.log.push(`${this.dir}: ${fault.kind}${fault.kind === 'halfOpen' ? `/${fault.mode}` : ''} after ${this.seen} bytes`);
    switch (fault.kind) {
      case 'drop':
        this.hideFin = this.hideReset = true;
        break;
      case 'split':
        this.splitLeft = fault.bytes ?? Infinity;
        this.rng = (fault.seed ?? 1) >>> 0 || 1;
        break;
      case 'truncate':
        this.hideFin = true;
        this.enqueue({ end: true, at: 0 });
        break;
      case 'halfOpen':
        this.hideFin = this.hideReset = true;
        if (fault.mode === 'oneWay') {
          this.enqueue({ end: true, at: 0 });
          this.conn.flows[this.dir === 'c2s' ? 's2c' : 'c2s'].silence();
        }
        break;
      case 'reset':
        this.conn.resetBoth(`${this.dir} reset after ${this.seen} bytes`);
        break;
      case 'delay':
        break;
    }
  }

  /** The reverse flow of a oneWay fault: from now on nothing reaches our destination. */
  silence(): void {
    this.silenced = true;
    this.hideFin = this.hideReset = true;
    this.dropped += this.queued;
    this.queue = [];
    this.queued = 0;
    this.resumeSrc();
  }

  private handle(chunk: Buffer): void {
    const f = this.active;
    if (this.silenced || f?.kind === 'drop' || f?.kind === 'truncate' || (f?.kind === 'halfOpen' && f.mode === 'oneWay')) {
      this.dropped += chunk.length;
      return;
    }
    if (f?.kind === 'split' && this.splitLeft > 0) {
      let off = 0;
      while (off < chunk.length && this.splitLeft > 0) {
        const n = Math.min(this.pieceSize(f.size), chunk.length - off, this.splitLeft);
        this.enqueue({ data: chunk.subarray(off, off + n), at: 0, piece: true });
        off += n;
        this.splitLeft -= n;
      }
      if (off < chunk.length) this.enqueue({ data: chunk.subarray(off), at: 0 });
      return;
    }
    this.enqueue({ data: chunk, at: this.delayedAt() });
  }

  private delayedAt(): number {
    if (this.active?.kind !== 'delay') return 0;
    // never before what is already queued: order is kept
    this.lastAt = Math.max(this.lastAt, performance.now() + this.active.ms);
    return this.lastAt;
  }

  private pieceSize(size: number | [number, number]): number {
    if (typeof size === 'number') return Math.max(1, size);
    // xorshift32: the same pieces for the same seed
    let x = this.rng;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.rng = x;
    return size[0] + (x % (size[1] - size[0] + 1));
  }

  private enqueue(item: Item): void {
    this.queue.push(item);
    if (item.data) this.queued += item.data.length;
    if (this.queued > HIGH_WATER && !this.pausedSrc) {
      this.pausedSrc = true;
      this.src.pause();
    }
    this.pump();
  }

  private resumeSrc(): void {
    if (this.pausedSrc && this.queued <= HIGH_WATER / 2) {
      this.pausedSrc = false;
      if (!this.src.destroyed) this.src.resume();
    }
  }

  private pump = (): void => {
    while (this.queue.length && !this.waiting) {
      if (this.dst.destroyed || this.dst.writableEnded) {
        // nowhere to go (the destination closed; its close was passed back, or hidden on purpose)
        for (const it of this.queue) if (it.data) this.dropped += it.data.length;
        this.queue = [];
        this.queued = 0;
        break;
      }
      const it = this.queue[0]!;
      const wait = it.at - performance.now();
      if (wait > 0) {
        this.waiting = true;
        setTimeout(() => { this.waiting = false; this.pump(); }, Math.ceil(wait));
        return;
      }
      this.queue.shift();
      if (it.end) {
        this.conn.log.push(`${this.dir}: FIN passed on after ${this.passed} bytes`);
        this.dst.end();
        continue;
      }
      const data = it.data!;
      this.queued -= data.length;
      this.passed += data.length;
      const room = this.dst.write(data);
      if (it.piece) {
        // one piece per event-loop turn: the reader gets a chance to see each on its own
        this.waiting = true;
        setImmediate(() => { this.waiting = false; this.pump(); });
        break;
      }
      if (!room) {
        this.waiting = true;
        this.dst.once('drain', () => { this.waiting = false; this.pump(); });
        break;
      }
    }
    this.resumeSrc();
  };
}

/** One client connection through the proxy and its upstream connection to the server. */
export class ProxiedConnection {
  readonly log: string[] = [];
  readonly flows: Record<Direction, Flow>;
  /** The local port of the upstream socket: the server sees the connection coming from it. */
  readonly upstreamPort: number;
  readonly closed: Promise<void>;
  private resetting = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(readonly client: Socket, readonly server: Socket, readonly plan: FaultPlan) {
    this.upstreamPort = server.localPort ?? 0;
    this.flows = {
      c2s: new Flow(this, 'c2s', client, server, plan.c2s),
      s2c: new Flow(this, 's2c', server, client, plan.s2c),
    };
    // (not events.once: it rejects on 'error', and a socket's error is part of the show here)
    const closeOf = (s: Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));
    this.closed = Promise.all([closeOf(client), closeOf(server)]).then(() => {
      for (const t of this.timers) clearTimeout(t);
    });
    for (const [sock, name, out] of [[client, 'client', this.flows.c2s], [server, 'server', this.flows.s2c]] as const) {
      let reset = false;
      sock.on('data', (chunk: Buffer) => out.onData(chunk));
      sock.on('end', () => out.onEnd());
      sock.on('error', (err: NodeJS.ErrnoException) => {
        reset ||= err.code === 'ECONNRESET' || err.code === 'EPIPE';
        this.log.push(`${name}: ${err.code ?? err.message}`);
      });
      sock.on('close', () => this.onClose(name, out, reset));
    }
    for (const dir of ['c2s', 's2c'] as const) {
      const p = plan[dir];
      if (!p) continue;
      if (p.afterMs !== undefined) this.timers.push(setTimeout(() => this.fire(dir), p.afterMs));
      else if (!p.withOther && !p.manual && (p.afterBytes ?? 0) === 0) this.fire(dir);
    }
  }

  /** Starts `dir`'s fault, and the other direction's if it is to start with it. */
  fire(dir: Direction): void {
    const other: Direction = dir === 'c2s' ? 's2c' : 'c2s';
    const p = this.plan[dir];
    if (p) this.flows[dir].start(p.fault);
    const q = this.plan[other];
    if (q?.withOther) this.flows[other].start(q.fault);
  }

  resetBoth(why: string): void {
    if (this.resetting) return;
    this.resetting = true;
    this.log.push(`reset both: ${why}`);
    this.client.resetAndDestroy();
    this.server.resetAndDestroy();
  }

  /** A socket closed: pass that on as a FIN (after its queued bytes) or a reset, unless hidden. */
  private onClose(name: string, out: Flow, reset: boolean): void {
    this.log.push(`${name}: closed${reset ? ' by a reset' : ''}`);
    if (this.resetting || out.dst.destroyed) return;
    if (reset) {
      if (out.hideReset) return;
      this.log.push(`${out.dir}: reset passed on`);
      out.dst.resetAndDestroy();
    } else {
      out.onEnd(); // (a no-op when its FIN was seen already)
    }
  }

  /** Tears both sockets down (the test is over). */
  destroy(): void {
    for (const t of this.timers) clearTimeout(t);
    this.client.destroy();
    this.server.destroy();
  }
}

export class FaultProxy {
  readonly connections: ProxiedConnection[] = [];
  private plans: FaultPlan[] = [];
  private waiters: Array<(c: ProxiedConnection) => void> = [];
  private pending = new Set<Socket>();

  private constructor(private readonly server: Server, readonly target: { host: string; port: number }) {
    server.on('connection', (client) => this.onClient(client));
  }

  /** A proxy on 127.0.0.1:0 in front of `target`. */
  static async start(target: { host?: string; port: number }): Promise<FaultProxy> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    const proxy = new FaultProxy(server, { host: target.host ?? '127.0.0.1', port: target.port });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The plan of the next accepted connection (plans queue up; none: a faithful proxy). */
  plan(p: FaultPlan): this {
    this.plans.push(p);
    return this;
  }

  /** The next connection accepted from now on. */
  nextConnection(): Promise<ProxiedConnection> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private onClient(client: Socket): void {
    const plan = this.plans.shift() ?? {};
    client.on('error', () => {});
    const upstream = tcpConnect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    upstream.on('error', () => {});
    this.pending.add(client).add(upstream);
    upstream.once('connect', () => {
      this.pending.delete(client);
      this.pending.delete(upstream);
      if (client.destroyed) { upstream.destroy(); return; }
      client.setNoDelay(true);
      const conn = new ProxiedConnection(client, upstream, plan);
      this.connections.push(conn);
      for (const w of this.waiters.splice(0)) w(conn);
      client.resume();
      upstream.resume();
    });
    upstream.once('close', () => {
      if (this.pending.delete(upstream)) { this.pending.delete(client); client.resetAndDestroy(); }
    });
  }

  /** Stops listening and tears down every connection still open. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.destroy();
    for (const s of this.pending) s.destroy();
    await closed;
  }
}
