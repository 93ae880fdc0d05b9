// The SMB3 server (smbdirect/smb2) through the Linux kernel's cifs client over SMB Direct, next to
// the kernel's own SMB3 server (ksmbd) in the same VM boot, on the same device, with the same
// client and mount options. In the VM only (cifs.ko/ksmbd.ko with SMB Direct, docs/smb2/kernel-peers.md):
//   npx tsc -p tsconfig.json && bash ci/softroce.sh bench/smb2.sh
// (also part of `npm run bench:softroce`). Prints a Markdown table with ratios (ours / ksmbd) and
// writes smb2.json to BENCH_RESULTS_DIR (bench/results/ when copied back).
//
// What is timed, per server and device (mount -t cifs -o rdma,vers=3.1.1,actimeo=0; both shares on tmpfs):
// - 1 MiB O_DIRECT write / read of SIZE MiB with dd bs=1M: one request in flight (serial);
// - 8 MiB O_DIRECT write / read (dd bs=8M): cifs splits each into requests of its wsize/rsize and
//   sends them together (pipelined);
// - small files: FILES empty files created one by one (open O_CREAT + close), then stat'ed one by
//   one (actimeo=0: every stat asks the server), each by one shell process.
// The wall time of the dd or shell process; best of REPS (TCG noise is large). Our server runs in
// this process; every client operation runs in a child process.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { type Smb2Server, createServer } from '../src/smb2/index.js';
import { KSMBD_DIR, KSMBD_PORT, ok, run, startKsmbd } from '../test/softroce/ksmbd.js';

const arg = (name: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : undefined; };
const MiB = 1 << 20;
const SIZE = Number(arg('size-mib') ?? 64) * MiB;
const FILES = Number(arg('files') ?? 200);
const REPS = Number(arg('reps') ?? 2);
const USER = 'root'; // ksmbd-tools maps a user to a Unix account: one that exists in the read-only root
const PASS = 'Bench.Pass1';

interface Device { name: string; ip: string; ourPort: number }
const DEVICES: Device[] = [
  { name: process.env.SMBDIRECT_RXE_DEV ?? 'rxe0', ip: process.env.SMBDIRECT_RXE_IP ?? '10.99.0.1', ourPort: 445 },
  { name: process.env.SMBDIRECT_SIW_DEV ?? 'siw0', ip: process.env.SMBDIRECT_SIW_IP ?? '10.99.1.1', ourPort: 5445 },
];

interface Target { server: 'ours' | 'ksmbd'; device: Device; port: number; share: string; dir: string }

async function mount(t: Target, mnt: string): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  await ok('mount', ['-t', 'cifs', '-o', `rdma,vers=3.1.1,port=${t.port},username=${USER},password=${PASS},actimeo=0`, `//${t.device.ip}/${t.share}`, mnt], 120_000);
}

const dropCaches = () => writeFileSync('/proc/sys/vm/drop_caches', '3');

type Row = { workload: string; unit: 'MB/s' | 'ops/s'; value: number };

/** One server on one device: every workload, best of REPS. */
async function measure(t: Target, src: string, scratch: string): Promise<Row[]> {
  const mnt = join(scratch, `mnt-${t.server}-${t.device.name}`);
  await mount(t, mnt);
  const rows: Row[] = [];
  const best = async (workload: string, unit: Row['unit'], amount: number, once: () => Promise<number>) => {
    let top = 0;
    for (let i = 0; i < REPS; i++) {
      const ms = await once();
      top = Math.max(top, unit === 'MB/s' ? amount / 1e6 / (ms / 1000) : amount / (ms / 1000));
    }
    rows.push({ workload, unit, value: top });
    console.log(`  ${t.server} ${t.device.name}: ${workload}: ${top.toFixed(1)} ${unit}`);
  };
  const count = (bs: number) => String(SIZE / bs);
  try {
    await best('write 1 MiB, O_DIRECT, serial', 'MB/s', SIZE,
      async () => (await ok('dd', [`if=${src}`, `of=${mnt}/serial.bin`, 'bs=1M', `count=${count(MiB)}`, 'oflag=direct'])).ms);
    await best('read 1 MiB, O_DIRECT, serial', 'MB/s', SIZE,
      async () => { dropCaches(); return (await ok('dd', [`if=${mnt}/serial.bin`, 'of=/dev/null', 'bs=1M', 'iflag=direct'])).ms; });
    await best('write 8 MiB, O_DIRECT (split, pipelined)', 'MB/s', SIZE,
      async () => (await ok('dd', [`if=${src}`, `of=${mnt}/piped.bin`, 'bs=8M', `count=${count(8 * MiB)}`, 'oflag=direct'])).ms);
    await best('read 8 MiB, O_DIRECT (split, pipelined)', 'MB/s', SIZE,
      async () => { dropCaches(); return (await ok('dd', [`if=${mnt}/piped.bin`, 'of=/dev/null', 'bs=8M', 'iflag=direct'])).ms; });
    let rep = 0;
    await best(`create ${FILES} empty files`, 'ops/s', FILES, async () => {
      const d = `${mnt}/small${rep++}`;
      return (await ok('sh', ['-c', `mkdir ${d} && i=0; while [ $i -lt ${FILES} ]; do : > ${d}/f$i; i=$((i+1)); done`])).ms;
    });
    await best(`stat ${FILES} files`, 'ops/s', FILES,
      async () => (await ok('sh', ['-c', `i=0; while [ $i -lt ${FILES} ]; do [ -e ${mnt}/small0/f$i ] || exit 1; i=$((i+1)); done`])).ms);
  } finally {
    await run('umount', [mnt]);
  }
  return rows;
}

