// Fault injection (issue #18, "What else to build" 2): SMB Direct over the software iWARP provider
// through a loopback proxy (test/support/fault-proxy.ts) that drops, delays, splits, truncates,
// resets and half-opens the TCP connection at chosen points: during the MPA exchange, during the
// SMB Direct negotiation, in the middle of a 1 MiB message, of an 8 MiB rdmaWrite and of an 8 MiB
// rdmaRead, while idle (keepalive must find a black hole), and at a graceful close.
//
// Every case must end in bounded time with the expected error code on each side, every promise
// the test started (connect, send, rdmaRead/rdmaWrite, close) settled, bytes that do get through
// intact (sha256), and the server still serving: a bystander connected directly (not through the
// proxy) echoes afterwards, and server.connections empties.
//
// Timers are short so that each case ends in a few seconds: MPA Request/Reply 700 ms,
// negotiation 700 ms, keepalive after 300 ms idle with 800 ms to answer, graceful close 1 s (the
// provider's own disconnect wait 500 ms). The provider is the software iWARP one ('iwarp-tcp'),
// made with createIwarpProvider() only to shorten its MPA and disconnect timers (5-10 s by default).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { type Socket, connect as tcpConnect, createServer as tcpServer } from 'node:net';
import { type TestContext, describe, it } from 'node:test';

import { MPA_IRD_ORD_SIZE, encodeMpaReply, encodeMpaRequest } from '../framing/mpa.js';
import { type SmbDirectConnection, type SmbDirectOptions, type SmbDirectServer, connect, createServer } from '../src/index.js';
import { type IwarpEndpoint, type RdmaEndpoint, type RdmaProvider, createIwarpProvider } from '../src/providers/index.js';
import { pattern } from './support.js';
import { type Fault, type FaultPlan, FaultProxy, type ProxiedConnection, type Trigger, blackHole, faultAt } from './support/fault-proxy.js';

const HOST = '127.0.0.1';
const MiB = 1 << 20;
/** A case must be over (both ends closed, every promise settled) within this long: about three
 * times the longest legitimate end (keepalive: 300 ms idle + 800 ms to answer). */
const CASE_MS = 3500;
const OPTS: SmbDirectOptions = {
  // 256 credits: MaxFragmentedSize is capped at credits x 8192 / 2, and 1 MiB needs 256
  credits: 256,
  acceptTimeoutMs: 700,
  negotiateTimeoutMs: 700,
  keepaliveIntervalMs: 300,
  keepaliveTimeoutMs: 800,
  closeTimeoutMs: 1000,
};
const IWARP = { replyTimeoutMs: 700, requestTimeoutMs: 700, disconnectTimeoutMs: 500 };

// where the phases are on the wire: the MPA Request (client -> server) and Reply (server -> client)
// come first, each 20 bytes + IRD/ORD; then FPDUs
const MPA_REQUEST = encodeMpaRequest({ revision: 2, crc: true, privateData: new Uint8Array(MPA_IRD_ORD_SIZE), enhanced: true }).length;
const MPA_REPLY = encodeMpaReply({ revision: 2, crc: true, privateData: new Uint8Array(MPA_IRD_ORD_SIZE), enhanced: true }).length;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** `p`, or undefined after `ms` (the timer does not outlive the race). */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); })]).finally(() => clearTimeout(timer));
}
const codeOf = (e: unknown): string => (e as { code?: string } | undefined)?.code ?? (e ? String(e) : 'clean');

type Phase = 'mpa' | 'negotiate' | 'message' | 'rdmaWrite' | 'rdmaRead' | 'idle' | 'close';
type Kind = Fault['kind'];

/** Where each phase's fault starts: the direction that carries the phase's bytes, and how far in. */
const POINTS: Record<Phase, Trigger> = {
  mpa: { dir: 'c2s', afterBytes: 10 },                         // inside the MPA Request
  negotiate: { dir: 's2c', afterBytes: MPA_REPLY + 10 },      // inside the negotiate response
  message: { dir: 'c2s', afterBytes: MPA_REQUEST + 512 * 1024 }, // half way through the 1 MiB message
  rdmaWrite: { dir: 's2c', afterBytes: 4 * MiB },             // half way through the 8 MiB of RDMA Writes
  rdmaRead: { dir: 'c2s', afterBytes: 4 * MiB },              // half way through the 8 MiB of Read Responses
  idle: { afterMs: 200 },                                      // established, nothing moving
  close: { manual: 'c2s' },                                    // just before a graceful close()
};

