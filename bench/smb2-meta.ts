// npm run bench:smb2-meta: what named streams (a sidecar file per stream) and stored security
// descriptors (kept in memory, checked at CREATE) cost next to the plain path, in one process: the
// SMB3 server driven through `attach` (no transport), so the rows are the server's own work and
// the file system's. Prints a Markdown table (kept in bench/README.md) and writes
// bench/results/smb2-meta.json. Usage: node --import tsx bench/smb2-meta.ts [--ops N]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { smb2 } from '../framing/index.js';
import { createServer } from '../src/smb2/index.js';
import { type TestSession, attachClient, testSession } from '../test/support/smb2-client.js';

const arg = process.argv.indexOf('--ops');
const OPS = arg > 0 ? Number(process.argv[arg + 1]) : 2000;
const dir = mkdtempSync(join(tmpdir(), 'smb2-meta-bench-'));
const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
const { conn, rpc } = attachClient(server);
const s: TestSession = await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' });
const hdr = (charge = 1) => ({ messageId: s.nextId(charge), credits: charge + 1, sessionId: s.sessionId, treeId: s.treeId });
const data = new Uint8Array(4096).fill(7);

function ok(m: Uint8Array, what: string): Uint8Array {
  const status = smb2.decodeSmb2Header(m).status;
  if (status !== smb2.STATUS_SUCCESS) throw new Error(`${what}: ${smb2.ntstatusName(status)}`);
  return m;
}
async function open(name: string, disposition: number, access = 0x0012019f, contexts: smb2.CreateContext[] = []): Promise<smb2.Smb2FileId> {
  return smb2.decodeSmb2CreateResponse(ok(await rpc(smb2.encodeSmb2CreateRequest({
    header: hdr(), name, desiredAccess: access, shareAccess: 7, createDisposition: disposition, contexts,
  })), `CREATE ${name}`)).fileId;
}
const close = async (fileId: smb2.Smb2FileId) => ok(await rpc(smb2.encodeSmb2CloseRequest({ header: hdr(), fileId })), 'CLOSE');

/** Operations per second of `op`, run OPS times one after another. */
async function perSecond(op: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(50, OPS); i++) await op(i); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < OPS; i++) await op(i);
  return OPS / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const writeNew = async (name: string) => {
  const f = await open(name, smb2.FILE_DISPOSITION.OVERWRITE_IF);
  ok(await rpc(smb2.encodeSmb2WriteRequest({ header: hdr(), fileId: f, offset: 0n, data })), 'WRITE');
  await close(f);
};
const readBack = async (name: string) => {
  const f = await open(name, smb2.FILE_DISPOSITION.OPEN, 0x00120089);
  ok(await rpc(smb2.encodeSmb2ReadRequest({ header: hdr(), fileId: f, offset: 0n, length: data.length })), 'READ');
  await close(f);
};

interface Row { workload: string; value: number; reference: string; referenceValue: number }
const rows: Row[] = [];

// 1-2: a named stream's data next to a file's own
await writeNew('base.txt');
rows.push({ workload: 'open, write 4 KiB, close: a named stream', value: await perSecond((i) => writeNew(`base.txt:s${i % 64}`)),
  reference: 'the same on files', referenceValue: await perSecond((i) => writeNew(`f${i % 64}.txt`)) });
rows.push({ workload: 'open, read 4 KiB, close: a named stream', value: await perSecond((i) => readBack(`base.txt:s${i % 64}`)),
  reference: 'the same on files', referenceValue: await perSecond((i) => readBack(`f${i % 64}.txt`)) });

// 3: FileStreamInformation of a file with 64 streams next to one with none
const withStreams = await open('base.txt', smb2.FILE_DISPOSITION.OPEN, 0x80);
const plain = await open('f0.txt', smb2.FILE_DISPOSITION.OPEN, 0x80);
const streamInfo = (fileId: smb2.Smb2FileId) => async () => ok(await rpc(smb2.encodeSmb2QueryInfoRequest({
  header: hdr(), infoType: smb2.SMB2_INFO.FILE, infoClass: 22, outputBufferLength: 65536, fileId,
})), 'QUERY_INFO');
rows.push({ workload: 'FileStreamInformation: 64 named streams', value: await perSecond(streamInfo(withStreams)),
  reference: 'a file with none', referenceValue: await perSecond(streamInfo(plain)) });

// 4: CREATE of a file with a stored DACL (checked) next to one without (not checked)
const me = smb2.sidFromString(`S-1-22-1-${process.getuid?.() ?? 0}`);
const sd = smb2.encodeSecurityDescriptor({ control: smb2.SE_CONTROL.DACL_PRESENT, owner: me,
  // seven ACEs for others, then ours: the check walks all eight
  dacl: smb2.encodeAcl([
    ...Array.from({ length: 7 }, (_, i) => ({ type: smb2.ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: 0x1f01ff, sid: smb2.sidFromString(`S-1-5-21-1-2-3-${1000 + i}`) })),
    { type: smb2.ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: 0x1f01ff, sid: me },
  ]) });
await close(await open('guarded.txt', smb2.FILE_DISPOSITION.OVERWRITE_IF, 0x0012019f | 0x40000, [{ name: smb2.CREATE_CONTEXT.SD_BUFFER, data: sd }]));
const openClose = (name: string) => async () => close(await open(name, smb2.FILE_DISPOSITION.OPEN, 0x00120089));
rows.push({ workload: 'open, close: a file with a stored 8-ACE DACL (checked)', value: await perSecond(openClose('guarded.txt')),
  reference: 'a file without one', referenceValue: await perSecond(openClose('f1.txt')) });

// 5: QUERY_INFO of a stored descriptor next to the one made from the file's owner and mode
const guarded = await open('guarded.txt', smb2.FILE_DISPOSITION.OPEN, 0x20000);
const unguarded = await open('f1.txt', smb2.FILE_DISPOSITION.OPEN, 0x20000);
const sdQuery = (fileId: smb2.Smb2FileId) => async () => ok(await rpc(smb2.encodeSmb2QueryInfoRequest({
  header: hdr(), infoType: smb2.SMB2_INFO.SECURITY, infoClass: 0, outputBufferLength: 65536, fileId, additionalInformation: 7,
})), 'QUERY_INFO security');
rows.push({ workload: 'QUERY_INFO security: a stored descriptor', value: await perSecond(sdQuery(guarded)),
  reference: 'one made from owner and mode (a stat)', referenceValue: await perSecond(sdQuery(unguarded)) });

await conn.end();
rmSync(dir, { recursive: true, force: true });

const lines = [
  `SMB3 server metadata paths, ${OPS} operations each, one after another (${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}):`,
  '',
  '| workload | ops/s | reference (same process) | ops/s | ratio |',
  '|---|---:|---|---:|---:|',
  ...rows.map((r) => `| ${r.workload} | ${r.value.toFixed(0)} | ${r.reference} | ${r.referenceValue.toFixed(0)} | ${(r.value / r.referenceValue).toFixed(2)}x |`),
];
console.log(lines.join('\n'));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/smb2-meta.json', import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), ops: OPS, rows }, null, 2)}\n`);
