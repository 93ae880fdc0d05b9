// Soak (issue #18, "What else to build" 3, host part): SMB Direct on the software iWARP provider
// over loopback, connection after connection, then many at once, with every byte checked end to
// end and the process's resources measured before, during and after.
//
//   node --import tsx bench/soak.ts [--cycles 1000] [--concurrent 100] [--rounds 1] [--json file]
//
// Phase 1 (sequential): `cycles` times: connect -> 4 messages each way (64 B .. 300 KB, each with
// a sequence number and the sha256 of its payload) -> a 1 MiB rdmaWrite by the server into a buffer
// the client registered (SMB2 READ shape: the response carries the sha256 of what was written and
// invalidates the token; the client checks it and sends back its own sha256, which the server
// checks) -> a 1 MiB rdmaRead by the server from a client buffer (SMB2 WRITE shape: the request
// carries the sha256, the server checks what it read and answers with its own) -> graceful close.
// Phase 2 (concurrent): `concurrent` connections are made at once; when all are up they do the
// same at once, wait until all have done it, and close together. (All connected first: under load
// a Node server accepts one TCP connection per turn of its event loop, so connections that start
// transferring at once starve the accepts of the later ones, which then sit in the kernel's accept
// queue for seconds: past the client's 10 s MPA Reply timeout when the CPU is shared.)
//
// Measured before (after the server listens), during (peak, sampled every 20 ms) and after each
// phase (once everything is closed, after a full GC): open fds (/proc/self/fd), RSS, heap used,
// active handles (process.getActiveResourcesInfo(), by type), registered memory (the provider's
// regions still open and their bytes, counted by wrapping the provider; registeredMemory() of the
// SMB Direct layer; each connection's registrationsInUse / cachedRegistrations at its busiest) and
// server.connections. Messages are counted per connection and direction: one lost (sent, never
// received) or duplicated (a sequence number seen twice) fails the run, as does a hash mismatch,
// a cycle that throws, or fds, handles or registered memory not back at their baseline.
// Exit status 0: all held; 1: something did not (listed after the table).
//
// runSoak() is also what test/soak.test.ts runs (smaller, and asserting the same invariants).
import { createHash, randomFillSync } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pathToFileURL } from 'node:url';

import { decodeBufferDescriptors, encodeBufferDescriptors } from '../framing/index.js';
import {
  type SmbDirectConnection, type SmbDirectServer, connect, createServer, registeredMemory,
} from '../src/index.js';
import { type RdmaEndpoint, type RdmaProvider, createIwarpProvider } from '../src/providers/index.js';

const HOST = '127.0.0.1';
const MiB = 1 << 20;
const MESSAGE_SIZES = [64, 4096, 65_536, 300_000];
const RDMA_SIZE = MiB;

// ---- the wire protocol of the soak: [type u8, 0, 0, 0][seq u32][connection id u32][body] ----
const HDR = 12;
const T_MSG = 1;          // body: sha256(payload) + payload; the server answers each with one of its own
const T_READ = 2;         // client -> server: descriptors of a 'write' registration (the server rdmaWrites)
const T_READ_RESP = 3;    // server -> client: sha256 of what was written (Send-with-Invalidate)
const T_READ_CHECK = 4;   // client -> server: sha256 of what arrived
const T_WRITE = 5;        // client -> server: sha256 + descriptors of a 'read' registration (the server rdmaReads)
const T_WRITE_RESP = 6;   // server -> client: sha256 of what was read

function frame(type: number, seq: number, id: number, ...body: Uint8Array[]): Uint8Array {
  const len = body.reduce((n, b) => n + b.length, HDR);
  const out = Buffer.allocUnsafe(len);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(seq, 4);
  out.writeUInt32LE(id, 8);
  let at = HDR;
  for (const b of body) { out.set(b, at); at += b.length; }
  return out;
}

function parse(m: Uint8Array): { type: number; seq: number; id: number; body: Buffer } {
  const b = Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  return { type: b.readUInt32LE(0) & 0xff, seq: b.readUInt32LE(4), id: b.readUInt32LE(8), body: b.subarray(HDR) };
}

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
const random = (n: number): Uint8Array => randomFillSync(new Uint8Array(n));

