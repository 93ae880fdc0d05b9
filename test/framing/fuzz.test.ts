// Bounded fuzzing with a fixed seed: mutated valid messages and random bytes go through every
// decoder and the reassembler. Only SmbDirectProtocolError with a documented code may come out,
// and what decodes must be self-consistent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as f from '../../framing/index.js';

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 40_000);

/** xorshift32: small, fast, and the same sequence on every machine. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

function mutate(next: () => number, seed: Uint8Array): Uint8Array {
  let b = seed.slice();
  const rounds = 1 + (next() % 4);
  for (let r = 0; r < rounds; r++) {
    const at = b.length ? next() % b.length : 0;
    switch (next() % 7) {
      case 0: if (b.length) b[at] ^= 1 << (next() % 8); break;
      case 1: if (b.length) b[at] = INTERESTING[next() % INTERESTING.length]; break;
      case 2: if (b.length >= 4) new DataView(b.buffer).setUint32(Math.min(at, b.length - 4), next(), next() % 2 === 0); break;
      case 3: b = b.subarray(0, next() % (b.length + 1)).slice(); break;
      case 4: { const extra = new Uint8Array(next() % 64); for (let i = 0; i < extra.length; i++) extra[i] = next(); b = new Uint8Array([...b, ...extra]); break; }
      case 5: if (b.length >= 2) new DataView(b.buffer).setUint16(Math.min(at, b.length - 2), next() & 0xffff, next() % 2 === 0); break;
      default: if (b.length >= 4) new DataView(b.buffer).setUint32(Math.min(at, b.length - 4), INTERESTING[next() % INTERESTING.length] * 0x1010101, true);
    }
  }
  return b;
}

function random(next: () => number): Uint8Array {
  const b = new Uint8Array(next() % 160);
  for (let i = 0; i < b.length; i++) b[i] = next();
  return b;
}

/** Runs fn; a thrown error must be one of ours, with a documented code. */
function only<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof f.SmbDirectProtocolError) || !(err.code in f.ERROR_CODES)) {
      assert.fail(`undocumented error escaped: ${err instanceof Error ? err.stack : String(err)}`);
    }
    return undefined;
  }
}

const within = (view: Uint8Array, outer: Uint8Array) =>
  view.buffer === outer.buffer && view.byteOffset >= outer.byteOffset && view.byteOffset + view.byteLength <= outer.byteOffset + outer.byteLength;

const D = [{ offset: 0x1000n, token: 7, length: 65536 }, { offset: 0x9000n, token: 8, length: 4096 }];
const SEEDS: Record<string, Uint8Array[]> = {
  negotiateRequest: [f.encodeNegotiateRequest({ minVersion: 0x100, maxVersion: 0x100, creditsRequested: 255, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20 })],
  negotiateResponse: [f.encodeNegotiateResponse({ minVersion: 0x100, maxVersion: 0x100, negotiatedVersion: 0x100, creditsRequested: 255, creditsGranted: 255, status: 0, maxReadWriteSize: 1 << 23, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20 })],
  dataTransfer: [
    f.encodeDataTransfer({ creditsRequested: 255, creditsGranted: 10, remainingDataLength: 660, data: new Uint8Array(100) }),
    f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 0, flags: 1 }),
  ],
  descriptors: [f.encodeBufferDescriptors(D)],
  smb2: [
    f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 2, length: 65536, descriptors: D }),
    f.encodeSmb2ReadWriteChannel({ command: 'write', channel: 1, length: 0, remainingBytes: 69632, descriptors: D }),
    f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 0, length: 10 }),
  ],
  mpa: [
    f.encodeMpaRequest({ revision: 2, privateData: new Uint8Array([0x80, 0x10, 0x40, 0x10, 1, 2, 3]) }),
    f.encodeMpaReply({ revision: 1, reject: true }),
  ],
  fpdu: [
    Buffer.concat(f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_SEND, invalidateStag: 0, qn: 0, msn: 1, mo: 0 }, new Uint8Array(13))),
    Buffer.concat(f.encodeFpdu({ tagged: true, last: false, opcode: f.RDMAP_WRITE, stag: 9, to: 123n }, new Uint8Array(40))),
    Buffer.concat(f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_READ_REQUEST, invalidateStag: 0, qn: 1, msn: 1, mo: 0 }, f.encodeReadRequest({ sinkStag: 1, sinkTo: 2n, size: 3, srcStag: 4, srcTo: 5n }))),
    Buffer.concat(f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_TERMINATE, invalidateStag: 0, qn: 2, msn: 1, mo: 0 }, f.encodeTerminate({ layer: 1, etype: 2, errorCode: 1, m: true, d: true, r: false, ddpSegmentLength: 9, ddpHeader: new Uint8Array(18).fill(0x41) }))),
  ].map((b) => new Uint8Array(b)),
  terminate: [f.encodeTerminate({ layer: 0, etype: 1, errorCode: 2, m: true, d: true, r: true, ddpSegmentLength: 28, ddpHeader: new Uint8Array([0x41, 0x41, ...new Uint8Array(16)]), rdmaHeader: new Uint8Array(28) })],
};

