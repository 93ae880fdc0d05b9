// The benchmark's requests, carried in SMB Direct messages between `smbdirect bench` and
// `smbdirect serve`. The first byte says what the server does:
//   'E' echo: the message comes back unchanged (latency mode)
//   'S' sink: counted and dropped (send mode)
//   'C' count: answered with 'C', u32 messages and f64 bytes sunk since the last count; messages
//       on a connection are delivered in order, so the answer follows every earlier 'S'
//   'R' id:u32 length:u32 descriptors: an SMB2 READ: the server RDMA-writes `length` bytes into
//       the client's buffers, then answers 'r' id (with Send-with-Invalidate of the first token
//       where the provider reports remote invalidation)
//   'W' id:u32 length:u32 descriptors: an SMB2 WRITE: the server RDMA-reads `length` bytes from
//       the client's buffers, then answers 'w' id (likewise)
// Anything else ends the connection: a benchmark peer that sends garbage is not worth serving.
import { decodeBufferDescriptors, encodeBufferDescriptors, type BufferDescriptor } from '../../framing/index.js';
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { DEFAULTS } from '../smbdirect/options.js';
import { SmbDirectError } from '../smbdirect/errors.js';

export const OP = Object.freeze({ ECHO: 0x45, SINK: 0x53, COUNT: 0x43, READ: 0x52, WRITE: 0x57, READ_DONE: 0x72, WRITE_DONE: 0x77 });

export function encodePlacement(op: number, id: number, length: number, descriptors: readonly BufferDescriptor[]): Uint8Array {
  const d = encodeBufferDescriptors(descriptors);
  const m = new Uint8Array(9 + d.length);
  const v = new DataView(m.buffer);
  m[0] = op;
  v.setUint32(1, id, true);
  v.setUint32(5, length, true);
  m.set(d, 9);
  return m;
}

export function encodeDone(op: number, id: number): Uint8Array {
  const m = new Uint8Array(5);
  m[0] = op;
  new DataView(m.buffer).setUint32(1, id, true);
  return m;
}

export function decodeCount(m: Uint8Array): { messages: number; bytes: number } {
  const v = new DataView(m.buffer, m.byteOffset, m.length);
  return { messages: v.getUint32(1, true), bytes: v.getFloat64(5, true) };
}

/** Remote invalidation is reported to user space by the software provider; siw and rxe do not
 * deliver it for per-I/O registrations (docs/smbdirect/placement.md). */
const invalidates = (conn: SmbDirectConnection) => conn.providerName === 'iwarp-tcp';

/** What READs place (a pattern) and where WRITEs land: MaxReadWriteSize each, shared by a
 * server's connections (the content of the sink is not looked at). */
export function benchBuffers(): { source: Uint8Array; sink: Uint8Array } {
  return { source: new Uint8Array(DEFAULTS.maxReadWriteSize).fill(0x5a), sink: new Uint8Array(DEFAULTS.maxReadWriteSize) };
}

/** Serves the benchmark requests on one connection. `source` is what READs place; WRITEs land in
 * `sink`. Both at least MaxReadWriteSize. */
export function serveBench(conn: SmbDirectConnection, source: Uint8Array, sink: Uint8Array): void {
  let messages = 0, bytes = 0;
  const fail = (err: unknown) => conn.destroy(err instanceof Error ? err : new Error(String(err)));
  conn.on('message', (m: Uint8Array) => {
    switch (m[0]) {
      case OP.SINK:
        messages++;
        bytes += m.length;
        return;
      case OP.ECHO:
        conn.send(m).catch(() => {});
        return;
      case OP.COUNT: {
        const r = new Uint8Array(13);
        const v = new DataView(r.buffer);
        r[0] = OP.COUNT;
        v.setUint32(1, messages, true);
        v.setFloat64(5, bytes, true);
        messages = 0;
        bytes = 0;
        conn.send(r).catch(() => {});
        return;
      }
      case OP.READ:
      case OP.WRITE: {
        if (m.length < 9) return fail(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', 'a placement request shorter than its header'));
        const v = new DataView(m.buffer, m.byteOffset, m.length);
        const id = v.getUint32(1, true), length = v.getUint32(5, true);
        let descriptors: BufferDescriptor[];
        try {
          descriptors = decodeBufferDescriptors(m.subarray(9));
        } catch (err) {
          return fail(err);
        }
        if (length === 0 || length > source.length) return fail(new SmbDirectError('ERR_SMBD_TRANSFER_SIZE', `a placement request of ${length} bytes`));
        const read = m[0] === OP.READ;
        const op = read ? conn.rdmaWrite(descriptors, source.subarray(0, length)) : conn.rdmaRead(descriptors, sink.subarray(0, length));
        // a transfer that fails (descriptors the connection refuses, a peer that ends) ends this
        // connection with its error: the client is never left waiting for an answer
        op.then(() => conn.send(encodeDone(read ? OP.READ_DONE : OP.WRITE_DONE, id), invalidates(conn) ? { invalidate: descriptors[0]!.token } : {}))
          .catch(fail);
        return;
      }
      default:
        fail(new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `unknown benchmark request 0x${(m[0] ?? 0).toString(16)}`));
    }
  });
}