// ---- counting -----------------------------------------------------------------------------

/** One direction of one connection: what was sent, what arrived, in which order. */
class Stream {
  sent = 0;
  received = 0;
  next = 0;
  duplicated = 0;
  /** Sequence numbers skipped over (arrived after a later one: lost or reordered). */
  skipped = 0;
  take(seq: number): void {
    this.received++;
    if (seq === this.next) this.next++;
    else if (seq < this.next) this.duplicated++;
    else { this.skipped += seq - this.next; this.next = seq + 1; }
  }
}

export interface Totals {
  cycles: number;
  failedCycles: number;
  messages: number;
  /** Messages and RDMA transfers whose sha256 matched on arrival (and bytes they carried). */
  checked: number;
  bytesChecked: number;
  mismatches: number;
  lost: number;
  duplicated: number;
  errors: string[];
}

const newTotals = (): Totals => ({ cycles: 0, failedCycles: 0, messages: 0, checked: 0, bytesChecked: 0, mismatches: 0, lost: 0, duplicated: 0, errors: [] });

/** Regions the provider handed out and that are not closed yet (both ends of every connection). */
class RegionCount {
  live = 0;
  bytes = 0;
  peakLive = 0;
  peakBytes = 0;
  add(n: number): void {
    this.live++;
    this.bytes += n;
    this.peakLive = Math.max(this.peakLive, this.live);
    this.peakBytes = Math.max(this.peakBytes, this.bytes);
  }
  sub(n: number): void {
    this.live--;
    this.bytes -= n;
  }
}

/** `base` with every endpoint's registerMemory() counted into `count`. */
function countingProvider(base: RdmaProvider, count: RegionCount): RdmaProvider {
  const watch = (ep: RdmaEndpoint): RdmaEndpoint => {
    const register = ep.registerMemory.bind(ep);
    ep.registerMemory = (sizeOrBuffer, access) => {
      const mr = register(sizeOrBuffer, access);
      const n = mr.buffer.length;
      count.add(n);
      const close = mr.close.bind(mr);
      let open = true;
      (mr as { close(): void }).close = () => {
        if (open) { open = false; count.sub(n); }
        close();
      };
      return mr;
    };
    return ep;
  };
  return {
    ...base,
    connect: async (o) => watch(await base.connect(o)),
    async listen(o) {
      const l = await base.listen(o);
      l.on('connection', watch); // before the server's listener: the connection registers in its constructor
      return l;
    },
  };
}

// ---- measuring ----------------------------------------------------------------------------

let gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc;
function fullGc(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

const fds = (): number => readdirSync('/proc/self/fd').length;

/** Active handles and requests by type; immediates are left out (they run on the next turn of
 * the loop whatever happens: not something that can leak). */
function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of process.getActiveResourcesInfo()) if (t !== 'Immediate') out[t] = (out[t] ?? 0) + 1;
  return out;
}

const sameHandles = (a: Record<string, number>, b: Record<string, number>): boolean =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].every((k) => (a[k] ?? 0) === (b[k] ?? 0));
const showHandles = (h: Record<string, number>): string => Object.entries(h).sort().map(([k, v]) => `${k} ${v}`).join(', ') || 'none';

export interface Snapshot {
  fds: number;
  rss: number;
  heapUsed: number;
  /** Memory of ArrayBuffers (the registered slabs and transfer buffers live there). */
  arrayBuffers: number;
  handles: Record<string, number>;
  /** Provider regions open, and their bytes. */
  regions: number;
  regionBytes: number;
  /** registeredMemory().used of the SMB Direct layer. */
  accounted: number;
  serverConnections: number;
}

export interface PhaseResult {
  phase: string;
  cycles: number;
  ms: number;
  peakFds: number;
  peakRss: number;
  peakRegionBytes: number;
  /** The busiest connection's registrationsInUse / cachedRegistrations (client + server side). */
  peakRegistrationsInUse: number;
  peakCachedRegistrations: number;
  after: Snapshot;
  totals: Totals;
}

