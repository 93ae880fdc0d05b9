// The MPA connection setup in front of the FPDU receive path: upgradeToRdma() on an in-memory
// socket, as responder (the input starts with the peer's MPA Request; we accept or reject it) or
// as initiator (we send the Request; the input starts with the peer's MPA Reply). What follows the
// frame in the input is the FPDU stream, with every whole FPDU's CRC made right when CRCs end up on
// (unless the config says to leave them). Two config bytes, then the stream:
//   byte 0: bit 0 initiator, bit 1 our CRC, bit 2 our MPA revision 1 (else 2), bit 3 reject (responder),
//           bit 4 onReject 'stream' (else 'close'), bits 5-7 chunk size of the 'data' events;
//   byte 1: bits 0-1 the RTR we ask for as initiator (none, write, read), bit 2 leave CRCs as given,
//           bit 3 the peer's FIN after the bytes, bit 4 private data with accept() / the Request.
// Oracle: the upgrade promise settles (rejecting with an ERR_ code), the frame we send decodes, and
// once there is an endpoint, everything in fuzz/lib/iwarp.ts.
import type { Socket } from 'node:net';

import { concat } from '../lib/bytes.js';
import { decodeMpaFrame, mpaFrameLength } from '../../framing/mpa.js';
import { type UpgradeOptions, upgradeToRdma } from '../../src/providers/iwarp/provider.js';
import type { IwarpEndpoint } from '../../src/providers/iwarp/endpoint.js';
import { CHUNK_SIZES, Rig, chunks, fixCrcs } from '../lib/iwarp.js';
import { MockSocket } from '../lib/mock-socket.js';
import {
  FuzzFinding, check, checkCoded, checkNoEscapes, installEscapeHandlers, pendingTimers, resetTimers, settle, trackTimers,
} from '../lib/oracle.js';

installEscapeHandlers();
trackTimers();

const PRIVATE = new Uint8Array([0x53, 0x4d, 0x42, 0x44, 1, 2, 3]);

/** The peer's frame at the start of `stream` and where the FPDUs start, if it decodes. */
function peerFrame(stream: Uint8Array, expect: 'request' | 'reply') {
  try {
    const n = mpaFrameLength(stream, expect);
    if (n === undefined || stream.length < n) return undefined;
    return decodeMpaFrame(stream.subarray(0, n), expect);
  } catch {
    return undefined;
  }
}

/** Waits up to `rounds` turns for `p`; undefined if it is still pending. */
async function within<T>(p: Promise<T>, rounds: number): Promise<{ value?: T; error?: unknown; done: boolean }> {
  const out: { value?: T; error?: unknown; done: boolean } = { done: false };
  p.then((v) => { out.value = v; out.done = true; }, (e) => { out.error = e; out.done = true; });
  for (let i = 0; i < rounds && !out.done; i++) await settle(1);
  return out;
}

export async function fuzz(data: Buffer): Promise<void> {
  resetTimers();
  const c0 = data[0] ?? 0;
  const c1 = data[1] ?? 0;
  const stream = data.subarray(2);
  const initiator = (c0 & 1) !== 0;
  const opts: UpgradeOptions = {
    role: initiator ? 'initiator' : 'responder', crc: (c0 & 2) !== 0, revision: c0 & 4 ? 1 : 2,
    onReject: c0 & 0x10 ? 'stream' : 'close', rtr: initiator ? ([false, 'write', 'read', false] as const)[c1 & 3]! : false,
    privateData: initiator && c1 & 0x10 ? PRIVATE : undefined,
    ird: 4, ord: 2, maxFpduPayload: 256, maxSendWr: 16, maxRecvWr: 8, readBufferSize: 0, disconnectTimeoutMs: 2000,
    requestTimeoutMs: 10_000, replyTimeoutMs: 10_000,
  };
  // the bytes on the wire: the peer's frame, then FPDUs with their CRCs made right if CRCs will be on
  const frame = peerFrame(stream, initiator ? 'reply' : 'request');
  let wire: Uint8Array = stream;
  if (frame && (frame.crc || opts.crc) && !(c1 & 4)) wire = concat([stream.subarray(0, frame.byteLength), fixCrcs(stream.subarray(frame.byteLength))]);

  const socket = new MockSocket();
  const upgrading = upgradeToRdma(socket as unknown as Socket, opts);
  // chunked: the frame is a read of its own (a peer's FPDUs can only come after our reply / the
  // caller's receives); unchunked: everything in one read, FPDUs behind the frame included
  const size = CHUNK_SIZES[c0 >> 5]!;
  const head = frame && size ? frame.byteLength : 0;
  if (head) socket.feed(wire.subarray(0, head));
  for (const c of chunks(wire.subarray(head), size)) socket.feed(c);
  if (c1 & 8) socket.feedEnd();
  let up = await within(upgrading, 8);
  if (!up.done) {
    // no whole frame came: the connection goes away, and the upgrade must give up
    socket.destroy();
    up = await within(upgrading, 6);
    if (!up.done) throw new FuzzFinding('upgradeToRdma() did not settle after its socket was destroyed');
  }
  checkNoEscapes('upgradeToRdma()');
  if (!up.value) {
    checkCoded('upgradeToRdma()', up.error);
    socket.destroy();
    await settle(2);
    checkNoEscapes('upgradeToRdma() after it failed');
    check(pendingTimers() === 0, `${pendingTimers()} timer(s) left after upgradeToRdma() failed`);
    return;
  }
  const ep: IwarpEndpoint = up.value;
  const rig = new Rig(socket, ep);
  rig.register();
  rig.postReceives();
  let rejected = false;
  if (!initiator) {
    try {
      if (c0 & 8) { rejected = true; await ep.reject(); } else await ep.accept(c1 & 0x10 ? PRIVATE : undefined);
    } catch (err) {
      checkCoded(rejected ? 'reject()' : 'accept()', err);
    }
  }
  const ours = socket.written[0];
  check(ours && decode(ours, initiator ? 'request' : 'reply'), 'the MPA frame we sent does not decode');
  rig.postWork(true);
  await socket.whenRead();
  await settle(4);
  if (rejected) {
    // a rejected request never reaches RTS: no FPDU may go out, no endpoint event is owed
    check(ep.state === 'CLOSED', `state ${ep.state} after reject()`);
    check(socket.written.length === 1, 'something was sent after the rejecting MPA Reply');
    socket.destroy();
    await settle(2);
    checkNoEscapes('the rejected endpoint');
    check(pendingTimers() === 0, `${pendingTimers()} timer(s) left after reject()`);
    return;
  }
  await rig.finish(ours.length, () => ep.settings.crc);
}

function decode(bytes: Uint8Array, expect: 'request' | 'reply'): boolean {
  try {
    return decodeMpaFrame(bytes, expect).byteLength === bytes.length;
  } catch {
    return false;
  }
}
