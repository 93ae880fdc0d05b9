#!/usr/bin/env node
// Runs the coverage-guided fuzz targets in fuzz/targets/ with Jazzer.js (libFuzzer), one at a time.
//
//   npm run fuzz -- <target|all> [--seconds N] [--runs N] [--regress] [-libfuzzer_flag=value ...]
//   npm run fuzz:ci                     every target for its CI time (fuzz/README.md), table + JSON
//   npm run fuzz -- <target> --replay <file...>   run saved inputs once each (a finding's reproducer)
//   npm run fuzz -- --list              the targets
//
// Each target is compiled with tsc (fuzz/tsconfig.json -> fuzz/.build/), and the project's modules
// (framing/, src/) are instrumented; the harness in fuzz/ is not, so coverage is the project's.
// New corpus entries go to fuzz/.corpus/<target>/ (git-ignored); the seeds in fuzz/corpus/<target>/
// are read, never written. A crash, a timeout or an out-of-memory input is saved under
// fuzz/findings/<target>/ and makes the exit code non-zero, as does a target that ran 0 inputs.
// The table is printed and written to fuzz/results/last.json (git-ignored).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureJazzerLoads } from './tools/jazzer-compat.mjs';

const FUZZ = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(FUZZ);
const BUILD = join(FUZZ, '.build');
const require = createRequire(import.meta.url);

/**
 * The targets: sync ones run with --sync (no promise per input); ci: seconds each in `fuzz:ci`
 * (the sum plus ~2 s start-up per target stays under 4 minutes on the 2-core machine).
 */
export const TARGETS = {
  negotiate: { sync: true, ci: 10, maxLen: 256, what: 'decodeNegotiateRequest, decodeNegotiateResponse' },
  'data-transfer': { sync: true, ci: 10, maxLen: 512, what: 'decodeDataTransfer (+ encode round trip)' },
  'buffer-descriptors': { sync: true, ci: 8, maxLen: 512, what: 'decodeBufferDescriptors' },
  'smb2-channel': { sync: true, ci: 12, maxLen: 1024, what: 'decodeSmb2ReadWriteChannel' },
  'smb2-messages': { sync: true, ci: 12, maxLen: 2048, what: 'SMB2 NEGOTIATE (+ compound chains), SPNEGO, NTLMSSP' },
  'smb2-server': { sync: false, ci: 15, maxLen: 4096, what: 'the SMB2 server engine fed request messages (attach())' },
  mpa: { sync: true, ci: 12, maxLen: 1024, what: 'decodeMpaFrame, mpaFrameLength, decodeIrdOrd' },
  fpdu: { sync: true, ci: 14, maxLen: 2048, what: 'decodeFpdu (CRC off/on/fixed), decodeReadRequest, decodeTerminate' },
  rdmap: { sync: true, ci: 8, maxLen: 256, what: 'decodeReadRequest, decodeTerminate' },
  reassembler: { sync: true, ci: 14, maxLen: 4096, what: 'Reassembler over a fragment sequence' },
  'iwarp-endpoint': { sync: false, ci: 35, maxLen: 8192, what: 'IwarpEndpoint in RTS fed FPDU bytes' },
  'iwarp-mpa': { sync: false, ci: 25, maxLen: 4096, what: 'upgradeToRdma: MPA Request/Reply, accept/reject, then FPDUs' },
  smbdirect: { sync: false, ci: 40, maxLen: 8192, what: 'SmbDirectConnection (acceptor) fed Send messages as FPDUs' },
};