export interface SoakResult {
  baseline: Snapshot;
  phases: PhaseResult[];
  /** Every invariant that did not hold (empty: the run passed). */
  failures: string[];
}

// ---- the soak -----------------------------------------------------------------------------

export interface SoakOptions {
  cycles: number;
  concurrent: number;
  /** How many times phase 2 runs (default 1): RSS that levels off from one round to the next is
   * the allocator keeping freed memory, RSS that keeps climbing a leak. */
  rounds?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? (() => {});
  const regions = new RegionCount();
  const provider = countingProvider(createIwarpProvider(), regions);
  let totals = newTotals();
  // what the server received and sent, by the client's connection id (a stream per direction)
  const c2s = new Map<number, Stream>();
  const s2c = new Map<number, Stream>();
  const stream = (m: Map<number, Stream>, id: number): Stream => {
    let s = m.get(id);
    if (!s) m.set(id, (s = new Stream()));
    return s;
  };
  let peakInUse = 0, peakCached = 0;
  const notePeaks = (conn: SmbDirectConnection): void => {
    const s = conn.stats();
    peakInUse = Math.max(peakInUse, s.registrationsInUse);
    peakCached = Math.max(peakCached, s.cachedRegistrations);
  };

  // ---- the server: answers each message, places and checks the RDMA transfers ----
  // (room for every concurrent connection at once, negotiating ones included)
  const server: SmbDirectServer = createServer({ provider, maxConnections: opts.concurrent + 16, maxNegotiating: opts.concurrent + 16 });
  server.on('connectionError', (err: Error) => totals.errors.push(`server connectionError: ${(err as { code?: string }).code} ${err.message}`));
  server.on('connection', (conn: SmbDirectConnection) => {
    let written: Buffer | undefined; // sha256 of the last rdmaWrite, until the client's check
    const send = (id: number, type: number, body: Uint8Array[], invalidate?: number): Promise<void> => {
      const out = stream(s2c, id);
      return conn.send(frame(type, out.sent++, id, ...body), invalidate === undefined ? {} : { invalidate });
    };
    const fail = (what: string) => (err: unknown): void => { totals.errors.push(`server ${what}: ${(err as Error).message}`); };
    conn.on('error', () => {}); // reported by the client side and the checks
    conn.on('message', (m: Uint8Array) => {
      const { type, seq, id, body } = parse(m);
      stream(c2s, id).take(seq);
      totals.messages++;
      switch (type) {
        case T_MSG: {
          const ok = sha(body.subarray(32)).equals(body.subarray(0, 32));
          if (ok) { totals.checked++; totals.bytesChecked += body.length - 32; } else totals.mismatches++;
          const reply = random(body.length - 32);
          send(id, T_MSG, [sha(reply), reply]).catch(fail('send'));
          break;
        }
        case T_READ: {
          const data = random(RDMA_SIZE);
          const hash = sha(data);
          const descriptors = decodeBufferDescriptors(body);
          conn.rdmaWrite(descriptors, data)
            .then(() => { written = hash; notePeaks(conn); return send(id, T_READ_RESP, [hash], descriptors[0]!.token); })
            .catch(fail('rdmaWrite'));
          break;
        }
        case T_READ_CHECK: {
          const hash = written;
          written = undefined;
          if (hash?.equals(body)) { totals.checked++; totals.bytesChecked += RDMA_SIZE; } else totals.mismatches++;
          break;
        }
        case T_WRITE: {
          const into = new Uint8Array(RDMA_SIZE);
          conn.rdmaRead(decodeBufferDescriptors(body.subarray(32)), into).then(() => {
            const hash = sha(into);
            if (hash.equals(body.subarray(0, 32))) { totals.checked++; totals.bytesChecked += RDMA_SIZE; } else totals.mismatches++;
            notePeaks(conn);
            return send(id, T_WRITE_RESP, [hash]);
          }).catch(fail('rdmaRead'));
          break;
        }
        default:
          totals.errors.push(`server: unknown message type ${type}`);
      }
    });
  });
  const { port } = await server.listen({ host: HOST, port: 0 });

