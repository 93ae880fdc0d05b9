// Every terminate/negotiate/validation rule as a negative test with its error code. The last test
// checks that every code in ERROR_CODES is exercised here at least once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as f from '../../framing/index.js';
import { hex, throwsCode } from './helpers.js';

type Case = [name: string, code: f.SmbDirectErrorCode, fn: () => unknown];
const covered = new Set<string>();

function cases(title: string, list: Case[]): void {
  describe(title, () => {
    for (const [name, code, fn] of list) {
      covered.add(code);
      it(`${code}: ${name}`, () => {
        throwsCode(fn, code);
      });
    }
  });
}

// Little helpers that build a valid message and change one field.
function negReq(patch: (b: Uint8Array) => void): Uint8Array {
  const b = f.encodeNegotiateRequest({ minVersion: 0x100, maxVersion: 0x100, creditsRequested: 255, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20 });
  patch(b);
  return b;
}
function negRes(patch: (b: Uint8Array) => void): Uint8Array {
  const b = f.encodeNegotiateResponse({
    minVersion: 0x100, maxVersion: 0x100, negotiatedVersion: 0x100, creditsRequested: 255, creditsGranted: 255,
    status: 0, maxReadWriteSize: 1 << 20, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20,
  });
  patch(b);
  return b;
}
function dt(fields: { offset?: number; length?: number; credits?: number; total?: number }): Uint8Array {
  const b = new Uint8Array(fields.total ?? 64);
  const v = new DataView(b.buffer);
  v.setUint16(0, fields.credits ?? 1, true);
  v.setUint32(12, fields.offset ?? 24, true);
  v.setUint32(16, fields.length ?? 0, true);
  return b;
}
const u32 = (b: Uint8Array, at: number, x: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, x, true);
const u16 = (b: Uint8Array, at: number, x: number) => new DataView(b.buffer, b.byteOffset).setUint16(at, x, true);

cases('negotiate request (3.1.5.6)', [
  ['19 bytes', 'ERR_SMBD_SHORT_MESSAGE', () => f.decodeNegotiateRequest(new Uint8Array(19))],
  ['MinVersion 0x0200', 'ERR_SMBD_NO_COMMON_VERSION', () => f.decodeNegotiateRequest(negReq((b) => { u16(b, 0, 0x200); u16(b, 2, 0x200); }))],
  ['MaxVersion 0x00FF', 'ERR_SMBD_NO_COMMON_VERSION', () => f.decodeNegotiateRequest(negReq((b) => { u16(b, 0, 0xff); u16(b, 2, 0xff); }))],
  ['MinVersion > MaxVersion', 'ERR_SMBD_NO_COMMON_VERSION', () => f.decodeNegotiateRequest(negReq((b) => { u16(b, 0, 0x100); u16(b, 2, 0xff); }))],
  ['CreditsRequested 0', 'ERR_SMBD_ZERO_CREDITS_REQUESTED', () => f.decodeNegotiateRequest(negReq((b) => u16(b, 6, 0)))],
  ['MaxReceiveSize 127', 'ERR_SMBD_RECEIVE_SIZE_TOO_SMALL', () => f.decodeNegotiateRequest(negReq((b) => u32(b, 12, 127)))],
  ['MaxFragmentedSize 131071', 'ERR_SMBD_FRAGMENTED_SIZE_TOO_SMALL', () => f.decodeNegotiateRequest(negReq((b) => u32(b, 16, 131071)))],
]);

describe('negotiate boundaries the spec allows (ksmbd rejected them, off by one)', () => {
  it('MaxReceiveSize 128 and MaxFragmentedSize 131072 are accepted', () => {
    const r = f.decodeNegotiateRequest(negReq((b) => { u32(b, 12, 128); u32(b, 16, 131072); }));
    assert.equal(r.maxReceiveSize, 128);
    assert.equal(r.maxFragmentedSize, 131072);
  });
  it('a version range that includes 0x0100 is accepted', () => {
    assert.equal(f.decodeNegotiateRequest(negReq((b) => { u16(b, 0, 0x100); u16(b, 2, 0x300); })).maxVersion, 0x300);
  });
});

cases('negotiate response (3.1.5.7)', [
  ['31 bytes', 'ERR_SMBD_SHORT_MESSAGE', () => f.decodeNegotiateResponse(new Uint8Array(31))],
  ['STATUS_INSUFFICIENT_RESOURCES', 'ERR_SMBD_NEGOTIATE_FAILED', () => f.decodeNegotiateResponse(negRes((b) => u32(b, 12, f.STATUS_INSUFFICIENT_RESOURCES)))],
  ['NegotiatedVersion 0x0200', 'ERR_SMBD_BAD_NEGOTIATED_VERSION', () => f.decodeNegotiateResponse(negRes((b) => u16(b, 4, 0x200)))],
  ['CreditsRequested 0', 'ERR_SMBD_ZERO_CREDITS_REQUESTED', () => f.decodeNegotiateResponse(negRes((b) => u16(b, 8, 0)))],
  ['CreditsGranted 0', 'ERR_SMBD_ZERO_CREDITS_GRANTED', () => f.decodeNegotiateResponse(negRes((b) => u16(b, 10, 0)))],
  ['MaxReceiveSize 127', 'ERR_SMBD_RECEIVE_SIZE_TOO_SMALL', () => f.decodeNegotiateResponse(negRes((b) => u32(b, 24, 127)))],
  ['MaxFragmentedSize 131071', 'ERR_SMBD_FRAGMENTED_SIZE_TOO_SMALL', () => f.decodeNegotiateResponse(negRes((b) => u32(b, 28, 131071)))],
  ['PreferredSendSize above our MaxReceiveSize', 'ERR_SMBD_PREFERRED_SEND_SIZE_TOO_LARGE', () => f.decodeNegotiateResponse(negRes((b) => u32(b, 20, 8193)), { maxReceiveSize: 8192 })],
]);

