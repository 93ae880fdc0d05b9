// npm run bench:softroce (inside the VM, via ci/softroce.sh bench): our addon's RDMA write, read
// and send bandwidth at 4 KiB and 1 MiB and 64-byte send latency on rxe0 and siw0, each next to
// perftest run in the same VM boot (PERFTEST_JSON, written by ci/guest/bench.sh).
// Completions are event-driven (completion channel + uv_poll), never busy-polled; perftest's
// bandwidth and latency tools busy-poll unless given -e (its -e latency row is listed too).
// Bandwidth: both ends in this process (the passive end does no work for write/read; for send it
// re-posts receives). Latency: against the echo peer in a second process, as perftest runs.
// Prints a Markdown table and writes $BENCH_RESULTS_DIR/verbs.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import * as native from '../native/index.js';
import type { CmId, CompletionQueue, Device, MemoryRegion, ProtectionDomain, QueuePair } from '../native/index.js';
import { DEVICES, Events, resolve, type TestDevice } from '../test/softroce/rdma.js';

const { ACCESS, SEND_FLAGS } = native;
const KiB = 1024, MiB = 1 << 20;
const ITERS: Record<number, number> = { [4 * KiB]: Number(process.env['SOFTROCE_BENCH_ITERS_4K'] ?? 2000), [MiB]: Number(process.env['SOFTROCE_BENCH_ITERS_1M'] ?? 200) };
const LAT_ITERS = Number(process.env['SOFTROCE_BENCH_ITERS_LAT'] ?? 1000);
const TX_DEPTH = 128;   // perftest's default for the bandwidth tools
const CQ_MOD = 16;      // signal one send in 16, as perftest's --cq-mod does
const RX_DEPTH = 512;   // perftest's ib_send_bw default

interface PerftestRecord { device: string; tool: string; size: number; ok: boolean; gbps?: number; usec?: number; usec_avg?: number; rdma_cm: boolean; events?: boolean }

// ---- one side of a connection, with a lean completion handler -----------------

class End {
  readonly device: Device;
  readonly pd: ProtectionDomain;
  readonly cq: CompletionQueue;
  readonly qp: QueuePair;
  readonly mr: MemoryRegion;
  private channel;
  /** called with (wrId, status) for each completion */
  onWc: (wrId: number, status: number, byteLength: number) => void = () => {};

  constructor(readonly id: CmId, slab: number) {
    this.device = id.device!;
    this.pd = this.device.allocPd();
    this.channel = this.device.createCompChannel();
    this.cq = this.device.createCq(4096, this.channel, 0, (n) => {
      const b = this.cq.batch;
      for (let i = 0; i < n; i++) this.onWc(b.wrId[i]!, b.status[i]!, b.byteLength[i]!);
    });
    this.qp = id.createQp(this.pd, this.cq, this.cq, { maxSendWr: TX_DEPTH * 2, maxRecvWr: RX_DEPTH, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 64 });
    this.mr = this.pd.allocSlab(slab, ACCESS.LOCAL_WRITE | ACCESS.REMOTE_READ | ACCESS.REMOTE_WRITE);
  }

  close(): void {
    this.id.close();
    this.pd.close();
    this.channel.close();
  }
}

async function connect(dev: TestDevice, slab: number, serverRecvs: (e: End) => void) {
  const events = new Events();
  const listener = events.channel.createId();
  listener.bind(dev.ip, 0);
  listener.listen(1);
  const cid = await resolve(events, dev.ip, listener.localAddress!.port);
  const client = new End(cid, slab);
  const depth = { initiatorDepth: 16, responderResources: 16 };
  cid.connect(depth);
  const req = await events.next(listener, ['CONNECT_REQUEST']);
  const server = new End(req.id!, slab);
  serverRecvs(server);
  req.id!.accept(depth);
  await Promise.all([events.next(cid, ['ESTABLISHED']), events.next(req.id!, ['ESTABLISHED'])]);
  // as perftest does: a sender that finds no receive posted retries after 0.64 ms,
  // not after the CM's default of 655 ms (RoCE; iWARP has no RNR)
  if (dev.kind === 'RoCE') for (const e of [client, server]) e.qp.setMinRnrTimer(12);
  return {
    client, server,
    async close() {
      cid.disconnect();
      await events.next(req.id!, ['DISCONNECTED']);
      req.id!.disconnect();
      await events.next(cid, ['DISCONNECTED']);
      client.close(); server.close(); listener.close(); events.close();
    },
  };
}

// ---- bandwidth: keep TX_DEPTH operations in flight, one in CQ_MOD signaled -----

