// smbdirect bench: a client load against `smbdirect serve` (or the in-process server of
// `smbdirect demo`): messages (send), SMB2 READ/WRITE shapes by RDMA (read, write), or round trips
// (latency), on one or more connections, for a duration; live progress, then a summary.
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { Histogram, type HistogramSummary } from '../smbdirect/histogram.js';
import { connect } from '../smbdirect/server.js';
import { EXIT, UsageError, abortOnSignals, describeError, formatBytes, formatMicros, parse, parseDuration, parseInteger, parsePort, parseSize, parseCredits } from './args.js';
import { OP, decodeCount, encodePlacement } from './protocol.js';
import { PROVIDER_HELP, providerOption } from './provider.js';
import type { ProviderChoice } from '../smbdirect/server.js';

export const BENCH_HELP = `Usage: smbdirect bench --host <address> [--port <n>] [--mode send|read|write|latency]
                       [--size <bytes>] [--duration <time>] [--connections <n>] [--depth <n>]
                       [--provider auto|verbs|iwarp-tcp] [--credits <n>] [--json]

Measures an SMB Direct server started with \`smbdirect serve\`:
  send     messages of --size bytes, as many as credits allow; the server counts them
  read     SMB2 READ shape: the client registers a buffer per I/O, the server RDMA-writes --size
           bytes into it and answers; --depth I/Os in flight per connection
  write    SMB2 WRITE shape: the server RDMA-reads --size bytes from the client's buffer
  latency  one --size message at a time, echoed back; the round trip is timed

Options:
  --host <address>     server address (required)
  --port <n>           server port (default 445 on verbs, 5445 on iwarp-tcp)
  --mode <mode>        send (default), read, write, latency
  --size <bytes>       message or I/O size, e.g. 64, 4k, 1m (default 4k; read/write 1m)
  --duration <time>    how long to run, e.g. 10s, 500ms (default 5s)
  --connections <n>    connections, each with its own load (default 1)
  --depth <n>          read/write I/Os in flight per connection (default 4)
  --provider <name>    ${PROVIDER_HELP}
  --credits <n>        receive credits we offer (default 255)
  --json               print the summary as JSON on stdout
  -h, --help           this help

Progress: a live line on a terminal, a line per second otherwise (on stderr).
Exit codes: 0 done, 1 could not connect or a connection failed, 2 usage error,
130 interrupted (Ctrl-C): the summary of what was measured so far is printed first.`;

export type BenchMode = 'send' | 'read' | 'write' | 'latency';
const MODES: readonly BenchMode[] = ['send', 'read', 'write', 'latency'];

export interface BenchOptions {
  host: string;
  port?: number;
  mode: BenchMode;
  size: number;
  durationMs: number;
  connections: number;
  depth: number;
  provider?: ProviderChoice;
  credits?: number;
}

export interface BenchProgress { elapsedMs: number; bytes: number; operations: number; sendCredits: number }

export interface BenchResult {
  mode: BenchMode;
  size: number;
  connections: number;
  depth: number;
  provider: string;
  seconds: number;
  bytes: number;
  operations: number;
  bytesPerSecond: number;
  operationsPerSecond: number;
  /** Per operation (µs): send handed to the provider, a READ/WRITE answered, a round trip. */
  latency: HistogramSummary;
  cpu: { userMs: number; systemMs: number; percentOfOneCore: number };
  negotiated?: SmbDirectConnection['negotiated'];
  interrupted: boolean;
  error?: string;
}

const now = () => performance.now();

/** One connection's side of the protocol: routes the server's answers to their waiters. */
class Client {
  readonly done = new Map<number, () => void>();
  echo?: () => void;
  count?: (m: Uint8Array) => void;
  constructor(readonly conn: SmbDirectConnection) {
    conn.on('message', (m: Uint8Array) => {
      if (m[0] === OP.ECHO) this.echo?.();
      else if (m[0] === OP.COUNT) this.count?.(m);
      else if ((m[0] === OP.READ_DONE || m[0] === OP.WRITE_DONE) && m.length >= 5) {
        const id = new DataView(m.buffer, m.byteOffset, m.length).getUint32(1, true);
        const w = this.done.get(id);
        this.done.delete(id);
        w?.();
      }
    });
  }
}