cases('data transfer (3.1.5.8)', [
  ['19 bytes', 'ERR_SMBD_SHORT_MESSAGE', () => f.decodeDataTransfer(new Uint8Array(19))],
  ['CreditsRequested 0', 'ERR_SMBD_ZERO_CREDITS_REQUESTED', () => f.decodeDataTransfer(dt({ credits: 0 }))],
  ['DataOffset 25 (not 8-byte aligned)', 'ERR_SMBD_BAD_DATA_OFFSET', () => f.decodeDataTransfer(dt({ offset: 25, length: 1 }))],
  ['DataOffset 4 with data: inside the header', 'ERR_SMBD_BAD_DATA_OFFSET', () => f.decodeDataTransfer(dt({ offset: 16, length: 8 }))],
  ['DataOffset + DataLength one past the message', 'ERR_SMBD_DATA_OVERRUN', () => f.decodeDataTransfer(dt({ offset: 24, length: 41, total: 64 }))],
  ['DataOffset + DataLength wraps past 2^32 (0xFFFFFFF8 + 0x10)', 'ERR_SMBD_DATA_OVERRUN', () => f.decodeDataTransfer(dt({ offset: 0xfffffff8, length: 0x10 }))],
  ['DataLength 0xFFFFFFFF', 'ERR_SMBD_DATA_OVERRUN', () => f.decodeDataTransfer(dt({ offset: 24, length: 0xffffffff }))],
  ['empty message with DataOffset past its end', 'ERR_SMBD_DATA_OVERRUN', () => f.decodeDataTransfer(dt({ offset: 64, length: 0, total: 20 }))],
]);

describe('data transfer edge cases that are valid', () => {
  it('DataOffset + DataLength exactly the message length', () => {
    assert.equal(f.decodeDataTransfer(dt({ offset: 24, length: 40, total: 64 })).data.length, 40);
  });
  it('data placed after extra padding (DataOffset 32)', () => {
    assert.equal(f.decodeDataTransfer(dt({ offset: 32, length: 32, total: 64 })).dataOffset, 32);
  });
});

const frag = (remainingDataLength: number, dataLength: number) => ({ remainingDataLength, dataLength, data: new Uint8Array(dataLength) });

cases('reassembly (3.1.5.8)', [
  ['DataLength + RemainingDataLength one past MaxFragmentedSize', 'ERR_SMBD_FRAGMENT_OVERRUN', () => new f.Reassembler(131072).push(frag(131072 - 1000 + 1, 1000))],
  ['RemainingDataLength 0xFFFFFFFF + DataLength past 2^32', 'ERR_SMBD_FRAGMENT_OVERRUN', () => new f.Reassembler(0xffffffff).push(frag(0xffffffff, 16))],
  ['next fragment leaves a different remainder', 'ERR_SMBD_FRAGMENT_MISMATCH', () => { const r = new f.Reassembler(1 << 20); r.push(frag(2000, 1000)); r.push(frag(1500, 1000)); }],
  ['last fragment (remaining 0) shorter than due', 'ERR_SMBD_FRAGMENT_MISMATCH', () => { const r = new f.Reassembler(1 << 20); r.push(frag(2000, 1000)); r.push(frag(0, 1999)); }],
  ['fragment larger than what is still due', 'ERR_SMBD_FRAGMENT_MISMATCH', () => { const r = new f.Reassembler(1 << 20); r.push(frag(100, 1000)); r.push(frag(0, 200)); }],
  ['an empty fragment between fragments announcing another remainder', 'ERR_SMBD_FRAGMENT_MISMATCH', () => { const r = new f.Reassembler(1 << 20); r.push(frag(100, 1000)); r.push(frag(50, 0)); }],
  ['a message starting with an empty fragment', 'ERR_SMBD_FRAGMENT_MISMATCH', () => new f.Reassembler(1 << 20).push(frag(100, 0))],
]);

describe('reassembly recovers state after an error', () => {
  it('a mismatch drops the partial message', () => {
    const r = new f.Reassembler(1 << 20);
    r.push(frag(2000, 1000));
    assert.equal(r.pending, true);
    assert.throws(() => r.push(frag(5, 5)));
    assert.equal(r.pending, false);
  });
});

