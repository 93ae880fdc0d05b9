// Every byte vector in docs/architecture.md ("Wire vectors"), plus hand-assembled vectors for
// the layouts that have none there, encoded and decoded exactly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as f from '../../framing/index.js';
import { hex, toHex } from './helpers.js';

describe('SMB Direct vectors ([MS-SMBD] 2.2)', () => {
  it('negotiate request: credits 255, send 1364, recv 8192, frag 1 MiB', () => {
    const wire = hex('00 01 00 01 00 00 FF 00 54 05 00 00 00 20 00 00 00 00 10 00');
    const req = { minVersion: 0x0100, maxVersion: 0x0100, creditsRequested: 255, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1048576 };
    assert.equal(toHex(f.encodeNegotiateRequest(req)), toHex(wire));
    assert.deepEqual(f.decodeNegotiateRequest(wire), req);
  });

  it('negotiate response: every field at its offset (2.2.2)', () => {
    const wire = hex(
      '00 01 00 01 00 01 00 00 FF 00 0A 00 00 00 00 00 00 00 80 00 54 05 00 00 00 20 00 00 00 00 10 00',
    );
    const res = {
      minVersion: 0x0100, maxVersion: 0x0100, negotiatedVersion: 0x0100, creditsRequested: 255, creditsGranted: 10,
      status: 0, maxReadWriteSize: 8 * 1024 * 1024, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1048576,
    };
    assert.equal(toHex(f.encodeNegotiateResponse(res)), toHex(wire));
    assert.deepEqual(f.decodeNegotiateResponse(wire, { maxReceiveSize: 8192 }), res);
  });

  it('negotiate response with STATUS_NOT_SUPPORTED reports the status', () => {
    const wire = hex('00 01 00 01 00 00 00 00 00 00 00 00 BB 00 00 C0' + ' 00'.repeat(16));
    const err = assert.throws(() => f.decodeNegotiateResponse(wire), (e: unknown) => {
      assert.ok(e instanceof f.SmbDirectProtocolError);
      assert.equal(e.code, 'ERR_SMBD_NEGOTIATE_FAILED');
      assert.equal(e.status, f.STATUS_NOT_SUPPORTED);
      return true;
    });
    void err;
  });

  it('data transfer: first fragment of a 2000-byte message at MaxSendSize 1364', () => {
    const header = hex('FF 00 0A 00 00 00 00 00 94 02 00 00 18 00 00 00 3C 05 00 00 00 00 00 00');
    const payload = Uint8Array.from({ length: 1340 }, (_, i) => i & 0xff);
    const wire = new Uint8Array(24 + 1340);
    wire.set(header, 0);
    wire.set(payload, 24);
    const encoded = f.encodeDataTransfer({ creditsRequested: 255, creditsGranted: 10, remainingDataLength: 660, data: payload });
    assert.deepEqual(encoded, wire);
    const m = f.decodeDataTransfer(wire);
    assert.deepEqual({ ...m, data: undefined }, {
      creditsRequested: 255, creditsGranted: 10, flags: 0, remainingDataLength: 660, dataOffset: 24, dataLength: 1340, data: undefined,
    });
    assert.deepEqual(m.data, payload);
    // data is a view into the received bytes, not a copy
    assert.equal(m.data.buffer, wire.buffer);
    assert.equal(m.data.byteOffset, 24);
  });

  it('the fragmenter produces exactly that first fragment for a 2000-byte message', () => {
    const msg = new Uint8Array(2000);
    const frags = new f.Fragmenter(1364).split(msg);
    assert.deepEqual(frags.map((x) => [x.remainingDataLength, x.data.length]), [[660, 1340], [0, 660]]);
    assert.equal(frags[0].data.buffer, msg.buffer);
  });

  it('empty data transfer (credit grant / keepalive) is exactly 20 bytes', () => {
    const wire = hex('FF 00 05 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00');
    assert.deepEqual(f.encodeDataTransfer({ creditsRequested: 255, creditsGranted: 5, flags: f.RESPONSE_REQUESTED }), wire);
    const m = f.decodeDataTransfer(wire);
    assert.equal(m.flags, f.RESPONSE_REQUESTED);
    assert.equal(m.dataLength, 0);
    assert.equal(m.data.length, 0);
  });

  it('writeDataTransferHeader writes into a send slab at an offset', () => {
    const slab = new Uint8Array(64).fill(0xee);
    const n = f.writeDataTransferHeader(slab, 8, { creditsRequested: 255, creditsGranted: 10, remainingDataLength: 660, dataLength: 1340 });
    assert.equal(n, 24);
    assert.equal(toHex(slab.subarray(8, 32)), toHex(hex('FF 00 0A 00 00 00 00 00 94 02 00 00 18 00 00 00 3C 05 00 00 00 00 00 00')));
    assert.equal(slab[7], 0xee);
    assert.equal(slab[32], 0xee);
  });

  it('buffer descriptor V1: offset 0xABCDE012, token 0x1A00BC56, 1 MiB', () => {
    const wire = hex('12 E0 CD AB 00 00 00 00 56 BC 00 1A 00 00 10 00');
    const d = [{ offset: 0xabcde012n, token: 0x1a00bc56, length: 1048576 }];
    assert.deepEqual(f.encodeBufferDescriptors(d), wire);
    assert.deepEqual(f.decodeBufferDescriptors(wire), d);
  });

  it('buffer descriptor with a full 64-bit offset, ending exactly at 2^64', () => {
    const wire = hex('01 00 00 00 FF FF FF FF 01 00 00 00 FF FF FF FF');
    const d = [{ offset: 0xffffffff00000001n, token: 1, length: 0xffffffff }];
    assert.deepEqual(f.decodeBufferDescriptors(wire), d);
    assert.deepEqual(f.encodeBufferDescriptors(d), wire);
  });
});