export async function runBench(o: BenchOptions, hooks: { onProgress?: (p: BenchProgress) => void; signal?: AbortSignal } = {}): Promise<BenchResult> {
  const conns: SmbDirectConnection[] = [];
  const closeAll = async () => { await Promise.allSettled(conns.map((c) => c.close())); };
  try {
    for (let i = 0; i < o.connections; i++) {
      conns.push(await connect({ host: o.host, port: o.port, provider: o.provider, credits: o.credits }));
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  const n = conns[0]!.negotiated!;
  const limit = o.mode === 'read' || o.mode === 'write' ? n.maxReadWriteSize : n.maxFragmentedSendSize;
  if (o.size > limit) {
    await closeAll();
    throw new UsageError(`--size ${formatBytes(o.size)} exceeds the negotiated ${o.mode === 'read' || o.mode === 'write' ? 'MaxReadWriteSize' : 'MaxFragmentedSize'} (${limit} bytes)`);
  }

  const hist = new Histogram();
  let bytes = 0, operations = 0, counted = 0, stopped = false, failure: Error | undefined;
  const stop = () => { stopped = true; };
  const onAbort = () => stop();
  hooks.signal?.addEventListener('abort', onAbort);
  for (const c of conns) {
    c.on('error', () => {});
    c.on('close', (err?: Error) => { if (!stopped || err) { failure ??= err ?? new Error('the server closed the connection'); stop(); } });
  }
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const timer = setTimeout(stop, o.durationMs);
  const progress = hooks.onProgress && setInterval(() => hooks.onProgress!({
    elapsedMs: now() - t0, bytes, operations, sendCredits: conns.reduce((s, c) => s + c.stats().sendCredits, 0),
  }), 500);

  const done = (t: number, size: number) => { hist.record((now() - t) * 1000); bytes += size; operations++; };
  const loops = conns.map((conn) => {
    const client = new Client(conn);
    switch (o.mode) {
      // the server's count is what arrived: those are the bytes of a send run
      case 'send': return sendLoop(client, o.size, () => stopped, done).then((b) => { counted += b; });
      case 'latency': return latencyLoop(client, o.size, () => stopped, done);
      default: return Promise.all(Array.from({ length: o.depth }, () => placementLoop(client, o.mode === 'read', o.size, () => stopped, done)));
    }
  });
  const settled = await Promise.allSettled(loops);
  for (const s of settled) if (s.status === 'rejected') failure ??= s.reason as Error;
  if (o.mode === 'send' && !failure) bytes = counted; // handed over is not arrived: count what the server got
  const elapsed = (now() - t0) / 1000;
  clearTimeout(timer);
  if (progress) clearInterval(progress);
  hooks.signal?.removeEventListener('abort', onAbort);
  const cpu = process.cpuUsage(cpu0);
  const provider = conns[0]!.providerName;
  stopped = true;
  await closeAll();
  return {
    mode: o.mode, size: o.size, connections: o.connections, depth: o.depth, provider, seconds: elapsed, bytes, operations,
    bytesPerSecond: bytes / elapsed, operationsPerSecond: operations / elapsed, latency: hist.summary(),
    cpu: { userMs: cpu.user / 1000, systemMs: cpu.system / 1000, percentOfOneCore: (cpu.user + cpu.system) / 1000 / (elapsed * 1000) * 100 },
    negotiated: n, interrupted: hooks.signal?.aborted ?? false, error: failure && describeError(failure),
  };
}

type Done = (t: number, size: number) => void;

/** Messages as fast as credits allow, a bounded number queued; then a count from the server, so
 * what is reported arrived: resolves with the bytes the server counted. */
async function sendLoop(client: Client, size: number, stopped: () => boolean, done: Done): Promise<number> {
  const conn = client.conn;
  const msg = new Uint8Array(size).fill(0x33);
  msg[0] = OP.SINK;
  const window = Math.max(1, Math.min(256, Math.floor((4 << 20) / size)));
  let inflight = 0;
  let wake: (() => void) | undefined;
  let error: Error | undefined;
  let sent = 0;
  while (!stopped() && !error) {
    if (inflight >= window) {
      await new Promise<void>((r) => { wake = r; });
      continue;
    }
    inflight++;
    const t = now();
    conn.send(msg).then(() => { sent++; done(t, size); }, (err: Error) => { error ??= err; }).finally(() => { inflight--; const w = wake; wake = undefined; w?.(); });
    if (sent % 64 === 0) await Promise.resolve(); // let completions in
  }
  while (inflight > 0) await new Promise<void>((r) => { wake = r; });
  if (error) throw error;
  // the bytes that count are the ones the server has: ask it (messages arrive in order)
  const reply = new Promise<Uint8Array>((resolve) => { client.count = resolve; });
  const c0 = new Uint8Array(1);
  c0[0] = OP.COUNT;
  await conn.send(c0);
  return decodeCount(await withTimeout(reply, 10_000, 'the server did not answer the count request')).bytes;
}

async function latencyLoop(client: Client, size: number, stopped: () => boolean, done: Done): Promise<void> {
  const msg = new Uint8Array(size).fill(0x44);
  msg[0] = OP.ECHO;
  while (!stopped()) {
    const t = now();
    const back = new Promise<void>((r) => { client.echo = r; });
    await client.conn.send(msg);
    await withTimeout(back, 10_000, 'no echo within 10 s');
    done(t, size * 2);
  }
}

let nextId = 1;
async function placementLoop(client: Client, read: boolean, size: number, stopped: () => boolean, done: Done): Promise<void> {
  const buf = new Uint8Array(size);
  if (!read) buf.fill(0x77);
  while (!stopped()) {
    const t = now();
    // per I/O, as an SMB2 client does: a fresh registration, released once the answer is in
    const reg = client.conn.registerBuffer(buf, read ? 'write' : 'read');
    try {
      const id = nextId++ >>> 0;
      const answered = new Promise<void>((r) => client.done.set(id, r));
      await client.conn.send(encodePlacement(read ? OP.READ : OP.WRITE, id, size, reg.descriptors));
      await withTimeout(answered, 30_000, `no answer to ${read ? 'READ' : 'WRITE'} ${id} within 30 s`);
    } finally {
      reg.release();
    }
    done(t, size);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(what)), ms); })]).finally(() => clearTimeout(t));
}

