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