async function bandwidth(dev: TestDevice, op: 'write' | 'read' | 'send', size: number, iters: number): Promise<number> {
  const c = await connect(dev, size, (s) => {
    if (op === 'send') for (let i = 0; i < RX_DEPTH; i++) s.qp.postRecv(i, { mr: s.mr, offset: 0, length: size });
  });
  const { client, server } = c;
  const sge = { mr: client.mr, offset: 0, length: size };
  const raddr = server.mr.addr, rkey = server.mr.rkey;
  let posted = 0, completed = 0;
  const t0 = process.hrtime.bigint();
  const done = new Promise<bigint>((resolveDone, reject) => {
    // send: the receiver re-posts each buffer as it completes (perftest does the same), and
    // the sender never has more sends outstanding than receives posted: on iWARP a send
    // that finds no receive is fatal (a Terminate), not an RNR retry
    let received = 0;
    if (op === 'send') {
      server.onWc = (wrId, status) => {
        if (status !== 0) return reject(new Error(`receive: ${native.wcStatusName(status)}`));
        if (++received === iters) return;
        server.qp.postRecv(wrId, { mr: server.mr, offset: 0, length: size });
        postMore();
      };
    }
    const postMore = () => {
      while (posted < iters && posted - completed < TX_DEPTH && (op !== 'send' || posted < received + RX_DEPTH)) {
        const signaled = (posted + 1) % CQ_MOD === 0 || posted + 1 === iters;
        const flags = signaled ? SEND_FLAGS.SIGNALED : 0;
        if (op === 'write') client.qp.postWrite(posted, sge, raddr, rkey, flags);
        else if (op === 'read') client.qp.postRead(posted, sge, raddr, rkey, flags);
        else client.qp.postSend(posted, sge, flags);
        posted++;
      }
    };
    client.onWc = (wrId, status) => {
      if (status !== 0) { reject(new Error(`${op} ${wrId}: ${native.wcStatusName(status)}`)); return; }
      completed = wrId + 1; // signaled one completes every unsignaled one before it
      if (completed === iters) resolveDone(process.hrtime.bigint());
      else postMore();
    };
    postMore();
  });
  const t1 = await done;
  await c.close();
  const seconds = Number(t1 - t0) / 1e9;
  return (iters * size * 8) / seconds / 1e9;
}

// ---- latency: 64-byte ping-pong with a peer process, one-way = RTT / 2 (as ib_send_lat) ----

/** The other process of the latency test, like perftest's server: `verbs.js --echo <ip>` listens,
 * prints {"port"}, accepts one connection and sends every 64-byte message straight back
 * (inline, one send in CQ_MOD signaled), until DISCONNECTED. */
async function echoServer(ip: string): Promise<void> {
  const events = new Events();
  const listener = events.channel.createId();
  listener.bind(ip, 0);
  listener.listen(1);
  process.stdout.write(JSON.stringify({ port: listener.localAddress!.port }) + '\n');
  const req = await events.next(listener, ['CONNECT_REQUEST'], 60_000);
  const e = new End(req.id!, 4 * KiB);
  for (let i = 0; i < 16; i++) e.qp.postRecv(i, { mr: e.mr, offset: 1024, length: 64 });
  let sends = 0;
  const pong = { mr: e.mr, offset: 0, length: 64 };
  e.onWc = (wrId, status) => {
    if (status !== 0 || wrId >= 1e6) return; // flushed at the end, or a signaled send
    e.qp.postRecv(wrId, { mr: e.mr, offset: 1024, length: 64 });
    e.qp.postSend(1e6 + sends, pong, SEND_FLAGS.INLINE | (++sends % CQ_MOD === 0 ? SEND_FLAGS.SIGNALED : 0));
  };
  req.id!.accept({ initiatorDepth: 4, responderResources: 4 });
  await events.next(req.id!, ['ESTABLISHED']);
  if (e.device.query().transport === 'ib') e.qp.setMinRnrTimer(12);
  await events.next(req.id!, ['DISCONNECTED'], 600_000);
  req.id!.disconnect();
  e.close();
  listener.close();
  events.close();
}

async function startPeer(ip: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--echo', ip], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  return { port: (JSON.parse(first.value as string) as { port: number }).port, child };
}

async function latency(dev: TestDevice, iters: number): Promise<{ typical: number; avg: number; p99: number }> {
  const size = 64;
  const peer = await startPeer(dev.ip);
  const events = new Events();
  const id = await resolve(events, dev.ip, peer.port);
  const client = new End(id, 4 * KiB);
  for (let i = 0; i < 16; i++) client.qp.postRecv(i, { mr: client.mr, offset: 1024, length: size });
  id.connect({ initiatorDepth: 4, responderResources: 4 });
  await events.next(id, ['ESTABLISHED']);
  if (dev.kind === 'RoCE') client.qp.setMinRnrTimer(12);
  const ping = { mr: client.mr, offset: 0, length: size };
  const rtts: number[] = [];
  let n = 0, tSend = 0n, sends = 0;
  // inline sends, one signaled in CQ_MOD so the send queue drains
  const flags = () => SEND_FLAGS.INLINE | (++sends % CQ_MOD === 0 ? SEND_FLAGS.SIGNALED : 0);
  await new Promise<void>((resolveDone, reject) => {
    client.onWc = (wrId, status) => {
      if (status !== 0) return reject(new Error(`latency: ${native.wcStatusName(status)}`));
      if (wrId >= 1e6) return; // a signaled send
      rtts.push(Number(process.hrtime.bigint() - tSend) / 1e3);
      client.qp.postRecv(wrId, { mr: client.mr, offset: 1024, length: size });
      if (++n === iters) return resolveDone();
      tSend = process.hrtime.bigint();
      client.qp.postSend(1e6 + n, ping, flags());
    };
    tSend = process.hrtime.bigint();
    client.qp.postSend(1e6, ping, flags());
  });
  id.disconnect();
  await events.next(id, ['DISCONNECTED']);
  client.close();
  events.close();
  await new Promise((r) => peer.child.once('exit', r));
  const oneWay = rtts.map((r) => r / 2).sort((a, b) => a - b);
  const q = (p: number) => oneWay[Math.min(oneWay.length - 1, Math.floor(p * oneWay.length))]!;
  return { typical: q(0.5), avg: oneWay.reduce((a, b) => a + b, 0) / oneWay.length, p99: q(0.99) };
}

