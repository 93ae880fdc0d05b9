// SMB2 over TCP stream framing ([MS-SMB2] 2.1: a 4-byte header, 0x00 then a 24-bit big-endian
// length) with the one rule the stream -> RDMA transition needs: an MPA Request is recognised only
// where a message would start. There the framer stops and hands everything from the MPA frame on
// to the RDMA layer ('mpa'), including bytes that arrived in the same read.
import { EventEmitter } from 'node:events';

import { MPA_KEY_REQUEST } from '../../framing/mpa.js';
import { RdmaError } from './errors.js';

const KEY = Buffer.from(MPA_KEY_REQUEST, 'latin1');
export const SMB2_TCP_MAX_MESSAGE = 0xffffff;

/** True when `bytes` (at a message boundary) can be the start of an MPA Request. */
export function startsMpaRequest(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, KEY.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== KEY[i]) return false;
  return n > 0;
}

/** Events: 'message' (Uint8Array without its 4-byte header), 'mpa' (head: Uint8Array), 'error'. */
export class Smb2StreamFramer extends EventEmitter {
  /** What arrived and is not yet a whole message, as it came: joined once per message, when that
   * message is complete (joining on every read copied a large message once per chunk: an 8 MiB
   * WRITE in 64 KiB reads was ~512 MiB of copying). */
  private chunks: Buffer[] = [];
  private length = 0;
  private switched = false;

  push(chunk: Uint8Array): void {
    if (this.switched) throw new RdmaError('ERR_STREAM_SWITCHED', 'the stream has switched to RDMA mode');
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.length += chunk.length;
    for (;;) {
      if (this.length === 0) return;
      const head = this.first(Math.min(this.length, KEY.length));
      if (head[0] !== 0) {
        // not an SMB2 stream header: an MPA Request (possibly still partial) or garbage
        if (!startsMpaRequest(head)) {
          this.emit('error', new RdmaError('ERR_STREAM_BAD_BOUNDARY', `byte 0x${head[0]!.toString(16)} at a message boundary is neither a stream header nor an MPA Request`));
          return;
        }
        if (this.length < KEY.length) return; // wait: it may still turn out to be something else
        this.switched = true;
        const rest = this.join();
        this.chunks = [];
        this.length = 0;
        this.emit('mpa', rest);
        return;
      }
      if (this.length < 4) return;
      const len = head.readUIntBE(1, 3);
      if (this.length < 4 + len) return;
      const all = this.join();
      const msg = all.subarray(4, 4 + len);
      const rest = all.subarray(4 + len);
      this.chunks = rest.length ? [rest] : [];
      this.length = rest.length;
      this.emit('message', msg);
    }
  }

  /** The first `n` bytes (n <= what is buffered) in one Buffer: the first chunk when it holds them. */
  private first(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    return this.join().subarray(0, n);
  }

  /** Everything buffered as one Buffer (joined once, kept as the only chunk). */
  private join(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0]!;
  }
}

/** Frames one SMB2 message for the stream. */
export function frameSmb2(message: Uint8Array): Buffer {
  if (message.length > SMB2_TCP_MAX_MESSAGE) throw new RangeError('message longer than 16 MiB - 1');
  const out = Buffer.allocUnsafe(4 + message.length);
  out.writeUInt32BE(message.length, 0);
  out.set(message, 4);
  return out;
}