function faultOf(kind: Kind, phase: Phase): Fault {
  switch (kind) {
    case 'drop': return { kind };
    case 'delay': return { kind, ms: 30 };
    case 'split': return phase === 'mpa' ? { kind, size: 1, bytes: 4096 } : { kind, size: [1, 7], bytes: 32 * 1024, seed: 7 };
    case 'truncate': return { kind };
    case 'reset': return { kind };
    case 'halfOpen': return { kind, mode: phase === 'close' ? 'swallowFin' : 'oneWay' };
  }
}

function planOf(kind: Kind, phase: Phase, fault = faultOf(kind, phase)): FaultPlan {
  // drop: both ways, a network that went away
  return kind === 'drop' ? blackHole(POINTS[phase]) : faultAt(POINTS[phase], fault);
}

/** The software provider, with our endpoints on the server side recorded as they are handed out. */
function watchedProvider(): { provider: RdmaProvider; accepted: RdmaEndpoint[] } {
  const base = createIwarpProvider(IWARP);
  const accepted: RdmaEndpoint[] = [];
  return {
    accepted,
    provider: {
      ...base,
      async listen(o) {
        const l = await base.listen(o);
        l.on('connection', (ep: RdmaEndpoint) => accepted.push(ep));
        return l;
      },
    },
  };
}

const remotePort = (ep: RdmaEndpoint): number | undefined => (ep as IwarpEndpoint).socket?.remotePort;

/** What a case observed. */
interface Observed {
  /** How each end ended (see Expect), and when: ms from the start of the case. */
  client: string;
  server: string;
  clientMs: number;
  serverMs: number;
  /** How each tracked promise settled ('ok', a code, 'hung'), and the rejections' messages. */
  ops: Record<string, string>;
  messages: Record<string, string>;
  /** What did not end within CASE_MS. */
  hung: string[];
}

class Case {
  server!: SmbDirectServer;
  proxy!: FaultProxy;
  bystander!: SmbDirectConnection;
  watched = watchedProvider();
  private readonly t0 = performance.now();
  private ops: Array<{ name: string; settled?: string; message?: string; p: Promise<unknown> }> = [];
  proxied?: ProxiedConnection;
  private serverConnResolve!: (c: SmbDirectConnection) => void;
  /** The server's side of the proxied connection, once negotiated. */
  readonly serverConn = new Promise<SmbDirectConnection>((r) => { this.serverConnResolve = r; });
  private serverEndResolve!: (s: string) => void;
  readonly serverEnd = new Promise<string>((r) => { this.serverEndResolve = r; });
  serverMs = -1;
  private clientEndResolve!: (s: string) => void;
  readonly clientEnd = new Promise<string>((r) => { this.clientEndResolve = r; });
  clientMs = -1;
  client?: SmbDirectConnection;

  elapsed(): number {
    return Math.round(performance.now() - this.t0);
  }

  async setup(plan: FaultPlan): Promise<void> {
    this.server = createServer({ provider: this.watched.provider, ...OPTS });
    this.server.on('connection', (conn: SmbDirectConnection) => {
      const port = remotePort(conn.endpoint);
      if (this.proxied && port === this.proxied.upstreamPort) {
        conn.once('close', (err?: Error) => this.endServer(codeOf(err)));
        this.serverConnResolve(conn);
      } else {
        conn.on('message', (m: Uint8Array) => void conn.send(m).catch(() => {})); // the bystander: echo
      }
    });
    // a connection that failed negotiation; the bystander negotiated before the case starts
    this.server.on('connectionError', (err: Error) => this.endServer(`negotiate:${codeOf(err)}`));
    const { port } = await this.server.listen({ host: HOST, port: 0 });
    this.bystander = await connect({ host: HOST, port, provider: this.watched.provider, ...OPTS });
    this.proxy = await FaultProxy.start({ host: HOST, port });
    this.proxy.plan(plan);
    void this.proxy.nextConnection().then((pc) => {
      this.proxied = pc;
      // the server may never get as far as an endpoint (the MPA Request did not arrive whole):
      // then the end of the proxy's upstream socket is the end of the server's side
      // (its FIN, or its close: a black hole keeps the proxy's socket half open)
      const gone = () => setTimeout(() => {
        if (!this.watched.accepted.some((ep) => remotePort(ep) === pc.upstreamPort)) this.endServer('none');
      }, 200);
      pc.server.once('end', gone);
      pc.server.once('close', gone);
    });
  }

