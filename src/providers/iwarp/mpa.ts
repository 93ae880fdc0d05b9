// MPA connection setup (RFC 5044 7, RFC 6581): the Request/Reply exchange that turns a TCP byte
// stream into FPDU mode, with siw's timeouts (the initiator waits 10 s for the Reply, the
// responder 5 s for the Request). Markers are refused, as siw does; CRC is on when either side
// asks; revision 2 carries IRD/ORD and the peer-to-peer RTR choice in the private data.
import type { Socket } from 'node:net';

import { type IrdOrd, type MpaFrame, MPA_IRD_ORD_SIZE, decodeIrdOrd, decodeMpaFrame, encodeIrdOrd, mpaFrameLength } from '../../../framing/mpa.js';
import { RdmaError, rdmaCode } from '../errors.js';

export const MPA_REPLY_TIMEOUT_MS = 10_000;
export const MPA_REQUEST_TIMEOUT_MS = 5_000;

export interface MpaParams {
  /** Ask for CRC32c (default true). A peer asking is enough to turn it on. */
  crc: boolean;
  /** 1 or 2 (default 2: enhanced setup with IRD/ORD). */
  revision: 1 | 2;
  ird: number;
  ord: number;
  /** RFC 6581 peer-to-peer model: the initiator sends a zero-length Write or Read as RTR. */
  rtr: false | 'write' | 'read';
}

/** Result of the exchange, for the endpoint. */
export interface MpaOutcome {
  crc: boolean;
  ird: number;
  ord: number;
  rtr: false | 'write' | 'read';
  peerPrivateData: Uint8Array;
  /** Bytes after the MPA frame in the same read: they belong to the RDMA layer. */
  leftover: Uint8Array;
}

/** Reads one MPA frame off the socket; bytes after it are returned, never lost. */
export function readMpaFrame(socket: Socket, expect: 'request' | 'reply', timeoutMs: number, head?: Uint8Array): Promise<{ frame: MpaFrame; leftover: Uint8Array }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = head?.length ? Buffer.from(head) : Buffer.alloc(0);
    const done = (err?: Error, value?: { frame: MpaFrame; leftover: Uint8Array }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      if (err) reject(err); else resolve(value!);
    };
    const tryParse = (): boolean => {
      let len: number | undefined;
      try {
        len = mpaFrameLength(buf, expect);
        if (len === undefined || buf.length < len) return false;
        const frame = decodeMpaFrame(buf.subarray(0, len), expect);
        done(undefined, { frame, leftover: buf.subarray(len) });
      } catch (err) {
        done(new RdmaError(rdmaCode((err as { code?: string }).code, 'ERR_MPA_BAD_FRAME'), `bad MPA ${expect}: ${(err as Error).message}`, { cause: err }));
      }
      return true;
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      tryParse();
    };
    const onClose = () => done(new RdmaError('ERR_MPA_CONNECTION_LOST', `the connection closed before the MPA ${expect}`));
    const timer = setTimeout(() => done(new RdmaError('ERR_MPA_TIMEOUT', `no MPA ${expect} within ${timeoutMs} ms`)), timeoutMs);
    if (tryParse()) return;
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume();
  });
}

/** Our private data on the wire: IRD/ORD first for revision 2. */
export function mpaPrivateData(p: MpaParams, user: Uint8Array | undefined, role: 'initiator' | 'responder', peer?: IrdOrd): Uint8Array {
  const data = user ?? new Uint8Array(0);
  if (p.revision === 1) return data;
  const v: IrdOrd = {
    ird: Math.min(p.ird, 0x3fff),
    ord: Math.min(p.ord, 0x3fff),
    peerToPeer: role === 'initiator' ? p.rtr !== false : !!peer?.peerToPeer,
    sendRtr: false,
    writeRtr: role === 'initiator' ? p.rtr === 'write' : !!peer?.writeRtr,
    readRtr: role === 'initiator' ? p.rtr === 'read' : !!peer?.readRtr && !peer?.writeRtr,
  };
  const out = new Uint8Array(MPA_IRD_ORD_SIZE + data.length);
  out.set(encodeIrdOrd(v), 0);
  out.set(data, MPA_IRD_ORD_SIZE);
  return out;
}

/** The user's part of the peer's private data, and its IRD/ORD when enhanced. */
export function splitPrivateData(frame: MpaFrame): { user: Uint8Array; irdOrd?: IrdOrd } {
  if (!frame.enhanced) return { user: Uint8Array.from(frame.privateData) };
  return { user: Uint8Array.from(frame.privateData.subarray(MPA_IRD_ORD_SIZE)), irdOrd: decodeIrdOrd(frame.privateData) };
}

export function refuseMarkers(frame: MpaFrame): void {
  if (frame.markers) throw new RdmaError('ERR_MPA_MARKERS', 'the peer asks for MPA markers, which are not supported (siw refuses them too)');
}