function usage(code) {
  console.log(`usage: npm run fuzz -- <target|all> [--seconds N] [--runs N] [--regress] [-libfuzzer_flag=value ...]
       npm run fuzz:ci
targets: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(code);
}

function parseArgs(argv) {
  const o = { targets: [], seconds: undefined, runs: undefined, regress: false, ci: false, libfuzzer: [], quiet: false, replay: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue;
    else if (a === '--ci') o.ci = true;
    else if (a === '--seconds') o.seconds = Number(argv[++i]);
    else if (a.startsWith('--seconds=')) o.seconds = Number(a.slice(10));
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a.startsWith('--runs=')) o.runs = Number(a.slice(7));
    else if (a === '--regress') o.regress = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '--replay') { while (i + 1 < argv.length && !argv[i + 1].startsWith('-')) o.replay.push(argv[++i]); }
    else if (a === '--list') {
      for (const [name, t] of Object.entries(TARGETS)) console.log(`${name.padEnd(20)} ${t.what}`);
      process.exit(0);
    } else if (a === '--help' || a === '-h') usage(0);
    else if (/^-[a-z_]+(=|$)/.test(a)) o.libfuzzer.push(a);
    else if (a === 'all') o.targets.push(...Object.keys(TARGETS));
    else if (Object.hasOwn(TARGETS, a)) o.targets.push(a);
    else {
      console.error(`unknown target or option: ${a}`);
      usage(2);
    }
  }
  if (o.ci && o.targets.length === 0) o.targets = Object.keys(TARGETS);
  if (o.targets.length === 0) usage(2);
  if (o.replay.length && o.targets.length !== 1) {
    console.error('--replay needs exactly one target');
    process.exit(2);
  }
  for (const [k, v] of [['--seconds', o.seconds], ['--runs', o.runs]]) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
      console.error(`${k} needs a whole number`);
      process.exit(2);
    }
  }
  return o;
}

function build() {
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['-p', join(FUZZ, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('fuzz: tsc -p fuzz/tsconfig.json failed');
    process.exit(1);
  }
}

function countFiles(dir) {
  try {
    return readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile()).length;
  } catch {
    return 0;
  }
}

/** The numbers libFuzzer printed: the last status line and the final stats. */
export function parseLog(text) {
  const r = { executions: 0, execPerSec: 0, cov: 0, ft: 0, corpus: 0, corpusBytes: '', newUnits: 0, peakRssMb: 0, seconds: 0, artifact: undefined, kind: undefined };
  let statusRate = 0;
  for (const m of text.matchAll(/^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)\/(\S+)(?:.*? exec\/s: (\d+))?/gm)) {
    r.executions = Number(m[1]);
    if (m[6] !== undefined) statusRate = Number(m[6]);
    r.cov = Number(m[2]);
    r.ft = Number(m[3]);
    r.corpus = Number(m[4]);
    r.corpusBytes = m[5];
  }
  const done = /^Done (\d+) runs in (\d+) second/m.exec(text);
  if (done) { r.executions = Number(done[1]); r.seconds = Number(done[2]); }
  const stat = (name) => { const m = new RegExp(`^stat::${name}:\\s+(\\d+)`, 'm').exec(text); return m ? Number(m[1]) : undefined; };
  r.executions = stat('number_of_executed_units') ?? r.executions;
  // (libFuzzer's final stats can come out interleaved with its dictionary: then the last status line)
  r.execPerSec = stat('average_exec_per_sec') || statusRate || (r.seconds ? Math.round(r.executions / r.seconds) : 0);
  r.newUnits = stat('new_units_added') ?? 0;
  const rss = [...text.matchAll(/ rss: (\d+)Mb/g)].pop();
  r.peakRssMb = stat('peak_rss_mb') ?? (rss ? Number(rss[1]) : 0);
  const seed = /INFO: Seed: (\d+)/.exec(text);
  if (seed) r.seed = Number(seed[1]);
  const art = /Test unit written to (\S+)/.exec(text);
  if (art) r.artifact = art[1];
  if (/==\d+== ERROR: libFuzzer: timeout|ALARM: working on the last Unit/.test(text)) r.kind = 'timeout';
  else if (/out-of-memory/.test(text)) r.kind = 'oom';
  else if (art) r.kind = 'crash';
  return r;
}

function runTarget(name, o) {
  const t = TARGETS[name];
  const seconds = o.seconds ?? (o.ci ? t.ci : 60);
  const work = join(FUZZ, '.corpus', name);
  const seeds = join(FUZZ, 'corpus', name);
  const findings = join(FUZZ, 'findings', name);
  const results = join(FUZZ, 'results');
  for (const d of [work, findings, results]) mkdirSync(d, { recursive: true });
  const cli = join(dirname(require.resolve('@jazzer.js/core/package.json')), 'dist', 'cli.js');
  const libfuzzer = [
    `-max_len=${t.maxLen}`, '-print_final_stats=1', `-artifact_prefix=${findings}/`, '-rss_limit_mb=2048',
    ...(o.replay.length ? [] : o.regress ? ['-runs=0'] : o.runs !== undefined ? [`-runs=${o.runs}`] : [`-max_total_time=${seconds}`]),
    ...o.libfuzzer,
  ];
  const args = [
    cli, join(BUILD, 'fuzz', 'targets', `${name}.js`),
    ...(o.replay.length ? o.replay.map((f) => resolve(f)) : [work, ...(existsSync(seeds) ? [seeds] : [])]),
    '-i', join(BUILD, 'framing') + '/', '-i', join(BUILD, 'src') + '/',
    '--disable_bug_detectors=.*', '--timeout=10000', ...(t.sync ? ['--sync'] : []),
    '--', ...libfuzzer,
  ];
  const logFile = join(results, `${name}.log`);
  const log = createWriteStream(logFile);
  const started = Date.now();
  console.log(`\n== fuzz ${name}: ${t.what} (${o.replay.length ? `replay of ${o.replay.length} input(s)` : o.regress ? 'corpus only' : o.runs !== undefined ? `${o.runs} runs` : `${seconds} s`})`);
  if (!o.quiet) console.log(`   node ${args.map((a) => relative(ROOT, a) || a).join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const onData = (chunk) => {
      const s = chunk.toString();
      text += s;
      log.write(s);
      if (!o.quiet) process.stderr.write(s);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    // a run that does not stop by itself (a hang outside libFuzzer's watch) is killed
    const limit = setTimeout(() => { text += '\nfuzz: killed: no exit within the time limit\n'; child.kill('SIGKILL'); }, (seconds + 120) * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      log.end();
      const p = parseLog(text);
      let result = code === 0 ? 'ok' : p.kind ?? (signal ? `killed (${signal})` : `exit ${code}`);
      if (code === 0 && p.executions === 0 && !o.replay.length) result = 'no-run';
      const row = {
        target: name, what: t.what, seconds: Math.round((Date.now() - started) / 1000), executions: p.executions,
        execPerSec: p.execPerSec, cov: p.cov, ft: p.ft, corpus: p.corpus, corpusFiles: countFiles(work), seeds: countFiles(seeds),
        newUnits: p.newUnits, peakRssMb: p.peakRssMb, seed: p.seed, result, exitCode: code, log: relative(ROOT, logFile),
        ...(p.artifact ? { artifact: relative(ROOT, p.artifact) } : {}),
      };
      if (o.quiet) {
        console.log(`   ${result}: ${p.executions} executions, ${p.execPerSec}/s, cov ${p.cov} ft ${p.ft}, corpus ${p.corpus}`);
        if (result !== 'ok') console.log(text.split('\n').slice(-60).join('\n'));
      }
      if (result === 'no-run') console.error(`fuzz: TARGET ${name} RAN NO INPUT (see ${row.log})`);
      resolve(row);
    });
  });
}

