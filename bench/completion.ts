// In the VM, compiled (npx tsc -p tsconfig.json && bash ci/softroce.sh bench/completion.sh, or as part
// of npm run bench:softroce, which runs ci/guest/bench.sh): message rate and
// completions per second of 64-byte sends through the verbs provider, with 1, 2 and 4 connections,
// the receiving side on 1 or 2 CQ sets (createWorkerPool workers, one CQ each on its own comp
// vector), next to `ib_send_bw -s 64` run in the same boot (bench/perftest-send.sh, before each of
// BENCH_REPS repetitions; the table has medians). Senders run in the main
// thread (one CQ), one send in 16 signaled; receivers re-post and grant credits (completion-worker.ts).
// Prints a Markdown table and writes $BENCH_RESULTS_DIR/completion.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type VerbsEndpoint, createVerbsProvider, createWorkerPool } from '../src/providers/index.js';
import { DEVICES, type TestDevice } from '../test/softroce/rdma.js';
import { CREDIT, RECVS, SIZE } from './completion-worker.js';

const TOTAL = Number(process.env['SOFTROCE_BENCH_MSGS'] ?? 40_000); // messages per run, over all connections
const SQ = 256;
const CQ_MOD = 16;

interface PerftestRecord { device: string; tool: string; size: number; ok: boolean; gbps?: number; mpps?: number; rdma_cm: boolean; events?: boolean }

/** Sends `count` 64-byte messages as credits allow; resolves when the last one has completed. */
function blast(ep: VerbsEndpoint, count: number): Promise<void> {
  const mr = ep.registerMemory(SIZE * 8, { localWrite: true });
  for (let i = 0; i < 4; i++) ep.postRecv(i, { mr, offset: SIZE * (4 + i), length: SIZE });
  let credits = RECVS, posted = 0, completed = 0;
  // one SGE list and two option objects for every send, as a C sender reuses its WR structs
  const sges = [{ mr, offset: 0, length: SIZE }];
  const SIGNALED = { signaled: true }, UNSIGNALED = { signaled: false };
  return new Promise<void>((resolve, reject) => {
    const more = () => {
      while (posted < count && credits > 0 && posted - completed < SQ - 1) {
        const signaled = (posted + 1) % CQ_MOD === 0 || posted + 1 === count;
        ep.postSend(posted, sges, signaled ? SIGNALED : UNSIGNALED);
        posted++;
        credits--;
      }
    };
    ep.onCompletions((batch) => {
      for (const c of batch) {
        if (c.status !== 'success') return reject(new Error(`${c.opcode} ${c.wrId}: ${c.status}`));
        if (c.opcode === 'recv') {
          credits += CREDIT;
          ep.postRecv(c.wrId, { mr, offset: SIZE * (4 + c.wrId), length: SIZE });
        } else {
          completed = c.wrId + 1;
          if (completed === count) return resolve();
        }
      }
      more();
    });
    more();
  });
}

// BENCH_CPU=1: where the CPU time of a run went (this process's threads, and the whole VM's
// user/system/softirq/idle from /proc/stat), to tell our JS apart from the kernel's RDMA work.
interface CpuSnapshot { threads: Map<string, number[]>; total: number[] }
function cpuSnapshot(): CpuSnapshot {
  const threads = new Map<string, number[]>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threads.set(`${tid} ${comm}`, [Number(f[11]), Number(f[12])]);
    } catch { /* the thread ended */ }
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { threads, total: cpu };
}
function cpuReport(a: CpuSnapshot, b: CpuSnapshot, seconds: number): string {
  const hz = 100;
  const lines = [`  wall ${seconds.toFixed(2)} s`];
  for (const [k, v] of b.threads) {
    const u = v[0]! - (a.threads.get(k)?.[0] ?? 0), s = v[1]! - (a.threads.get(k)?.[1] ?? 0);
    if (u + s > 1) lines.push(`  thread ${k}: user ${(u / hz).toFixed(2)} s, system ${(s / hz).toFixed(2)} s`);
  }
  const names = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'];
  lines.push('  VM: ' + names.map((n, i) => `${n} ${((b.total[i]! - a.total[i]!) / hz).toFixed(2)}`).join(', ') + ' s (all CPUs)');
  return lines.join('\n');
}

