// Samba's own client tools from Debian's packages, run as the tests' real peers.
import { spawn } from 'node:child_process';

/** Runs smbclient with `args`; resolves with its exit code and output, stdout and stderr together
 * (killed after `timeoutMs`; a spawn failure, smbclient missing, shows in the output). */
export function smbclient(args: string[], o: { cwd?: string; timeoutMs: number }): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('smbclient', args, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs);
    p.on('error', (err) => { out += String(err); });
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

/**
 * Samba's smbd from Debian's `samba` package, private to the test: its own config, state and share
 * under a temporary directory, on 127.0.0.1 at a free port, one user (`root`, the account the
 * tests run as: smbd maps a user to a Unix account) with `password`. Rejects, with smbd's output,
 * if it does not listen within 20 s. `stop()` kills it and removes everything.
 */
export async function startSmbd(password: string): Promise<{ port: number; share: string; user: string; stop(): Promise<void> }> {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const net = await import('node:net');
  const port = await new Promise<number>((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as import('node:net').AddressInfo).port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
  const dir = mkdtempSync(join(tmpdir(), 'smbd-'));
  for (const d of ['lock', 'state', 'cache', 'private', 'pid', 'ncalrpc', 'share']) mkdirSync(join(dir, d));
  const conf = join(dir, 'smb.conf');
  writeFileSync(conf, [
    '[global]', `smb ports = ${port}`, 'interfaces = 127.0.0.1', 'bind interfaces only = yes',
    ...['lock', 'state', 'cache', 'pid', 'ncalrpc'].map((d) => `${d === 'ncalrpc' ? 'ncalrpc dir' : `${d} directory`} = ${join(dir, d)}`),
    `private dir = ${join(dir, 'private')}`, `log file = ${join(dir, 'log.%m')}`, `passdb backend = tdbsam:${join(dir, 'private', 'passdb.tdb')}`,
    'server role = standalone server', 'server min protocol = SMB3_00', 'map to guest = never', 'load printers = no', 'printing = bsd',
    'printcap name = /dev/null', 'disable spoolss = yes',
    '[share]', `path = ${join(dir, 'share')}`, 'read only = no', '',
  ].join('\n'));
  const run = (cmd: string, args: string[], input?: string) => new Promise<string>((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${out}`))));
    p.stdin.end(input);
  });
  await run('smbpasswd', ['-c', conf, '-s', '-a', 'root'], `${password}\n${password}\n`);
  // its own session (detached): smbd signals its whole process group when it stops, which must
  // not be the test runner's
  const smbd = spawn('smbd', ['--foreground', '--no-process-group', `--configfile=${conf}`, '--debug-stdout', '-d', '1'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  smbd.stdout.on('data', (d) => { out += d; });
  smbd.stderr.on('data', (d) => { out += d; });
  const exited = new Promise<void>((r) => smbd.once('close', () => r()));
  const stop = async () => {
    smbd.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    smbd.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (i >= 200 || smbd.exitCode !== null) {
      await stop();
      throw new Error(`smbd did not listen on 127.0.0.1:${port} within 20 s; it said:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, share: 'share', user: 'root', stop };
}
