// The software iWARP endpoint on a MockSocket, with what the endpoint targets set up around it and
// check after each input:
// - memory regions of every kind (remote read+write, remote read only, remote write only, local
//   only, one invalidated, one closed), receives posted, and a read, a write and a send of ours
//   outstanding, so the tagged and untagged receive paths and Terminate matching are reachable;
// - afterwards: nothing escaped; the endpoint closes (by itself or by destroy()) with 'close' once
//   and any error coded ERR_; every work request completes exactly once; no byte changed in a region
//   the peer may not write; everything we sent is well-formed FPDUs (nothing after a Terminate, MSN
//   and MO in sequence); no timer is left behind.
import type { Socket } from 'node:net';

import './deterministic.js'; // fixed STags: see there

import { crc32c } from '../../framing/crc32c.js';
import { DDP_QN_READ_REQUEST, DDP_QN_SEND, RDMAP_TERMINATE, decodeFpdu, fpduLength } from '../../framing/ddp.js';
import { IwarpEndpoint, type IwarpSettings } from '../../src/providers/iwarp/endpoint.js';
import type { Completion, MemoryRegion } from '../../src/providers/types.js';
import { concat, equalBytes } from './bytes.js';
import { MockSocket } from './mock-socket.js';
import { FuzzFinding, check, checkCoded, checkNoEscapes, debug, pendingTimers, settle } from './oracle.js';

export function iwarpSettings(crc: boolean, overrides: Partial<IwarpSettings> = {}): IwarpSettings {
  return {
    crc, ird: 4, ord: 2, maxFpduPayload: 256, maxSendWr: 16, maxRecvWr: 8, readBufferSize: 0, disconnectTimeoutMs: 2000,
    ...overrides,
  };
}

/** Writes the right CRC32c into every whole FPDU of `stream` (a copy). */
export function fixCrcs(stream: Uint8Array): Uint8Array {
  const out = Uint8Array.from(stream);
  const dv = new DataView(out.buffer);
  for (let at = 0; at + 2 <= out.length;) {
    const n = fpduLength((out[at]! << 8) | out[at + 1]!);
    if (at + n > out.length) break;
    dv.setUint32(at + n - 4, crc32c(out.subarray(at, at + n - 4)), true);
    at += n;
  }
  return out;
}