  // ---- one client cycle ----
  let nextId = 1;
  /** One connection's life; with `together`, it waits for the others once connected and once done. */
  async function cycle(together?: { connected: Barrier; done: Barrier }): Promise<void> {
    const id = nextId++;
    const out = stream(c2s, id);    // the client counts what it sends, the server what arrives
    const inbound = stream(s2c, id); // and the other way round
    const received: Uint8Array[] = [];
    let wake: (() => void) | undefined;
    let conn: SmbDirectConnection | undefined;
    let stage = 0;
    try {
      conn = await connect({ host: HOST, port, provider });
      const c = conn;
      if (together) await together.connected.arrive();
      stage = 1;
      c.on('message', (m: Uint8Array) => { received.push(m); wake?.(); });
      c.once('close', () => wake?.());
      const next = async (): Promise<{ type: number; seq: number; body: Buffer }> => {
        while (received.length === 0) {
          if (c.state === 'closed') throw new Error(`the connection closed (${String(c.error)})`);
          await new Promise<void>((r) => { wake = r; });
        }
        const m = parse(received.shift()!);
        inbound.take(m.seq);
        totals.messages++;
        return m;
      };
      const send = (type: number, ...body: Uint8Array[]) => c.send(frame(type, out.sent++, id, ...body));

      // messages both ways
      for (const size of MESSAGE_SIZES) {
        const p = random(size);
        await send(T_MSG, sha(p), p);
      }
      for (let i = 0; i < MESSAGE_SIZES.length; i++) {
        const m = await next();
        if (m.type !== T_MSG) throw new Error(`expected a message, got type ${m.type}`);
        const ok = sha(m.body.subarray(32)).equals(m.body.subarray(0, 32));
        if (ok) { totals.checked++; totals.bytesChecked += m.body.length - 32; } else totals.mismatches++;
      }
      // SMB2 READ shape: the server writes into our buffer, the response invalidates the token
      const target = new Uint8Array(RDMA_SIZE);
      const w = c.registerBuffer(target, 'write');
      await send(T_READ, encodeBufferDescriptors(w.descriptors));
      const r = await next();
      if (r.type !== T_READ_RESP) throw new Error(`expected a read response, got type ${r.type}`);
      notePeaks(c);
      w.release();
      const got = sha(target);
      if (got.equals(r.body)) { totals.checked++; totals.bytesChecked += RDMA_SIZE; } else totals.mismatches++;
      await send(T_READ_CHECK, got);
      // SMB2 WRITE shape: the server reads our buffer
      const source = random(RDMA_SIZE);
      const hash = sha(source);
      const rd = c.registerBuffer(source, 'read');
      await send(T_WRITE, hash, encodeBufferDescriptors(rd.descriptors));
      const wr = await next();
      if (wr.type !== T_WRITE_RESP) throw new Error(`expected a write response, got type ${wr.type}`);
      notePeaks(c);
      rd.release();
      if (wr.body.equals(hash)) { totals.checked++; totals.bytesChecked += RDMA_SIZE; } else totals.mismatches++;
      if (together) await together.done.arrive();
      stage = 2;
      await c.close();
      if (c.error) throw c.error;
      totals.cycles++;
    } catch (err) {
      totals.failedCycles++;
      totals.errors.push(`cycle ${id}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
      if (together && stage < 1) together.connected.leave();
      if (together && stage < 2) together.done.leave();
      conn?.destroy();
    }
  }

  // ---- measuring around the phases ----
  const snapshot = async (): Promise<Snapshot> => {
    // V8 sweeps freed ArrayBuffers after a GC, off the main thread: collect until their memory
    // stops falling (the registered slabs are ArrayBuffers: the first GC alone still counts them)
    let mem = process.memoryUsage();
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, i === 0 ? 0 : 100));
      fullGc();
      const was = mem.arrayBuffers;
      mem = process.memoryUsage();
      if (i > 0 && mem.arrayBuffers >= was) break;
    }
    return {
      fds: fds(), rss: mem.rss, heapUsed: mem.heapUsed, arrayBuffers: mem.arrayBuffers, handles: handles(), regions: regions.live, regionBytes: regions.bytes,
      accounted: registeredMemory().used, serverConnections: server.connections.size,
    };
  };
  const baseline = await snapshot();
  const failures: string[] = [];
  const phases: PhaseResult[] = [];

  async function phase(name: string, cycles: number, run: () => Promise<void>): Promise<void> {
    totals = newTotals();
    c2s.clear();
    s2c.clear();
    peakInUse = peakCached = 0;
    regions.peakBytes = regions.bytes;
    let peakFds = fds(), peakRss = process.memoryUsage.rss();
    const sampler = setInterval(() => {
      peakFds = Math.max(peakFds, fds());
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 20);
    sampler.unref();
    const t0 = performance.now();
    await run();
    const ms = performance.now() - t0;
    clearInterval(sampler);
    // everything closed: the server's sides too; then the sockets' fds (closed a tick later)
    const settleEnd = Date.now() + 5000;
    while (Date.now() < settleEnd && (server.connections.size > 0 || fds() > baseline.fds || !sameHandles(handles(), baseline.handles) || regions.live > baseline.regions)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = await snapshot();
    // lost: sent by one end, never received by the other (both directions of every connection)
    for (const [dir, m] of [['client -> server', c2s], ['server -> client', s2c]] as const) {
      for (const [id, s] of m) {
        if (s.received < s.sent) { totals.lost += s.sent - s.received; totals.errors.push(`connection ${id} ${dir}: ${s.sent} sent, ${s.received} received`); }
        totals.duplicated += s.duplicated;
        if (s.skipped) totals.errors.push(`connection ${id} ${dir}: ${s.skipped} sequence numbers skipped`);
      }
    }
    phases.push({ phase: name, cycles, ms, peakFds, peakRss, peakRegionBytes: regions.peakBytes, peakRegistrationsInUse: peakInUse, peakCachedRegistrations: peakCached, after, totals });
    const f = (s: string) => failures.push(`${name}: ${s}`);
    if (totals.failedCycles) f(`${totals.failedCycles} of ${cycles} cycles failed: ${totals.errors.slice(0, 5).join('; ')}`);
    else if (totals.errors.length) f(`errors: ${totals.errors.slice(0, 5).join('; ')}`);
    if (totals.mismatches) f(`${totals.mismatches} sha256 mismatches`);
    if (totals.lost) f(`${totals.lost} messages lost`);
    if (totals.duplicated) f(`${totals.duplicated} messages duplicated`);
    if (totals.cycles !== cycles) f(`${totals.cycles} of ${cycles} cycles completed`);
    if (after.fds > baseline.fds) f(`open fds ${after.fds}, baseline ${baseline.fds}`);
    if (!sameHandles(after.handles, baseline.handles)) f(`active handles ${showHandles(after.handles)}, baseline ${showHandles(baseline.handles)}`);
    if (after.regions > baseline.regions || after.regionBytes > baseline.regionBytes) f(`${after.regions} provider regions (${after.regionBytes} bytes) still registered, baseline ${baseline.regions}`);
    if (after.accounted > baseline.accounted) f(`registeredMemory().used ${after.accounted}, baseline ${baseline.accounted}`);
    if (after.serverConnections) f(`server.connections holds ${after.serverConnections}`);
    log(`${name}: ${totals.cycles}/${cycles} cycles in ${(ms / 1000).toFixed(1)} s`);
  }

  try {
    await phase('sequential', opts.cycles, async () => {
      for (let i = 0; i < opts.cycles; i++) {
        await cycle();
        if ((i + 1) % 100 === 0) log(`  ${i + 1} cycles`);
      }
    });
    const rounds = opts.rounds ?? 1;
    for (let round = 1; round <= rounds; round++) {
      await phase(rounds > 1 ? `concurrent #${round}` : 'concurrent', opts.concurrent, async () => {
        const together = { connected: new Barrier(opts.concurrent), done: new Barrier(opts.concurrent) };
        await Promise.all(Array.from({ length: opts.concurrent }, () => cycle(together)));
      });
    }
  } finally {
    await server.close();
  }
  return { baseline, phases, failures };
}