// ---- output ---------------------------------------------------------------------------------------

const rate = (bps: number) => (bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} GB/s` : bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} MB/s` : `${(bps / 1e3).toFixed(1)} kB/s`);

export function progressLine(p: BenchProgress): string {
  const s = p.elapsedMs / 1000;
  return `${s.toFixed(1)} s: ${rate(p.bytes / s)}, ${Math.round(p.operations / s)} ops/s, ${p.operations} ops, send credits ${p.sendCredits}`;
}

export function summaryTable(r: BenchResult): string {
  const n = r.negotiated;
  const lines = [
    `smbdirect bench: ${r.mode}, ${formatBytes(r.size)}, ${r.connections} connection(s)${r.mode === 'read' || r.mode === 'write' ? `, ${r.depth} in flight each` : ''}, ${r.provider}, ${r.seconds.toFixed(2)} s${r.interrupted ? ' (interrupted)' : ''}`,
    '',
    '| | |',
    '|---|---:|',
  ];
  if (n) lines.push(`| negotiated | MaxSendSize ${n.maxSendSize}, MaxReceiveSize ${n.maxReceiveSize}, MaxFragmentedSize ${n.maxFragmentedSendSize}, MaxReadWriteSize ${n.maxReadWriteSize} |`);
  lines.push(
    `| throughput | ${rate(r.bytesPerSecond)} |`,
    `| operations | ${r.operations} (${Math.round(r.operationsPerSecond)}/s) |`,
    `| latency p50 / p99 / p99.9 | ${formatMicros(r.latency.p50Us)} / ${formatMicros(r.latency.p99Us)} / ${formatMicros(r.latency.p999Us)} |`,
    `| CPU | ${(r.cpu.userMs / 1000).toFixed(2)} s user, ${(r.cpu.systemMs / 1000).toFixed(2)} s system (${r.cpu.percentOfOneCore.toFixed(0)} % of one core) |`,
  );
  if (r.error) lines.push(`| error | ${r.error} |`);
  return lines.join('\n');
}

export async function benchCommand(argv: string[]): Promise<number> {
  const o = parse(argv, {
    host: { type: 'string' }, port: { type: 'string' }, mode: { type: 'string' }, size: { type: 'string' }, duration: { type: 'string' },
    connections: { type: 'string' }, depth: { type: 'string' }, provider: { type: 'string' }, credits: { type: 'string' }, json: { type: 'boolean' },
  });
  if (o.help) { console.log(BENCH_HELP); return EXIT.OK; }
  if (!o.host) throw new UsageError('--host is required (the address `smbdirect serve` listens on)');
  const mode = (o.mode as string | undefined) ?? 'send';
  if (!MODES.includes(mode as BenchMode)) throw new UsageError(`--mode: '${mode}' is not send, read, write or latency`);
  const opts: BenchOptions = {
    host: o.host as string,
    port: parsePort(o.port as string | undefined),
    mode: mode as BenchMode,
    size: o.size === undefined ? (mode === 'read' || mode === 'write' ? 1 << 20 : 4096) : parseSize(o.size as string, 'size'),
    durationMs: o.duration === undefined ? 5000 : parseDuration(o.duration as string, 'duration'),
    connections: o.connections === undefined ? 1 : parseInteger(o.connections as string, 'connections', 1, 256),
    depth: o.depth === undefined ? 4 : parseInteger(o.depth as string, 'depth', 1, 64),
    provider: providerOption(o.provider as string | undefined),
    credits: parseCredits(o.credits as string | undefined),
  };
  const json = o.json === true;
  const stop = abortOnSignals();
  const tty = process.stderr.isTTY;
  let lastPlain = 0;
  const onProgress = (p: BenchProgress) => {
    if (tty) process.stderr.write(`\r\x1b[K${progressLine(p)}`);
    else if (lastPlain === 0 || p.elapsedMs - lastPlain >= 1000) { lastPlain = p.elapsedMs; process.stderr.write(`${progressLine(p)}\n`); }
  };
  let result: BenchResult;
  try {
    result = await runBench(opts, { onProgress, signal: stop.signal });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    console.error(`smbdirect bench: cannot run against ${opts.host}:${opts.port ?? 'default port'}: ${describeError(err)}`);
    return stop.signal.aborted ? EXIT.INTERRUPTED : EXIT.FAILURE;
  } finally {
    stop.dispose();
    if (tty) process.stderr.write('\n');
  }
  console.log(json ? JSON.stringify(result, null, 2) : summaryTable(result));
  if (result.interrupted) return EXIT.INTERRUPTED;
  return result.error ? EXIT.FAILURE : EXIT.OK;
}