function table(rows) {
  const head = ['target', 'executions', 'exec/s', 'cov', 'ft', 'corpus', 'seconds', 'result'];
  const body = rows.map((r) => [r.target, String(r.executions), String(r.execPerSec), String(r.cov), String(r.ft), String(r.corpus), String(r.seconds), r.result]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ')} |`;
  return [line(head), `|${w.map((n, i) => (i === 0 || i === w.length - 1 ? '-'.repeat(n + 2) : `${'-'.repeat(n + 1)}:`)).join('|')}|`, ...body.map(line)].join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.ci) o.quiet = true;
  const t0 = Date.now();
  build();
  ensureJazzerLoads();
  const rows = [];
  for (const name of o.targets) rows.push(await runTarget(name, o));
  const total = Math.round((Date.now() - t0) / 1000);
  console.log(`\n${table(rows)}\n(${total} s in all; cov/ft: libFuzzer's edge coverage and features over framing/ and src/)`);
  const jazzer = JSON.parse(readFileSync(require.resolve('@jazzer.js/core/package.json'), 'utf8')).version;
  const out = {
    date: new Date().toISOString(), command: `node fuzz/run.mjs ${process.argv.slice(2).join(' ')}`.trim(), node: process.version,
    jazzer, totalSeconds: total, targets: rows,
  };
  writeFileSync(join(FUZZ, 'results', o.ci ? 'last.json' : `last-${o.targets.length === 1 ? o.targets[0] : 'run'}.json`), `${JSON.stringify(out, null, 2)}\n`);
  if (!o.ci) writeFileSync(join(FUZZ, 'results', 'last.json'), `${JSON.stringify(out, null, 2)}\n`);
  const bad = rows.filter((r) => r.result !== 'ok');
  console.log(`fuzz: ${rows.length - bad.length} passed, ${bad.length} failed`);
  if (bad.length) {
    console.error(`\nfuzz: ${bad.length} target(s) failed: ${bad.map((r) => `${r.target} (${r.result}${r.artifact ? `, ${r.artifact}` : ''})`).join(', ')}`);
    process.exit(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