cases('fragmenter', [
  ['empty message', 'ERR_SMBD_EMPTY_MESSAGE', () => new f.Fragmenter(1364).split(new Uint8Array(0))],
  ['message over MaxFragmentedSize', 'ERR_SMBD_MESSAGE_TOO_LARGE', () => new f.Fragmenter(1364, 131072).split(new Uint8Array(131073))],
  ['MaxSendSize 127', 'ERR_FRAMING_INVALID_ARGUMENT', () => new f.Fragmenter(127)],
  ['count() of an empty message', 'ERR_SMBD_EMPTY_MESSAGE', () => new f.Fragmenter(1364).count(0)],
  ['count() over MaxFragmentedSize', 'ERR_SMBD_MESSAGE_TOO_LARGE', () => new f.Fragmenter(1364, 131072).count(131073)],
  ['at() past the last fragment', 'ERR_FRAMING_INVALID_ARGUMENT', () => new f.Fragmenter(1364).at(new Uint8Array(1340), 1)],
  ['at() of a negative index', 'ERR_FRAMING_INVALID_ARGUMENT', () => new f.Fragmenter(1364).at(new Uint8Array(10), -1)],
  ['at() of a fractional index', 'ERR_FRAMING_INVALID_ARGUMENT', () => new f.Fragmenter(1364).at(new Uint8Array(5000), 0.5)],
]);

cases('buffer descriptors (2.2.3.1)', [
  ['empty list', 'ERR_SMBD_BAD_DESCRIPTOR_LIST', () => f.decodeBufferDescriptors(new Uint8Array(0))],
  ['17 bytes', 'ERR_SMBD_BAD_DESCRIPTOR_LIST', () => f.decodeBufferDescriptors(new Uint8Array(17))],
  ['Offset 2^64 - 1 MiB + Length 2 MiB (wraps)', 'ERR_SMBD_DESCRIPTOR_OVERFLOW',
    () => f.decodeBufferDescriptors(hex('00 10 00 00 00 00 00 00 01 00 00 00 01 00 00 00  00 00 F0 FF FF FF FF FF 07 00 00 00 00 00 20 00'))],
  ['encode a descriptor that wraps past 2^64', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeBufferDescriptors([{ offset: 0xfffffffffffffff8n, token: 1, length: 9 }])],
  ['encode a negative offset', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeBufferDescriptors([{ offset: -1n, token: 0, length: 1 }])],
  ['encode a 2^32 length', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeBufferDescriptors([{ offset: 0n, token: 0, length: 2 ** 32 }])],
]);

const D = [{ offset: 0x1000n, token: 7, length: 65536 }];
function rw(patch: (b: Uint8Array) => void, init: Partial<f.Smb2ReadWriteInit> = {}): Uint8Array {
  const pdu = f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 1, length: 65536, descriptors: D, ...init });
  patch(pdu);
  return pdu;
}
const noop = () => {};
cases('SMB2 READ/WRITE channel fields ([MS-SMB2] 2.2.19/2.2.21)', [
  ['111 bytes', 'ERR_SMB2_SHORT_PDU', () => f.decodeSmb2ReadWriteChannel(new Uint8Array(111))],
  ['ProtocolId 0xFF SMB (SMB1)', 'ERR_SMB2_BAD_PROTOCOL_ID', () => f.decodeSmb2ReadWriteChannel(rw((b) => { b[0] = 0xff; }))],
  ['encrypted (0xFD SMB) PDU', 'ERR_SMB2_BAD_PROTOCOL_ID', () => f.decodeSmb2ReadWriteChannel(rw((b) => { b[0] = 0xfd; }))],
  ['header StructureSize 63', 'ERR_SMB2_BAD_PROTOCOL_ID', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 4, 63)))],
  ['command CREATE', 'ERR_SMB2_NOT_READ_WRITE', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 12, 5)))],
  ['StructureSize 48', 'ERR_SMB2_BAD_STRUCTURE_SIZE', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 64, 48)))],
  ['NextCommand past the PDU', 'ERR_SMB2_BAD_NEXT_COMMAND', () => f.decodeSmb2ReadWriteChannel(rw((b) => u32(b, 20, 4096)))],
  ['NextCommand inside the fixed part', 'ERR_SMB2_BAD_NEXT_COMMAND', () => f.decodeSmb2ReadWriteChannel(rw((b) => u32(b, 20, 64)))],
  ['channel info cut off by NextCommand', 'ERR_SMB2_BAD_CHANNEL_INFO', () => f.decodeSmb2ReadWriteChannel(rw((b) => u32(b, 20, 120)))],
  ['Channel 4', 'ERR_SMB2_BAD_CHANNEL', () => f.decodeSmb2ReadWriteChannel(rw((b) => u32(b, 64 + 36, 4)))],
  ['Channel RDMA_TRANSFORM', 'ERR_SMB2_UNSUPPORTED_CHANNEL', () => f.decodeSmb2ReadWriteChannel(rw((b) => u32(b, 64 + 36, 3)))],
  ['channel info past the end', 'ERR_SMB2_BAD_CHANNEL_INFO', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 64 + 44, 113)))],
  ['channel info overlapping the fixed part', 'ERR_SMB2_BAD_CHANNEL_INFO', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 64 + 44, 96)))],
  ['channel info length 15', 'ERR_SMB2_BAD_CHANNEL_INFO', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 64 + 46, 15)))],
  ['channel info length 0 on an RDMA channel', 'ERR_SMB2_BAD_CHANNEL_INFO', () => f.decodeSmb2ReadWriteChannel(rw((b) => u16(b, 64 + 46, 0)))],
  ['zero-length descriptor', 'ERR_SMB2_ZERO_LENGTH_DESCRIPTOR', () => f.decodeSmb2ReadWriteChannel(rw(noop, { descriptors: [D[0], { offset: 0n, token: 1, length: 0 }] }))],
  ['READ of 0 bytes', 'ERR_SMB2_ZERO_LENGTH_TRANSFER', () => f.decodeSmb2ReadWriteChannel(rw(noop, { length: 0 }))],
  ['WRITE with RemainingBytes 0', 'ERR_SMB2_ZERO_LENGTH_TRANSFER', () => f.decodeSmb2ReadWriteChannel(rw(noop, { command: 'write', length: 0, remainingBytes: 0 }))],
  ['READ longer than the descriptors', 'ERR_SMB2_DESCRIPTORS_TOO_SHORT', () => f.decodeSmb2ReadWriteChannel(rw(noop, { length: 65537 }))],
  ['WRITE with inline Length over RDMA', 'ERR_SMB2_BAD_WRITE_LENGTH', () => f.decodeSmb2ReadWriteChannel(rw(noop, { command: 'write', length: 10, remainingBytes: 100 }))],
  ['encode a 15-byte fileId', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 0, length: 1, fileId: new Uint8Array(15) })],
]);

