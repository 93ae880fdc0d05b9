// Our SMB3 client (smbdirect/smb2 connect) next to the Linux kernel's cifs client, both against the
// kernel's ksmbd over SMB Direct, in the same VM boot, on the same device (rxe0, siw0), 1 MiB
// requests. In the VM only (ksmbd.ko/cifs.ko with SMB Direct, docs/smb2/kernel-peers.md):
//   npx tsc -p tsconfig.json && bash ci/softroce.sh bench/smb2-client.sh
// (also part of `npm run bench:softroce`). Prints a Markdown table with ratios (ours / cifs) and
// writes smb2-client.json to BENCH_RESULTS_DIR.
//
// What is timed, per client and device, SIZE MiB per transfer, best of REPS:
// - serial: 1 MiB O_DIRECT dd (cifs) / one 1 MiB handle.write or handle.read awaited at a time (ours);
// - pipelined: 8 MiB O_DIRECT dd, which cifs splits into 1 MiB requests sent together / 8 MiB
//   handle.write or handle.read with maxIoSize 1 MiB and window 8 (ours: 8 requests in flight).
// cifs runs in a dd child process (its page cache bypassed with O_DIRECT); ours in this process,
// its source and destination buffers in memory. Ours signs every request; cifs signs nothing (it
// does not offload I/O to RDMA on a signed session). Both move the bulk bytes by RDMA.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { connect } from '../src/smb2/index.js';
import { ok, run, startKsmbd } from '../test/softroce/ksmbd.js';

const arg = (name: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : undefined; };
const MiB = 1 << 20;
const SIZE = Number(arg('size-mib') ?? 64) * MiB;
const REPS = Number(arg('reps') ?? 2);
const USER = 'root';
const PASS = 'Bench.Pass1';
const DEVICES = [
  { name: process.env.SMBDIRECT_RXE_DEV ?? 'rxe0', ip: process.env.SMBDIRECT_RXE_IP ?? '10.99.0.1' },
  { name: process.env.SMBDIRECT_SIW_DEV ?? 'siw0', ip: process.env.SMBDIRECT_SIW_IP ?? '10.99.1.1' },
];

const dd = async (args: string[]) => (await ok('dd', args, 300_000)).ms;

const dropCaches = () => writeFileSync('/proc/sys/vm/drop_caches', '3');
const WORKLOADS = ['write 1 MiB, serial', 'read 1 MiB, serial', 'write 8 MiB, pipelined (1 MiB requests)', 'read 8 MiB, pipelined (1 MiB requests)'] as const;
type Rows = Record<(typeof WORKLOADS)[number], number>; // MB/s

async function best(once: () => Promise<number>): Promise<number> {
  let top = 0;
  for (let i = 0; i < REPS; i++) top = Math.max(top, SIZE / 1e6 / ((await once()) / 1000));
  return top;
}

async function cifs(ip: string, port: number, src: string, scratch: string): Promise<Rows> {
  const mnt = join(scratch, `mnt-${ip}`);
  mkdirSync(mnt, { recursive: true });
  await ok('mount', ['-t', 'cifs', '-o', `rdma,vers=3.1.1,port=${port},username=${USER},password=${PASS},actimeo=0`, `//${ip}/share`, mnt]);
  try {
    return {
      'write 1 MiB, serial': await best(() => dd([`if=${src}`, `of=${mnt}/s.bin`, 'bs=1M', `count=${SIZE / MiB}`, 'oflag=direct'])),
      'read 1 MiB, serial': await best(() => { dropCaches(); return dd([`if=${mnt}/s.bin`, 'of=/dev/null', 'bs=1M', 'iflag=direct']); }),
      'write 8 MiB, pipelined (1 MiB requests)': await best(() => dd([`if=${src}`, `of=${mnt}/p.bin`, 'bs=8M', `count=${SIZE / 8 / MiB}`, 'oflag=direct'])),
      'read 8 MiB, pipelined (1 MiB requests)': await best(() => { dropCaches(); return dd([`if=${mnt}/p.bin`, 'of=/dev/null', 'bs=8M', 'iflag=direct']); }),
    };
  } finally {
    await run('umount', [mnt]);
  }
}

