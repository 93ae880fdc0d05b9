// Our SMB3 client (connect of smbdirect/smb2) against the kernel's ksmbd over SMB Direct: ksmbd.ko
// built with SMB Direct serves a tmpfs share; the client connects over rxe0 and siw0 with the
// verbs provider and over the software iWARP provider to siw0 (ksmbd listens on 5445 on every
// device when an iWARP one is present). On each: readdir, mkdir, 64 MiB written and read back
// byte-identical with every bulk byte moved by ksmbd's RDMA Read/Write into our per-I/O
// registrations (the client's counters and its SMB Direct connection's), a range copied through
// createReadStream/createWriteStream, rename, rm, stat, every
// response signed and verified; a wrong password is STATUS_LOGON_FAILURE and a missing file
// ENOENT, as typed errors. Nothing leaks: registrations, queue pairs, fds.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';

import { connect } from '../../src/smb2/index.js';
import { DEVICES, expectProcessCountsBack, processCounts, requireVm, runCommand, type Counts } from './helpers.js';
import { KSMBD_DIR, startKsmbd } from './ksmbd.js';

const MiB = 1 << 20;
const USER = 'root'; // ksmbd-tools maps a user to a Unix account: one that exists in the read-only root
const PASS = 'Client.Pass1';
const rxe = DEVICES.find((d) => d.kind === 'RoCE')!;
const siw = DEVICES.find((d) => d.kind === 'iWARP')!;
const PATHS = [
  { name: `${rxe.name} (RoCE, verbs provider)`, ip: rxe.ip, provider: 'verbs' as const },
  { name: `${siw.name} (iWARP, verbs provider)`, ip: siw.ip, provider: 'verbs' as const },
  { name: `${siw.name} (iWARP, software iWARP provider)`, ip: siw.ip, provider: 'iwarp-tcp' as const },
];
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

if (requireVm()) {
  describe('our SMB3 client against the kernel\'s ksmbd over SMB Direct', () => {
    let ksmbd: Awaited<ReturnType<typeof startKsmbd>>;
    let ours: Counts;
    before(async () => {
      const r = await runCommand('bash', ['ci/guest/kernel-smb.sh', 'load'], 120_000);
      assert.equal(r.code, 0, `kernel-smb.sh load: ${r.stderr}${r.stdout}`);
      ksmbd = await startKsmbd(USER, PASS);
      // librdmacm keeps a protection domain per device it has used for the life of the process:
      // one connection on each device first, then the baseline
      for (const p of PATHS) await (await connect({ host: p.ip, port: ksmbd.port, share: 'share', username: USER, password: PASS, transport: 'rdma', provider: p.provider })).close();
      ours = processCounts();
    });
    after(async () => {
      await ksmbd?.stop();
      await expectProcessCountsBack(ours, 'smb2-client.test', 30_000);
    });

    for (const p of PATHS) {
      it(`${p.name}: files, directories and 64 MiB both ways by RDMA, signed`, async () => {
        const c = await connect({ host: p.ip, port: ksmbd.port, share: 'share', username: USER, password: PASS, transport: 'rdma', provider: p.provider });
        try {
          assert.equal(c.transport, 'rdma');
          assert.ok(c.signing, 'the session signs and every response was verified');
          const top = `c-${p.provider}-${p.ip.replace(/\./g, '-')}`;
          await c.mkdir(`${top}/sub`, { recursive: true });
          await c.writeFile(`${top}/small.txt`, 'hello ksmbd');
          assert.deepEqual((await c.readdir(top)).sort(), ['small.txt', 'sub']);
          const data = randomBytes(64 * MiB);
          await c.writeFile(`${top}/big.bin`, data);
          // ksmbd's own view of the file, then ours read back
          assert.equal(sha(readFileSync(join(KSMBD_DIR, top, 'big.bin'))), sha(data), 'on ksmbd\'s share');
          const back = await c.readFile(`${top}/big.bin`);
          assert.equal(sha(back), sha(data), 'read back');
          assert.equal(c.stats.rdmaBytesWritten, 64 * MiB, 'every written byte by RDMA (ksmbd read them from our registrations)');
          assert.equal(c.stats.rdmaBytesRead, 64 * MiB, 'every read byte by RDMA (ksmbd wrote them into our registrations)');
          const conn = c.smbDirect!.stats();
          assert.equal(conn.registrationsInUse, 0, 'every per-I/O registration released');
          // siw reports a remote invalidation to kernel consumers only (README, Limits): there our
          // QP never sees one, and the client releases its tokens itself
          if (!(p.provider === 'verbs' && p.ip === siw.ip)) assert.ok(conn.remoteInvalidations > 0, 'ksmbd invalidated our tokens with its responses (RDMA_V1_INVALIDATE)');
          console.log(`${p.name}: ${JSON.stringify(c.stats)}, remote invalidations ${conn.remoteInvalidations}`);
          const st = await c.stat(`${top}/big.bin`);
          assert.equal(st.size, 64 * MiB);
          // streams: a copy on the server through createReadStream and createWriteStream
          await pipeline(c.createReadStream(`${top}/big.bin`, { start: MiB, end: 9 * MiB - 1 }), c.createWriteStream(`${top}/part.bin`));
          assert.equal(sha(readFileSync(join(KSMBD_DIR, top, 'part.bin'))), sha(data.subarray(MiB, 9 * MiB)), 'a streamed range');
          await c.rename(`${top}/small.txt`, `${top}/sub/moved.txt`);
          assert.equal(String(await c.readFile(`${top}/sub/moved.txt`)), 'hello ksmbd');
          await assert.rejects(c.readFile(`${top}/small.txt`), { name: 'Smb2Error', code: 'ENOENT' });
          await c.rm(top, { recursive: true });
          assert.ok(!(await c.readdir('.')).includes(top));
        } finally {
          await c.close();
        }
        await assert.rejects(connect({ host: p.ip, port: ksmbd.port, share: 'share', username: USER, password: 'wrong', transport: 'rdma', provider: p.provider }),
          { name: 'Smb2Error', code: 'EACCES', status: 0xc000006d });
      });
    }
  });
}