  private endServer(s: string): void {
    if (this.serverMs < 0) this.serverMs = this.elapsed();
    this.serverEndResolve(s);
  }

  endClient(s: string): void {
    if (this.clientMs < 0) this.clientMs = this.elapsed();
    this.clientEndResolve(s);
  }

  /** Tracks a promise the test started: it must settle before the case ends. */
  op<T>(name: string, p: Promise<T>): Promise<T> {
    const rec: { name: string; settled?: string; message?: string; p: Promise<unknown> } = { name, p };
    rec.p = p.then(() => { rec.settled = 'ok'; }, (e: unknown) => { rec.settled = codeOf(e); rec.message = (e as Error).message; });
    this.ops.push(rec);
    return p;
  }

  /** Connects through the proxy; the client's end is recorded. */
  async connectClient(): Promise<SmbDirectConnection | undefined> {
    try {
      const c = await this.op('connect', connect({ host: HOST, port: this.proxy.port, provider: this.watched.provider, ...OPTS }));
      this.client = c;
      c.once('close', (err?: Error) => this.endClient(codeOf(err)));
      return c;
    } catch (err) {
      this.endClient(`connect:${codeOf(err)}`);
      return undefined;
    }
  }

  /** Waits for both ends and every tracked promise, at most until CASE_MS; names what hung. */
  async finish(): Promise<Observed> {
    const left = () => Math.max(0, CASE_MS - this.elapsed());
    await within(Promise.all([this.clientEnd, this.serverEnd]), left());
    await within(Promise.all(this.ops.map((o) => o.p)), left());
    const hung = [
      ...(this.clientMs < 0 ? ['the client connection (never closed)'] : []),
      ...(this.serverMs < 0 ? ["the server's side of the connection (never closed)"] : []),
      ...this.ops.filter((o) => o.settled === undefined).map((o) => `promise "${o.name}"`),
    ];
    const ops: Record<string, string> = {};
    const messages: Record<string, string> = {};
    for (const o of this.ops) {
      ops[o.name] = o.settled ?? 'hung';
      if (o.message) messages[o.name] = o.message;
    }
    return {
      client: this.clientMs < 0 ? 'hung' : await this.clientEnd, server: this.serverMs < 0 ? 'hung' : await this.serverEnd,
      clientMs: this.clientMs, serverMs: this.serverMs, ops, messages, hung,
    };
  }

  /** The server still serves: the bystander echoes; then everything closes. */
  async teardown(): Promise<void> {
    try {
      this.client?.destroy();
      if (!this.bystander) return; // the setup failed part way
      const echo = once(this.bystander, 'message');
      const m = pattern(3000, 99);
      await this.bystander.send(m);
      const got = (await within(echo, 2000)) as [Uint8Array] | undefined;
      assert.ok(got, 'the bystander (connected directly) still gets its echo');
      assert.equal(sha(got[0]), sha(m), 'the bystander echo is intact');
      await this.bystander.close();
      for (let i = 0; this.server.connections.size > 0 && i < 100; i++) await sleep(20);
      assert.equal(this.server.connections.size, 0, 'server.connections empties');
    } finally {
      this.bystander?.destroy();
      await this.server?.close();
      await this.proxy?.close();
    }
  }

  get log(): string {
    return this.proxy?.connections.map((c) => c.log.join('; ')).join(' | ') ?? '';
  }
}

/** A message's arrival at a connection, or its end. */
function nextMessage(conn: SmbDirectConnection): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    if (conn.state === 'closed') { resolve(undefined); return; }
    const onMsg = (m: Uint8Array) => { conn.off('close', onClose); resolve(m); };
    const onClose = () => { conn.off('message', onMsg); resolve(undefined); };
    conn.once('message', onMsg);
    conn.once('close', onClose);
  });
}

/** Waits for `p` or the connection's end, whichever comes first. */
function orEnd<T>(c: Case, p: Promise<T>): Promise<T | undefined> {
  return Promise.race([p, Promise.all([c.clientEnd]).then(() => undefined)]);
}

