// smbdirect demo (npm start): a server and a client in this process on loopback, on the default
// provider (verbs where an RDMA device serves the address, else the software iWARP provider), a
// short run of each workload, and one summary table.
import { createServer } from '../smbdirect/server.js';
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { verbsCandidate } from '../providers/default.js';
import { EXIT, abortOnSignals, describeError, formatMicros, parse, parseDuration } from './args.js';
import { type BenchMode, type BenchResult, runBench } from './bench.js';
import { benchBuffers, serveBench } from './protocol.js';
import { PROVIDER_HELP, providerOption } from './provider.js';

export const DEMO_HELP = `Usage: smbdirect demo [--host <address>] [--provider auto|verbs|iwarp-tcp] [--duration <time>] [--json]

Starts an SMB Direct server and a client in this process and runs, for --duration each: 64-byte
and 4 KiB messages, 1 MiB SMB2 READs and WRITEs by RDMA, and 64-byte round trips. Prints one
table. This is what \`npm start\` runs.

Options:
  --host <address>   loopback address to use (default 127.0.0.1)
  --provider <name>  ${PROVIDER_HELP}
  --duration <time>  per workload (default 2s)
  --json             the results as JSON
  -h, --help         this help

Exit codes: 0 done, 1 a workload failed, 2 usage error, 130 interrupted.`;

const WORKLOADS: Array<{ name: string; mode: BenchMode; size: number }> = [
  { name: 'send 64 B messages', mode: 'send', size: 64 },
  { name: 'send 4 KiB messages', mode: 'send', size: 4096 },
  { name: 'SMB2 READ 1 MiB (RDMA write)', mode: 'read', size: 1 << 20 },
  { name: 'SMB2 WRITE 1 MiB (RDMA read)', mode: 'write', size: 1 << 20 },
  { name: '64 B round trip', mode: 'latency', size: 64 },
];

export async function demoCommand(argv: string[]): Promise<number> {
  const o = parse(argv, { host: { type: 'string' }, provider: { type: 'string' }, duration: { type: 'string' }, json: { type: 'boolean' } });
  if (o.help) { console.log(DEMO_HELP); return EXIT.OK; }
  const host = (o.host as string | undefined) ?? '127.0.0.1';
  const provider = providerOption(o.provider as string | undefined);
  const durationMs = o.duration === undefined ? 2000 : parseDuration(o.duration as string, 'duration');
  const server = createServer({ provider });
  const { port } = await server.listen({ host, port: 0 });
  const { source, sink } = benchBuffers();
  server.on('connection', (conn: SmbDirectConnection) => { conn.on('error', () => {}); serveBench(conn, source, sink); });
  const stop = abortOnSignals();
  const chosen = provider ?? (verbsCandidate(host).device ? 'verbs' : 'iwarp-tcp');
  if (!o.json) console.log(`smbdirect demo: server and client on ${host}:${port}, provider ${chosen}${provider ? '' : ` (${verbsCandidate(host).reason})`}, ${durationMs / 1000} s per workload\n`);
  const results: Array<BenchResult & { name: string }> = [];
  let code: number = EXIT.OK;
  try {
    for (const w of WORKLOADS) {
      if (stop.signal.aborted) break;
      if (!o.json) process.stderr.write(`${w.name} ...\n`);
      const r = await runBench({ host, port, mode: w.mode, size: w.size, durationMs, connections: 1, depth: 4, provider }, { signal: stop.signal });
      results.push({ name: w.name, ...r });
      if (r.error) { code = EXIT.FAILURE; break; }
    }
  } catch (err) {
    console.error(`smbdirect demo: ${describeError(err)}`);
    code = EXIT.FAILURE;
  } finally {
    stop.dispose();
    await server.close();
  }
  if (stop.signal.aborted) code = EXIT.INTERRUPTED;
  if (o.json) { console.log(JSON.stringify(results, null, 2)); return code; }
  const fmtRate = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB/s` : `${(b / 1e6).toFixed(1)} MB/s`);
  const n = results[0]?.negotiated;
  if (n) console.log(`negotiated: MaxSendSize ${n.maxSendSize}, MaxReceiveSize ${n.maxReceiveSize}, MaxFragmentedSize ${n.maxFragmentedSendSize}, MaxReadWriteSize ${n.maxReadWriteSize}\n`);
  console.log('| workload | throughput | operations/s | p50 | p99 | p99.9 | CPU |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(`| ${r.name} | ${fmtRate(r.bytesPerSecond)} | ${Math.round(r.operationsPerSecond)} | ${formatMicros(r.latency.p50Us)} | ${formatMicros(r.latency.p99Us)} | ${formatMicros(r.latency.p999Us)} | ${r.cpu.percentOfOneCore.toFixed(0)} % |${r.error ? ` error: ${r.error}` : ''}`);
  }
  console.log('\nLatency: per message handed to the provider (send), per answered I/O (READ/WRITE), per round trip. Both ends share this process and its CPU.');
  return code;
}
