// smbdirect cp / ls: the SMB3 client (smbdirect/smb2 connect) from the command line. A remote path
// is smb://[user[:password]@]host[:port]/share/path; the password may also come from the
// SMBDIRECT_PASSWORD environment variable (kept out of the process list).
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

import { type Smb2Client, type Smb2ConnectOptions, connect } from '../smb2/client.js';
import { EXIT, UsageError } from './args.js';
import { PROVIDER_HELP, providerOption } from './provider.js';

export const CP_HELP = `Usage: smbdirect cp <source> <destination> [--transport auto|rdma|tcp] [--provider auto|verbs|iwarp-tcp] [--domain <d>]

Copies one file to, from or between SMB3 servers. Either side is a local path or
smb://[user[:password]@]host[:port]/share/path (the password may instead be in SMBDIRECT_PASSWORD).
Over SMB Direct the file's bytes move by RDMA. Shows a progress bar on a terminal and prints the
throughput when done.

Options:
  --transport <t>     rdma (SMB Direct), tcp, or auto: SMB Direct, else TCP (default auto)
  --provider <name>   ${PROVIDER_HELP}
  --domain <d>        the user's domain (default none)
  -h, --help          this help

Exit codes: 0 copied, 1 failed (no connection, a refused login, a missing file), 2 usage error,
130 interrupted by Ctrl-C.`;

export const LS_HELP = `Usage: smbdirect ls <smb://[user[:password]@]host[:port]/share[/dir]> [--transport auto|rdma|tcp] [--provider ...] [--domain <d>]

Lists a directory of an SMB3 share: type (d or -), size, modification time (UTC) and name.

Exit codes: 0 listed, 1 failed, 2 usage error.`;

export interface SmbUrl { host: string; port?: number; share: string; path: string; username: string; password?: string }

/** smb://[user[:password]@]host[:port]/share/path, or undefined for a local path. */
export function parseSmbUrl(text: string): SmbUrl | undefined {
  if (!/^smb:\/\//i.test(text)) return undefined;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`'${text}' is not an smb:// URL`);
  }
  const parts = decodeURIComponent(u.pathname).split('/').filter(Boolean);
  if (!u.hostname || parts.length === 0) throw new UsageError(`'${text}': smb://host/share[/path] needs a host and a share`);
  const port = u.port ? Number(u.port) : undefined;
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''), port, share: parts[0]!, path: parts.slice(1).join('/'),
    username: decodeURIComponent(u.username) || process.env.USER || 'guest', password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

function clientOptions(url: SmbUrl, o: Record<string, string | boolean | undefined>): Smb2ConnectOptions {
  const transport = (o.transport as string | undefined) ?? 'auto';
  if (transport !== 'auto' && transport !== 'rdma' && transport !== 'tcp') throw new UsageError(`--transport: auto, rdma or tcp, got '${transport}'`);
  const password = url.password ?? process.env.SMBDIRECT_PASSWORD;
  if (password === undefined) throw new UsageError(`no password for ${url.username}@${url.host}: put it in the URL or in SMBDIRECT_PASSWORD`);
  return {
    host: url.host, port: url.port, share: url.share, username: url.username, password, domain: o.domain as string | undefined,
    transport, provider: providerOption(o.provider as string | undefined),
  };
}