async function startOurs(d: Device, dir: string): Promise<Smb2Server> {
  const server = createServer({ shares: [{ name: 'share', path: dir }], users: { [USER]: PASS } });
  await server.listen({ transport: 'rdma', provider: 'verbs', host: d.ip, port: d.ourPort });
  return server;
}

async function main(): Promise<void> {
  if (process.env.SMBDIRECT_SOFTROCE !== '1') {
    console.error('bench/smb2.ts runs in the soft-RoCE VM: npx tsc -p tsconfig.json && bash ci/softroce.sh bench/smb2.sh');
    process.exit(2);
  }
  await ok('bash', ['ci/guest/kernel-smb.sh', 'load']);
  const scratch = mkdtempSync('/tmp/smb2-bench-');
  const src = join(scratch, 'src.bin');
  writeFileSync(src, randomBytes(SIZE));
  const results: Record<string, Record<string, Row[]>> = {};
  try {
    for (const d of DEVICES) {
      const dir = mkdtempSync(join(scratch, 'share-'));
      const server = await startOurs(d, dir);
      try {
        (results[d.name] ??= {}).ours = await measure({ server: 'ours', device: d, port: d.ourPort, share: 'share', dir }, src, scratch);
        const b = server.stats().bytes;
        console.log(`  ours ${d.name}: RDMA read ${(b.rdmaBytesRead / MiB).toFixed(0)} MiB, RDMA write ${(b.rdmaBytesWritten / MiB).toFixed(0)} MiB, inline ${b.inlineBytesRead + b.inlineBytesWritten} B`);
      } finally {
        await server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const ksmbd = await startKsmbd(USER, PASS);
    try {
      for (const d of DEVICES) {
        results[d.name]!.ksmbd = await measure({ server: 'ksmbd', device: d, port: KSMBD_PORT, share: 'share', dir: KSMBD_DIR }, src, scratch);
        await run('sh', ['-c', `rm -rf ${KSMBD_DIR}/*`]);
      }
    } finally {
      await ksmbd.stop();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  const lines = [
    `SMB3 through the kernel cifs client over SMB Direct: ours vs ksmbd, same boot (${SIZE / MiB} MiB per transfer, best of ${REPS})`,
    '',
    '| device | workload | ours | ksmbd | ours / ksmbd |',
    '|---|---|---:|---:|---:|',
  ];
  const json: unknown[] = [];
  for (const d of DEVICES) {
    const ours = results[d.name]!.ours!, theirs = results[d.name]!.ksmbd!;
    ours.forEach((o, i) => {
      const k = theirs[i]!;
      lines.push(`| ${d.name} | ${o.workload} | ${o.value.toFixed(1)} ${o.unit} | ${k.value.toFixed(1)} ${k.unit} | ${(o.value / k.value).toFixed(2)}x |`);
      json.push({ device: d.name, workload: o.workload, unit: o.unit, ours: o.value, ksmbd: k.value, ratio: o.value / k.value });
    });
  }
  console.log(`\n${lines.join('\n')}\n`);
  const outDir = process.env.BENCH_RESULTS_DIR ?? new URL('./results/', import.meta.url).pathname;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'smb2.json'), `${JSON.stringify({ date: new Date().toISOString(), sizeMiB: SIZE / MiB, files: FILES, reps: REPS, rows: json }, null, 2)}\n`);
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
