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
  private buf: Buffer = Buffer.alloc(0);
  private switched = false;

  push(chunk: Uint8Array): void {
    if (this.switched) throw new RdmaError('ERR_STREAM_SWITCHED', 'the stream has switched to RDMA mode');
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    for (;;) {
      if (this.buf.length === 0) return;
      if (this.buf[0] !== 0) {
        // not an SMB2 stream header: an MPA Request (possibly still partial) or garbage
        if (!startsMpaRequest(this.buf)) {
          this.emit('error', new RdmaError('ERR_STREAM_BAD_BOUNDARY', `byte 0x${this.buf[0]!.toString(16)} at a message boundary is neither a stream header nor an MPA Request`));
          return;
        }
        if (this.buf.length < KEY.length) return; // wait: it may still turn out to be something else
        this.switched = true;
        const head = this.buf;
        this.buf = Buffer.alloc(0);
        this.emit('mpa', head);
        return;
      }
      if (this.buf.length < 4) return;
      const len = this.buf.readUIntBE(1, 3);
      if (this.buf.length < 4 + len) return;
      const msg = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      this.emit('message', msg);
    }
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
