// Property tests: decode(encode(x)) == x for every codec, and fragment + reassemble returns the
// original message for random sizes up to MaxFragmentedSize and random MaxSendSize >= 128.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import * as f from '../../framing/index.js';

const SEED = 0x5eed;
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
// fast-check builds null-prototype records by default; deepEqual wants plain objects.
/** A descriptor whose bytes end at or below 2^64, as the codec demands. */
const inRange = <T extends { offset: bigint; length: number }>(d: T): T => ({ ...d, offset: d.offset > (1n << 64n) - BigInt(d.length) ? (1n << 64n) - BigInt(d.length) : d.offset });
const rec = <T,>(m: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(m, { noNullPrototype: true }) as fc.Arbitrary<T>;
const bytes = (max: number) => fc.uint8Array({ maxLength: max });

describe('round trips', () => {
  it('negotiate request', () => {
    const arb = rec({
      minVersion: fc.integer({ min: 0, max: 0x100 }), maxVersion: fc.integer({ min: 0x100, max: 0xffff }),
      creditsRequested: fc.integer({ min: 1, max: 0xffff }), preferredSendSize: u32,
      maxReceiveSize: fc.integer({ min: 128, max: 0xffffffff }), maxFragmentedSize: fc.integer({ min: 131072, max: 0xffffffff }),
    });
    fc.assert(fc.property(arb, (r) => { assert.deepEqual(f.decodeNegotiateRequest(f.encodeNegotiateRequest(r)), r); }), { seed: SEED });
  });

  it('negotiate response', () => {
    const arb = rec({
      minVersion: u16, maxVersion: u16, negotiatedVersion: fc.constant(0x100), creditsRequested: fc.integer({ min: 1, max: 0xffff }),
      creditsGranted: fc.integer({ min: 1, max: 0xffff }), status: fc.constant(0), maxReadWriteSize: u32, preferredSendSize: u32,
      maxReceiveSize: fc.integer({ min: 128, max: 0xffffffff }), maxFragmentedSize: fc.integer({ min: 131072, max: 0xffffffff }),
    });
    fc.assert(fc.property(arb, (r) => { assert.deepEqual(f.decodeNegotiateResponse(f.encodeNegotiateResponse(r)), r); }), { seed: SEED });
  });

  it('data transfer', () => {
    const arb = rec({ creditsRequested: fc.integer({ min: 1, max: 0xffff }), creditsGranted: u16, flags: u16, remainingDataLength: u32, data: bytes(2048) });
    fc.assert(fc.property(arb, (m) => {
      const d = f.decodeDataTransfer(f.encodeDataTransfer(m));
      assert.deepEqual({ ...d, data: [...d.data] }, {
        ...m, data: [...m.data], dataLength: m.data.length, dataOffset: m.data.length > 0 ? 24 : 0,
      });
      // The decoded form is itself a valid encoder input.
      assert.deepEqual(f.encodeDataTransfer(d), f.encodeDataTransfer(m));
    }), { seed: SEED });
  });

  it('buffer descriptors', () => {
    const arb = fc.array(rec({ offset: u64, token: u32, length: u32 }).map(inRange), { minLength: 1, maxLength: 64 });
    fc.assert(fc.property(arb, (list) => { assert.deepEqual(f.decodeBufferDescriptors(f.encodeBufferDescriptors(list)), list); }), { seed: SEED });
  });

  it('SMB2 READ/WRITE channel', () => {
    const desc = rec({ offset: u64, token: u32, length: fc.integer({ min: 1, max: 0xffffffff }) }).map(inRange);
    const arb = rec({ command: fc.constantFrom('read' as const, 'write' as const), channel: fc.constantFrom(1, 2), descriptors: fc.array(desc, { minLength: 1, maxLength: 16 }), fileOffset: u64, pick: fc.double({ min: 0, max: 1, noNaN: true }) });
    fc.assert(fc.property(arb, ({ command, channel, descriptors, fileOffset, pick }) => {
      const covered = descriptors.reduce((s, d) => s + d.length, 0);
      const transfer = Math.max(1, Math.floor(Math.min(covered, 0xffffffff) * pick));
      const init = command === 'read'
        ? { command, channel, length: transfer, remainingBytes: 0, fileOffset, descriptors }
        : { command, channel, length: 0, remainingBytes: transfer, fileOffset, descriptors };
      assert.deepEqual(f.decodeSmb2ReadWriteChannel(f.encodeSmb2ReadWriteChannel(init)), init);
    }), { seed: SEED });
  });

  it('MPA request/reply and IRD/ORD', () => {
    const irdOrd = rec({ ird: fc.integer({ min: 0, max: 0x3fff }), ord: fc.integer({ min: 0, max: 0x3fff }), peerToPeer: fc.boolean(), sendRtr: fc.boolean(), writeRtr: fc.boolean(), readRtr: fc.boolean() });
    const arb = rec({ kind: fc.constantFrom('request' as const, 'reply' as const), markers: fc.boolean(), crc: fc.boolean(), reject: fc.boolean(), revision: fc.constantFrom(1, 2), irdOrd, ulp: bytes(508) });
    fc.assert(fc.property(arb, ({ kind, irdOrd: io, ulp, ...flags }) => {
      const enhanced = flags.revision === 2;
      const privateData = enhanced ? new Uint8Array([...f.encodeIrdOrd(io), ...ulp]) : ulp;
      const wire = (kind === 'request' ? f.encodeMpaRequest : f.encodeMpaReply)({ ...flags, enhanced, privateData });
      const d = f.decodeMpaFrame(wire, kind);
      assert.deepEqual({ ...d, privateData: [...d.privateData] }, { kind, ...flags, enhanced, privateData: [...privateData], byteLength: wire.length });
      if (enhanced) assert.deepEqual(f.decodeIrdOrd(d.privateData), io);
    }), { seed: SEED });
  });

  it('FPDU streams: several segments back to back, with and without CRC', () => {
    const tagged = rec({ tagged: fc.constant(true as const), last: fc.boolean(), opcode: fc.constantFrom(f.RDMAP_WRITE, f.RDMAP_READ_RESPONSE), stag: u32, to: u64 });
    const send = rec({ tagged: fc.constant(false as const), last: fc.boolean(), opcode: fc.constantFrom(3, 4, 5, 6), invalidateStag: u32, qn: fc.constant(0), msn: u32, mo: u32 });
    const seg = fc.tuple(fc.oneof(tagged, send), bytes(3000));
    fc.assert(fc.property(fc.array(seg, { minLength: 1, maxLength: 8 }), fc.boolean(), (segs, crc) => {
      const wire = Buffer.concat(segs.flatMap(([h, p]) => f.encodeFpdu(h, p, crc)));
      let at = 0;
      for (const [h, p] of segs) {
        const d = f.decodeFpdu(wire.subarray(at), crc);
        assert.ok(d);
        const { payload, byteLength, ...header } = d;
        assert.deepEqual(header, h);
        assert.deepEqual([...payload], [...p]);
        assert.equal(byteLength, f.fpduSize(h.tagged, p.length, crc));
        assert.equal(byteLength % 4, 0, 'FPDUs are 4-byte aligned');
        at += byteLength;
      }
      assert.equal(at, wire.length);
    }), { seed: SEED, numRuns: 200 });
  });

  it('Read Request and Terminate bodies', () => {
    const rr = rec({ sinkStag: u32, sinkTo: u64, size: u32, srcStag: u32, srcTo: u64 });
    fc.assert(fc.property(rr, (r) => { assert.deepEqual(f.decodeReadRequest(f.encodeReadRequest(r)), r); }), { seed: SEED });
    const hdr = fc.oneof(fc.uint8Array({ minLength: 14, maxLength: 14 }).map((b) => { b[0] |= 0x80; return b; }),
      fc.uint8Array({ minLength: 18, maxLength: 18 }).map((b) => { b[0] &= 0x7f; b[1] = 0x43; return b; }));
    const term = rec({ layer: fc.integer({ min: 0, max: 15 }), etype: fc.integer({ min: 0, max: 15 }), errorCode: fc.integer({ min: 0, max: 255 }), ddpSegmentLength: u16, ddpHeader: hdr, bitOrder: fc.constantFrom('rfc' as const, 'siw' as const) });
    fc.assert(fc.property(term, (t) => {
      const full = { ...t, m: true, d: true, r: false };
      const d = f.decodeTerminate(f.encodeTerminate(full));
      assert.deepEqual({ ...d, ddpHeader: [...(d.ddpHeader ?? [])] }, { ...full, ddpHeader: [...t.ddpHeader] });
    }), { seed: SEED });
  });

  it('native and JS CRC32c agree on random data and random split points', () => {
    fc.assert(fc.property(bytes(5000), fc.nat(), (data, cut) => {
      const at = data.length ? cut % data.length : 0;
      const whole = f.crc32cJs(data);
      assert.equal(f.crc32c(data), whole);
      assert.equal(f.crc32c(data.subarray(at), f.crc32c(data.subarray(0, at))), whole);
    }), { seed: SEED });
  });
});

describe('data transfer header in place', () => {
  it('putDataTransferHeader writes the bytes writeDataTransferHeader writes', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 16 }),
      (creditsRequested, creditsGranted, flags, remainingDataLength, dataLength, at) => {
        const a = new Uint8Array(64).fill(0xee);
        const b = new Uint8Array(64).fill(0xee);
        const n = f.writeDataTransferHeader(a, at, { creditsRequested, creditsGranted, flags, remainingDataLength, dataLength });
        const m = f.putDataTransferHeader(new DataView(b.buffer), at, creditsRequested, creditsGranted, flags, remainingDataLength, dataLength);
        assert.equal(m, n);
        assert.deepEqual(b, a);
      }));
  });

  it('dataTransferValid accepts exactly what decodeDataTransfer accepts', () => {
    const header = fc.record({
      creditsRequested: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })),
      dataOffset: fc.oneof(fc.constantFrom(0, 20, 24, 32), fc.integer({ min: 0, max: 0xffffffff })),
      dataLength: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 0xffffffff })),
      length: fc.integer({ min: 0, max: 120 }),
    });
    fc.assert(fc.property(header, fc.uint8Array({ minLength: 120, maxLength: 120 }), (h, noise) => {
      const bytes = noise.slice();
      const v = new DataView(bytes.buffer);
      if (h.length >= 20) {
        v.setUint16(f.DT_CREDITS_REQUESTED, h.creditsRequested, true);
        v.setUint32(f.DT_DATA_OFFSET, h.dataOffset, true);
        v.setUint32(f.DT_DATA_LENGTH, h.dataLength, true);
      }
      let decoded = true;
      try { f.decodeDataTransfer(bytes.subarray(0, h.length)); } catch (err) {
        assert.ok(err instanceof f.SmbDirectProtocolError);
        decoded = false;
      }
      assert.equal(f.dataTransferValid(v, 0, h.length), decoded);
    }), { numRuns: 2000 });
  });
});

