// The SMB Direct receive path: an SmbDirectConnection in the acceptor role on an IwarpEndpoint on
// an in-memory socket. The input is cut into Send messages, each sent as valid FPDUs (right CRC,
// MSN, MO), so every byte the fuzzer chooses reaches the SMB Direct layer:
//   byte 0: bits 0-2 chunk size of the 'data' events, bit 3 the app echoes each message, bit 4 the
//           app serves SMB2 READ/WRITE RDMA channels (rdmaWrite/rdmaRead of what they name), bit 5
//           the peer's FIN after the bytes, bit 6 close() (graceful) before the end, bit 7 pause()
//           before the data messages, resume() after them;
//   then messages: u16 LE h, (h & 0x1fff) bytes. h >> 13: 0-3 Send, 4 Send cut into 64-byte
//           segments, 5 Send with Solicited Event, 6 Send with Invalidate (a following byte picks the
//           token: 0 the app's registration, 1 a wrong key, else the next 4 bytes), 7 an RDMA Write
//           of the bytes into the app's registration (a following byte: offset / 16).
// The first message is the negotiate request; after it the app registers one buffer for the peer to
// write (as a client does for an SMB2 READ), so Send-with-Invalidate and Writes have a live token.
// When the first message's h >> 13 is 6 or 7, the connection is the initiator instead (it sends
// the negotiate request) and the first message is the peer's negotiate response.
//
// Oracle (besides fuzz/lib/iwarp.ts on the endpoint): nothing escapes; the connection ends, by
// itself or by destroy(), with 'close' once and any error coded ERR_; every promise it gave (the
// negotiation, send, rdmaRead/rdmaWrite, close) settles, rejections coded ERR_; no timer is left.
// And two models: the messages it delivers are a prefix of what framing's Reassembler makes of the
// same data transfer messages, and if that Reassembler refuses one the connection must end with an
// error; what it sends is a negotiate response, then data transfers that decode and reassemble to
// a prefix of what the app sent, never more of them than the peer granted credits.
import type { Socket } from 'node:net';

import { DDP_QN_SEND, RDMAP_SEND, RDMAP_SEND_INVALIDATE, RDMAP_SEND_SE, RDMAP_WRITE, encodeFpdu } from '../../framing/ddp.js';
import { decodeDataTransfer } from '../../framing/data-transfer.js';
import { SmbDirectProtocolError } from '../../framing/errors.js';
import { Reassembler } from '../../framing/fragment.js';
import { encodeIrdOrd, encodeMpaRequest, decodeMpaFrame } from '../../framing/mpa.js';
import { decodeNegotiateRequest, decodeNegotiateResponse, type NegotiateRequest } from '../../framing/negotiate.js';
import { SMB2_CHANNEL_NONE, decodeSmb2ReadWriteChannel } from '../../framing/smb2-channel.js';
import { IwarpEndpoint } from '../../src/providers/iwarp/endpoint.js';
import { SmbDirectConnection, type Registration } from '../../src/smbdirect/connection.js';
import { Cursor, concat, equalBytes } from '../lib/bytes.js';
import { MAX_IO, type Msg, OPTIONS, SEGMENT, readMessages } from '../lib/smbd-input.js';
import { CHUNK_SIZES, Rig, chunks, iwarpSettings } from '../lib/iwarp.js';
import { MockSocket } from '../lib/mock-socket.js';
import {
  FuzzFinding, check, checkCoded, checkNoEscapes, debug, decode, installEscapeHandlers, pendingTimers, resetTimers, settle, settled, trackTimers,
} from '../lib/oracle.js';

installEscapeHandlers();
trackTimers();

/** The FPDUs of one message. `msn` is the next Send MSN (advanced for Sends). */
function wire(m: Msg, msn: { n: number }, reg: Registration | undefined): Uint8Array[] {
  const regToken = reg?.token ?? 0;
  if (m.variant === 7) {
    const to = (reg?.descriptors[0]?.offset ?? 0n) + BigInt(m.offset ?? 0);
    const out: Uint8Array[] = [];
    for (let at = 0; at < m.bytes.length || at === 0; at += 1024) {
      const part = m.bytes.subarray(at, at + 1024);
      out.push(...encodeFpdu({ tagged: true, last: at + 1024 >= m.bytes.length, opcode: RDMAP_WRITE, stag: regToken, to: to + BigInt(at) }, part));
      if (m.bytes.length === 0) break;
    }
    return out;
  }
  const opcode = m.variant === 5 ? RDMAP_SEND_SE : m.variant === 6 ? RDMAP_SEND_INVALIDATE : RDMAP_SEND;
  const invalidateStag = m.variant === 6 ? (m.token === -1 ? regToken : m.token === -2 ? (regToken ^ 0x55) >>> 0 : m.token!) : 0;
  const step = m.variant === 4 ? SEGMENT : 0xffff - 18;
  const out: Uint8Array[] = [];
  const n = msn.n++;
  for (let at = 0; ; at += step) {
    const part = m.bytes.subarray(at, at + step);
    const last = at + step >= m.bytes.length;
    out.push(...encodeFpdu({ tagged: false, last, opcode, invalidateStag, qn: DDP_QN_SEND, msn: n, mo: at }, part));
    if (last) break;
  }
  return out;
}