interface Row { reps?: number[]; vmBusy: number; device: string; connections: number; cqSets: number; messages: number; seconds: number; mpps: number; completionsPerSec: number; perftestMpps?: number; ratio?: number; perftestEventsMpps?: number; ratioEvents?: number }

async function run(dev: TestDevice, conns: number, cqSets: number): Promise<Row> {
  const pool = await createWorkerPool({ workers: cqSets, module: new URL('./completion-worker.js', import.meta.url), verbs: { maxRecvWr: RECVS, maxSendWr: SQ } });
  const provider = createVerbsProvider({ completion: { cqs: 1 }, maxSendWr: SQ, maxRecvWr: 8 });
  const listener = await pool.listen({ host: dev.ip, port: 0 });
  const eps: VerbsEndpoint[] = [];
  for (let i = 0; i < conns; i++) eps.push(await provider.connect({ host: dev.ip, port: listener.port }));
  const per = Math.floor(TOTAL / conns);
  const before = await pool.stats();
  const cqBefore = before.reduce((n, s) => n + (s.pools[dev.name]?.[0]?.completions ?? 0), 0);
  const clientBefore = (provider.stats()[dev.name] ?? []).reduce((n, s) => n + s.completions, 0);
  const cpu0 = cpuSnapshot();
  const t0 = process.hrtime.bigint();
  await Promise.all(eps.map((ep) => blast(ep, per)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = cpuSnapshot();
  if (process.env['BENCH_CPU']) console.error(cpuReport(cpu0, cpu1, seconds));
  // how busy the VM's CPUs were (1 - idle share): what a second worker could still use
  const ticks = cpu1.total.reduce((a, b) => a + b, 0) - cpu0.total.reduce((a, b) => a + b, 0);
  const vmBusy = ticks > 0 ? 1 - (cpu1.total[3]! - cpu0.total[3]!) / ticks : 0;
  const after = await pool.stats();
  const cqAfter = after.reduce((n, s) => n + (s.pools[dev.name]?.[0]?.completions ?? 0), 0);
  const clientAfter = (provider.stats()[dev.name] ?? []).reduce((n, s) => n + s.completions, 0);
  const spread = after.map((s) => s.pools[dev.name]?.[0]?.completions ?? 0);
  await listener.close();
  await Promise.all(eps.map((ep) => ep.disconnect()));
  await pool.close();
  const messages = per * conns;
  console.error(`${dev.name} ${conns} conn ${cqSets} CQ set(s): ${(messages / seconds / 1e6).toFixed(4)} Mpps; receiver CQ completions per worker ${spread.join(', ')}`);
  return { device: dev.name, connections: conns, cqSets, messages, seconds, mpps: messages / seconds / 1e6,
    completionsPerSec: (cqAfter - cqBefore + clientAfter - clientBefore) / seconds, vmBusy };
}

// Each repetition runs the perftest references (PERFTEST_SCRIPT, in the VM) and then every row, so
// both see the same moments of a noisy VM; the table gives medians over BENCH_REPS repetitions.
const REPS = Number(process.env['BENCH_REPS'] ?? 3);
function perftestOnce(rep: number): PerftestRecord[] {
  const script = process.env['PERFTEST_SCRIPT'];
  if (!script) return process.env['PERFTEST_JSON'] ? JSON.parse(readFileSync(process.env['PERFTEST_JSON'], 'utf8')) : [];
  const out = join(tmpdir(), `perftest-64-${rep}.json`);
  execFileSync('bash', [script, out, String(TOTAL)], { stdio: ['ignore', 'inherit', 'inherit'] });
  return JSON.parse(readFileSync(out, 'utf8'));
}
const median = (xs: number[]): number | undefined => {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// BENCH_DEVICES / BENCH_CONNS / BENCH_CQSETS (comma lists) narrow the matrix, e.g. for profiling
const only = (name: string, all: number[]) => process.env[name]?.split(',').map(Number) ?? all;
const devices = DEVICES.filter((d) => !process.env['BENCH_DEVICES'] || process.env['BENCH_DEVICES'].split(',').includes(d.name));
const perftest: PerftestRecord[] = [];
const runs: Row[] = [];
for (let rep = 0; rep < REPS; rep++) {
  perftest.push(...perftestOnce(rep));
  for (const dev of devices) {
    for (const cqSets of only('BENCH_CQSETS', [1, 2])) {
      for (const conns of only('BENCH_CONNS', [1, 2, 4])) runs.push(await run(dev, conns, cqSets));
    }
  }
}
const refMpps = (dev: string, events: boolean) =>
  median(perftest.filter((r) => r.device === dev && r.tool === 'ib_send_bw' && r.size === 64 && r.ok && !!r.events === events).map((r) => r.mpps!));
const rows: Row[] = [];
for (const r of runs) {
  if (rows.some((x) => x.device === r.device && x.connections === r.connections && x.cqSets === r.cqSets)) continue;
  const same = runs.filter((x) => x.device === r.device && x.connections === r.connections && x.cqSets === r.cqSets);
  const row: Row = { ...r, mpps: median(same.map((x) => x.mpps))!, completionsPerSec: median(same.map((x) => x.completionsPerSec))!,
    seconds: median(same.map((x) => x.seconds))!, reps: same.map((x) => x.mpps), vmBusy: median(same.map((x) => x.vmBusy))! };
  row.perftestMpps = refMpps(r.device, false);
  row.ratio = row.perftestMpps ? row.mpps / row.perftestMpps : undefined;
  row.perftestEventsMpps = refMpps(r.device, true);
  row.ratioEvents = row.perftestEventsMpps ? row.mpps / row.perftestEventsMpps : undefined;
  rows.push(row);
}

const fmt = (x: number | undefined, d = 3) => (x === undefined ? '-' : x.toFixed(d));
console.log(`Medians of ${REPS} repetitions (perftest run before each).`);
console.log('| device | connections | CQ sets (workers) | message rate | completions/s | ib_send_bw -s 64 (same boot) | ratio | ib_send_bw -s 64 -e | ratio | vs 1 CQ set | VM CPU busy |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const one = rows.find((x) => x.device === r.device && x.connections === r.connections && x.cqSets === 1);
  console.log(`| ${r.device} | ${r.connections} | ${r.cqSets} | ${fmt(r.mpps, 4)} Mpps | ${Math.round(r.completionsPerSec)} | ${fmt(r.perftestMpps, 4)} Mpps | ${fmt(r.ratio, 2)}x | ${fmt(r.perftestEventsMpps, 4)} Mpps | ${fmt(r.ratioEvents, 2)}x | ${one ? fmt(r.mpps / one.mpps, 2) + 'x' : '-'} | ${Math.round(r.vmBusy * 100)} % |`);
}
const dir = process.env['BENCH_RESULTS_DIR'];
if (dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'completion.json'), JSON.stringify({
    date: new Date().toISOString(), where: 'qemu TCG VM (-smp 2), Debian 6.1 kernel, rxe0 + siw0 on dummy netdevs',
    messagesPerRun: TOTAL, reps: REPS, size: SIZE, sqDepth: SQ, cqMod: CQ_MOD, recvs: RECVS, credit: CREDIT,
    perftest: perftest.filter((r) => r.tool === 'ib_send_bw' && r.size === 64), rows,
  }, null, 2) + '\n');
}
process.exit(0);