describe('SMB2 channel: valid corner cases', () => {
  it('Channel NONE has no descriptors', () => {
    assert.deepEqual(f.decodeSmb2ReadWriteChannel(f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 0, length: 4096 })).descriptors, []);
  });
  it('descriptor lengths add up past 2^32 without wrapping', () => {
    const big = Array.from({ length: 3 }, () => ({ offset: 0n, token: 1, length: 0xffffffff }));
    assert.equal(f.decodeSmb2ReadWriteChannel(rw(noop, { command: 'write', length: 0, remainingBytes: 0xffffffff, descriptors: big })).descriptors.length, 3);
  });
  it('a compound READ is bounded by NextCommand', () => {
    const one = rw(noop);
    const two = new Uint8Array(one.length + 8 + one.length);
    two.set(one, 0);
    u32(two, 20, one.length + 8);
    two.set(one, one.length + 8);
    assert.equal(f.decodeSmb2ReadWriteChannel(two).descriptors.length, 1);
  });
});

const req = () => f.encodeMpaRequest({ revision: 2, privateData: f.encodeIrdOrd({ ird: 1, ord: 1, peerToPeer: false, sendRtr: false, writeRtr: false, readRtr: false }) });
cases('MPA request/reply (RFC 5044 7.1, RFC 6581)', [
  ['key "MPA ID Req Frame" with a typo', 'ERR_MPA_BAD_KEY', () => f.decodeMpaFrame(req().map((x, i) => (i === 4 ? 0x69 : x)))],
  ['HTTP bytes where a key should be', 'ERR_MPA_BAD_KEY', () => f.mpaFrameLength(new TextEncoder().encode('GET / HTTP/1.1\r\n'))],
  ['a reply where a request is expected', 'ERR_MPA_BAD_KEY', () => f.decodeMpaFrame(f.encodeMpaReply({}), 'request')],
  ['the first byte already wrong', 'ERR_MPA_BAD_KEY', () => f.mpaFrameLength(new Uint8Array([0x00]))],
  ['19 bytes', 'ERR_MPA_SHORT_FRAME', () => f.decodeMpaFrame(req().subarray(0, 19))],
  ['PD_Length longer than the bytes', 'ERR_MPA_SHORT_FRAME', () => f.decodeMpaFrame(req().subarray(0, 23))],
  ['revision 3', 'ERR_MPA_BAD_REVISION', () => f.decodeMpaFrame(req().map((x, i) => (i === 17 ? 3 : x)))],
  ['revision 0', 'ERR_MPA_BAD_REVISION', () => f.decodeMpaFrame(req().map((x, i) => (i === 17 ? 0 : x)))],
  ['PD_Length 513', 'ERR_MPA_PRIVATE_DATA_TOO_LONG', () => f.mpaFrameLength(new Uint8Array([...req().subarray(0, 18), 0x02, 0x01]))],
  ['enhanced with 3 bytes of private data', 'ERR_MPA_BAD_IRD_ORD', () => f.decodeMpaFrame(new Uint8Array([...req().subarray(0, 18), 0, 3, 1, 2, 3]))],
  ['decodeIrdOrd on 2 bytes', 'ERR_MPA_BAD_IRD_ORD', () => f.decodeIrdOrd(new Uint8Array(2))],
  ['encode 513 bytes of private data', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeMpaRequest({ privateData: new Uint8Array(513) })],
  ['encode IRD 0x4000', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeIrdOrd({ ird: 0x4000, ord: 0, peerToPeer: false, sendRtr: false, writeRtr: false, readRtr: false })],
]);