/** Resolves everyone's arrive() once `n` have arrived or left. */
class Barrier {
  private count = 0;
  private release!: () => void;
  private readonly all = new Promise<void>((r) => { this.release = r; });
  constructor(private readonly n: number) {}
  arrive(): Promise<void> {
    this.tick();
    return this.all;
  }
  leave(): void {
    this.tick();
  }
  private tick(): void {
    if (++this.count >= this.n) this.release();
  }
}

// ---- the table ----------------------------------------------------------------------------

const mb = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

export function formatSoak(r: SoakResult): string {
  const b = r.baseline;
  const rows = [
    '| phase | cycles | time | peak fds | fds after | peak RSS | RSS after | heap after (ArrayBuffers) | messages / bytes checked | lost / duplicated |',
    '|---|---|---|---|---|---|---|---|---|---|',
    `| baseline | | | | ${b.fds} | | ${mb(b.rss)} | ${mb(b.heapUsed)} (${mb(b.arrayBuffers)}) | | |`,
    ...r.phases.map((p) => `| ${p.phase} | ${p.totals.cycles}/${p.cycles} | ${(p.ms / 1000).toFixed(1)} s | ${p.peakFds} | ${p.after.fds} | ${mb(p.peakRss)} | ${mb(p.after.rss)} | ${mb(p.after.heapUsed)} (${mb(p.after.arrayBuffers)}) | ` +
      `${p.totals.messages} msgs, ${p.totals.checked} sha256 / ${mb(p.totals.bytesChecked)} | ${p.totals.lost} / ${p.totals.duplicated} |`),
  ];
  const extra = [
    '',
    '| phase | handles after (baseline: ' + showHandles(b.handles) + ') | provider regions after (peak bytes) | registeredMemory() after | registrations in use / cached (peak per connection) | server.connections after |',
    '|---|---|---|---|---|---|',
    ...r.phases.map((p) => `| ${p.phase} | ${showHandles(p.after.handles)} | ${p.after.regions} (${mb(p.peakRegionBytes)}) | ${p.after.accounted} B | ${p.peakRegistrationsInUse} / ${p.peakCachedRegistrations} | ${p.after.serverConnections} |`),
  ];
  return [...rows, ...extra].join('\n');
}

