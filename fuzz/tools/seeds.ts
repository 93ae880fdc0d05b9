// Writes the seed corpus, fuzz/corpus/<target>/<name>: a handful of valid inputs per target, made
// with the project's encoders (the same values as the test vectors). Run after changing a target's
// input format: node --import tsx fuzz/tools/seeds.ts
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as f from '../../framing/index.js';
import { Cursor, concat } from '../lib/bytes.js';
import { Rig, iwarpSettings } from '../lib/iwarp.js';
import { readMessages } from '../lib/smbd-input.js';

const CORPUS = join(dirname(fileURLToPath(import.meta.url)), '..', 'corpus');
const seeds: Record<string, Record<string, Uint8Array>> = {};
const add = (target: string, name: string, bytes: Uint8Array) => { (seeds[target] ??= {})[name] = bytes; };

const D = [{ offset: 0x1000n, token: 7, length: 65536 }, { offset: 0x9000n, token: 8, length: 4096 }];
const request = (o: Partial<f.NegotiateRequest> = {}) => f.encodeNegotiateRequest({
  minVersion: 0x100, maxVersion: 0x100, creditsRequested: 255, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20, ...o,
});
const response = (o: Partial<f.NegotiateResponse> = {}) => f.encodeNegotiateResponse({
  minVersion: 0x100, maxVersion: 0x100, negotiatedVersion: 0x100, creditsRequested: 255, creditsGranted: 255, status: 0,
  maxReadWriteSize: 1 << 23, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20, ...o,
});
const le32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); return b; };
const fpdu = (h: f.DdpHeader, payload: Uint8Array, crc = true) => concat(f.encodeFpdu(h, payload, crc));
const send = (msn: number, payload: Uint8Array, o: Partial<f.UntaggedHeader> = {}) =>
  fpdu({ tagged: false, last: true, opcode: f.RDMAP_SEND, invalidateStag: 0, qn: 0, msn, mo: 0, ...o }, payload);
const bytes = (n: number, v = 0x41) => new Uint8Array(n).fill(v);

// ---- decoders ---------------------------------------------------------------------------------
add('negotiate', 'request', request());
add('negotiate', 'request-minimums', request({ creditsRequested: 1, maxReceiveSize: 128, maxFragmentedSize: 131072 }));
add('negotiate', 'response', response());
add('negotiate', 'response-with-sent', concat([response({ preferredSendSize: 1364 }), le32(8192)]));
add('negotiate', 'response-not-supported', response({ status: f.STATUS_NOT_SUPPORTED, negotiatedVersion: 0 }));

add('data-transfer', 'data', f.encodeDataTransfer({ creditsRequested: 255, creditsGranted: 10, remainingDataLength: 660, data: bytes(100) }));
add('data-transfer', 'empty-keepalive', f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 0, flags: f.RESPONSE_REQUESTED }));
add('data-transfer', 'offset-32', (() => { const b = new Uint8Array(40); b.set(f.encodeDataTransfer({ creditsRequested: 1, creditsGranted: 1 }).subarray(0, 20)); new DataView(b.buffer).setUint32(12, 32, true); new DataView(b.buffer).setUint32(16, 8, true); return b; })());

add('buffer-descriptors', 'two', f.encodeBufferDescriptors(D));
add('buffer-descriptors', 'one-max', f.encodeBufferDescriptors([{ offset: 0xffffffff00000000n, token: 0xffffffff, length: 0xffffffff }]));