describe('SMB2 READ/WRITE channel vectors ([MS-SMB2] 2.2.19, 2.2.21)', () => {
  const desc = hex('12 E0 CD AB 00 00 00 00 56 BC 00 1A 00 00 10 00');

  it('READ request over RDMA_V1_INVALIDATE: fields at their offsets', () => {
    const pdu = new Uint8Array(112 + 16);
    pdu.set(hex('FE 53 4D 42 40 00'), 0); // ProtocolId, StructureSize 64
    pdu.set(hex('08 00'), 12); // Command READ
    pdu.set(hex('31 00'), 64); // StructureSize 49
    pdu.set(hex('00 00 10 00'), 64 + 4); // Length 1 MiB
    pdu.set(hex('00 00 00 40 00 00 00 00'), 64 + 8); // Offset 1 GiB
    pdu.set(hex('02 00 00 00'), 64 + 36); // Channel RDMA_V1_INVALIDATE
    pdu.set(hex('70 00 10 00'), 64 + 44); // ReadChannelInfoOffset 112, Length 16
    pdu.set(desc, 112);
    assert.deepEqual(f.decodeSmb2ReadWriteChannel(pdu), {
      command: 'read', channel: 2, length: 1048576, remainingBytes: 0, fileOffset: 0x40000000n,
      descriptors: [{ offset: 0xabcde012n, token: 0x1a00bc56, length: 1048576 }],
    });
    const encoded = f.encodeSmb2ReadWriteChannel({
      command: 'read', channel: 2, length: 1048576, fileOffset: 0x40000000n, descriptors: f.decodeBufferDescriptors(desc),
    });
    assert.deepEqual(f.decodeSmb2ReadWriteChannel(encoded), f.decodeSmb2ReadWriteChannel(pdu));
    for (const at of [64, 68, 72, 100, 108, 112]) assert.equal(toHex(encoded.subarray(at, at + 4)), toHex(pdu.subarray(at, at + 4)), `offset ${at}`);
  });

  it('WRITE request over RDMA_V1: Length 0, RemainingBytes = bytes to pull', () => {
    const pdu = new Uint8Array(112 + 16);
    pdu.set(hex('FE 53 4D 42 40 00'), 0);
    pdu.set(hex('09 00'), 12); // Command WRITE
    pdu.set(hex('31 00 70 00'), 64); // StructureSize 49, DataOffset 112
    pdu.set(hex('01 00 00 00'), 64 + 32); // Channel RDMA_V1
    pdu.set(hex('00 00 08 00'), 64 + 36); // RemainingBytes 512 KiB
    pdu.set(hex('70 00 10 00'), 64 + 40); // WriteChannelInfoOffset 112, Length 16
    pdu.set(desc, 112);
    const w = f.decodeSmb2ReadWriteChannel(pdu);
    assert.equal(w.command, 'write');
    assert.equal(w.channel, 1);
    assert.equal(w.length, 0);
    assert.equal(w.remainingBytes, 524288);
    assert.equal(w.descriptors.length, 1);
    const encoded = f.encodeSmb2ReadWriteChannel({ command: 'write', channel: 1, length: 0, remainingBytes: 524288, descriptors: w.descriptors });
    assert.deepEqual(encoded.subarray(64, 128), pdu.subarray(64, 128));
  });
});