/** What framing says the connection should deliver, fed the same messages. */
class Model {
  readonly delivered: Uint8Array[] = [];
  failed?: string;
  granted = 0;
  private readonly r = new Reassembler(OPTIONS.maxFragmentedSize);
  push(bytes: Uint8Array): void {
    let m;
    try {
      m = decodeDataTransfer(bytes);
    } catch (err) {
      if (!(err instanceof SmbDirectProtocolError)) throw err;
      this.failed ??= err.code;
      return;
    }
    // every message that decodes grants (the connection counts them before reassembly); after a
    // refusal this is an upper bound
    this.granted += m.creditsGranted;
    if (this.failed) return;
    try {
      const out = this.r.push(m);
      if (out) this.delivered.push(Uint8Array.from(out));
    } catch (err) {
      if (!(err instanceof SmbDirectProtocolError)) throw err;
      this.failed = err.code;
    }
  }
}

export function setup(initiator: boolean, crc = true): { socket: MockSocket; ep: IwarpEndpoint; conn: SmbDirectConnection; negotiated: Promise<void> } {
  const socket = new MockSocket();
  const ep = new IwarpEndpoint(socket as unknown as Socket, iwarpSettings(crc, { maxRecvWr: 16, maxSendWr: 64 }), new Uint8Array(0));
  // as upgradeToRdma leaves it for a listener: the peer's MPA Request read, not yet answered
  const frame = decodeMpaFrame(encodeMpaRequest({ revision: 2, crc, privateData: encodeIrdOrd({ ird: 4, ord: 4, peerToPeer: false, sendRtr: false, writeRtr: false, readRtr: false }) }));
  ep.mpaRequest = { frame, leftover: new Uint8Array(0), params: { crc, revision: 2, ird: 4, ord: 2, rtr: false }, onReject: 'close' };
  if (initiator) {
    // connect(): the endpoint is in RTS before the connection starts
    ep.mpaRequest = undefined;
    ep.start();
  }
  const conn = new SmbDirectConnection(ep, initiator ? 'initiator' : 'acceptor', OPTIONS, 'iwarp-tcp');
  const negotiated = initiator ? conn._startInitiator() : conn._startAcceptor();
  return { socket, ep, conn, negotiated };
}