// ---- run ------------------------------------------------------------------------

if (process.argv[2] === '--echo') {
  await echoServer(process.argv[3]!);
  process.exit(0);
}

interface Row { device: string; test: string; unit: 'Gb/s' | 'us'; ours: number; perftest?: number; perftestTool: string; ratio?: number; target: string }

const perftest: PerftestRecord[] = process.env['PERFTEST_JSON'] ? JSON.parse(readFileSync(process.env['PERFTEST_JSON'], 'utf8')) : [];
const ref = (device: string, tool: string, size: number, events = false) =>
  perftest.find((r) => r.device === device && r.tool === tool && r.size === size && r.ok && !!r.events === events);

const rows: Row[] = [];
const tools = { write: 'ib_write_bw', read: 'ib_read_bw', send: 'ib_send_bw' } as const;
for (const dev of DEVICES) {
  for (const op of ['write', 'read', 'send'] as const) {
    for (const size of [4 * KiB, MiB]) {
      const gbps = await bandwidth(dev, op, size, ITERS[size]!);
      const r = ref(dev.name, tools[op], size);
      rows.push({
        device: dev.name, test: `RDMA ${op === 'send' ? 'send' : op} ${size === MiB ? '1 MiB' : '4 KiB'}`, unit: 'Gb/s', ours: gbps,
        perftest: r?.gbps, perftestTool: `${tools[op]}${dev.kind === 'iWARP' ? ' -R' : ''}`, ratio: r?.gbps ? gbps / r.gbps : undefined,
        target: size === MiB ? '>= 0.90' : '',
      });
      console.error(`${dev.name} ${op} ${size}: ${gbps.toFixed(3)} Gb/s (perftest ${r?.gbps ?? '-'})`);
    }
  }
  const lat = await latency(dev, LAT_ITERS);
  const r = ref(dev.name, 'ib_send_lat', 64);
  rows.push({ device: dev.name, test: 'send latency 64 B (typical)', unit: 'us', ours: lat.typical, perftest: r?.usec,
    perftestTool: `ib_send_lat${dev.kind === 'iWARP' ? ' -R' : ''} (busy poll)`, ratio: r?.usec ? lat.typical / r.usec : undefined, target: '<= 1.5' });
  const re = ref(dev.name, 'ib_send_lat', 64, true);
  if (re) rows.push({ device: dev.name, test: 'send latency 64 B (typical)', unit: 'us', ours: lat.typical, perftest: re.usec,
    perftestTool: `ib_send_lat${dev.kind === 'iWARP' ? ' -R' : ''} -e (events)`, ratio: re.usec ? lat.typical / re.usec : undefined, target: '' });
  console.error(`${dev.name} latency: typical ${lat.typical.toFixed(1)} us, avg ${lat.avg.toFixed(1)}, p99 ${lat.p99.toFixed(1)}`);
}

const fmt = (x: number | undefined, d = 2) => (x === undefined ? '-' : x.toFixed(d));
console.log('| device | test | ours | perftest (same boot) | ratio | target |');
console.log('|---|---|---:|---:|---:|---|');
for (const r of rows) {
  console.log(`| ${r.device} | ${r.test} | ${fmt(r.ours)} ${r.unit} | ${fmt(r.perftest)} ${r.unit} (${r.perftestTool}) | ${fmt(r.ratio)}x | ${r.target} |`);
}
const dir = process.env['BENCH_RESULTS_DIR'];
if (dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'verbs.json'), JSON.stringify({
    date: new Date().toISOString(), where: 'qemu TCG VM (-smp 2), Debian 6.1 kernel, rxe0 + siw0 on dummy netdevs',
    iterations: { '4KiB': ITERS[4 * KiB], '1MiB': ITERS[MiB], latency: LAT_ITERS }, txDepth: TX_DEPTH, cqMod: CQ_MOD, rows,
  }, null, 2) + '\n');
}