function fpdu(h: f.DdpHeader, payload: Uint8Array = new Uint8Array(4), crc = true): Uint8Array {
  return new Uint8Array(Buffer.concat(f.encodeFpdu(h, payload, crc)));
}
const SEND: f.UntaggedHeader = { tagged: false, last: true, opcode: f.RDMAP_SEND, invalidateStag: 0, qn: 0, msn: 1, mo: 0 };
const WRITE: f.TaggedHeader = { tagged: true, last: true, opcode: f.RDMAP_WRITE, stag: 1, to: 0n };
/** Rewrites a byte of an FPDU and fixes its CRC, so the check under test is the one that fires. */
function patched(wire: Uint8Array, at: number, value: number): Uint8Array {
  const b = wire.slice();
  b[at] = value;
  const crcAt = b.length - 4;
  const c = f.crc32c(b.subarray(0, crcAt));
  b.set([c & 0xff, (c >>> 8) & 0xff, (c >>> 16) & 0xff, c >>> 24], crcAt);
  return b;
}

cases('FPDU / DDP / RDMAP (RFC 5044 6, RFC 5041, RFC 5040)', [
  ['ULPDU_Length 13', 'ERR_MPA_BAD_ULPDU_LENGTH', () => f.decodeFpdu(hex('00 0d'))],
  ['untagged segment with ULPDU_Length 14', 'ERR_MPA_BAD_ULPDU_LENGTH', () => f.decodeFpdu(new Uint8Array([0x00, 0x0e, 0x41, 0x43, ...new Uint8Array(16)]), false)],
  ['one flipped payload bit', 'ERR_MPA_BAD_CRC', () => f.decodeFpdu(fpdu(SEND).map((x, i) => (i === 20 ? x ^ 1 : x)))],
  ['one flipped CRC bit', 'ERR_MPA_BAD_CRC', () => { const b = fpdu(SEND); b[b.length - 1] ^= 0x80; return f.decodeFpdu(b); }],
  ['DDP version 2', 'ERR_DDP_BAD_VERSION', () => f.decodeFpdu(patched(fpdu(SEND), 2, 0x42))],
  ['DDP version 0', 'ERR_DDP_BAD_VERSION', () => f.decodeFpdu(patched(fpdu(SEND), 2, 0x40))],
  ['RDMAP version 2', 'ERR_RDMAP_BAD_VERSION', () => f.decodeFpdu(patched(fpdu(SEND), 3, 0x83))],
  ['opcode 8', 'ERR_RDMAP_BAD_OPCODE', () => f.decodeFpdu(patched(fpdu(SEND), 3, 0x48))],
  ['atomic opcode 0xA', 'ERR_RDMAP_BAD_OPCODE', () => f.decodeFpdu(patched(fpdu(SEND), 3, 0x4a))],
  ['Send arriving tagged', 'ERR_DDP_BAD_BUFFER_MODEL', () => f.decodeFpdu(patched(fpdu(WRITE), 3, 0x43))],
  ['Write arriving untagged', 'ERR_DDP_BAD_BUFFER_MODEL', () => f.decodeFpdu(patched(fpdu(SEND), 3, 0x40))],
  ['Send on queue 1', 'ERR_DDP_BAD_QN', () => f.decodeFpdu(patched(fpdu(SEND), 11, 1))],
  ['Read Request on queue 0', 'ERR_DDP_BAD_QN', () => f.decodeFpdu(fpdu({ ...SEND, opcode: f.RDMAP_READ_REQUEST, qn: 0 }, new Uint8Array(28)))],
  ['Read Request of 27 bytes', 'ERR_RDMAP_BAD_READ_REQUEST', () => f.decodeFpdu(fpdu({ ...SEND, opcode: f.RDMAP_READ_REQUEST, qn: 1 }, new Uint8Array(27)))],
  ['Read Request without L', 'ERR_RDMAP_BAD_READ_REQUEST', () => f.decodeFpdu(fpdu({ ...SEND, last: false, opcode: f.RDMAP_READ_REQUEST, qn: 1 }, new Uint8Array(28)))],
  ['decodeReadRequest on 29 bytes', 'ERR_RDMAP_BAD_READ_REQUEST', () => f.decodeReadRequest(new Uint8Array(29))],
  ['Terminate of 3 bytes', 'ERR_RDMAP_BAD_TERMINATE', () => f.decodeFpdu(fpdu({ ...SEND, opcode: f.RDMAP_TERMINATE, qn: 2 }, new Uint8Array(3)))],
  ['Terminate without L', 'ERR_RDMAP_BAD_TERMINATE', () => f.decodeFpdu(fpdu({ ...SEND, last: false, opcode: f.RDMAP_TERMINATE, qn: 2 }))],
  ['Terminate with D but no header', 'ERR_RDMAP_BAD_TERMINATE', () => f.decodeTerminate(hex('10 00 c0 00 00 10 41'))],
  ['Terminate with M but no length', 'ERR_RDMAP_BAD_TERMINATE', () => f.decodeTerminate(hex('10 00 80 00 00'))],
  ['Terminate with R for a Read Request but no RDMA header', 'ERR_RDMAP_BAD_TERMINATE', () => f.decodeTerminate(new Uint8Array([0x01, 0x02, 0xe0, 0, 0, 28, 0x41, 0x41, ...new Uint8Array(16)]))],
  ['encode a Write header as untagged', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeFpdu({ ...SEND, opcode: f.RDMAP_WRITE }, new Uint8Array(0))],
  ['encode a 65522-byte untagged payload', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeFpdu(SEND, new Uint8Array(65518))],
  ['encode Terminate layer 16', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeTerminate({ layer: 16, etype: 0, errorCode: 0, m: false, d: false, r: false })],
]);