/** An echo of `size` bytes through the proxy (the bystander's handler does not serve this one). */
async function echoThroughProxy(c: Case, client: SmbDirectConnection, size: number): Promise<string> {
  const sc = await orEnd(c, c.serverConn);
  if (!sc) return 'ended';
  const m = pattern(size, 5);
  const got = nextMessage(sc);
  await c.op('send (echo)', client.send(m)).catch(() => {});
  const at = await got;
  if (!at) return 'ended';
  const back = nextMessage(client);
  await c.op('server send (echo)', sc.send(at)).catch(() => {});
  const b = await back;
  if (!b) return 'ended';
  return sha(b) === sha(m) ? 'intact' : 'corrupt';
}

/** The phase's work from the client's side (and the server's, where it drives placement). */
async function runPhase(c: Case, phase: Phase): Promise<string> {
  const client = await c.connectClient();
  if (!client) return 'no connection';
  switch (phase) {
    case 'mpa':
    case 'negotiate':
      return echoThroughProxy(c, client, 5000);
    case 'idle':
      await sleep(1100); // past a keepalive exchange through the fault
      if (client.state !== 'connected') return 'ended';
      return echoThroughProxy(c, client, 5000);
    case 'close': {
      const r = await echoThroughProxy(c, client, 5000);
      c.proxied!.fire('c2s'); // the fault starts with the close
      await c.op('close', client.close()).catch(() => {});
      return r;
    }
    case 'message': {
      const sc = await orEnd(c, c.serverConn);
      if (!sc) return 'ended';
      const m = pattern(MiB, 11);
      const got = nextMessage(sc);
      await c.op('send 1 MiB', client.send(m)).catch(() => {});
      const at = await got;
      if (!at) return 'ended';
      return at.length === m.length && sha(at) === sha(m) ? 'intact' : 'corrupt';
    }
    case 'rdmaWrite': {
      const sc = await orEnd(c, c.serverConn);
      if (!sc) return 'ended';
      const target = new Uint8Array(8 * MiB);
      const reg = client.registerBuffer(target, 'write');
      const data = pattern(8 * MiB, 12);
      const response = nextMessage(client);
      try {
        await c.op('server rdmaWrite 8 MiB', sc.rdmaWrite(reg.descriptors, data));
        // as an SMB2 READ response does: it arrives after the data is placed
        await c.op('server send (response)', sc.send(new Uint8Array([1]), { invalidate: reg.token }));
      } catch {
        return 'ended';
      } finally {
        void response.then(() => reg.release());
      }
      if (!(await response)) return 'ended';
      return sha(target) === sha(data) ? 'intact' : 'corrupt';
    }
    case 'rdmaRead': {
      const sc = await orEnd(c, c.serverConn);
      if (!sc) return 'ended';
      const source = pattern(8 * MiB, 13);
      const reg = client.registerBuffer(source, 'read');
      const into = new Uint8Array(8 * MiB);
      try {
        await c.op('server rdmaRead 8 MiB', sc.rdmaRead(reg.descriptors, into));
      } catch {
        // the client does not know: its registration lives until its connection ends (releasing
        // it under a Read Response still being answered would reset the client on purpose)
        return 'ended';
      }
      reg.release();
      return sha(into) === sha(source) ? 'intact' : 'corrupt';
    }
  }
}

interface Expect {
  /** The client's end: 'connect:CODE' (connect rejected), CODE (closed with it) or 'clean'. */
  client: string | string[];
  /** The server's: 'none' (no endpoint: the MPA Request never arrived whole), 'negotiate:CODE', CODE or 'clean'. */
  server: string | string[];
  /** How tracked promises (by name) settle: 'ok', a code, or '=server' / '=client': rejected with
   * the error that side's connection latched (every pending promise rejects with it). */
  ops?: Record<string, string | string[]>;
  /** delay/split: every byte arrives intact and the connection then closes cleanly. */
  intact?: boolean;
  /** Another fault than faultOf()'s for this kind and phase. */
  fault?: Fault;
  /** A known defect makes this case fail: it stays in the suite as a todo. */
  todo?: string;
}

const either = (v: string | string[]): string[] => (Array.isArray(v) ? v : [v]);