describe('fragment + reassemble', () => {
  it('returns the original message for random sizes and MaxSendSize >= 128', () => {
    const arb = rec({
      maxSendSize: fc.integer({ min: 128, max: 16384 }),
      maxFragmentedSize: fc.integer({ min: 131072, max: 1 << 20 }),
      pick: fc.double({ min: 0, max: 1, noNaN: true }),
      seed: fc.integer(),
    });
    fc.assert(fc.property(arb, ({ maxSendSize, maxFragmentedSize, pick, seed }) => {
      const size = Math.max(1, Math.floor(maxFragmentedSize * pick * pick)); // bias to smaller sizes, reach the max
      const msg = new Uint8Array(size);
      for (let i = 0, x = seed; i < size; i += 4) msg[i] = x = (x * 1103515245 + 12345) >>> 0;
      const fragmenter = new f.Fragmenter(maxSendSize, maxFragmentedSize);
      const frags = fragmenter.split(msg);
      // the lazy form the connection sends from gives the same fragments, one at a time
      assert.equal(fragmenter.count(msg.length), frags.length);
      for (const i of [0, frags.length >> 1, frags.length - 1]) {
        const one = fragmenter.at(msg, i);
        assert.equal(one.remainingDataLength, frags[i]!.remainingDataLength);
        assert.equal(one.data.byteOffset, frags[i]!.data.byteOffset);
        assert.equal(one.data.length, frags[i]!.data.length);
      }
      const r = new f.Reassembler(maxFragmentedSize);
      let out: Uint8Array | undefined;
      let last = Infinity;
      for (const [i, fr] of frags.entries()) {
        assert.ok(fr.remainingDataLength < last, 'RemainingDataLength strictly decreases');
        last = fr.remainingDataLength;
        assert.ok(fr.data.length <= maxSendSize - 24 && fr.data.length > 0);
        assert.equal(fr.data.buffer, msg.buffer, 'fragments are views of the message');
        // Through the wire format too: each fragment must fit one MaxSendSize message.
        const wire = f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 0, remainingDataLength: fr.remainingDataLength, data: fr.data });
        assert.ok(wire.length <= maxSendSize);
        out = r.push(f.decodeDataTransfer(wire));
        assert.equal(out === undefined, i < frags.length - 1);
      }
      assert.equal(last, 0);
      assert.ok(out);
      assert.equal(Buffer.compare(out, msg), 0);
      assert.equal(r.pending, false);
    }), { seed: SEED, numRuns: 150 });
  });

  it('nextFragmentDue (held fragments, checked where they enter) accepts and refuses exactly what Reassembler does, at the same fragment', () => {
    const step = fc.record({ dataLength: fc.integer({ min: 0, max: 3000 }), remainingDataLength: fc.oneof(fc.integer({ min: 0, max: 6000 }), fc.constant(0)) });
    fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1000, max: 8000 }), (steps, max) => {
      const r = new f.Reassembler(max);
      let due = 0;
      for (const st of steps) {
        const code = (fn: () => unknown) => { try { fn(); return 'ok'; } catch (e) { return (e as { code: string }).code; } };
        const byFunction = code(() => { due = f.nextFragmentDue(due, st.dataLength, st.remainingDataLength, max); });
        const byReassembler = code(() => r.push({ ...st, data: new Uint8Array(st.dataLength) }));
        assert.equal(byFunction, byReassembler, JSON.stringify({ steps, max, st }));
        if (byFunction !== 'ok') return;
      }
    }), { seed: SEED, numRuns: 500 });
  });

  it('a message of exactly MaxFragmentedSize passes; one byte more is refused on both sides', () => {
    const max = 131072;
    const frags = new f.Fragmenter(1364, max).split(new Uint8Array(max));
    const r = new f.Reassembler(max);
    let out: Uint8Array | undefined;
    for (const fr of frags) out = r.push({ ...fr, dataLength: fr.data.length });
    assert.equal(out?.length, max);
    assert.throws(() => new f.Fragmenter(1364, max).split(new Uint8Array(max + 1)), { code: 'ERR_SMBD_MESSAGE_TOO_LARGE' });
    assert.throws(() => new f.Reassembler(max).push({ remainingDataLength: max - 1339, dataLength: 1340, data: new Uint8Array(1340) }), { code: 'ERR_SMBD_FRAGMENT_OVERRUN' });
  });

  it('empty credit messages between two fragments are passed over (Linux sends them there), the message comes out whole', () => {
    const msg = Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff);
    const frags = new f.Fragmenter(1364).split(msg);
    const r = new f.Reassembler(1 << 20);
    let out: Uint8Array | undefined;
    for (const fr of frags) {
      assert.equal(r.push({ remainingDataLength: 0, dataLength: 0, data: new Uint8Array(0) }), undefined);
      out = r.push({ ...fr, dataLength: fr.data.length });
    }
    assert.ok(out && Buffer.from(out).equals(msg));
  });

  it('reassembly memory grows with what arrives: 64 KiB until that much came, then the whole message', () => {
    const r = new f.Reassembler(1 << 20);
    r.push({ remainingDataLength: (1 << 20) - 1340, dataLength: 1340, data: new Uint8Array(1340) });
    assert.equal(r.allocatedLength, 64 * 1024, 'a 1 MiB announcement in one fragment reserves 64 KiB');
    let left = (1 << 20) - 1340;
    while (r.receivedLength + 1340 <= 64 * 1024) { left -= 1340; r.push({ remainingDataLength: left, dataLength: 1340, data: new Uint8Array(1340) }); }
    assert.equal(r.allocatedLength, 64 * 1024);
    left -= 1340;
    r.push({ remainingDataLength: left, dataLength: 1340, data: new Uint8Array(1340).fill(9) });
    assert.equal(r.allocatedLength, 1 << 20, 'past 64 KiB: the whole message');
  });

  it('empty credit messages outside a message are ignored', () => {
    const r = new f.Reassembler(1 << 20);
    assert.equal(r.push({ remainingDataLength: 0, dataLength: 0, data: new Uint8Array(0) }), undefined);
    assert.equal(r.pending, false);
  });
});