describe('FPDU stream framing', () => {
  it('returns undefined until the whole FPDU is there, then says where the next starts', () => {
    const one = fpdu(SEND, new Uint8Array(13));
    const two = new Uint8Array([...one, ...one]);
    for (let n = 0; n < one.length; n++) assert.equal(f.decodeFpdu(two.subarray(0, n)), undefined, `prefix ${n}`);
    const seg = f.decodeFpdu(two);
    assert.ok(seg);
    assert.equal(seg.byteLength, one.length);
    assert.ok(f.decodeFpdu(two.subarray(seg.byteLength)));
  });
});

cases('encoders refuse values that do not fit', [
  ['creditsRequested 65536', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeDataTransfer({ creditsRequested: 65536, creditsGranted: 0 })],
  ['remainingDataLength -1', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 0, remainingDataLength: -1 })],
  ['dataLength that disagrees with data', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 0, dataLength: 3, data: new Uint8Array(2) })],
  ['header past the end of the slab', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.writeDataTransferHeader(new Uint8Array(30), 8, { creditsRequested: 1, creditsGranted: 0, dataLength: 1 })],
  ['negotiate preferredSendSize 2^32', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.encodeNegotiateRequest({ minVersion: 0x100, maxVersion: 0x100, creditsRequested: 1, preferredSendSize: 2 ** 32, maxReceiveSize: 128, maxFragmentedSize: 131072 })],
  ['Reassembler(0)', 'ERR_FRAMING_INVALID_ARGUMENT', () => new f.Reassembler(0)],
]);

/** A NEGOTIATE request with `edit` applied to its bytes. */
function smb2Neg(edit: (b: Uint8Array) => void, dialects = [0x300, 0x311]): Uint8Array {
  const b = f.smb2.encodeSmb2NegotiateRequest({ dialects, clientGuid: new Uint8Array(16), contexts: [f.smb2.preauthContext(new Uint8Array(8)), f.smb2.signingContext([1])] });
  edit(b);
  return b;
}

cases('SMB2 header and NEGOTIATE (framing/smb2)', [
  ['header of 63 bytes', 'ERR_SMB2_SHORT_PDU', () => f.smb2.decodeSmb2Header(new Uint8Array(63))],
  ['ProtocolId 0xFF SMB (SMB1)', 'ERR_SMB2_BAD_PROTOCOL_ID', () => f.smb2.decodeSmb2Header(smb2Neg((b) => { b[0] = 0xff; }))],
  ['Command 0x13', 'ERR_SMB2_BAD_COMMAND', () => f.smb2.decodeSmb2Header(smb2Neg((b) => { b[12] = 0x13; }))],
  ['NextCommand 100 (not 8-byte aligned)', 'ERR_SMB2_BAD_NEXT_COMMAND', () => f.smb2.splitSmb2Compound(smb2Neg((b) => { b[20] = 100; }))],
  ['NextCommand past the PDU', 'ERR_SMB2_BAD_NEXT_COMMAND', () => f.smb2.splitSmb2Compound(smb2Neg((b) => { b[20] = 0; b[21] = 1; }))],
  ['request StructureSize 37', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[64] = 37; }))],
  ['DialectCount 0', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[66] = 0; }))],
  ['DialectCount 65', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[66] = 65; }))],
  ['dialects past the PDU', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[66] = 40; }))],
  ['3.1.1 with NegotiateContextCount 0', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[96] = 0; }))],
  ['NegotiateContextOffset not 8-byte aligned', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[92] += 2; }))],
  ['NegotiateContextOffset inside the dialects', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[92] = 96; }))],
  ['a context whose DataLength runs past the PDU', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[106] = 0xff; }))],
  ['3.1.1 without PREAUTH_INTEGRITY_CAPABILITIES', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[104] = 9; }))],
  ['the same context type twice', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[128] = 1; }))],
  ['a preauth context whose salt runs past it', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[114] = 9; }))],
  ['a request flagged as a response', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateRequest(smb2Neg((b) => { b[16] = 1; }))],
  ['a failed NEGOTIATE response', 'ERR_SMB2_NEGOTIATE_FAILED', () => f.smb2.decodeSmb2NegotiateResponse(f.smb2.encodeSmb2Header({ command: 0, flags: 1, status: 0xc00000bb }))],
  ['a response choosing two ciphers', 'ERR_SMB2_BAD_NEGOTIATE', () => f.smb2.decodeSmb2NegotiateResponse(f.smb2.encodeSmb2NegotiateResponse({
    dialect: 0x311, serverGuid: new Uint8Array(16), maxTransactSize: 1, maxReadSize: 1, maxWriteSize: 1,
    contexts: [f.smb2.preauthContext(new Uint8Array(0)), f.smb2.encryptionContext([1, 2])],
  }))],
  ['encode: a 15-byte client GUID', 'ERR_FRAMING_INVALID_ARGUMENT', () => f.smb2.encodeSmb2NegotiateRequest({ dialects: [0x311], clientGuid: new Uint8Array(15) })],
  ['a TRANSFORM_HEADER with Flags 2', 'ERR_SMB2_BAD_TRANSFORM', () => f.smb2.decodeSmb2TransformHeader(transform((b) => { b[42] = 2; }))],
  ['a TRANSFORM_HEADER whose OriginalMessageSize is not what follows', 'ERR_SMB2_BAD_TRANSFORM', () => f.smb2.decodeSmb2TransformHeader(transform((b) => { b[36] = 65; }))],
]);