const sel = (n: number, b: Uint8Array) => concat([Uint8Array.of(n), b]);
add('smb2-messages', 'negotiate-311', sel(0, f.smb2.encodeSmb2NegotiateRequest({
  dialects: [0x300, 0x302, 0x311], clientGuid: bytes(16, 1),
  contexts: [f.smb2.preauthContext(bytes(32, 2)), f.smb2.encryptionContext([2, 1]), f.smb2.signingContext([2, 1])],
})));
add('smb2-messages', 'negotiate-302', sel(0, f.smb2.encodeSmb2NegotiateRequest({ dialects: [0x300, 0x302], clientGuid: bytes(16, 1) })));
add('smb2-messages', 'negotiate-response-311', sel(1, f.smb2.encodeSmb2NegotiateResponse({
  dialect: 0x311, serverGuid: bytes(16, 3), maxTransactSize: 1 << 20, maxReadSize: 1 << 20, maxWriteSize: 1 << 20,
  securityBuffer: f.smb2.encodeSpnegoInit({ mechTypes: [f.smb2.OID_NTLMSSP], hint: f.smb2.SPNEGO_HINT_IGNORE }),
  contexts: [f.smb2.preauthContext(bytes(32, 4)), f.smb2.signingContext([2])],
})));
add('smb2-messages', 'spnego-init', sel(2, f.smb2.encodeSpnegoInit({ mechTypes: [f.smb2.OID_NTLMSSP], mechToken: f.smb2.encodeNtlmNegotiate(0x60088215) })));
add('smb2-messages', 'spnego-resp', sel(2, f.smb2.encodeSpnegoResp({ negState: 1, supportedMech: f.smb2.OID_NTLMSSP, responseToken: bytes(60) })));
add('smb2-messages', 'ntlm-challenge', sel(3, f.smb2.encodeNtlmChallenge({ flags: 0x628a8215, targetName: 'S', serverChallenge: bytes(8, 5), targetInfo: [{ id: 1, value: f.smb2.utf16le('S') }] })));
add('smb2-messages', 'ntlm-authenticate', sel(3, f.smb2.encodeNtlmAuthenticate({
  flags: 0x628a8215, lmChallengeResponse: bytes(24, 0), ntChallengeResponse: bytes(80, 6), domain: 'D', user: 'u', workstation: 'W', encryptedRandomSessionKey: bytes(16, 7),
})));
add('smb2-messages', 'session-setup', sel(4, f.smb2.encodeSmb2SessionSetupRequest({ securityBuffer: f.smb2.encodeNtlmNegotiate(0x60088215) })));
add('smb2-messages', 'tree-connect', sel(4, f.smb2.encodeSmb2TreeConnectRequest({ path: '\\\\10.99.0.1\\share' })));
add('smb2-messages', 'ioctl-validate', sel(4, f.smb2.encodeSmb2IoctlRequest({ ctlCode: f.smb2.FSCTL.VALIDATE_NEGOTIATE_INFO, fileId: f.smb2.SMB2_FILE_ID_RELATED,
  input: f.smb2.encodeValidateNegotiateInfo({ capabilities: 4, guid: bytes(16, 1), securityMode: 1, dialects: [0x300, 0x302] }) })));
add('smb2-messages', 'create', sel(4, f.smb2.encodeSmb2CreateRequest({ name: 'dir\\f.bin', desiredAccess: 0x12019f, createDisposition: 3,
  contexts: [{ name: 'MxAc', data: new Uint8Array(0) }, { name: 'RqLs', data: bytes(32, 3) }] })));
add('smb2-messages', 'close', sel(4, f.smb2.encodeSmb2CloseRequest({ fileId: { persistent: 1n, volatile: 2n }, flags: 1 })));
const msgs = (...ms: Uint8Array[]) => concat(ms.flatMap((m) => { const l = new Uint8Array(2); new DataView(l.buffer).setUint16(0, m.length, true); return [l, m]; }));
const neg302 = f.smb2.encodeSmb2NegotiateRequest({ dialects: [0x300, 0x302], clientGuid: bytes(16, 1), header: { credits: 8 } });
const neg311 = f.smb2.encodeSmb2NegotiateRequest({ dialects: [0x302, 0x311], clientGuid: bytes(16, 1), contexts: [f.smb2.preauthContext(bytes(32, 2)), f.smb2.signingContext([2, 1])] });
const ssNeg = f.smb2.encodeSmb2SessionSetupRequest({ header: { messageId: 1n }, securityBuffer: f.smb2.encodeSpnegoInit({ mechTypes: [f.smb2.OID_NTLMSSP], mechToken: f.smb2.encodeNtlmNegotiate(0x60088215) }) });
const ssAnon = f.smb2.encodeSmb2SessionSetupRequest({ header: { messageId: 2n, sessionId: 1n }, securityBuffer: f.smb2.encodeNtlmAuthenticate({
  flags: 0x60088215, lmChallengeResponse: new Uint8Array(0), ntChallengeResponse: new Uint8Array(0), domain: '', user: '', workstation: '', encryptedRandomSessionKey: new Uint8Array(0) }) });
