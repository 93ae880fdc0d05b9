// npm run bench:framing: speed of the framing/ codecs, each next to a reference measured in the
// same process. Prints a Markdown table (kept in bench/README.md) and writes bench/results/framing.json.
// Usage: node --import tsx bench/framing.ts [--json] [--quick]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createCRC32 } from 'hash-wasm';
import { do_not_optimize, measure } from 'mitata';
import * as f from '../framing/index.js';

const quick = process.argv.includes('--quick');
const opts = quick ? { min_cpu_time: 50e6 } : { min_cpu_time: 400e6 };
const MiB = 1 << 20;

interface Row {
  name: string;
  value: number;
  unit: 'M/s' | 'GB/s';
  target?: number;
  reference: string;
  referenceValue: number;
}
const rows: Row[] = [];

/** ns per call of fn, from mitata's average over its samples. */
async function nsPer(fn: () => unknown, inner = 1): Promise<number> {
  const stats = await measure(() => {
    for (let i = 0; i < inner; i++) do_not_optimize(fn());
  }, opts);
  return stats.avg / inner;
}
const perSecond = (ns: number) => 1e3 / ns; // millions per second
const gbps = (bytes: number, ns: number) => bytes / ns; // bytes per ns = GB/s

type Reference = [name: string, fn: () => unknown];

/** Measures fn once and each reference once; one table row per reference, sharing fn's result. */
async function compare(name: string, unit: Row['unit'], target: number | undefined, fn: () => unknown, refs: Reference[], bytes = 0): Promise<void> {
  // Rates are measured over 1000 calls per sample; throughputs one call per sample.
  const score = async (g: () => unknown) => (unit === 'M/s' ? perSecond(await nsPer(g, 1000)) : gbps(bytes, await nsPer(g)));
  const value = await score(fn);
  for (const [reference, ref] of refs) rows.push({ name, unit, target, value, reference, referenceValue: await score(ref) });
}
async function rate(name: string, target: number | undefined, fn: () => unknown, reference: string, ref: () => unknown): Promise<void> {
  await compare(name, 'M/s', target, fn, [[reference, ref]]);
}
async function throughput(name: string, bytes: number, target: number | undefined, fn: () => unknown, reference: string, ref: () => unknown): Promise<void> {
  await compare(name, 'GB/s', target, fn, [[reference, ref]], bytes);
}

// --- SMB Direct data transfer header ---
const dtWire = f.encodeDataTransfer({ creditsRequested: 255, creditsGranted: 10, remainingDataLength: 660, data: new Uint8Array(1340) });
const dtBuf = Buffer.from(dtWire.buffer, dtWire.byteOffset, dtWire.byteLength);
await rate('data transfer header decode + validate', 5, () => f.decodeDataTransfer(dtWire),
  'Buffer.readUInt*LE of the same fields, no checks', () => ({
    creditsRequested: dtBuf.readUInt16LE(0), creditsGranted: dtBuf.readUInt16LE(2), flags: dtBuf.readUInt16LE(4),
    remainingDataLength: dtBuf.readUInt32LE(8), dataOffset: dtBuf.readUInt32LE(12), dataLength: dtBuf.readUInt32LE(16),
    data: dtBuf.subarray(24, 24 + dtBuf.readUInt32LE(16)),
  }));
const slab = new Uint8Array(64);
const header = { creditsRequested: 255, creditsGranted: 10, remainingDataLength: 660, dataLength: 1340 };
await rate('data transfer header encode into a slab', undefined, () => f.writeDataTransferHeader(slab, 0, header),
  'Buffer.writeUInt*LE of the same fields, no checks', () => {
    const b = Buffer.from(slab.buffer);
    b.writeUInt16LE(255, 0); b.writeUInt16LE(10, 2); b.writeUInt16LE(0, 4); b.writeUInt16LE(0, 6);
    b.writeUInt32LE(660, 8); b.writeUInt32LE(24, 12); b.writeUInt32LE(1340, 16); b.writeUInt32LE(0, 20);
    return b;
  });

// --- fragment + reassemble ---
const message = new Uint8Array(MiB).map((_, i) => i * 31);
const copyTarget = new Uint8Array(MiB);
const memcpy = () => { copyTarget.set(message); return copyTarget; };
for (const maxSendSize of [1364, 8192]) {
  const fragmenter = new f.Fragmenter(maxSendSize, MiB);
  const reassembler = new f.Reassembler(MiB);
  await throughput(`fragment + reassemble 1 MiB, MaxSendSize ${maxSendSize}`, MiB, 2, () => {
    let out: Uint8Array | undefined;
    for (const fr of fragmenter.split(message)) out = reassembler.push({ remainingDataLength: fr.remainingDataLength, dataLength: fr.data.length, data: fr.data });
    return out;
  }, '1 MiB Uint8Array.set (one memcpy)', memcpy);
}
{
  // The whole wire path: each fragment encoded into a message (a copy, as into a send slab) and decoded.
  const maxSendSize = 8192;
  const fragmenter = new f.Fragmenter(maxSendSize, MiB);
  const reassembler = new f.Reassembler(MiB);
  const sendSlab = new Uint8Array(maxSendSize);
  await throughput('fragment + encode + decode + reassemble 1 MiB, MaxSendSize 8192', MiB, undefined, () => {
    let out: Uint8Array | undefined;
    for (const fr of fragmenter.split(message)) {
      const n = f.writeDataTransferHeader(sendSlab, 0, { creditsRequested: 255, creditsGranted: 0, remainingDataLength: fr.remainingDataLength, dataLength: fr.data.length });
      sendSlab.set(fr.data, n);
      out = reassembler.push(f.decodeDataTransfer(sendSlab.subarray(0, n + fr.data.length)));
    }
    return out;
  }, '1 MiB Uint8Array.set (one memcpy)', memcpy);
}

