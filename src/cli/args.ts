// Command-line plumbing shared by the commands: exit codes, usage errors, option parsing.
import { parseArgs } from 'node:util';

import { resolveOptions } from '../smbdirect/options.js';

/** Exit codes (docs/cli.md). */
export const EXIT = Object.freeze({
  OK: 0,
  /** The work failed: no connection, a refused or unreachable address, a transfer error. */
  FAILURE: 1,
  /** Bad command line: unknown command or option, a value out of range. */
  USAGE: 2,
  /** Stopped by SIGINT/SIGTERM (after printing what was measured so far). */
  INTERRUPTED: 130,
});

/** A mistake on the command line: printed with a hint, exit code 2. */
export class UsageError extends Error {}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: boolean }>;

/** node:util parseArgs, strict, with its errors turned into UsageErrors. */
export function parse<T extends OptionSpec>(argv: string[], options: T): Record<keyof T, string | boolean | undefined> & { help?: boolean } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    return values as unknown as Record<keyof T, string | boolean | undefined> & { help?: boolean };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}

/** "4096", "4k", "1m", "1MiB", "8 MiB" -> bytes (binary multiples). */
export function parseSize(text: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`--${name}: '${text}' is not a size (e.g. 64, 4k, 1m)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const v = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`--${name}: '${text}' must be at least 1 byte`);
  return v;
}

/** "5", "5s", "500ms", "2m" -> milliseconds. */
export function parseDuration(text: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`--${name}: '${text}' is not a duration (e.g. 5s, 500ms)`);
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm'];
  if (!(ms > 0)) throw new UsageError(`--${name}: '${text}' must be more than 0`);
  return ms;
}

export function parseInteger(text: string, name: string, min: number, max: number): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min || v > max) throw new UsageError(`--${name}: '${text}' must be an integer in [${min}, ${max}]`);
  return v;
}

/** --credits: an integer the connection options accept (its buffers must fit maxRegisteredBytes). */
export function parseCredits(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const credits = parseInteger(text, 'credits', 3, 65535);
  try {
    resolveOptions({ credits });
  } catch (err) {
    throw new UsageError(`--credits ${credits}: ${(err as Error).message}`);
  }
  return credits;
}

export function parsePort(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseInteger(text, 'port', 0, 65535);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1 && Number.isInteger(n / 1024)) { n /= 1024; i++; }
  return `${n} ${units[i]}`;
}

/** One line for an error that ends a command: its code first, no stack. */
export function describeError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code && !String(e.message).includes(e.code) ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

/** Ctrl-C and SIGTERM abort the returned signal (instead of killing the process) until dispose(),
 * so a command can stop its work and still print what it measured. */
export function abortOnSignals(): { signal: AbortSignal; dispose(): void } {
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: abort.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** A latency in µs, as µs below a millisecond and ms above. */
export function formatMicros(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v.toFixed(1)} µs`;
}