describe('MPA vectors (RFC 5044 7.1, RFC 6581)', () => {
  it('rev 2 enhanced request with CRC, IRD 16 / ORD 16, peer-to-peer with zero-length Read RTR', () => {
    const wire = hex(
      Buffer.from('MPA ID Req Frame').toString('hex') + ' 50 02 00 08' + ' 80 10 40 10' + ' DE AD BE EF',
    );
    const irdOrd = { ird: 16, ord: 16, peerToPeer: true, sendRtr: false, writeRtr: false, readRtr: true };
    const pd = new Uint8Array([...f.encodeIrdOrd(irdOrd), 0xde, 0xad, 0xbe, 0xef]);
    assert.deepEqual(f.encodeMpaRequest({ crc: true, revision: 2, privateData: pd }), wire);
    const frame = f.decodeMpaFrame(wire, 'request');
    assert.deepEqual({ ...frame, privateData: [...frame.privateData] }, {
      kind: 'request', markers: false, crc: true, reject: false, revision: 2, enhanced: true, privateData: [...pd], byteLength: 28,
    });
    assert.deepEqual(f.decodeIrdOrd(frame.privateData), irdOrd);
    assert.equal(f.mpaFrameLength(wire.subarray(0, 20)), 28);
    assert.equal(f.mpaFrameLength(wire.subarray(0, 19)), undefined);
  });

  it('rev 1 reject reply with no CRC and no private data', () => {
    const wire = hex(Buffer.from('MPA ID Rep Frame').toString('hex') + ' 20 01 00 00');
    assert.deepEqual(f.encodeMpaReply({ crc: false, reject: true, revision: 1 }), wire);
    const frame = f.decodeMpaFrame(wire);
    assert.equal(frame.kind, 'reply');
    assert.equal(frame.reject, true);
    assert.equal(frame.crc, false);
    assert.equal(frame.enhanced, false);
    assert.equal(frame.byteLength, 20);
  });

  it('markers bit and bytes after the frame are left alone', () => {
    const wire = new Uint8Array([...f.encodeMpaRequest({ markers: true, revision: 1 }), 0x00, 0x1a]);
    const frame = f.decodeMpaFrame(wire);
    assert.equal(frame.markers, true);
    assert.equal(frame.byteLength, 20);
  });
});