/** A TRANSFORM_HEADER around 64 bytes, then `edit`. */
function transform(edit: (b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(52 + 64);
  f.smb2.encodeSmb2TransformHeader(b, { nonce: new Uint8Array(12), originalMessageSize: 64, sessionId: 1n });
  edit(b);
  return b;
}

/** An NTLMSSP AUTHENTICATE message with `edit` applied. */
function ntlmAuth(edit: (b: Uint8Array) => void): Uint8Array {
  const b = f.smb2.encodeNtlmAuthenticate({ flags: 1, lmChallengeResponse: new Uint8Array(24), ntChallengeResponse: new Uint8Array(48), domain: 'D', user: 'u', workstation: 'W', encryptedRandomSessionKey: new Uint8Array(0) });
  edit(b);
  return b;
}

cases('NTLMSSP (framing/smb2/ntlmssp.ts)', [
  ['signature "NTLMSSQ"', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmAuthenticate(ntlmAuth((b) => { b[6] = 0x51; }))],
  ['a CHALLENGE where an AUTHENTICATE is expected', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmAuthenticate(ntlmAuth((b) => { b[8] = 2; }))],
  ['an AUTHENTICATE of 63 bytes', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmAuthenticate(ntlmAuth(() => {}).subarray(0, 63))],
  ['NtChallengeResponse past the message', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmAuthenticate(ntlmAuth((b) => { b[20] = 0xff; }))],
  ['a payload inside the fixed part', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmAuthenticate(ntlmAuth((b) => { b[16] = 8; }))],
  ['a user name of an odd byte count', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmAuthenticate(ntlmAuth((b) => { b[36] = 1; }))],
  ['a message over 64 KiB', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeNtlmNegotiate(Uint8Array.from([...f.smb2.encodeNtlmNegotiate(1), ...new Uint8Array(65536)]))],
  ['AV pairs without MsvAvEOL', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeAvPairs(Uint8Array.from([1, 0, 2, 0, 0x41, 0]))],
  ['an AV pair past TargetInfo', 'ERR_NTLM_BAD_MESSAGE', () => f.smb2.decodeAvPairs(Uint8Array.from([1, 0, 9, 0, 0x41, 0, 0, 0]))],
]);

cases('SPNEGO (framing/smb2/spnego.ts)', [
  ['an empty token', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(new Uint8Array(0))],
  ['a length past the token', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(Uint8Array.from([0xa1, 0x05, 0x30, 0x00]))],
  ['an indefinite length', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(Uint8Array.from([0xa1, 0x80, 0x30, 0x00, 0x00, 0x00]))],
  ['a GSS token for Kerberos', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(Uint8Array.from([0x60, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0xa1, 0x00]))],
  ['a NegTokenInit without mechTypes', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(Uint8Array.from([0xa0, 0x02, 0x30, 0x00]))],
  ['negState 7', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(Uint8Array.from([0xa1, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x0a, 0x01, 0x07]))],
  ['bytes after the token', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(Uint8Array.from([0xa1, 0x02, 0x30, 0x00, 0x00]))],
  ['a raw NTLMSSP message', 'ERR_SPNEGO_BAD_TOKEN', () => f.smb2.decodeSpnego(f.smb2.encodeNtlmNegotiate(1))],
]);

cases('SMB2 SESSION_SETUP (framing/smb2/session.ts)', [
  ['a request flagged as a response', 'ERR_SMB2_BAD_REQUEST', () => f.smb2.decodeSmb2SessionSetupRequest(f.smb2.encodeSmb2SessionSetupResponse({ securityBuffer: new Uint8Array(4) }))],
  ['StructureSize 24', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2SessionSetupRequest({ securityBuffer: new Uint8Array(4) }); b[64] = 24; return f.smb2.decodeSmb2SessionSetupRequest(b); }],
  ['a security buffer past the PDU', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2SessionSetupRequest({ securityBuffer: new Uint8Array(4) }); b[78] = 5; return f.smb2.decodeSmb2SessionSetupRequest(b); }],
  ['a security buffer inside the fixed part', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2SessionSetupRequest({ securityBuffer: new Uint8Array(4) }); b[76] = 70; return f.smb2.decodeSmb2SessionSetupRequest(b); }],
  ['a NEGOTIATE where SESSION_SETUP is expected', 'ERR_SMB2_BAD_REQUEST', () => f.smb2.decodeSmb2SessionSetupRequest(f.smb2.encodeSmb2NegotiateRequest({ dialects: [0x302], clientGuid: new Uint8Array(16) }))],
  ['a response of 71 bytes', 'ERR_SMB2_BAD_REQUEST', () => f.smb2.decodeSmb2SessionSetupResponse(f.smb2.encodeSmb2SessionSetupResponse({ securityBuffer: new Uint8Array(0) }).subarray(0, 71))],
]);