// --- MPA / DDP / RDMAP headers ---
const sendHeader: f.UntaggedHeader = { tagged: false, last: true, opcode: f.RDMAP_SEND, invalidateStag: 0, qn: 0, msn: 1, mo: 0 };
const payload64 = new Uint8Array(64);
const fpduWire = new Uint8Array(Buffer.concat(f.encodeFpdu(sendHeader, payload64, false)));
const fpduBuf = Buffer.from(fpduWire.buffer);
await rate('DDP/RDMAP untagged header encode (encodeFpdu, no CRC)', undefined, () => f.encodeFpdu(sendHeader, payload64, false),
  'Buffer.alloc + writeUInt*BE of the same fields', () => {
    const b = Buffer.alloc(20);
    b.writeUInt16BE(82, 0); b[2] = 0x41; b[3] = 0x43; b.writeUInt32BE(0, 4); b.writeUInt32BE(0, 8); b.writeUInt32BE(1, 12); b.writeUInt32BE(0, 16);
    return b;
  });
await rate('DDP/RDMAP untagged FPDU decode + validate (no CRC)', undefined, () => f.decodeFpdu(fpduWire, false),
  'Buffer.readUInt*BE of the same fields, no checks', () => ({
    len: fpduBuf.readUInt16BE(0), ctrl: fpduBuf[2], op: fpduBuf[3] & 15, stag: fpduBuf.readUInt32BE(4), qn: fpduBuf.readUInt32BE(8),
    msn: fpduBuf.readUInt32BE(12), mo: fpduBuf.readUInt32BE(16), payload: fpduBuf.subarray(20, 84),
  }));
const writeHeader: f.TaggedHeader = { tagged: true, last: true, opcode: f.RDMAP_WRITE, stag: 0x1234, to: 0x10000n };
const taggedWire = new Uint8Array(Buffer.concat(f.encodeFpdu(writeHeader, payload64, false)));
const taggedBuf = Buffer.from(taggedWire.buffer);
await rate('DDP/RDMAP tagged FPDU decode + validate (no CRC)', undefined, () => f.decodeFpdu(taggedWire, false),
  'Buffer.readUInt*BE + readBigUInt64BE, no checks', () => ({
    len: taggedBuf.readUInt16BE(0), ctrl: taggedBuf[2], op: taggedBuf[3] & 15, stag: taggedBuf.readUInt32BE(4), to: taggedBuf.readBigUInt64BE(8), payload: taggedBuf.subarray(16, 80),
  }));
const mpaWire = f.encodeMpaRequest({ revision: 2, privateData: new Uint8Array([0, 16, 0, 16, 1, 2, 3, 4]) });
await rate('MPA request decode + validate', undefined, () => f.decodeMpaFrame(mpaWire),
  'Buffer.compare of the key + readUInt16BE', () => {
    const b = Buffer.from(mpaWire.buffer);
    return Buffer.compare(b.subarray(0, 16), Buffer.from(mpaWire.buffer, 0, 16)) === 0 && b.readUInt16BE(18);
  });

// --- CRC32c ---
// References: the pure-JS fallback, and hash-wasm's WebAssembly CRC32c (the other maintained
// registry option that needs no native build).
const wasm = await createCRC32(0x82f63b78);
const wasmCrc = (data: Uint8Array) => { wasm.init(); wasm.update(data); return wasm.digest('binary'); };
{
  const check = new TextEncoder().encode('123456789');
  if (Buffer.from(wasmCrc(check)).readUInt32BE(0) !== f.crc32c(check)) throw new Error('hash-wasm CRC32c disagrees with ours');
}
for (const size of [1024, 64 * 1024, MiB]) {
  const data = new Uint8Array(size).map((_, i) => i * 7);
  const label = size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`;
  const target = size >= 64 * 1024 ? 1 : undefined;
  await compare(`CRC32c (${f.crc32cImplementation}) over ${label}`, 'GB/s', target, () => f.crc32c(data), [
    ['pure-JS slice-by-8 CRC32c (the fallback)', () => f.crc32cJs(data)],
    ['hash-wasm CRC32c (WebAssembly)', () => wasmCrc(data)],
  ], size);
}

// --- report ---
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const lines = [
  '| benchmark | result | target | reference (same run) | reference result | ratio |',
  '|---|---:|---:|---|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${fmt(r.value)} ${r.unit} | ${r.target ? `>= ${r.target} ${r.unit}` : ''} | ${r.reference} | ${fmt(r.referenceValue)} ${r.unit} | ${(r.value / r.referenceValue).toFixed(2)}x |`),
];
const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
const missed = rows.filter((r) => r.target !== undefined && r.value < r.target);
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ machine, rows }, null, 2));
} else {
  console.log(`framing benchmarks on ${machine}${quick ? ' (--quick: short samples)' : ''}\n`);
  console.log(lines.join('\n'));
  if (missed.length) console.log(`\nbelow target: ${missed.map((r) => r.name).join('; ')}`);
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/framing.json', import.meta.url), JSON.stringify({ date: new Date().toISOString(), machine, rows }, null, 2) + '\n');
