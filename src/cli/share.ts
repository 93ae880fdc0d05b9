// smbdirect share <dir>: serves a directory as an SMB3 share (smbdirect/smb2) over direct TCP and,
// where RDMA is possible, SMB Direct; prints what it listens on and the commands a Linux user types.
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';

import { createServer } from '../smb2/server.js';
import { EXIT, UsageError, describeError, parse, parseInteger } from './args.js';
import { PROVIDER_HELP, providerOption } from './provider.js';

export const SHARE_HELP = `Usage: smbdirect share <dir> [--name <share>] [--user <name>:<password>]... [--guest] [--read-only]
                       [--host <address>] [--port <n>] [--rdma-port <n>] [--provider auto|verbs|iwarp-tcp] [--no-rdma]

Serves <dir> as an SMB3 share (3.0, 3.0.2, 3.1.1; NTLMv2 sessions, signing) over direct TCP and
over SMB Direct, where bulk READ/WRITE data moves by RDMA. Every path stays inside <dir>.
Locks, change notification and named streams are not built yet (docs/smb2/README.md).

Options:
  --name <share>        the share's name (default: the directory's name)
  --user <name:pass>    a user and password (repeatable); without one, --guest is required
  --guest               admit anonymous and unknown users as guests
  --read-only           refuse every change
  --host <address>      address to listen on (default 127.0.0.1)
  --port <n>            direct TCP port (default 445; 0 picks a free one)
  --rdma-port <n>       SMB Direct port (default 445 on verbs, 5445 on iwarp-tcp; 0 picks a free one)
  --provider <name>     ${PROVIDER_HELP}
  --no-rdma             direct TCP only
  -h, --help            this help

Prints "listening on tcp <host>:<port>" (and "rdma ...") once ready, then the mount and smbclient
commands. Stops on Ctrl-C (SIGINT) or SIGTERM.
Exit codes: 0 stopped by a signal, 1 could not listen, 2 usage error.`;

export async function shareCommand(argv: string[]): Promise<number> {
  const dir = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  const o = parse(dir ? argv.slice(1) : argv, {
    name: { type: 'string' }, user: { type: 'string', multiple: true }, guest: { type: 'boolean' }, 'read-only': { type: 'boolean' },
    host: { type: 'string' }, port: { type: 'string' }, 'rdma-port': { type: 'string' }, provider: { type: 'string' }, 'no-rdma': { type: 'boolean' },
  });
  if (o.help) { console.log(SHARE_HELP); return EXIT.OK; }
  if (!dir) throw new UsageError('the directory to share is missing');
  const path = resolve(dir);
  try {
    if (!statSync(path).isDirectory()) throw new UsageError(`${dir} is not a directory`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${dir}: ${describeError(err)}`);
  }
  const name = (o.name as string | undefined) ?? path.split('/').filter(Boolean).pop() ?? 'share';
  if (!/^[A-Za-z0-9_.$-]{1,80}$/.test(name)) throw new UsageError(`--name ${JSON.stringify(name)}: letters, digits, _ . $ - only`);
  const users: Record<string, string> = {};
  for (const u of (o.user as unknown as string[] | undefined) ?? []) {
    const at = u.indexOf(':');
    if (at <= 0) throw new UsageError(`--user ${JSON.stringify(u)}: expected <name>:<password>`);
    users[u.slice(0, at)] = u.slice(at + 1);
  }
  const guest = o.guest === true;
  if (!guest && Object.keys(users).length === 0) throw new UsageError('give --user <name>:<password> (or --guest)');
  const host = (o.host as string | undefined) ?? '127.0.0.1';
  const port = o.port === undefined ? 445 : parseInteger(o.port as string, 'port', 0, 65535);
  const rdmaPort = o['rdma-port'] === undefined ? undefined : parseInteger(o['rdma-port'] as string, 'rdma-port', 0, 65535);
  const provider = providerOption(o.provider as string | undefined);
  const server = createServer({ shares: [{ name, path, readOnly: o['read-only'] === true }], users, guest });
  server.on('error', (err: Error) => console.error(`smbdirect share: ${describeError(err)}`));
  let tcp: { host: string; port: number };
  try {
    tcp = await server.listen({ transport: 'tcp', host, port });
  } catch (err) {
    console.error(`smbdirect share: cannot listen on tcp ${host}:${port}: ${describeError(err)}`);
    return EXIT.FAILURE;
  }
  console.log(`listening on tcp ${tcp.host}:${tcp.port}`);
  if (o['no-rdma'] !== true) {
    try {
      const r = await server.listen({ transport: 'rdma', host, port: rdmaPort, provider });
      console.log(`listening on rdma ${r.host}:${r.port}`);
      console.log(`mount:     mount -t cifs //${host}/${name} /mnt -o rdma,vers=3.1.1,port=${r.port},username=${Object.keys(users)[0] ?? 'guest'}`);
    } catch (err) {
      console.log(`no SMB Direct listener: ${describeError(err)}`);
    }
  }
  console.log(`smbclient: smbclient //${host}/${name} -p ${tcp.port} -U ${Object.keys(users)[0] ?? 'guest'}`);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  console.log('stopping');
  await server.close();
  return EXIT.OK;
}
