// Helpers shared by the host and VM suites: deterministic bytes, awaitable completions of a
// provider endpoint (smbdirect/providers), and the `smbdirect` command run as a process.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import type { Completion, RdmaEndpoint } from '../src/providers/index.js';

/** Deterministic bytes for content checks (xorshift32 from a seed). */
export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** `p`, or a rejection naming `what` once `ms` have passed without it settling (the timer does
 * not outlive the race); `onTimeout` runs first when it fires. */
export function within<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { onTimeout?.(); reject(new Error(`${what} did not settle within ${ms} ms`)); }, ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** Collects an endpoint's completions; take(wrId) awaits one, ok(wrId) also wants 'success'. */
export class Wcs {
  all: Completion[] = [];
  private wake?: () => void;
  constructor(ep: RdmaEndpoint, private readonly timeoutMs = 5000) {
    ep.onCompletions((batch) => { for (const c of batch) this.all.push(c); this.wake?.(); });
  }
  async take(wrId: number, ms = this.timeoutMs): Promise<Completion> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.all.findIndex((c) => c.wrId === wrId);
      if (i >= 0) return this.all.splice(i, 1)[0]!;
      if (Date.now() > end) throw new Error(`no completion ${wrId}: ${JSON.stringify(this.all)}`);
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 20); });
    }
  }
  async ok(wrId: number, ms = this.timeoutMs): Promise<Completion> {
    const c = await this.take(wrId, ms);
    assert.equal(c.status, 'success', JSON.stringify(c));
    return c;
  }
}

/** bin/smbdirect.js (it runs the built dist/). */
export const CLI = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../bin/smbdirect.js' : '../bin/smbdirect.js', import.meta.url));

export interface CliRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs `smbdirect <args>` to its end (killed after `ms`); `onStderr` sees stderr as it grows. */
export async function runCli(args: string[], opts: { ms?: number; onStderr?: (text: string, child: ChildProcess) => void } = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; opts.onStderr?.(stderr, child); });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.ms ?? 30_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

/** Starts `smbdirect serve <args>` and waits for its "listening on" line; returns the port. */
export async function startServe(args: string[], provider: string): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args, '--port', '0', '--provider', provider], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  for (let i = 0; i < 300; i++) {
    const m = new RegExp(`listening on [^ ]+:(\\d+) \\(${provider}`).exec(out);
    if (m) return { child, port: Number(m[1]), output: () => out };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`serve did not print its address: ${out}`);
}

/**
 * Property: every one-byte mutation of `base`, and every truncation of it, either decodes or fails
 * with an error `accept` approves (a decoder's typed error); anything else fails the test.
 */
export function mutationsDecodeOrFail(base: Uint8Array, decode: (b: Uint8Array) => unknown, accept: (err: unknown) => void, seed: number, numRuns = 3000): void {
  fc.assert(fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: base.length }), (at, v, cut) => {
    const m = Uint8Array.from(base);
    m[at] = v;
    for (const b of [m, m.subarray(0, cut)]) {
      try {
        decode(b);
      } catch (err) {
        accept(err);
      }
    }
  }), { seed, numRuns });
}

/** Reads RFC 1002-framed SMB2 messages from a socket: each call resolves with the next one. */
export function tcpMessages(sock: import('node:net').Socket): () => Promise<Uint8Array> {
  let buf = Buffer.alloc(0);
  return async () => {
    for (;;) {
      if (buf.length >= 4 && buf.length >= 4 + buf.readUIntBE(1, 3)) {
        const n = buf.readUIntBE(1, 3);
        const m = buf.subarray(4, 4 + n);
        buf = buf.subarray(4 + n);
        return m;
      }
      const [d] = (await once(sock, 'data')) as [Buffer];
      buf = Buffer.concat([buf, d]);
    }
  };
}

