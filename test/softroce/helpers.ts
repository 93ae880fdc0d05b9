// Shared pieces of the VM suite (see rdma.ts), the guard that makes a soft-RoCE file fail loudly
// on a host instead of skipping, and what the hardening files need: deadlines that name what
// hung, commands run without blocking the event loop, descriptor counts and device state.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { it } from 'node:test';

import { within as withinMs } from '../support.js';
import { inVm, sleep } from './rdma.js';

export * from './rdma.js';

/** On a host (no VM) a soft-RoCE file fails loudly instead of skipping. */
export function requireVm(): boolean {
  if (inVm) return true;
  it('soft-RoCE tests run only inside the VM', () => {
    assert.fail('test/softroce runs only inside the soft-RoCE/soft-iWARP VM: use `npm run test:softroce`.');
  });
  return false;
}

// ---- hardening: deadlines, processes, device state -------------------------------

/** `p`, or a rejection naming `what` once `ms` have passed without it settling (traced). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withinMs(p, ms, what, () => trace(`deadline: ${what} (${ms} ms)`));
}

/** Waits until every promise has settled, at most `ms` for all: fails naming each one that hung.
 * Resolves with each one's settlement, by name. */
export async function settleAll(ps: Record<string, Promise<unknown>>, ms: number): Promise<Record<string, PromiseSettledResult<unknown>>> {
  const out: Record<string, PromiseSettledResult<unknown>> = {};
  const pending = new Set(Object.keys(ps));
  for (const [name, p] of Object.entries(ps)) {
    p.then((value) => { out[name] = { status: 'fulfilled', value }; }, (reason: unknown) => { out[name] = { status: 'rejected', reason }; })
      .finally(() => { pending.delete(name); trace(`settled: ${name}: ${outcome(out[name])}`); });
  }
  const end = Date.now() + ms;
  while (pending.size && Date.now() < end) await sleep(20);
  assert.equal(pending.size, 0, `never settled within ${ms} ms: ${[...pending].join(', ')}`);
  return out;
}

/** The error code of a settlement: 'fulfilled' for a success, else the reason's code (or message). */
export function outcome(r: PromiseSettledResult<unknown> | undefined): string {
  if (!r) return 'pending';
  if (r.status === 'fulfilled') return 'fulfilled';
  const e = r.reason as { code?: string; message?: string };
  return e?.code ?? `no code: ${e?.message ?? String(r.reason)}`;
}

/** Open file descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** This process's descriptors on RDMA character devices (/dev/infiniband/*: uverbs, rdma_cm). */
export function rdmaFds(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('/dev/infiniband/')) out.push(`${fd}->${target}`);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

export interface RunResult {
  code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number;
  /** Still running after the timeout: it was sent SIGKILL, and this is where it waited
   * (/proc/<pid>/stack: a task blocked in the kernel cannot die before it returns). */
  timedOut: boolean;
  stack?: string;
}

/** Runs a command without blocking the event loop (rdma_cm and completion events keep flowing
 * while it runs). After `timeoutMs` it resolves at once with `timedOut` and the task's kernel
 * stack, and sends the command SIGKILL. */
export function runCommand(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  const t0 = Date.now();
  trace(`run: ${cmd} ${args.join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => {
      let stack: string | undefined;
      try { stack = readFileSync(`/proc/${child.pid}/stack`, 'utf8'); } catch (err) { stack = `(no stack: ${(err as Error).message})`; }
      child.kill('SIGKILL');
      trace(`run: ${cmd} ${args.join(' ')}: still running after ${timeoutMs} ms, in\n${stack}`);
      resolve({ code: null, signal: null, stdout, stderr, ms: Date.now() - t0, timedOut: true, stack });
    }, timeoutMs);
    child.on('error', (err) => { stderr += String(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      trace(`run: ${cmd} ${args.join(' ')}: exit ${code ?? signal} after ${Date.now() - t0} ms`);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, timedOut: false });
    });
  });
}

/** The uverbs character device (/dev/infiniband/uverbsN) of an RDMA device, if it has one. */
export function uverbsOf(dev: string): string | undefined {
  try {
    for (const u of readdirSync('/sys/class/infiniband_verbs')) {
      try {
        if (readFileSync(`/sys/class/infiniband_verbs/${u}/ibdev`, 'utf8').trim() === dev) return `/dev/infiniband/${u}`;
      } catch { /* abi_version and the like */ }
    }
  } catch { /* no uverbs */ }
  return undefined;
}

/** The port's state word (ACTIVE, DOWN, ...), or undefined when the device is absent. */
export function portState(dev: string, port = 1): string | undefined {
  try {
    return readFileSync(`/sys/class/infiniband/${dev}/ports/${port}/state`, 'utf8').trim().split(/\s+/)[1];
  } catch {
    return undefined;
  }
}

/** Polls until the device's port is ACTIVE (true) or `ms` pass (false). */
export async function waitActive(dev: string, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (portState(dev) === 'ACTIVE') return true;
    await sleep(50);
  }
  return portState(dev) === 'ACTIVE';
}

/** The GID index of `ip`'s RoCE v2 GID on the device's port 1 (as ci/guest/lib.sh finds it). */
export function roceV2GidIndex(dev: string, ip: string): number | undefined {
  const hex = ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
  const want = `0000:0000:0000:0000:0000:ffff:${hex.slice(0, 4)}:${hex.slice(4)}`;
  for (let i = 0; i < 16; i++) {
    try {
      const gid = readFileSync(`/sys/class/infiniband/${dev}/ports/1/gids/${i}`, 'utf8').trim();
      const type = readFileSync(`/sys/class/infiniband/${dev}/ports/1/gid_attrs/types/${i}`, 'utf8').trim();
      if (gid === want && type === 'RoCE v2') return i;
    } catch { /* an empty slot */ }
  }
  return undefined;
}

const traceFile = process.env['SMBDIRECT_VMOUT'] ? `${process.env['SMBDIRECT_VMOUT']}/trace.log` : undefined;
const traceT0 = Date.now();
/** A line in $SMBDIRECT_VMOUT/trace.log at once (the test runner shows a file's output only as its
 * tests end: a hang shows nothing there). */
export function trace(msg: string): void {
  if (traceFile) appendFileSync(traceFile, `${new Date().toISOString()} +${Date.now() - traceT0}ms pid ${process.pid}: ${msg}\n`);
}

/** A shell in the background that, after `afterMs`, writes the kernel stacks of this process's
 * threads and of every running `rdma` command (and what `rdma resource show` says) to
 * $SMBDIRECT_VMOUT/stacks.log: the evidence when this thread itself blocks in a system call and no
 * timer of ours can fire. Returns a function that cancels it. */
export function stacksLater(afterMs: number): () => void {
  const out = process.env['SMBDIRECT_VMOUT'];
  if (!out) return () => {};
  const script = `sleep ${afterMs / 1000}; { date; for p in ${process.pid} $(pgrep -x rdma); do echo "== pid $p: $(tr '\\0' ' ' < /proc/$p/cmdline)"; ` +
    `for t in /proc/$p/task/*; do echo "-- $t ($(cat $t/comm))"; cat $t/stack; done; ls -l /proc/$p/fd | grep infiniband; done; ` +
    `timeout 5 rdma resource show; echo "== gdb: the main thread of ${process.pid}"; ` +
    `timeout 120 gdb -p ${process.pid} -batch -ex 'thread 1' -ex 'bt 40' 2>&1 | grep -v '^\\[New LWP' | tail -60; } >> ${out}/stacks.log 2>&1`;
  const child = spawn('bash', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  return () => { try { if (child.pid) process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
}
