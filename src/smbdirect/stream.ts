// conn.toStream(): the connection as a Duplex of 4-byte length-prefixed frames (the SMB2 Direct
// TCP framing, [MS-SMB2] 2.1: a big-endian length in front of each message), so an SMB2 library
// written for net.Socket runs unchanged over SMB Direct for its control traffic. Each frame written
// becomes one SMB Direct message; each message received is read back as one frame. Read
// backpressure pauses the connection, which holds receive credits from the peer.
import { Duplex } from 'node:stream';

import type { SmbDirectConnection } from './connection.js';
import { SmbDirectError } from './errors.js';

export class SmbDirectStream extends Duplex {
  #conn: SmbDirectConnection;
  #pending: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(conn: SmbDirectConnection) {
    super({ allowHalfOpen: false });
    this.#conn = conn;
    conn.on('message', (m: Uint8Array) => {
      const frame = Buffer.allocUnsafe(4 + m.length);
      frame.writeUInt32BE(m.length, 0);
      frame.set(m, 4);
      if (!this.push(frame)) conn.pause();
    });
    conn.on('close', (err?: Error) => {
      if (err) this.destroy(err);
      else if (!this.#ended) { this.#ended = true; this.push(null); }
    });
  }

  get connection(): SmbDirectConnection {
    return this.#conn;
  }

  override _read(): void {
    this.#conn.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    const sends: Array<Promise<void>> = [];
    const max = this.#conn.negotiated?.maxFragmentedSendSize ?? 0;
    while (this.#pending.length >= 4) {
      const len = this.#pending.readUInt32BE(0);
      if (len === 0 || len > max) {
        cb(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `frame of ${len} bytes: must be 1..MaxFragmentedSize (${max})`));
        return;
      }
      if (this.#pending.length < 4 + len) break;
      // copy: the caller may reuse its chunk once we call back, and send() only copies when posted
      sends.push(this.#conn.send(Buffer.from(this.#pending.subarray(4, 4 + len))));
      this.#pending = this.#pending.subarray(4 + len);
    }
    if (sends.length === 0) { cb(); return; }
    Promise.all(sends).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#pending.length) { cb(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `stream ended inside a frame (${this.#pending.length} bytes left)`)); return; }
    this.#conn.close().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#conn.destroy(err ?? undefined);
    cb(err);
  }
}