async function runCase(kind: Kind, phase: Phase, expect: Expect, t: TestContext): Promise<void> {
  const c = new Case();
  let data = 'not run';
  let failed = true;
  try {
    await c.setup(planOf(kind, phase, expect.fault));
    const work = runPhase(c, phase).catch((e: unknown) => `threw ${codeOf(e)}`);
    data = (await within(work, CASE_MS)) ?? 'hung';
    if (data === 'intact' && phase !== 'close' && c.client?.state === 'connected') {
      // the bytes got through; a graceful close ends the case
      await c.op('close', c.client.close());
    }
    const o = await c.finish();
    t.diagnostic(`client ${o.client} at ${o.clientMs} ms, server ${o.server} at ${o.serverMs} ms; data ${data}; ` +
      `promises ${JSON.stringify(o.ops)} ${JSON.stringify(o.messages)}; proxy: ${c.log}`);
    assert.deepEqual(o.hung, [], `hung after ${CASE_MS} ms: ${o.hung.join(', ')}`);
    assert.ok(Math.max(o.clientMs, o.serverMs) < CASE_MS, 'bounded time');
    if (expect.intact) assert.equal(data, 'intact', 'every byte arrives intact');
    assert.ok(either(expect.client).includes(o.client), `client ended with ${o.client}, expected ${either(expect.client).join(' or ')}`);
    assert.ok(either(expect.server).includes(o.server), `server side ended with ${o.server}, expected ${either(expect.server).join(' or ')}`);
    for (const [name, got] of Object.entries(o.ops)) {
      // every promise that rejects rejects with the error its side latched (docs/errors.md)
      const side = (name.startsWith('server ') ? o.server : o.client).replace(/^(negotiate|connect):/, '');
      if (got !== 'ok') assert.equal(got, side, `promise "${name}" rejected with ${got} (${o.messages[name] ?? ''}), its side latched ${side}`);
      const want = expect.ops?.[name];
      if (want === undefined) continue;
      const wanted = either(want).map((w) => (w === '=server' ? o.server : w === '=client' ? o.client : w));
      assert.ok(wanted.includes(got), `promise "${name}" settled with ${got} (${o.messages[name] ?? ''}), expected ${wanted.join(' or ')}`);
    }
    failed = false;
  } finally {
    // after a failure, the teardown's own complaints must not hide the first one
    if (failed) await c.teardown().catch(() => {});
    else await c.teardown();
  }
}

// ---- the cases -----------------------------------------------------------------------------

const TCP = 'ERR_IWARP_TCP';
const LOST = 'ERR_IWARP_CONNECTION_LOST';
const KA = 'ERR_SMBD_KEEPALIVE_TIMEOUT';
const TRUNC = 'ERR_IWARP_TRUNCATED_FPDU';
const TERM = 'ERR_IWARP_TERMINATED';
/** A reset: ECONNRESET, or, on the side that had just been sent the head of an FPDU, the end of
 * the stream inside that FPDU (Linux reads the bytes that came before a RST, then EOF). */
const RST = [TCP, LOST, TRUNC];
const OK: Expect = { client: 'clean', server: 'clean', intact: true };

