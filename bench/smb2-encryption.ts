// npm run bench:smb2-encryption: what SMB3 encryption costs the server, in one process: 1 MiB
// WRITE and READ (inline, as over TCP) on an encrypted session (AES-128-CCM, what 3.0.2 agrees)
// next to the same on a plain one, both through `attach` (no transport), so the rows are the
// server's work, the AEAD both ways included (the client's side runs in this process too); and the
// AEAD alone per cipher next to a copy of the same bytes. Prints a Markdown table (kept in
// bench/README.md) and writes bench/results/smb2-encryption.json.
// Usage: node --import tsx bench/smb2-encryption.ts [--mib N]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { smb2 } from '../framing/index.js';
import { createServer } from '../src/smb2/index.js';
import { SessionCipher } from '../src/smb2/encryption.js';
import { type TestSession, attachClient, testSession } from '../test/support/smb2-client.js';

const arg = process.argv.indexOf('--mib');
const MIB = arg > 0 ? Number(process.argv[arg + 1]) : 256;
const SIZE = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'smb2-enc-bench-'));
const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
const data = randomBytes(SIZE);

function ok(m: Uint8Array, what: string): Uint8Array {
  const status = smb2.decodeSmb2Header(m).status;
  if (status !== smb2.STATUS_SUCCESS) throw new Error(`${what}: ${smb2.ntstatusName(status)}`);
  return m;
}

/** MB/s of 1 MiB WRITEs then READs of one file on a session. */
async function io(encrypt: boolean): Promise<{ write: number; read: number }> {
  const { conn, rpc } = attachClient(server);
  const s: TestSession = await testSession(rpc, { user: 'alice', password: 'secret', share: 'share', encrypt });
  if (encrypt !== (s.cipher !== undefined)) throw new Error('the session is not what was asked');
  const hdr = () => ({ messageId: s.nextId(16), creditCharge: 16, credits: 32, sessionId: s.sessionId, treeId: s.treeId });
  const f = smb2.decodeSmb2CreateResponse(ok(await s.rpc(smb2.encodeSmb2CreateRequest({
    header: { messageId: s.nextId(), credits: 32, sessionId: s.sessionId, treeId: s.treeId }, name: `f-${encrypt}.bin`, desiredAccess: 0x0012019f,
    createDisposition: smb2.FILE_DISPOSITION.OVERWRITE_IF,
  })), 'CREATE')).fileId;
  const run = async (op: (i: number) => Promise<unknown>) => {
    for (let i = 0; i < 8; i++) await op(i);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < MIB; i++) await op(i);
    return (MIB * SIZE) / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const write = await run(async (i) => ok(await s.rpc(smb2.encodeSmb2WriteRequest({ header: hdr(), fileId: f, offset: BigInt((i % 64) * SIZE), data })), 'WRITE'));
  const read = await run(async (i) => ok(await s.rpc(smb2.encodeSmb2ReadRequest({ header: hdr(), fileId: f, offset: BigInt((i % 64) * SIZE), length: SIZE })), 'READ'));
  await conn.end();
  return { write, read };
}

/** MB/s of `op` on 1 MiB, MIB times. */
function rate(op: () => unknown): number {
  for (let i = 0; i < 8; i++) op();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < MIB; i++) op();
  return (MIB * SIZE) / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
}

interface Row { workload: string; value: number; reference: string; referenceValue: number }
const rows: Row[] = [];
const plain = await io(false);
const sealed = await io(true);
rows.push({ workload: '1 MiB WRITE, encrypted session (AES-128-CCM)', value: sealed.write, reference: 'the same, plain session', referenceValue: plain.write });
rows.push({ workload: '1 MiB READ, encrypted session (AES-128-CCM)', value: sealed.read, reference: 'the same, plain session', referenceValue: plain.read });
const copy = rate(() => Uint8Array.from(data));
for (const [name, cipher] of [['AES-128-GCM', smb2.SMB2_CIPHER.AES_128_GCM], ['AES-128-CCM', smb2.SMB2_CIPHER.AES_128_CCM], ['AES-256-GCM', smb2.SMB2_CIPHER.AES_256_GCM], ['AES-256-CCM', smb2.SMB2_CIPHER.AES_256_CCM]] as const) {
  const c = new SessionCipher(randomBytes(16), 0x311, cipher, randomBytes(64));
  rows.push({ workload: `seal 1 MiB, ${name}`, value: rate(() => c.encrypt(data, 1n)), reference: 'a copy of 1 MiB', referenceValue: copy });
}
rmSync(dir, { recursive: true, force: true });
await server.close();

const lines = [
  `SMB3 encryption, ${MIB} MiB per row, one request at a time (${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}):`,
  '',
  '| workload | MB/s | reference (same process) | MB/s | ratio |',
  '|---|---:|---|---:|---:|',
  ...rows.map((r) => `| ${r.workload} | ${r.value.toFixed(0)} | ${r.reference} | ${r.referenceValue.toFixed(0)} | ${(r.value / r.referenceValue).toFixed(2)}x |`),
];
console.log(lines.join('\n'));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/smb2-encryption.json', import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), mib: MIB, rows }, null, 2)}\n`);
