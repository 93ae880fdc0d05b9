// The kernel's SMB3 server (ksmbd.ko with SMB Direct, ci/build-vm.sh; ksmbd-tools from backports)
// as a peer in the VM: its own config and user database under /run (the VM's root is read-only),
// its share on a tmpfs mounted at the same path in PID 1's root (where ksmbd's kernel threads
// resolve it) and in ours. Used by bench/smb2.ts and test/softroce/smb2-client.test.ts; the
// caller loads the modules first (ci/guest/kernel-smb.sh load).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';

export const KSMBD_DIR = '/run/smb2-ksmbd-share';
/** ci/setup-host.sh unpacks ksmbd-tools there (the package conflicts with samba's); else PATH. */
const TOOLS = '/opt/smbdirect/ksmbd-tools/usr/sbin';
const tool = (name: string) => (existsSync(`${TOOLS}/${name}`) ? `${TOOLS}/${name}` : name);
/** With an iWARP device present ksmbd listens on 5445 on every device. */
export const KSMBD_PORT = 5445;

/** A finished child process: its exit code, output, and wall time. */
export interface RunResult { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs `cmd` to its end (killed, and rejected, after `timeoutMs`). */
export function run(cmd: string, args: string[], timeoutMs = 300_000): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')}: still running after ${timeoutMs} ms`)); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, ms: performance.now() - t0 }); });
  });
}

/** run(), rejecting unless it exits 0 (with its output in the message). */
export async function ok(cmd: string, args: string[], timeoutMs?: number): Promise<RunResult> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Until an rdma_cm listener on `port` is (or is no longer) in the kernel's table. */
export async function waitListener(port: number, present = true): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const out = (await ok('rdma', ['resource', 'show', 'cm_id'])).stdout;
    if (out.split('\n').some((l) => l.includes('LISTEN') && l.includes(`:${port} `)) === present) return;
    await sleep(100);
  }
  throw new Error(`rdma_cm listener on ${port} ${present ? 'never appeared' : 'never went away'}`);
}

/** Starts ksmbd serving KSMBD_DIR as `share` to `user` (a Unix account that exists: root). */
export async function startKsmbd(user: string, password: string): Promise<{ dir: string; port: number; stop(): Promise<void> }> {
  const etc = '/run/smb2-ksmbd-etc';
  mkdirSync(etc, { recursive: true });
  mkdirSync(`/proc/1/root${KSMBD_DIR}`, { recursive: true });
  mkdirSync(KSMBD_DIR, { recursive: true });
  await ok('mount', ['--no-canonicalize', '-t', 'tmpfs', '-o', 'size=1G,mode=0777', 'tmpfs', `/proc/1/root${KSMBD_DIR}`]);
  await ok('mount', ['--no-canonicalize', '--bind', `/proc/1/root${KSMBD_DIR}`, KSMBD_DIR]);
  const conf = `${etc}/ksmbd.conf`, db = `${etc}/ksmbdpwd.db`;
  writeFileSync(conf, `[global]\n\tnetbios name = KSMBDVM\n\tserver signing = auto\n\tserver multi channel support = no\n` +
    `[share]\n\tpath = ${KSMBD_DIR}\n\tread only = no\n\tvalid users = ${user}\n`);
  rmSync(db, { force: true }); // a user added by an earlier run in this boot
  await ok(tool('ksmbd.adduser'), ['-P', db, '-C', conf, '-a', user, '-p', password]);
  const mountd = spawn(tool('ksmbd.mountd'), ['-n', '-C', conf, '-P', db], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  mountd.stdout.on('data', (d: Buffer) => { log += d; });
  mountd.stderr.on('data', (d: Buffer) => { log += d; });
  const exited = new Promise<void>((r) => mountd.once('close', () => r()));
  const unmount = async () => {
    await run('umount', [KSMBD_DIR]);
    await run('umount', [`/proc/1/root${KSMBD_DIR}`]);
  };
  try {
    await waitListener(KSMBD_PORT);
  } catch (err) {
    mountd.kill('SIGKILL');
    await unmount();
    throw new Error(`${(err as Error).message}; ksmbd.mountd said:\n${log}`);
  }
  return {
    dir: KSMBD_DIR, port: KSMBD_PORT,
    async stop() {
      await run(tool('ksmbd.control'), ['-s'], 60_000);
      await Promise.race([exited, sleep(30_000)]);
      await waitListener(KSMBD_PORT, false);
      await unmount();
    },
  };
}
