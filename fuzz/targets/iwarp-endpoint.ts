// The MPA/DDP/RDMAP receive path: an IwarpEndpoint in RTS on an in-memory socket, fed the input as
// the bytes the peer sends. Two config bytes, then the stream:
//   byte 0: bits 0-1 CRC (0/3 off, 1 on with every whole FPDU's CRC made right by the harness so the
//           checks behind it are reached, 2 on as given), bits 2-4 chunk size of the 'data' events,
//           bit 5 the peer's FIN after the bytes, bit 6 disconnect() before them, bit 7 a write and a
//           send of ours outstanding too (a read always is);
//   byte 1: bits 0-1 the RFC 6581 RTR expected first (none, write, read), bit 2 regions and
//           receives set up after start() instead of before.
// Regions of every access kind, posted receives and our work requests make the tagged and
// untagged paths, Read Responses and Terminate matching reachable. The oracle is fuzz/lib/iwarp.ts.
import { CHUNK_SIZES, Rig, fixCrcs, iwarpSettings } from '../lib/iwarp.js';
import { installEscapeHandlers, resetTimers, settle, settled, trackTimers } from '../lib/oracle.js';

installEscapeHandlers();
trackTimers();

export async function fuzz(data: Buffer): Promise<void> {
  resetTimers();
  const c0 = data[0] ?? 0;
  const c1 = data[1] ?? 0;
  const stream = data.subarray(2);
  const crcMode = c0 & 3;
  const crc = crcMode === 1 || crcMode === 2;
  const rig = Rig.fresh(iwarpSettings(crc));
  const early = (c1 & 4) === 0;
  if (early) {
    rig.register();
    rig.postReceives();
  }
  rig.ep.expectRtr = ([false, 'write', 'read', false] as const)[c1 & 3]!;
  rig.ep.start();
  if (!early) {
    rig.register();
    rig.postReceives();
  }
  rig.postWork((c0 & 0x80) !== 0);
  const closing = c0 & 0x40 ? rig.ep.disconnect() : undefined;
  rig.feed(crcMode === 1 ? fixCrcs(stream) : stream, CHUNK_SIZES[(c0 >> 2) & 7]!);
  if (c0 & 0x20) rig.socket.feedEnd();
  await rig.socket.whenRead();
  await settle(4);
  await rig.finish(0, () => crc);
  if (closing) await settled('disconnect()', closing);
}