add('smb2-server', 'negotiate-302', msgs(neg302));
add('smb2-server', 'negotiate-311-session', msgs(neg311, ssNeg));
add('smb2-server', 'guest-tree-echo', msgs(neg302, ssNeg, ssAnon,
  f.smb2.encodeSmb2TreeConnectRequest({ header: { messageId: 3n, sessionId: 1n }, path: '\\\\s\\share' }),
  f.smb2.encodeSmb2Empty(0x0d, { messageId: 4n, sessionId: 1n }, false),
  f.smb2.encodeSmb2IoctlRequest({ header: { messageId: 5n, sessionId: 1n }, ctlCode: f.smb2.FSCTL.QUERY_NETWORK_INTERFACE_INFO, fileId: f.smb2.SMB2_FILE_ID_RELATED })));
add('smb2-channel', 'read-rdma-v1-invalidate', f.encodeSmb2ReadWriteChannel({ command: 'read', channel: f.SMB2_CHANNEL_RDMA_V1_INVALIDATE, length: 65536, descriptors: D }));
add('smb2-channel', 'write-rdma-v1', f.encodeSmb2ReadWriteChannel({ command: 'write', channel: f.SMB2_CHANNEL_RDMA_V1, length: 0, remainingBytes: 69632, descriptors: D }));
add('smb2-channel', 'read-none', f.encodeSmb2ReadWriteChannel({ command: 'read', channel: f.SMB2_CHANNEL_NONE, length: 10 }));
add('smb2-channel', 'compound', (() => { const a = f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 1, length: 4096, descriptors: D.slice(0, 1) }); const b = Uint8Array.from(a); new DataView(b.buffer).setUint32(20, a.length, true); return concat([b, a]); })());

const mpaPd = concat([f.encodeIrdOrd({ ird: 16, ord: 16, peerToPeer: true, sendRtr: false, writeRtr: true, readRtr: false }), bytes(3, 1)]);
add('mpa', 'request-rev2', f.encodeMpaRequest({ revision: 2, privateData: mpaPd }));
add('mpa', 'reply-rev1-reject', f.encodeMpaReply({ revision: 1, reject: true, privateData: bytes(5, 7) }));
add('mpa', 'reply-rev2-markers', f.encodeMpaReply({ revision: 2, markers: true, crc: false, privateData: mpaPd }));
add('mpa', 'ird-ord', f.encodeIrdOrd({ ird: 0x3fff, ord: 1, peerToPeer: false, sendRtr: true, writeRtr: false, readRtr: true }));

const rr = f.encodeReadRequest({ sinkStag: 1, sinkTo: 2n, size: 3, srcStag: 4, srcTo: 5n });
const term = f.encodeTerminate({ layer: 1, etype: 2, errorCode: 1, m: true, d: true, r: false, ddpSegmentLength: 9, ddpHeader: bytes(18, 0x41) });
const termRr = f.encodeTerminate({ layer: 0, etype: 1, errorCode: 2, m: true, d: true, r: true, ddpSegmentLength: 46,
  ddpHeader: new Uint8Array([0x41, 0x41, ...new Uint8Array(16)]), rdmaHeader: rr });
const termSiw = f.encodeTerminate({ layer: 2, etype: 0, errorCode: 2, m: false, d: true, r: false, ddpHeader: bytes(14, 0xc1), bitOrder: 'siw' });
add('fpdu', 'send', send(1, bytes(13)));
add('fpdu', 'write', fpdu({ tagged: true, last: false, opcode: f.RDMAP_WRITE, stag: 9, to: 123n }, bytes(40)));
add('fpdu', 'read-request', fpdu({ tagged: false, last: true, opcode: f.RDMAP_READ_REQUEST, invalidateStag: 0, qn: 1, msn: 1, mo: 0 }, rr));
add('fpdu', 'terminate', fpdu({ tagged: false, last: true, opcode: f.RDMAP_TERMINATE, invalidateStag: 0, qn: 2, msn: 1, mo: 0 }, term));
add('fpdu', 'send-invalidate-nocrc', send(7, bytes(5), { opcode: f.RDMAP_SEND_SE_INVALIDATE, invalidateStag: 0x1234 }));

add('rdmap', 'read-request', rr);
add('rdmap', 'terminate-rfc', term);
add('rdmap', 'terminate-read-request', termRr);
add('rdmap', 'terminate-siw', termSiw);

