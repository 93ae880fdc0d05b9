// npm run bench:completion in the VM (bash ci/softroce.sh bench/completion.sh): message rate and
// completions per second of 64-byte sends through the verbs provider, with 1, 2 and 4 connections,
// the receiving side on 1 or 2 CQ sets (createWorkerPool workers, one CQ each on its own comp
// vector), next to `ib_send_bw -s 64` run in the same boot (PERFTEST_JSON). Senders run in the main
// thread (one CQ), one send in 16 signaled; receivers re-post and grant credits (completion-worker.ts).
// Prints a Markdown table and writes $BENCH_RESULTS_DIR/completion.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  return new Promise<void>((resolve, reject) => {
    const more = () => {
      while (posted < count && credits > 0 && posted - completed < SQ - 1) {
        const signaled = (posted + 1) % CQ_MOD === 0 || posted + 1 === count;
        ep.postSend(posted, [{ mr, offset: 0, length: SIZE }], { signaled });
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

interface Row { device: string; connections: number; cqSets: number; messages: number; seconds: number; mpps: number; completionsPerSec: number; perftestMpps?: number; ratio?: number; perftestEventsMpps?: number; ratioEvents?: number }

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
  const t0 = process.hrtime.bigint();
  await Promise.all(eps.map((ep) => blast(ep, per)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
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
    completionsPerSec: (cqAfter - cqBefore + clientAfter - clientBefore) / seconds };
}

const perftest: PerftestRecord[] = process.env['PERFTEST_JSON'] ? JSON.parse(readFileSync(process.env['PERFTEST_JSON'], 'utf8')) : [];
const rows: Row[] = [];
for (const dev of DEVICES) {
  const ref = perftest.find((r) => r.device === dev.name && r.tool === 'ib_send_bw' && r.size === 64 && r.ok && !r.events);
  const refEv = perftest.find((r) => r.device === dev.name && r.tool === 'ib_send_bw' && r.size === 64 && r.ok && r.events);
  for (const cqSets of [1, 2]) {
    for (const conns of [1, 2, 4]) {
      const row = await run(dev, conns, cqSets);
      row.perftestMpps = ref?.mpps;
      row.ratio = ref?.mpps ? row.mpps / ref.mpps : undefined;
      row.perftestEventsMpps = refEv?.mpps;
      row.ratioEvents = refEv?.mpps ? row.mpps / refEv.mpps : undefined;
      rows.push(row);
    }
  }
}

const fmt = (x: number | undefined, d = 3) => (x === undefined ? '-' : x.toFixed(d));
console.log('| device | connections | CQ sets (workers) | message rate | completions/s | ib_send_bw -s 64 (same boot) | ratio | ib_send_bw -s 64 -e | ratio | vs 1 CQ set |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const one = rows.find((x) => x.device === r.device && x.connections === r.connections && x.cqSets === 1)!;
  console.log(`| ${r.device} | ${r.connections} | ${r.cqSets} | ${fmt(r.mpps, 4)} Mpps | ${Math.round(r.completionsPerSec)} | ${fmt(r.perftestMpps, 4)} Mpps | ${fmt(r.ratio, 2)}x | ${fmt(r.perftestEventsMpps, 4)} Mpps | ${fmt(r.ratioEvents, 2)}x | ${fmt(r.mpps / one.mpps, 2)}x |`);
}
const dir = process.env['BENCH_RESULTS_DIR'];
if (dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'completion.json'), JSON.stringify({
    date: new Date().toISOString(), where: 'qemu TCG VM (-smp 2), Debian 6.1 kernel, rxe0 + siw0 on dummy netdevs',
    messagesPerRun: TOTAL, size: SIZE, sqDepth: SQ, cqMod: CQ_MOD, recvs: RECVS, credit: CREDIT,
    perftest: perftest.filter((r) => r.tool === 'ib_send_bw' && r.size === 64), rows,
  }, null, 2) + '\n');
}
process.exit(0);