export async function fuzz(data: Buffer): Promise<void> {
  resetTimers();
  const c = new Cursor(data);
  const cfg = c.u8();
  const messages = readMessages(c);
  const initiator = messages.length > 0 && messages[0]!.variant >= 6;
  const { socket, ep, conn, negotiated } = setup(initiator);
  const rig = new Rig(socket, ep, false);
  const promises: Array<[string, Promise<unknown>]> = [['the negotiation', negotiated]];
  const watch = (what: string, p: Promise<unknown>) => {
    promises.push([what, p]);
    p.catch((err: unknown) => { try { checkCoded(what, err); } catch (e) { problems.push((e as Error).message); } });
  };
  const problems: string[] = [];
  const delivered: Uint8Array[] = [];
  const appSent: Uint8Array[] = [];
  let closeEvents = 0;
  conn.on('close', () => { closeEvents++; });
  conn.on('error', (err: unknown) => { try { checkCoded("the connection's 'error' event", err); } catch (e) { problems.push((e as Error).message); } });
  conn.on('message', (m: Uint8Array) => {
    delivered.push(Uint8Array.from(m));
    if (cfg & 0x08) {
      appSent.push(Uint8Array.from(m));
      watch('send()', conn.send(m));
    }
    if (cfg & 0x10) serve(m);
  });
  const serve = (m: Uint8Array) => {
    let ch;
    try {
      ch = decodeSmb2ReadWriteChannel(m);
    } catch {
      return;
    }
    if (ch.channel === SMB2_CHANNEL_NONE) return;
    const n = Math.min(ch.command === 'read' ? ch.length : ch.remainingBytes, MAX_IO);
    const buf = new Uint8Array(n).fill(0x5a);
    watch(ch.command === 'read' ? 'rdmaWrite()' : 'rdmaRead()',
      ch.command === 'read' ? conn.rdmaWrite(ch.descriptors, buf) : conn.rdmaRead(ch.descriptors, buf));
  };
  negotiated.catch(() => {});

  // phase 1: the negotiate request
  const msn = { n: 1 };
  const chunk = CHUNK_SIZES[cfg & 7]!;
  if (messages.length) socket.feed(concat(wire({ ...messages[0]!, variant: initiator ? 0 : messages[0]!.variant }, msn, undefined)));
  await socket.whenRead();
  await settle(3);
  // the peer's MaxFragmentedSize (how our messages are reassembled) and initial grant
  let request: NegotiateRequest | undefined;
  let initialGrant = 0;
  try {
    if (!messages.length) { /* nothing */ } else if (initiator) {
      const res = decodeNegotiateResponse(messages[0]!.bytes, { maxReceiveSize: OPTIONS.maxReceiveSize });
      request = { ...res };
      initialGrant = res.creditsGranted;
    } else request = decodeNegotiateRequest(messages[0]!.bytes);
  } catch { /* refused */ }
  let reg: Registration | undefined;
  if (conn.state === 'connected') {
    try {
      reg = conn.registerBuffer(new Uint8Array(4096), 'write');
    } catch (err) {
      checkCoded('registerBuffer()', err);
    }
  }
  // phase 2: data transfer messages
  const model = new Model();
  if (cfg & 0x80) conn.pause();
  const parts: Uint8Array[] = [];
  for (const m of messages.slice(1)) {
    if (m.variant !== 7) model.push(m.bytes);
    parts.push(...wire(m, msn, reg));
  }
  for (const ch of chunks(concat(parts), chunk)) socket.feed(ch);
  if (cfg & 0x20) socket.feedEnd();
  await socket.whenRead();
  await settle(4);
  if (cfg & 0x80) conn.resume();
  await settle(2);
  checkNoEscapes('the connection while it was fed');
  if (problems.length) throw new FuzzFinding(problems[0]!);

  // the model: a prefix of what framing reassembles; a refusal must end the connection
  const connected = conn.state !== 'closed';
  debug('smbdirect', {
    state: conn.state, error: (conn.error as { code?: string } | undefined)?.code, message: conn.error?.message, messages: messages.length,
    delivered: delivered.length, model: model.delivered.length, modelFailed: model.failed, granted: model.granted, registered: !!reg,
  });
  check(delivered.length <= model.delivered.length, `delivered ${delivered.length} messages, framing's Reassembler makes ${model.delivered.length} of the same data`);
  for (let i = 0; i < delivered.length; i++) check(equalBytes(delivered[i]!, model.delivered[i]!), `message ${i} differs from what framing's Reassembler makes of the same data`);
  // (after the peer's FIN the connection may end before it looked at every message: a paused one
  // holds them unread, and a graceful end drops them)
  if (request && model.failed && !(cfg & 0x20)) {
    check(!connected && conn.error, `the Reassembler refuses the data (${model.failed}) but the connection is ${conn.state} without an error`);
  }
  if (request && !model.failed && connected && !(cfg & 0x20)) {
    check(delivered.length === model.delivered.length, `connected without error, but delivered ${delivered.length} of the ${model.delivered.length} messages`);
  }

  const closing = cfg & 0x40 ? conn.close() : undefined;
  if (closing) { watch('close()', closing); await settle(2); }
  conn.destroy();
  // (the acceptor's first write is its MPA Reply; the initiator's endpoint started in RTS)
  await rig.finish(initiator ? 0 : socket.written[0]?.length ?? 0, () => ep.settings.crc);
  for (const [what, p] of promises) await settled(what, p);
  await settle(1);
  checkNoEscapes('the connection after destroy()');
  if (problems.length) throw new FuzzFinding(problems[0]!);
  check(conn.state === 'closed' && closeEvents === 1, `state ${conn.state}, 'close' emitted ${closeEvents} times`);
  if (conn.error) checkCoded('the connection (its error)', conn.error);
  check(pendingTimers() === 0, `${pendingTimers()} timer(s) left after the connection closed`);

  // what we sent: a negotiate response, then data transfers (within the peer's credits) that
  // reassemble to a prefix of what the app sent
  if (initiator && rig.sent.length) {
    check(decode('our negotiate request', () => decodeNegotiateRequest(rig.sent[0]!)), 'our negotiate request does not decode');
  }
  if (rig.sent.length && request) {
    if (!initiator) {
      try {
        decodeNegotiateResponse(rig.sent[0]!);
      } catch (err) {
        check(err instanceof SmbDirectProtocolError && err.code === 'ERR_SMBD_NEGOTIATE_FAILED', `our negotiate response does not decode: ${(err as Error).message}`);
      }
    }
    const ours = rig.sent.slice(1);
    const granted = initialGrant + model.granted;
    check(ours.length <= granted, `we sent ${ours.length} data transfer messages, the peer granted ${granted} credits`);
    const r = new Reassembler(Math.max(request.maxFragmentedSize, 1));
    let k = 0;
    for (const bytes of ours) {
      let out;
      try {
        out = r.push(decodeDataTransfer(bytes));
      } catch (err) {
        throw new FuzzFinding(`we sent a data transfer message that framing refuses: ${(err as Error).message}`, { cause: err });
      }
      if (!out) continue;
      check(k < appSent.length && equalBytes(out, appSent[k]!), `our message ${k} is not the app's message ${k}`);
      k++;
    }
  }
}
