// A hostile iWARP peer for tests: a plain TCP socket that speaks MPA, DDP and RDMAP with the
// project's own codecs, sends exactly the FPDUs a test crafts, can stop reading its socket (so the
// victim's Read Responses back up), and shows every FPDU it received.
import { once } from 'node:events';
import { type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';

import {
  DDP_QN_READ_REQUEST, DDP_QN_SEND, RDMAP_READ_REQUEST, RDMAP_SEND, type DdpHeader, type DdpSegment, decodeFpdu, encodeFpdu,
  encodeReadRequest,
} from '../framing/ddp.js';
import { decodeMpaFrame, encodeIrdOrd, encodeMpaReply, encodeMpaRequest, mpaFrameLength } from '../framing/mpa.js';

export class HostileIwarp {
  /** Every FPDU received, in order (payloads copied). */
  readonly received: DdpSegment[] = [];
  /** Payload bytes received in tagged FPDUs (Read Responses, Writes). */
  taggedBytes = 0;
  ended = false;
  /** A malformed FPDU from the victim (bad CRC, say): parsing stops there. */
  malformed?: Error;
  private buf: Buffer = Buffer.alloc(0);
  private sendMsn = 1;
  private readMsn = 1;

  private constructor(readonly socket: Socket, head: Buffer) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => { this.ended = true; });
    if (head.length) this.onData(head);
  }

  /** Connects as the MPA initiator (revision 2, CRC on) announcing `ird`/`ord`. */
  static async connect(port: number, o: { ird?: number; ord?: number } = {}): Promise<HostileIwarp> {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    const pd = encodeIrdOrd({ ird: o.ird ?? 16, ord: o.ord ?? 16, peerToPeer: false, sendRtr: false, writeRtr: false, readRtr: false });
    socket.write(encodeMpaRequest({ revision: 2, crc: true, markers: false, privateData: pd, enhanced: true }));
    const head = await readFrame(socket, 'reply');
    return new HostileIwarp(socket, head);
  }

  /** Listens; the next connection is answered as the MPA responder (revision 2, CRC on). */
  static async listen(o: { ird?: number; ord?: number } = {}): Promise<{ port: number; accept(): Promise<HostileIwarp>; close(): void }> {
    const server: Server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      port: (server.address() as { port: number }).port,
      async accept() {
        const [socket] = (await once(server, 'connection')) as [Socket];
        const head = await readFrame(socket, 'request');
        const pd = encodeIrdOrd({ ird: o.ird ?? 16, ord: o.ord ?? 16, peerToPeer: false, sendRtr: false, writeRtr: false, readRtr: false });
        socket.write(encodeMpaReply({ revision: 2, crc: true, markers: false, privateData: pd, enhanced: true }));
        return new HostileIwarp(socket, head);
      },
      close: () => server.close(),
    };
  }

  fpdu(h: DdpHeader, payload: Uint8Array): void {
    for (const part of encodeFpdu(h, payload, true)) this.socket.write(part);
  }

  send(payload: Uint8Array): void {
    this.fpdu({ tagged: false, last: true, opcode: RDMAP_SEND, invalidateStag: 0, qn: DDP_QN_SEND, msn: this.sendMsn++, mo: 0 }, payload);
  }

  /** An RDMA Read Request for `size` bytes of the victim's (srcStag, srcTo). */
  readRequest(srcStag: number, srcTo: bigint, size: number, sinkStag = 0x1234, sinkTo = 0n): void {
    this.fpdu({ tagged: false, last: true, opcode: RDMAP_READ_REQUEST, invalidateStag: 0, qn: DDP_QN_READ_REQUEST, msn: this.readMsn++, mo: 0 },
      encodeReadRequest({ sinkStag, sinkTo, size, srcStag, srcTo }));
  }

  /** Stops reading the socket: the victim's sends back up in its queues. */
  stall(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Resolves once the connection has ended (or after `ms`, with false). */
  async closed(ms = 10_000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!this.ended && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return this.ended;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    if (this.malformed) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      let seg;
      try {
        seg = decodeFpdu(this.buf, true);
      } catch (err) {
        this.malformed = err as Error;
        return;
      }
      if (!seg) return;
      const copy = { ...seg, payload: Uint8Array.from(seg.payload) };
      this.received.push(copy);
      if (seg.tagged) this.taggedBytes += seg.payload.length;
      this.buf = this.buf.subarray(seg.byteLength);
    }
  }
}

/** Reads one MPA frame; returns the bytes after it. */
async function readFrame(socket: Socket, expect: 'request' | 'reply'): Promise<Buffer> {
  let buf = Buffer.alloc(0);
  for (;;) {
    const len = mpaFrameLength(buf, expect);
    if (len !== undefined && buf.length >= len) {
      decodeMpaFrame(buf.subarray(0, len), expect);
      return buf.subarray(len);
    }
    const [d] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, d]);
  }
}