// ---- the reassembler: [size class] then (kind, DataLength, RemainingDataLength, data)* ------------
{
  const frag = (dl: number, rem: number) => concat([new Uint8Array([0x80 | 0x40]), new Uint8Array([dl & 0xff, dl >> 8]), le32(rem), bytes(dl, dl & 0xff)]);
  add('reassembler', 'one-fragment', concat([new Uint8Array([3]), frag(100, 0)]));
  add('reassembler', 'three-fragments', concat([new Uint8Array([3]), frag(1000, 1500), frag(1000, 500), frag(500, 0)]));
  add('reassembler', 'credit-then-message', concat([new Uint8Array([2]), frag(0, 0), frag(300, 200), frag(200, 0)]));
  add('reassembler', 'mismatch', concat([new Uint8Array([3]), frag(100, 100), frag(50, 100)]));
}

// ---- the iWARP endpoint: config bytes, then FPDUs ------------------------------------------------
{
  const rig = Rig.fresh(iwarpSettings(false));
  const r = rig.register(); // the same order as the targets: the same STags and addresses
  const w = (stag: number, to: bigint, payload: Uint8Array, last = true) => ({ stag, to, payload, last });
  const tagged = (o: ReturnType<typeof w>, opcode = f.RDMAP_WRITE) => fpdu({ tagged: true, last: o.last, opcode, stag: o.stag, to: o.to }, o.payload, false);
  const readReq = (msn: number, srcStag: number, srcTo: bigint, size: number) =>
    fpdu({ tagged: false, last: true, opcode: f.RDMAP_READ_REQUEST, invalidateStag: 0, qn: 1, msn, mo: 0 }, f.encodeReadRequest({ sinkStag: 0x7700, sinkTo: 0x10n, size, srcStag, srcTo }), false);
  const sendNc = (msn: number, payload: Uint8Array, o: Partial<f.UntaggedHeader> = {}) =>
    fpdu({ tagged: false, last: true, opcode: f.RDMAP_SEND, invalidateStag: 0, qn: 0, msn, mo: 0, ...o }, payload, false);
  const cfg = (c0: number, c1 = 0) => new Uint8Array([c0, c1]);
  const twoSegments = concat([sendNc(2, bytes(100), { last: false }), sendNc(2, bytes(60), { mo: 100 })]);
  add('iwarp-endpoint', 'sends', concat([cfg(0x00), sendNc(1, bytes(100)), twoSegments]));
  add('iwarp-endpoint', 'write-and-read', concat([cfg(0x01), tagged(w(r.rw.rkey, r.rw.addr + 16n, bytes(64))), readReq(1, r.rw.rkey, r.rw.addr + 8n, 128), readReq(2, r.ro.rkey, r.ro.addr, 4096)]));
  add('iwarp-endpoint', 'read-response', concat([cfg(0x00), tagged(w(r.local.rkey, r.local.addr + 2048n, bytes(256), false), f.RDMAP_READ_RESPONSE),
    tagged(w(r.local.rkey, r.local.addr + 2304n, bytes(256)), f.RDMAP_READ_RESPONSE)]));
  add('iwarp-endpoint', 'send-invalidate', concat([cfg(0x80), sendNc(1, bytes(10), { opcode: f.RDMAP_SEND_INVALIDATE, invalidateStag: r.rw.rkey }), tagged(w(r.rw.rkey, r.rw.addr, bytes(8)))]));
  add('iwarp-endpoint', 'terminate', concat([cfg(0x80), fpdu({ tagged: false, last: true, opcode: f.RDMAP_TERMINATE, invalidateStag: 0, qn: 2, msn: 1, mo: 0 }, termRr, false)]));
  add('iwarp-endpoint', 'terminate-siw', concat([cfg(0x81), fpdu({ tagged: false, last: true, opcode: f.RDMAP_TERMINATE, invalidateStag: 0, qn: 2, msn: 1, mo: 0 }, f.encodeTerminate({ layer: 0, etype: 1, errorCode: 0, m: true, d: true, r: false, ddpSegmentLength: 20, ddpHeader: bytes(14, 0xc1), bitOrder: 'siw' }), false)]));
  add('iwarp-endpoint', 'write-read-only', concat([cfg(0x00), tagged(w(r.ro.rkey, r.ro.addr, bytes(8)))]));
  add('iwarp-endpoint', 'write-invalidated', concat([cfg(0x00), tagged(w(r.inv.rkey, r.inv.addr, bytes(8)))]));
  add('iwarp-endpoint', 'send-too-long', concat([cfg(0x00), sendNc(1, bytes(300))]));
  add('iwarp-endpoint', 'chunked-fin', concat([cfg(0x04 | 0x20), sendNc(1, bytes(50)), sendNc(2, bytes(7))]));
  add('iwarp-endpoint', 'disconnect', concat([cfg(0x40 | 0x20), tagged(w(r.local.rkey, r.local.addr + 2048n, bytes(512)), f.RDMAP_READ_RESPONSE)]));
  add('iwarp-endpoint', 'rtr-write', concat([cfg(0x00, 1), tagged(w(0, 0n, new Uint8Array(0))), sendNc(1, bytes(4))]));
  add('iwarp-endpoint', 'rtr-read', concat([cfg(0x00, 2), fpdu({ tagged: false, last: true, opcode: f.RDMAP_READ_REQUEST, invalidateStag: 0, qn: 1, msn: 1, mo: 0 }, f.encodeReadRequest({ sinkStag: 0, sinkTo: 0n, size: 0, srcStag: 0, srcTo: 0n }), false)]));
  add('iwarp-endpoint', 'bad-crc', concat([cfg(0x02), sendNc(1, bytes(20))]));
  add('iwarp-endpoint', 'late-setup', concat([cfg(0x00, 4), sendNc(1, bytes(30))]));
  add('iwarp-endpoint', 'read-flood', concat([cfg(0x01), ...Array.from({ length: 40 }, (_, i) => readReq(i + 1, r.rw.rkey, r.rw.addr, 4096))]));
  rig.ep.destroy();

  // ---- MPA in front: config bytes, the peer's frame, FPDUs ---------------------------------------
  const ird = (p: Partial<f.IrdOrd> = {}) => f.encodeIrdOrd({ ird: 4, ord: 4, peerToPeer: false, sendRtr: false, writeRtr: false, readRtr: false, ...p });
  add('iwarp-mpa', 'responder-accept', concat([cfg(0x02), f.encodeMpaRequest({ revision: 2, crc: true, privateData: ird() }), send(1, bytes(20))]));
  add('iwarp-mpa', 'responder-rev1-nocrc', concat([cfg(0x04, 0x10), f.encodeMpaRequest({ revision: 1, crc: false, privateData: bytes(6, 3) }), sendNc(1, bytes(20))]));
  add('iwarp-mpa', 'responder-rtr-write', concat([cfg(0x00), f.encodeMpaRequest({ revision: 2, crc: false, privateData: ird({ peerToPeer: true, writeRtr: true }) }),
    fpdu({ tagged: true, last: true, opcode: f.RDMAP_WRITE, stag: 0, to: 0n }, new Uint8Array(0), false), sendNc(1, bytes(4))]));
  add('iwarp-mpa', 'responder-reject', concat([cfg(0x08 | 0x10), f.encodeMpaRequest({ revision: 2, privateData: ird() })]));
  add('iwarp-mpa', 'responder-markers', concat([cfg(0x00), f.encodeMpaRequest({ revision: 2, markers: true, privateData: ird() })]));
  add('iwarp-mpa', 'responder-chunked', concat([cfg(0x20 | 0x02), f.encodeMpaRequest({ revision: 2, crc: true, privateData: concat([ird(), bytes(40)]) }), send(1, bytes(40)), send(2, bytes(3))]));
  add('iwarp-mpa', 'initiator-reply', concat([cfg(0x01 | 0x02), f.encodeMpaReply({ revision: 2, crc: true, privateData: ird() }), send(1, bytes(20))]));
  add('iwarp-mpa', 'initiator-rtr-read', concat([cfg(0x01, 0x02), f.encodeMpaReply({ revision: 2, crc: false, privateData: ird({ peerToPeer: true, readRtr: true }) }),
    fpdu({ tagged: true, last: true, opcode: f.RDMAP_READ_RESPONSE, stag: 0, to: 0n }, new Uint8Array(0), false)]));
  add('iwarp-mpa', 'initiator-rejected', concat([cfg(0x01), f.encodeMpaReply({ revision: 2, reject: true, privateData: ird() })]));
}