const CASES: Array<[Kind, Phase, Expect]> = [
  // a black hole both ways: timers find it (MPA, negotiation, keepalive, the disconnect wait)
  ['drop', 'mpa', { client: 'connect:ERR_MPA_TIMEOUT', server: 'none' }],
  ['drop', 'negotiate', { client: 'connect:ERR_SMBD_NEGOTIATE_TIMEOUT', server: KA }],
  ['drop', 'message', { client: KA, server: KA, ops: { 'send 1 MiB': ['ok', KA] } }],
  ['drop', 'rdmaWrite', { client: KA, server: KA }],
  ['drop', 'rdmaRead', { client: KA, server: KA, ops: { 'server rdmaRead 8 MiB': '=server' } }],
  ['drop', 'idle', { client: KA, server: KA }],
  ['drop', 'close', { client: 'ERR_IWARP_DISCONNECT_TIMEOUT', server: KA }],
  // latency and re-chunking: nothing breaks, every byte arrives
  ['delay', 'mpa', OK], ['delay', 'negotiate', OK], ['delay', 'message', OK], ['delay', 'rdmaWrite', OK],
  ['delay', 'rdmaRead', OK], ['delay', 'idle', OK], ['delay', 'close', OK],
  // the client's FIN (and everything after close()) held longer than the keepalive interval, less
  // than the provider's disconnect wait (300 < 400 < 500 ms)
  ['delay', 'close', { ...OK, fault: { kind: 'delay', ms: 400 } }],
  ['split', 'mpa', OK], ['split', 'negotiate', OK], ['split', 'message', OK], ['split', 'rdmaWrite', OK],
  ['split', 'rdmaRead', OK], ['split', 'idle', OK], ['split', 'close', OK],
  // a FIN part way: the receiver of the cut stream ends (inside an FPDU: a Terminate), the other hears of it
  ['truncate', 'mpa', { client: 'connect:ERR_MPA_CONNECTION_LOST', server: 'none' }],
  ['truncate', 'negotiate', { client: `connect:${TRUNC}`, server: TERM }],
  ['truncate', 'message', { client: TERM, server: TRUNC }],
  ['truncate', 'rdmaWrite', { client: TRUNC, server: TERM }],
  ['truncate', 'rdmaRead', { client: TERM, server: TRUNC, ops: { 'server rdmaRead 8 MiB': '=server' } }],
  ['truncate', 'idle', { client: 'clean', server: 'clean' }], // a FIN between messages is a close
  // RST both ways
  ['reset', 'mpa', { client: 'connect:ERR_MPA_CONNECTION_LOST', server: 'none' }],
  ['reset', 'negotiate', { client: RST.map((c) => `connect:${c}`), server: RST }],
  ['reset', 'message', { client: RST, server: RST }],
  ['reset', 'rdmaWrite', { client: RST, server: RST }],
  ['reset', 'rdmaRead', { client: RST, server: RST, ops: { 'server rdmaRead 8 MiB': '=server' } }],
  ['reset', 'idle', { client: [TCP, LOST], server: [TCP, LOST] }],
  // one direction closed and the other end never told (oneWay): the cut end sees a FIN, the other
  // silence; and a graceful close whose FIN (and everything after) is lost (swallowFin)
  ['halfOpen', 'mpa', { client: 'connect:ERR_MPA_TIMEOUT', server: 'none' }],
  ['halfOpen', 'negotiate', { client: `connect:${TRUNC}`, server: KA }],
  ['halfOpen', 'message', { client: KA, server: TRUNC }],
  ['halfOpen', 'rdmaWrite', { client: TRUNC, server: KA }],
  ['halfOpen', 'rdmaRead', { client: KA, server: TRUNC, ops: { 'server rdmaRead 8 MiB': '=server' } }],
  ['halfOpen', 'idle', { client: KA, server: 'clean' }],
  ['halfOpen', 'close', { client: 'ERR_IWARP_DISCONNECT_TIMEOUT', server: KA }],
];

describe('fault injection through a TCP proxy (software iWARP provider)', () => {
  for (const [kind, phase, expect] of CASES) {
    const at = POINTS[phase];
    const where = 'afterMs' in at ? `${at.afterMs} ms in` : 'manual' in at ? 'as close() starts' : `${at.afterBytes} bytes into ${at.dir}`;
    const what = expect.fault?.kind === 'delay' ? `delay of ${expect.fault.ms} ms` : kind;
    it(`${what} during ${phase} (${where})`, expect.todo ? { todo: expect.todo } : {}, async (t) => {
      await runCase(kind, phase, expect, t);
    });
  }
});

// ---- the proxy itself, on plain TCP ------------------------------------------------------