cases('SMB2 TREE_CONNECT, CLOSE and the small commands (framing/smb2/tree.ts)', [
  ['a TREE_CONNECT path of odd length', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2TreeConnectRequest({ path: '\\\\s\\x' }); b[70] = 5; return f.smb2.decodeSmb2TreeConnectRequest(b); }],
  ['a TREE_CONNECT path past the PDU', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2TreeConnectRequest({ path: '\\\\s\\x' }); b[70] = 200; return f.smb2.decodeSmb2TreeConnectRequest(b); }],
  ['an empty TREE_CONNECT path', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2TreeConnectRequest({ path: '\\\\s\\x' }); b[70] = 0; return f.smb2.decodeSmb2TreeConnectRequest(b); }],
  ['a CLOSE of 87 bytes', 'ERR_SMB2_BAD_REQUEST', () => f.smb2.decodeSmb2CloseRequest(f.smb2.encodeSmb2CloseRequest({ fileId: { persistent: 0n, volatile: 0n } }).subarray(0, 87))],
  ['an IOCTL input past the PDU', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2IoctlRequest({ ctlCode: 0x140204, fileId: f.smb2.SMB2_FILE_ID_RELATED, input: new Uint8Array(8) }); b[64 + 28] = 9; return f.smb2.decodeSmb2IoctlRequest(b); }],
  ['an IOCTL input over 64 KiB', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2IoctlRequest({ ctlCode: 0x140204, fileId: f.smb2.SMB2_FILE_ID_RELATED, input: new Uint8Array(8) }); b[64 + 30] = 2; return f.smb2.decodeSmb2IoctlRequest(b); }],
  ['a VALIDATE_NEGOTIATE_INFO naming more dialects than it holds', 'ERR_SMB2_BAD_REQUEST', () => f.smb2.decodeValidateNegotiateInfo(Uint8Array.from([...new Uint8Array(22), 3, 0, 2, 3]))],
  ['a CREATE name of odd length', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2CreateRequest({ name: 'ab', desiredAccess: 1, createDisposition: 1 }); b[64 + 46] = 3; return f.smb2.decodeSmb2CreateRequest(b); }],
  ['CREATE contexts not 8-aligned', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2CreateRequest({ name: 'ab', desiredAccess: 1, createDisposition: 1, contexts: [{ name: 'MxAc', data: new Uint8Array(0) }] }); b[64 + 48] += 4; return f.smb2.decodeSmb2CreateRequest(b); }],
  ['a create context name outside its context', 'ERR_SMB2_BAD_REQUEST', () => { const a = f.smb2.encodeCreateContexts([{ name: 'MxAc', data: new Uint8Array(0) }]); a[6] = 40; return f.smb2.decodeCreateContexts(a); }],
  ['a create context Next past the area', 'ERR_SMB2_BAD_REQUEST', () => { const a = f.smb2.encodeCreateContexts([{ name: 'MxAc', data: new Uint8Array(0) }, { name: 'QFid', data: new Uint8Array(0) }]); a[0] = 200; return f.smb2.decodeCreateContexts(a); }],
  ['an ECHO with StructureSize 5', 'ERR_SMB2_BAD_REQUEST', () => { const b = f.smb2.encodeSmb2Empty(0x0d, {}, false); b[64] = 5; return f.smb2.decodeSmb2Empty(b, 0x0d, false); }],
]);

describe('coverage of the error table', () => {
  it('every code in ERROR_CODES has a negative test above', () => {
    const missing = Object.keys(f.ERROR_CODES).filter((c) => !covered.has(c));
    assert.deepEqual(missing, []);
  });
});