/** Cuts `bytes` into chunks of `size` (0: one chunk). */
export function chunks(bytes: Uint8Array, size: number): Uint8Array[] {
  if (size <= 0 || bytes.length <= size) return [bytes];
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

export const CHUNK_SIZES = [0, 1, 3, 7, 16, 61, 256, 1500];

const PATTERN = 0xa5;
export const RECV_SLOT = 256;
export const RECEIVES = 4;

export interface Regions {
  rw: MemoryRegion; // remote read + write
  ro: MemoryRegion; // remote read only
  wo: MemoryRegion; // remote write only
  local: MemoryRegion; // receives [0, 1024), read sink [2048, 2560)
  src: MemoryRegion; // our send / write source, no remote access
  inv: MemoryRegion; // remote read + write, invalidated
  gone: MemoryRegion; // remote read + write, closed
}

/** One endpoint under test and what it did. */
export class Rig {
  regions?: Regions;
  readonly completions: Completion[] = [];
  readonly errors: Error[] = [];
  closeEvents = 0;
  /** The endpoint was already closed when the rig began to listen: its 'close' may be gone. */
  readonly closedBeforeWatched: boolean;
  readonly problems: string[] = [];
  /** wrIds posted, with how many completions each is owed */
  readonly owed = new Map<number, number>();
  private nextRecv = 1000;
  private readonly untouched: Array<{ name: string; buffer: Uint8Array; copy: Uint8Array }> = [];

  /** The Send messages we sent (after `first`), reassembled from their FPDUs, in MSN order. */
  readonly sent: Uint8Array[] = [];

  /** An endpoint made elsewhere (upgradeToRdma) on `socket`, or a fresh one with `settings`.
   * `own`: the rig consumes the completions (false when a connection on top does). */
  constructor(readonly socket: MockSocket, readonly ep: IwarpEndpoint, own = true) {
    this.closedBeforeWatched = ep.state === 'CLOSED';
    if (own) this.watch();
    else {
      this.ep.on('error', (err: Error) => { this.errors.push(err); });
      this.ep.on('close', () => { this.closeEvents++; });
    }
  }

  static fresh(settings: IwarpSettings): Rig {
    const socket = new MockSocket();
    return new Rig(socket, new IwarpEndpoint(socket as unknown as Socket, settings, new Uint8Array(0)));
  }

  private watch(): void {
    this.ep.on('error', (err: Error) => { this.errors.push(err); });
    this.ep.on('close', () => { this.closeEvents++; });
    this.ep.onCompletions((batch) => {
      for (const c of batch) {
        this.completions.push(c);
        const n = this.owed.get(c.wrId);
        // (a finding is noted, not thrown: this runs in the endpoint's microtask)
        if (n === undefined || n === 0) this.problems.push(`completion for wrId ${c.wrId} (${c.opcode} ${c.status}) that is not owed`);
        else this.owed.set(c.wrId, n - 1);
        // keep the receive queue full, as a consumer would
        if (c.opcode === 'recv' && c.status === 'success' && this.regions) this.postRecv(c.wrId);
      }
    });
  }

  /** Registers the regions (before or after start) and fills the ones the peer may not write. */
  register(): Regions {
    const ep = this.ep;
    const r: Regions = {
      rw: ep.registerMemory(4096, { localWrite: true, remoteRead: true, remoteWrite: true }),
      ro: ep.registerMemory(4096, { remoteRead: true }),
      wo: ep.registerMemory(1024, { localWrite: true, remoteWrite: true }),
      local: ep.registerMemory(4096, { localWrite: true }),
      src: ep.registerMemory(1024, {}),
      inv: ep.registerMemory(512, { localWrite: true, remoteRead: true, remoteWrite: true }),
      gone: ep.registerMemory(512, { localWrite: true, remoteRead: true, remoteWrite: true }),
    };
    for (let i = 0; i < r.rw.buffer.length; i++) r.rw.buffer[i] = i & 0xff;
    for (const [name, mr] of [['ro', r.ro], ['src', r.src], ['inv', r.inv], ['gone', r.gone]] as const) {
      mr.buffer.fill(PATTERN);
      this.untouched.push({ name, buffer: mr.buffer, copy: Uint8Array.from(mr.buffer) });
    }
    // local: only the posted receives and the read sink may change
    r.local.buffer.fill(PATTERN);
    this.untouched.push({ name: 'local (outside receives and sink)', buffer: r.local.buffer.subarray(1024, 2048), copy: new Uint8Array(1024).fill(PATTERN) });
    this.untouched.push({ name: 'local (past the sink)', buffer: r.local.buffer.subarray(2560), copy: new Uint8Array(4096 - 2560).fill(PATTERN) });
    ep.invalidate(r.inv.rkey);
    r.gone.close();
    this.regions = r;
    return r;
  }

  postRecv(slot: number): void {
    const r = this.regions!;
    const wrId = this.nextRecv++;
    try {
      this.ep.postRecv(wrId, { mr: r.local, offset: (slot % RECEIVES) * RECV_SLOT, length: RECV_SLOT });
      this.owed.set(wrId, 1);
    } catch (err) {
      checkCoded('postRecv', err); // refused: the endpoint is no longer in RTS
    }
  }

  postReceives(): void {
    for (let i = 0; i < RECEIVES; i++) this.postRecv(i);
  }

  /** A read, a write and a (two-FPDU) send of ours, outstanding while the input arrives. */
  postWork(all: boolean): void {
    const r = this.regions!;
    const post = (wrId: number, fn: () => void) => {
      try {
        fn();
        this.owed.set(wrId, 1);
      } catch (err) {
        checkCoded('post', err);
      }
    };
    post(1, () => this.ep.postRead(1, [{ mr: r.local, offset: 2048, length: 512 }], 0x1000n, 0x4242));
    if (!all) return;
    post(2, () => this.ep.postWrite(2, [{ mr: r.src, offset: 0, length: 100 }], 0x2000n, 0x4343));
    post(3, () => this.ep.postSend(3, [{ mr: r.src, offset: 0, length: 300 }]));
  }

  feed(bytes: Uint8Array, chunkSize: number): void {
    for (const c of chunks(bytes, chunkSize)) this.socket.feed(c);
  }

  /**
   * After the input: the oracle. `first` is where our FPDUs start in what was written (after an
   * MPA frame), `crc` whether our FPDUs carry CRCs.
   */
  async finish(first: number, crc: () => boolean): Promise<void> {
    await settle(4);
    checkNoEscapes('the endpoint while it was fed');
    const endedAlone = this.ep.state === 'CLOSED';
    debug('endpoint', {
      state: this.ep.state, error: (this.ep.error as { code?: string } | undefined)?.code, message: this.ep.error?.message,
      completions: this.completions.map((c) => `${c.wrId}:${c.opcode}:${c.status}:${c.byteLength}`), written: this.socket.writtenBytes,
    });
    if (endedAlone) check(this.closeEvents <= 1, `'close' emitted ${this.closeEvents} times`);
    this.ep.destroy();
    await settle(4);
    checkNoEscapes('the endpoint while it was destroyed');
    if (this.problems.length) throw new FuzzFinding(this.problems[0]!);
    check(this.ep.state === 'CLOSED', `state ${this.ep.state} after destroy()`);
    check(this.closeEvents === 1 || (this.closedBeforeWatched && this.closeEvents === 0), `'close' emitted ${this.closeEvents} times, once expected`);
    for (const e of this.errors) checkCoded("the endpoint's 'error' event", e);
    if (this.ep.error) checkCoded('the endpoint (its first error)', this.ep.error);
    for (const [wrId, n] of this.owed) {
      if (n !== 0) throw new FuzzFinding(`work request ${wrId} never completed (the endpoint is closed: it must have been flushed)`);
    }
    for (const u of this.untouched) check(equalBytes(u.buffer, u.copy), `bytes changed in ${u.name}, which the peer may not write`);
    this.checkWritten(first, crc());
    const left = pendingTimers();
    check(left === 0, `${left} timer(s) started during the input still pending after the endpoint closed`);
  }

  /** Everything we sent after `first`: whole FPDUs, valid, in MSN/MO order, tagged ones at
   * contiguous TOs below 2^64, nothing after a Terminate. */
  private checkWritten(first: number, crc: boolean): void {
    if (!this.socket.keptAll) return;
    const out = concat(this.socket.written).subarray(first);
    const next = new Map<number, { msn: number; mo: number }>([[DDP_QN_SEND, { msn: 1, mo: 0 }], [DDP_QN_READ_REQUEST, { msn: 1, mo: 0 }]]);
    let terminated = false;
    let message: Uint8Array[] = [];
    let tagged: { stag: number; end: bigint } | undefined;
    for (let at = 0; at < out.length;) {
      check(!terminated, 'we sent an FPDU after our Terminate');
      let seg;
      try {
        seg = decodeFpdu(out.subarray(at), crc);
      } catch (err) {
        throw new FuzzFinding(`we sent a malformed FPDU at byte ${first + at}: ${(err as Error).message}`, { cause: err });
      }
      check(seg, `we sent a truncated FPDU at byte ${first + at} (${out.length - at} bytes left)`);
      at += seg.byteLength;
      if (seg.tagged) {
        // a tagged message's FPDUs: contiguous TOs of one STag, never past 2^64 (no wrap)
        const end = seg.to + BigInt(seg.payload.length);
        check(end <= 1n << 64n, `we sent a tagged FPDU whose TO 0x${seg.to.toString(16)} + ${seg.payload.length} runs past 2^64`);
        if (tagged) check(seg.stag === tagged.stag && seg.to === tagged.end, `we sent a tagged FPDU at TO 0x${seg.to.toString(16)} continuing one that ended at 0x${tagged.end.toString(16)}`);
        tagged = seg.last ? undefined : { stag: seg.stag, end };
        continue;
      }
      if (seg.opcode === RDMAP_TERMINATE) { terminated = true; continue; }
      const q = next.get(seg.qn);
      check(q, `we sent an untagged FPDU on queue ${seg.qn}`);
      check(seg.msn === q.msn && seg.mo === q.mo, `we sent queue ${seg.qn} MSN ${seg.msn} MO ${seg.mo}, expected MSN ${q.msn} MO ${q.mo}`);
      if (seg.qn === DDP_QN_SEND) message.push(seg.payload);
      if (seg.last) {
        q.msn++;
        q.mo = 0;
        if (seg.qn === DDP_QN_SEND) { this.sent.push(concat(message)); message = []; }
      } else q.mo += seg.payload.length;
    }
  }
}