/** A TCP server behind a proxy with `plan`; `peer()` is the server's socket of the one connection. */
async function tcpBehindProxy(plan: FaultPlan): Promise<{ client: Socket; peer: Socket; close(): Promise<void> }> {
  const server = tcpServer({ allowHalfOpen: true });
  server.listen(0, HOST);
  await once(server, 'listening');
  const proxy = await FaultProxy.start({ port: (server.address() as { port: number }).port });
  proxy.plan(plan);
  const peerP = once(server, 'connection') as Promise<[Socket]>;
  const client = tcpConnect({ host: HOST, port: proxy.port, allowHalfOpen: true });
  await once(client, 'connect');
  const [peer] = await peerP;
  for (const s of [client, peer]) s.on('error', () => {});
  return {
    client, peer,
    async close() {
      client.destroy();
      peer.destroy();
      await proxy.close();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Runs `fn` on a proxied TCP pair, then tears it down whatever happened. */
async function withTcp(plan: FaultPlan, fn: (t: { client: Socket; peer: Socket }) => Promise<void>): Promise<void> {
  const t = await tcpBehindProxy(plan);
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

/** Everything `s` receives until `ms` pass or it ends; the number of reads; how it ended. */
async function collect(s: Socket, ms: number): Promise<{ bytes: Buffer; reads: number; ended: string }> {
  const parts: Buffer[] = [];
  let ended = 'open';
  const onData = (b: Buffer) => parts.push(b);
  s.on('data', onData);
  const done = new Promise<void>((resolve) => {
    s.once('end', () => { ended = 'FIN'; resolve(); });
    s.once('error', (e: NodeJS.ErrnoException) => { ended = e.code ?? 'error'; resolve(); });
    s.once('close', () => { if (ended === 'open') ended = 'closed'; resolve(); });
  });
  await within(done, ms);
  s.off('data', onData);
  return { bytes: Buffer.concat(parts), reads: parts.length, ended };
}

describe('the fault proxy itself (plain TCP)', () => {
  it('split: every byte arrives, in order, in many small reads', async () => {
    await withTcp({ c2s: { fault: { kind: 'split', size: [1, 7], seed: 3 }, afterBytes: 100 } }, async (t) => {
      const data = Buffer.from(pattern(20_000, 1));
      t.client.end(data);
      const got = await collect(t.peer, 5000);
      assert.equal(got.ended, 'FIN');
      assert.equal(sha(got.bytes), sha(data));
      assert.ok(got.reads > 1000, `${got.reads} reads`);
    });
  });

  it('delay: each chunk is held, then passed on intact, the FIN after it', async () => {
    await withTcp({ s2c: { fault: { kind: 'delay', ms: 150 } } }, async (t) => {
      const t0 = performance.now();
      t.peer.end(Buffer.from('late'));
      const got = await collect(t.client, 2000);
      assert.ok(performance.now() - t0 >= 140, 'held');
      assert.deepEqual([got.bytes.toString(), got.ended], ['late', 'FIN']);
    });
  });

  it('truncate: exactly N bytes, then a FIN; the answer still comes back', async () => {
    await withTcp({ c2s: { fault: { kind: 'truncate' }, afterBytes: 1000 } }, async (t) => {
      t.client.write(Buffer.alloc(5000, 1));
      const got = await collect(t.peer, 2000);
      assert.deepEqual([got.bytes.length, got.ended], [1000, 'FIN']);
      t.peer.end('bye');
      const back = await collect(t.client, 2000);
      assert.deepEqual([back.bytes.toString(), back.ended], ['bye', 'FIN']);
    });
  });

  it('reset: both ends are reset', async () => {
    // (with no bytes in flight: bytes right before a RST read as a FIN on Linux)
    await withTcp({ c2s: { fault: { kind: 'reset' }, afterMs: 50 } }, async (t) => {
      const [c, p] = await Promise.all([collect(t.client, 2000), collect(t.peer, 2000)]);
      assert.deepEqual([c.ended, p.ended], ['ECONNRESET', 'ECONNRESET']);
    });
  });

  it('drop: a black hole both ways; FINs and resets vanish too', async () => {
    await withTcp(blackHole({ dir: 'c2s', afterBytes: 10 }), async (t) => {
      t.client.write(Buffer.alloc(100, 1));
      t.client.end();
      const p = await collect(t.peer, 300);
      assert.deepEqual([p.bytes.length, p.ended], [10, 'open']);
      t.peer.resetAndDestroy();
      const c = await collect(t.client, 300);
      assert.deepEqual([c.bytes.length, c.ended], [0, 'open']);
    });
  });

  it("halfOpen: 'swallowFin' hides the FIN; 'oneWay' cuts one direction and hides the rest from its source", async () => {
    await withTcp({ c2s: { fault: { kind: 'halfOpen', mode: 'swallowFin' } } }, async (a) => {
      a.client.end('data passes');
      const p = await collect(a.peer, 300);
      assert.deepEqual([p.bytes.toString(), p.ended], ['data passes', 'open']);
    });
    await withTcp({ c2s: { fault: { kind: 'halfOpen', mode: 'oneWay' }, afterBytes: 4 } }, async (b) => {
      b.client.write('cut here');
      const q = await collect(b.peer, 2000);
      assert.deepEqual([q.bytes.toString(), q.ended], ['cut ', 'FIN']);
      b.peer.end('unheard');
      const c = await collect(b.client, 300);
      assert.deepEqual([c.bytes.length, c.ended], [0, 'open']);
    });
  });
});
