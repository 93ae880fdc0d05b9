// smbdirect serve: an SMB Direct server for `smbdirect bench` (echo, sink, and the SMB2 READ /
// WRITE shapes by RDMA write / read), a line per connection with what was negotiated.
import { once } from 'node:events';

import { createWorkerPool } from '../providers/verbs/workers.js';
import { verbsCandidate } from '../providers/default.js';
import { type ProviderChoice, type SmbDirectServer, createServer, verbsOptionsFor } from '../smbdirect/server.js';
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { DEFAULTS, resolveOptions } from '../smbdirect/options.js';
import { EXIT, UsageError, describeError, parse, parseInteger, parsePort, parseCredits } from './args.js';
import { describeClose, describeConnection } from './describe.js';
import { benchBuffers, serveBench } from './protocol.js';
import { providerOption, PROVIDER_HELP } from './provider.js';

export const SERVE_HELP = `Usage: smbdirect serve [--host <address>] [--port <n>] [--provider auto|verbs|iwarp-tcp] [--credits <n>] [--workers <n>]

Runs an SMB Direct server for \`smbdirect bench\`: it echoes, sinks, and answers SMB2 READ/WRITE-
shaped requests with RDMA writes and reads into the client's registered buffers. Prints a line per
connection with the negotiated parameters, and one when it closes. Stops on Ctrl-C (SIGINT) or
SIGTERM, closing every connection gracefully.

Options:
  --host <address>   address to listen on (default 127.0.0.1)
  --port <n>         port (default 445 on verbs, 5445 on iwarp-tcp; 0 picks a free one)
  --provider <name>  ${PROVIDER_HELP}
  --credits <n>      receive credits we offer (default ${DEFAULTS.credits})
  --workers <n>      worker threads, one CQ set each (verbs only; default 1: the main thread)
  -h, --help         this help

Prints "listening on <host>:<port> (<provider>)" once ready.
Exit codes: 0 stopped by a signal after a clean close, 1 could not listen, 2 usage error.`;

export async function serveCommand(argv: string[]): Promise<number> {
  const o = parse(argv, {
    host: { type: 'string' }, port: { type: 'string' }, provider: { type: 'string' }, credits: { type: 'string' }, workers: { type: 'string' },
  });
  if (o.help) { console.log(SERVE_HELP); return EXIT.OK; }
  const host = (o.host as string | undefined) ?? '127.0.0.1';
  const port = parsePort(o.port as string | undefined);
  const provider = providerOption(o.provider as string | undefined);
  const credits = parseCredits(o.credits as string | undefined);
  const workers = o.workers === undefined ? 1 : parseInteger(o.workers as string, 'workers', 1, 256);
  if (workers > 1) return serveOnWorkers(host, port, provider, credits, workers);
  const server = createServer({ provider, credits });
  let addr: { host: string; port: number };
  try {
    addr = await server.listen({ host, port });
  } catch (err) {
    console.error(`smbdirect serve: cannot listen on ${host}:${port ?? 'default port'}: ${describeError(err)}`);
    return EXIT.FAILURE;
  }
  console.log(`listening on ${addr.host}:${addr.port} (${serverProvider(server)})`);
  const { source, sink } = benchBuffers();
  let next = 0;
  server.on('connection', (conn: SmbDirectConnection) => {
    const id = ++next;
    const started = Date.now();
    console.log(`connection ${id} (${conn.providerName}): ${describeConnection(conn)}`);
    serveBench(conn, source, sink);
    conn.on('error', () => {}); // reported with 'close'
    conn.on('close', (err?: Error) => console.log(`connection ${id} ${describeClose(conn, started, err)}`));
  });
  server.on('connectionError', (err: Error) => console.log(`a connection failed to negotiate: ${describeError(err)}`));
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  console.log('stopping: closing connections');
  await server.close();
  return EXIT.OK;
}

/** One worker thread per CQ set (createWorkerPool): the listener hands each connection to a
 * worker (rdma_migrate_id), which runs it (serve-worker.ts). Verbs only. */
async function serveOnWorkers(host: string, port: number | undefined, provider: ProviderChoice | undefined, credits: number | undefined, workers: number): Promise<number> {
  if (provider === 'iwarp-tcp') throw new UsageError('--workers needs the verbs provider (the software provider runs on one thread)');
  if (provider === undefined && !verbsCandidate(host).device) {
    throw new UsageError(`--workers needs the verbs provider, and no RDMA device serves ${host} (${verbsCandidate(host).reason})`);
  }
  if (credits !== undefined) process.env['SMBDIRECT_SERVE_CREDITS'] = String(credits);
  const pool = await createWorkerPool({ workers, module: new URL('./serve-worker.js', import.meta.url), verbs: verbsOptionsFor(resolveOptions({ credits })) });
  let listener;
  try {
    listener = await pool.listen({ host, port: port ?? 445 });
  } catch (err) {
    await pool.close();
    console.error(`smbdirect serve: cannot listen on ${host}:${port ?? 445}: ${describeError(err)}`);
    return EXIT.FAILURE;
  }
  console.log(`listening on ${host}:${listener.port} (verbs, ${workers} workers)`);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  console.log('stopping: closing connections');
  await listener.close();
  await pool.close();
  return EXIT.OK;
}

function serverProvider(server: SmbDirectServer): string {
  const p = server.provider as { name?: string; reason?: string };
  if (!p?.name) return 'provider unknown';
  return p.reason ? (p.reason.startsWith(p.name) ? p.reason : `${p.name}: ${p.reason}`) : p.name;
}