describe('DDP / RDMAP vectors (RFC 5041, RFC 5040)', () => {
  it('CRC32c check values (RFC 3720 B.4, and "123456789")', () => {
    assert.equal(f.crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(f.crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(f.crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(f.crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
    assert.equal(f.crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
    for (const impl of [f.crc32c, f.crc32cJs]) {
      const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
      assert.equal(impl(data.subarray(300), impl(data.subarray(0, 300))), f.crc32cJs(data));
    }
  });

  it('untagged Send FPDU: header, pad to 4, CRC as little-endian bytes', () => {
    const payload = hex('01 02 03');
    // ULPDU_Length 21 | DDP ctrl 0x41 (L, v1) | RDMAP 0x43 (v1, Send) | rsvd | QN 0 | MSN 1 | MO 0 | data | 1 pad
    const body = hex('00 15 41 43 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 01 02 03 00');
    const crc = f.crc32c(body);
    const wire = new Uint8Array([...body, crc & 0xff, (crc >>> 8) & 0xff, (crc >>> 16) & 0xff, crc >>> 24]);
    const parts = f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_SEND, invalidateStag: 0, qn: 0, msn: 1, mo: 0 }, payload);
    assert.deepEqual(Buffer.concat(parts), Buffer.from(wire));
    assert.equal(parts[1], payload, 'the payload is passed through, not copied');
    assert.equal(f.fpduSize(false, 3, true), wire.length);
    const seg = f.decodeFpdu(wire);
    assert.ok(seg && !seg.tagged);
    assert.deepEqual({ ...seg, payload: [...seg.payload] }, {
      tagged: false, last: true, opcode: 3, invalidateStag: 0, qn: 0, msn: 1, mo: 0, payload: [1, 2, 3], byteLength: 28,
    });
  });

  it('tagged RDMA Write FPDU without CRC: the CRC field is there, zero', () => {
    const wire = hex('00 12 C1 40 12 34 56 78 00 00 00 01 00 00 10 00 AA BB CC DD 00 00 00 00');
    const h = { tagged: true as const, last: true, opcode: f.RDMAP_WRITE, stag: 0x12345678, to: 0x100001000n };
    assert.deepEqual(Buffer.concat(f.encodeFpdu(h, hex('AA BB CC DD'), false)), Buffer.from(wire));
    const seg = f.decodeFpdu(wire, false);
    assert.ok(seg?.tagged);
    assert.equal(seg.stag, 0x12345678);
    assert.equal(seg.to, 0x100001000n);
    assert.deepEqual([...seg.payload], [0xaa, 0xbb, 0xcc, 0xdd]);
  });

  it('Send-with-Invalidate carries the STag in RsvdULP', () => {
    const parts = f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_SEND_INVALIDATE, invalidateStag: 0xcafe0001, qn: 0, msn: 7, mo: 0 }, new Uint8Array(0), false);
    const wire = Buffer.concat(parts);
    assert.equal(toHex(wire), toHex(hex('00 12 41 44 CA FE 00 01 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 00')));
  });

  it('Read Request: 28-byte body on queue 1', () => {
    const rr = { sinkStag: 0x11111111, sinkTo: 0x2222222233333333n, size: 65536, srcStag: 0x44444444, srcTo: 0x5555555566666666n };
    const body = f.encodeReadRequest(rr);
    assert.equal(toHex(body), toHex(hex('11 11 11 11 22 22 22 22 33 33 33 33 00 01 00 00 44 44 44 44 55 55 55 55 66 66 66 66')));
    const wire = Buffer.concat(f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_READ_REQUEST, invalidateStag: 0, qn: 1, msn: 1, mo: 0 }, body));
    const seg = f.decodeFpdu(wire);
    assert.ok(seg);
    assert.deepEqual(f.decodeReadRequest(seg.payload), rr);
  });

  it('Terminate in RFC 5040 bit order: DDP untagged buffer error with the offending header', () => {
    const offending = hex('41 43 00 00 00 00 00 00 00 05 00 00 00 09 00 00 00 00'); // Send on QN 5
    const t = { layer: f.TERM_LAYER_DDP, etype: 2, errorCode: 1, m: true, d: true, r: false, ddpSegmentLength: 100, ddpHeader: offending, bitOrder: 'rfc' as const };
    const body = f.encodeTerminate(t);
    assert.equal(toHex(body), toHex(new Uint8Array([0x12, 0x01, 0xc0, 0x00, 0x00, 0x64, ...offending])));
    assert.deepEqual(f.decodeTerminate(body), t);
    const wire = Buffer.concat(f.encodeFpdu({ tagged: false, last: true, opcode: f.RDMAP_TERMINATE, invalidateStag: 0, qn: 2, msn: 1, mo: 0 }, body));
    // 2 + 18 + 24 = 44: already aligned, no pad; 4 bytes of CRC.
    assert.equal(wire.length, 48);
    assert.equal(toHex(wire.subarray(0, 4)), '00 2a 41 47');
  });

  it('Terminate reporting a bad Read Request carries the 28-byte RDMA header', () => {
    const ddp = hex('41 41 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00 00');
    const rdma = f.encodeReadRequest({ sinkStag: 1, sinkTo: 2n, size: 3, srcStag: 4, srcTo: 5n });
    const t = { layer: f.TERM_LAYER_RDMAP, etype: 1, errorCode: 2, m: true, d: true, r: true, ddpSegmentLength: 28, ddpHeader: ddp, rdmaHeader: rdma, bitOrder: 'rfc' as const };
    assert.deepEqual(f.decodeTerminate(f.encodeTerminate(t)), t);
  });

  it("Terminate as a 6.1 kernel siw sends it (little-endian bitfields): control 10 00 07 00", () => {
    // captured from siw answering an RDMA Read Request with an invalid STag: RDMAP layer, remote
    // protection error, invalid STag, M/D/R set; then the Read Request's DDP and RDMA headers
    const ddp = hex('41 41 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00 00');
    const rdma = f.encodeReadRequest({ sinkStag: 0x100, sinkTo: 0n, size: 4096, srcStag: 0xdead00, srcTo: 0x7f00n });
    const body = new Uint8Array([0x10, 0x00, 0x07, 0x00, 0x00, 0x2e, ...ddp, ...rdma]);
    const t = f.decodeTerminate(body);
    assert.deepEqual({ ...t, ddpHeader: undefined, rdmaHeader: undefined }, {
      layer: f.TERM_LAYER_RDMAP, etype: 1, errorCode: 0, m: true, d: true, r: true, ddpSegmentLength: 46, bitOrder: 'siw', ddpHeader: undefined, rdmaHeader: undefined,
    });
    assert.deepEqual(t.rdmaHeader, rdma);
    assert.deepEqual(f.encodeTerminate(t), body, 'encodes back in the same bit order');
  });

  it('catastrophic Terminate is the bare 4-byte control word', () => {
    const t = { layer: f.TERM_LAYER_RDMAP, etype: 0, errorCode: 0xff, m: false, d: false, r: false, bitOrder: 'rfc' as const };
    assert.equal(toHex(f.encodeTerminate(t)), '00 ff 00 00');
    assert.deepEqual(f.decodeTerminate(hex('00 ff 00 00')), t);
  });
});