// ---- the command --------------------------------------------------------------------------

async function main(): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const cycles = Number(arg('cycles') ?? 1000);
  const concurrent = Number(arg('concurrent') ?? 100);
  const rounds = Number(arg('rounds') ?? 1);
  if (![cycles, concurrent, rounds].every((n) => Number.isInteger(n) && n >= 0)) {
    console.error('usage: node --import tsx bench/soak.ts [--cycles N] [--concurrent M] [--rounds R] [--json file]');
    process.exit(2);
  }
  const t0 = performance.now();
  const r = await runSoak({ cycles, concurrent, rounds, log: (l) => console.error(l) });
  console.log(`soak: ${cycles} sequential cycles, ${concurrent} concurrent connections${rounds > 1 ? ` x ${rounds} rounds` : ''}, iwarp-tcp on ${HOST}, node ${process.version}; ` +
    `${((performance.now() - t0) / 1000).toFixed(1)} s in all\n`);
  console.log(formatSoak(r));
  const json = arg('json');
  if (json) writeFileSync(json, JSON.stringify(r, null, 2));
  if (r.failures.length) {
    console.log(`\nFAILED:\n${r.failures.map((f) => `- ${f}`).join('\n')}`);
    process.exitCode = 1;
  } else {
    console.log('\nall held: fds, handles, registered memory and server.connections back at baseline; every hash matched; nothing lost or duplicated');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