type Decoder = (b: Uint8Array) => void;
const DECODERS: Record<string, Decoder> = {
  negotiateRequest: (b) => only(() => f.decodeNegotiateRequest(b)),
  negotiateResponse: (b) => only(() => f.decodeNegotiateResponse(b, { maxReceiveSize: 8192 })),
  dataTransfer: (b) => {
    const m = only(() => f.decodeDataTransfer(b));
    if (m) {
      assert.ok(within(m.data, b) && m.data.length === m.dataLength);
      assert.ok(m.dataOffset + m.dataLength <= b.length && m.dataOffset % 8 === 0 && m.creditsRequested > 0);
    }
  },
  descriptors: (b) => {
    const list = only(() => f.decodeBufferDescriptors(b));
    if (list) assert.equal(list.length * 16, b.length);
  },
  smb2: (b) => {
    const c = only(() => f.decodeSmb2ReadWriteChannel(b));
    if (c && c.channel !== 0) {
      const covered = c.descriptors.reduce((s, d) => s + d.length, 0);
      assert.ok(covered >= (c.command === 'read' ? c.length : c.remainingBytes) && c.descriptors.every((d) => d.length > 0));
    }
  },
  mpa: (b) => {
    const n = only(() => f.mpaFrameLength(b));
    const fr = only(() => f.decodeMpaFrame(b));
    if (fr) {
      assert.equal(n, fr.byteLength);
      assert.ok(fr.byteLength <= b.length && within(fr.privateData, b));
      if (fr.enhanced) only(() => f.decodeIrdOrd(fr.privateData));
    }
  },
  fpdu: (b) => {
    for (const crc of [true, false]) {
      const seg = only(() => f.decodeFpdu(b, crc));
      if (seg) {
        assert.ok(seg.byteLength <= b.length && seg.byteLength % 4 === 0 && within(seg.payload, b));
        if (seg.opcode === f.RDMAP_READ_REQUEST) only(() => f.decodeReadRequest(seg.payload));
        if (seg.opcode === f.RDMAP_TERMINATE) only(() => f.decodeTerminate(seg.payload));
      }
    }
  },
  terminate: (b) => {
    const t = only(() => f.decodeTerminate(b));
    if (t?.ddpHeader) assert.ok(within(t.ddpHeader, b));
  },
};

describe('fuzz (fixed seed, bounded)', () => {
  for (const [name, decode] of Object.entries(DECODERS)) {
    it(`${name}: mutated and random inputs raise only documented errors`, () => {
      const next = rng(0xc0ffee ^ name.length * 7919);
      const seeds = SEEDS[name];
      for (let i = 0; i < ITERATIONS; i++) {
        decode(i % 5 === 4 ? random(next) : mutate(next, seeds[i % seeds.length]));
      }
      // The unmutated seeds decode.
      for (const s of seeds) decode(s);
    });
  }

  it('reassembler: random fragment sequences raise only documented errors and never over-deliver', () => {
    const next = rng(0xfeed);
    const max = 131072;
    const r = new f.Reassembler(max);
    for (let i = 0; i < ITERATIONS; i++) {
      const dataLength = next() % 3 === 0 ? 0 : next() % 2000;
      const remainingDataLength = next() % 4 === 0 ? next() : next() % 5000;
      const out = only(() => r.push({ remainingDataLength, dataLength, data: new Uint8Array(dataLength) }));
      if (out) assert.ok(out.length > 0 && out.length <= max);
    }
  });

  it('reassembler fed by mutated wire messages', () => {
    const next = rng(0xbeef);
    const msg = new Uint8Array(5000);
    const wires = new f.Fragmenter(1364).split(msg).map((fr) => f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 1, remainingDataLength: fr.remainingDataLength, data: fr.data }));
    const r = new f.Reassembler(131072);
    for (let i = 0; i < ITERATIONS; i++) {
      const wire = wires[i % wires.length];
      const m = only(() => f.decodeDataTransfer(next() % 3 === 0 ? mutate(next, wire) : wire));
      if (m) {
        const out = only(() => r.push(m));
        if (out) assert.ok(out.length <= 131072);
      }
    }
  });
});
