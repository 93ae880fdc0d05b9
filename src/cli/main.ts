// The `smbdirect` command: devices, serve, bench, demo, share, cp, ls. Exit codes in args.ts (EXIT) and
// docs/cli.md: 0 ok, 1 the work failed, 2 usage error, 130 interrupted.
import { readFileSync } from 'node:fs';

import { EXIT, UsageError, describeError } from './args.js';
import { benchCommand } from './bench.js';
import { demoCommand } from './demo.js';
import { devicesCommand } from './devices.js';
import { cpCommand, lsCommand } from './files.js';
import { serveCommand } from './serve.js';
import { shareCommand } from './share.js';

export const HELP = `Usage: smbdirect <command> [options]

SMB Direct ([MS-SMBD]) over RDMA for Node.js: verbs (RoCE, InfiniBand, iWARP NICs) or the
software iWARP provider over TCP where there is no RDMA device.

Commands:
  devices   RDMA devices, ports, GIDs, and which provider connections would use
  serve     an SMB Direct server for benchmarking (echo, sink, RDMA read/write)
  bench     measure a server: message rate, throughput, RDMA placement, latency
  demo      server and client in this process on loopback: a short run of each (npm start)
  share     serve a directory as an SMB3 share (TCP and SMB Direct)
  cp        copy a file to, from or between SMB3 servers (smb://user@host/share/path)
  ls        list a directory of an SMB3 share

Run \`smbdirect <command> --help\` for its options.
Exit codes: 0 ok, 1 the work failed (no connection, a transfer error), 2 usage error,
130 interrupted by Ctrl-C (after printing what was measured).`;

/** The version in the package.json above this file (dist/src/cli or src/cli). */
function packageVersion(): string {
  for (let dir = new URL('./', import.meta.url); dir.pathname !== '/'; dir = new URL('../', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'smbdirect') return pkg.version;
    } catch { /* not here */ }
  }
  return 'unknown';
}

const COMMANDS: Record<string, (argv: string[]) => number | Promise<number>> = {
  devices: devicesCommand, serve: serveCommand, bench: benchCommand, demo: demoCommand, share: shareCommand, cp: cpCommand, ls: lsCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP);
    return cmd === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (cmd === '--version' || cmd === '-v') {
    console.log(packageVersion());
    return EXIT.OK;
  }
  const run = COMMANDS[cmd];
  try {
    if (!run) throw new UsageError(`unknown command '${cmd}'`);
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const where = run === undefined ? '' : ` ${cmd}`;
      console.error(`smbdirect${where}: ${err.message}\nRun 'smbdirect${where} --help' for usage.`);
      return EXIT.USAGE;
    }
    console.error(`smbdirect ${cmd}: ${describeError(err)}`);
    return EXIT.FAILURE;
  }
}