// ---- SMB Direct: config byte, then messages (u16 length|variant, bytes) ---------------------------
{
  const msg = (b: Uint8Array, variant = 0, extra: Uint8Array = new Uint8Array(0)) =>
    concat([new Uint8Array([b.length & 0xff, ((b.length >> 8) & 0x1f) | (variant << 5)]), extra, b]);
  const req = request({ creditsRequested: 8, preferredSendSize: 1024, maxReceiveSize: 1024, maxFragmentedSize: 131072 });
  const dt = (o: Partial<f.DataTransferInit>) => f.encodeDataTransfer({ creditsRequested: 8, creditsGranted: 8, ...o });
  const pdu = bytes(700, 0x33);
  const frags = new f.Fragmenter(1024).split(pdu).map((fr) => dt({ remainingDataLength: fr.remainingDataLength, data: fr.data }));
  const smb2Read = f.encodeSmb2ReadWriteChannel({ command: 'read', channel: 1, length: 4096, descriptors: [{ offset: 0x1000n, token: 0x77, length: 8192 }] });
  const smb2Write = f.encodeSmb2ReadWriteChannel({ command: 'write', channel: 2, length: 0, remainingBytes: 2048, descriptors: [{ offset: 0x2000n, token: 0x78, length: 2048 }] });
  const long = bytes(2000, 0x44);
  const longFrags = new f.Fragmenter(1024).split(long).map((fr) => dt({ remainingDataLength: fr.remainingDataLength, data: fr.data }));
  add('smbdirect', 'negotiate-only', concat([new Uint8Array([0x00]), msg(req)]));
  add('smbdirect', 'negotiate-no-common-version', concat([new Uint8Array([0x00]), msg(request({ minVersion: 0x200, maxVersion: 0x200 }))]));
  add('smbdirect', 'echo', concat([new Uint8Array([0x08]), msg(req), msg(dt({ data: pdu })), msg(dt({ creditsGranted: 1, flags: f.RESPONSE_REQUESTED }))]));
  add('smbdirect', 'fragments', concat([new Uint8Array([0x08]), msg(req), ...longFrags.map((b) => msg(b, 4))]));
  add('smbdirect', 'smb2-read-write', concat([new Uint8Array([0x10]), msg(req), msg(dt({ data: smb2Read })), msg(dt({ data: smb2Write }))]));
  add('smbdirect', 'invalidate-and-write', concat([new Uint8Array([0x00]), msg(req), msg(new Uint8Array(100).fill(0x61), 7, new Uint8Array([2])),
    msg(dt({ data: bytes(10) }), 6, new Uint8Array([0]))]));
  add('smbdirect', 'paused-chunked', concat([new Uint8Array([0x80 | 0x03]), msg(req), ...frags.map((b) => msg(b)), msg(dt({ data: bytes(5) }), 5)]));
  add('smbdirect', 'close-fin', concat([new Uint8Array([0x40 | 0x20 | 0x08]), msg(req), msg(dt({ data: bytes(33) }))]));
  add('smbdirect', 'credit-violation', concat([new Uint8Array([0x05]), msg(req), ...Array.from({ length: 12 }, () => msg(dt({ creditsGranted: 0, data: bytes(3) })))]));
  const res = response({ creditsRequested: 8, creditsGranted: 4, preferredSendSize: 1024, maxReceiveSize: 1024, maxFragmentedSize: 131072 });
  add('smbdirect', 'initiator-echo', concat([new Uint8Array([0x08]), msg(res, 7, new Uint8Array([0])), msg(dt({ data: pdu })), msg(dt({ creditsGranted: 4, data: bytes(20) }))]));
  add('smbdirect', 'initiator-refused', concat([new Uint8Array([0x00]), msg(response({ status: f.STATUS_NOT_SUPPORTED, negotiatedVersion: 0, creditsGranted: 0 }), 6, new Uint8Array([0]))]));
  // the readers agree with the writers above
  for (const [name, b] of Object.entries(seeds.smbdirect!)) {
    const ms = readMessages(new Cursor(b.subarray(1)));
    if (ms.length === 0 || ms[0]!.bytes.length !== (ms[0]!.variant >= 6 ? 32 : 20)) throw new Error(`seed smbdirect/${name} does not start with a negotiate request`);
  }
}

for (const [target, files] of Object.entries(seeds)) {
  const dir = join(CORPUS, target);
  mkdirSync(dir, { recursive: true });
  for (const old of readdirSync(dir)) rmSync(join(dir, old));
  for (const [name, b] of Object.entries(files)) writeFileSync(join(dir, name), b);
  console.log(`${target}: ${Object.keys(files).length} seeds`);
}