async function ours(ip: string, port: number, data: Uint8Array): Promise<Rows & { rdmaBytes: number; inlineBytes: number }> {
  const c = await connect({ host: ip, port, share: 'share', username: USER, password: PASS, transport: 'rdma', provider: 'verbs', maxIoSize: MiB, window: 8 });
  try {
    const into = new Uint8Array(SIZE);
    const pass = async (name: string, write: boolean, bs: number) => {
      const h = await c.open(name, write ? 'w' : 'r');
      const t0 = performance.now();
      for (let at = 0; at < SIZE; at += bs) {
        if (write) await h.write(data, at, bs, at);
        else await h.read(into, at, bs, at);
      }
      const ms = performance.now() - t0;
      await h.close();
      return ms;
    };
    const rows = {
      'write 1 MiB, serial': await best(() => pass('s.bin', true, MiB)),
      'read 1 MiB, serial': await best(() => { dropCaches(); return pass('s.bin', false, MiB); }),
      'write 8 MiB, pipelined (1 MiB requests)': await best(() => pass('p.bin', true, 8 * MiB)),
      'read 8 MiB, pipelined (1 MiB requests)': await best(() => { dropCaches(); return pass('p.bin', false, 8 * MiB); }),
    };
    if (Buffer.compare(Buffer.from(into), Buffer.from(data)) !== 0) throw new Error('our client read back other bytes than it wrote');
    return { ...rows, rdmaBytes: c.stats.rdmaBytesRead + c.stats.rdmaBytesWritten, inlineBytes: c.stats.inlineBytesRead + c.stats.inlineBytesWritten };
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  if (process.env.SMBDIRECT_SOFTROCE !== '1') {
    console.error('bench/smb2-client.ts runs in the soft-RoCE VM: npx tsc -p tsconfig.json && bash ci/softroce.sh bench/smb2-client.sh');
    process.exit(2);
  }
  await ok('bash', ['ci/guest/kernel-smb.sh', 'load'], 120_000);
  const scratch = mkdtempSync('/tmp/smb2-client-bench-');
  const src = join(scratch, 'src.bin');
  const data = randomBytes(SIZE);
  writeFileSync(src, data);
  const ksmbd = await startKsmbd(USER, PASS);
  const lines = [
    `Our SMB3 client next to the kernel's cifs client, both against ksmbd over SMB Direct, same boot (${SIZE / MiB} MiB per transfer, best of ${REPS})`,
    '', '| device | workload | ours | cifs | ours / cifs |', '|---|---|---:|---:|---:|',
  ];
  const json: unknown[] = [];
  try {
    for (const d of DEVICES) {
      const k = await cifs(d.ip, ksmbd.port, src, scratch);
      const o = await ours(d.ip, ksmbd.port, data);
      console.log(`  ${d.name}: ours moved ${(o.rdmaBytes / MiB).toFixed(0)} MiB by RDMA, ${o.inlineBytes} B inline`);
      for (const w of WORKLOADS) {
        lines.push(`| ${d.name} | ${w} | ${o[w].toFixed(1)} MB/s | ${k[w].toFixed(1)} MB/s | ${(o[w] / k[w]).toFixed(2)}x |`);
        json.push({ device: d.name, workload: w, unit: 'MB/s', ours: o[w], cifs: k[w], ratio: o[w] / k[w] });
      }
      await run('sh', ['-c', `rm -rf ${ksmbd.dir}/*`]);
    }
  } finally {
    await ksmbd.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  console.log(`\n${lines.join('\n')}\n`);
  const outDir = process.env.BENCH_RESULTS_DIR ?? new URL('./results/', import.meta.url).pathname;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'smb2-client.json'), `${JSON.stringify({ date: new Date().toISOString(), sizeMiB: SIZE / MiB, reps: REPS, rows: json }, null, 2)}\n`);
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