/** The options and the positional arguments (parseArgs, strict; its errors as UsageErrors). */
function parseWithPositionals(argv: string[]): { o: Record<string, string | boolean | undefined>; positional: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv, strict: true, allowPositionals: true,
      options: { transport: { type: 'string' }, provider: { type: 'string' }, domain: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    return { o: values, positional: positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Counts the bytes through it; on a TTY redraws a progress bar on stderr at most 10 times a second. */
class Progress extends Transform {
  done = 0;
  readonly #total: number | undefined;
  readonly #t0 = performance.now();
  #drawn = 0;
  readonly #tty = process.stderr.isTTY === true;

  constructor(total: number | undefined) {
    super();
    this.#total = total;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.done += chunk.length;
    this.push(chunk);
    const now = performance.now();
    if (this.#tty && now - this.#drawn > 100) {
      this.#drawn = now;
      this.draw(now);
    }
    cb();
  }

  draw(now = performance.now()): void {
    if (!this.#tty) return;
    const rate = this.done / Math.max(1e-3, (now - this.#t0) / 1000);
    const width = 30;
    const frac = this.#total ? Math.min(1, this.done / this.#total) : 0;
    const bar = this.#total ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width)}] ${(frac * 100).toFixed(0).padStart(3)}% ` : '';
    process.stderr.write(`\r${bar}${human(this.done)}${this.#total ? ` of ${human(this.#total)}` : ''}  ${human(rate)}/s   `);
  }

  summary(what: string): string {
    const s = (performance.now() - this.#t0) / 1000;
    if (this.#tty) process.stderr.write('\n');
    return `${what} ${this.done} bytes in ${s.toFixed(2)} s (${(this.done / 1e6 / Math.max(s, 1e-6)).toFixed(1)} MB/s)`;
  }
}

async function withClient<T>(url: SmbUrl, o: Record<string, string | boolean | undefined>, run: (c: Smb2Client) => Promise<T>): Promise<T> {
  const c = await connect(clientOptions(url, o));
  try {
    return await run(c);
  } finally {
    await c.close();
  }
}

export async function cpCommand(argv: string[]): Promise<number> {
  const { o, positional } = parseWithPositionals(argv);
  if (o.help) { console.log(CP_HELP); return EXIT.OK; }
  if (positional.length !== 2) throw new UsageError('give a source and a destination');
  const [srcText, dstText] = positional as [string, string];
  const src = parseSmbUrl(srcText), dst = parseSmbUrl(dstText);
  if (!src && !dst) throw new UsageError('one side must be an smb:// URL (for local copies use cp)');
  if (src && !src.path) throw new UsageError(`${srcText}: name a file inside the share`);
  // a destination naming a share (or ending in /) gets the source's file name
  const srcName = (src ? src.path : srcText).split('/').filter(Boolean).pop()!;
  if (dst && (!dst.path || dstText.endsWith('/'))) dst.path = dst.path ? `${dst.path}/${srcName}` : srcName;
  const clients: Smb2Client[] = [];
  let progress: Progress | undefined;
  const interrupted = new Promise<'interrupted'>((r) => process.once('SIGINT', () => r('interrupted')));
  try {
    const open = async (url: SmbUrl) => { const c = await connect(clientOptions(url, o)); clients.push(c); return c; };
    const sc = src ? await open(src) : undefined;
    const dc = dst ? (src && dst.host === src.host && dst.port === src.port && dst.share === src.share && dst.username === src.username ? sc! : await open(dst)) : undefined;
    const total = sc ? (await sc.stat(src!.path)).size : statSync(srcText).size;
    progress = new Progress(total);
    const input = sc ? sc.createReadStream(src!.path) : createReadStream(srcText, { highWaterMark: 4 * 1024 * 1024 });
    const output = dc ? dc.createWriteStream(dst!.path) : createWriteStream(dstText);
    const copied = pipeline(input, progress, output);
    const how = [sc, dc].filter(Boolean).map((c) => c!.transport).join('/');
    if ((await Promise.race([copied.then(() => 'done' as const), interrupted])) === 'interrupted') {
      input.destroy();
      console.error(progress.summary(`interrupted after`));
      return EXIT.INTERRUPTED;
    }
    console.log(progress.summary(`copied (${how})`));
    return EXIT.OK;
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }
}

export async function lsCommand(argv: string[]): Promise<number> {
  const { o, positional } = parseWithPositionals(argv);
  if (o.help) { console.log(LS_HELP); return EXIT.OK; }
  if (positional.length !== 1) throw new UsageError('give one smb:// URL');
  const url = parseSmbUrl(positional[0]!);
  if (!url) throw new UsageError(`'${positional[0]}' is not an smb:// URL`);
  const entries = await withClient(url, o, (c) => c.readdir(url.path || '.', { withFileTypes: true }));
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const when = new Date(e.stats.mtimeMs).toISOString().replace('T', ' ').slice(0, 19);
    console.log(`${e.isDirectory() ? 'd' : '-'} ${String(e.stats.size).padStart(14)} ${when} ${e.name}`);
  }
  return EXIT.OK;
}
