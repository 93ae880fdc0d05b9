// Reads a socket into one reused buffer instead of a fresh Buffer per read.
//
// Why: a net.Socket in flowing mode allocates a new 64 KiB ArrayBuffer for every read. At GB/s
// that is tens of thousands of external allocations a second, freed only by the next scavenge;
// glibc then grows and trims its heap over and over (measured: ~500k page faults and +70 % system
// time per 4 GiB on loopback, the single biggest cost of the iwarp-tcp receive path). An RDMA
// receive path copies every payload into registered memory anyway, so the bytes need to live only
// for the duration of one callback.
//
// Node offers exactly this as the documented `onread` option of net.connect()/new Socket(), but
// only at construction; sockets that net.Server accepts, or that upgradeToRdma() is handed, were
// built without it. We switch them over the way the option itself does (net.js: initSocketHandle
// and onStreamRead): the socket's kBuffer/kBufferCb/kBufferGen slots and the handle's
// useUserBuffer(). Those names are internal, so they are looked up once, by their descriptions,
// on a probe socket built with `onread`; if anything is missing (another Node, a non-TCP stream)
// the caller keeps using 'data' events, which stay correct, only slower.
import { Socket } from 'node:net';

interface Slots { kBuffer: symbol; kBufferCb: symbol; kBufferGen: symbol }

let slots: Slots | null | undefined;

function findSlots(): Slots | null {
  // (@types/node lists `onread` for connect() only; the constructor takes it the same way)
  const probe = new Socket({ onread: { buffer: new Uint8Array(1), callback: () => true } } as ConstructorParameters<typeof Socket>[0]);
  const syms = Object.getOwnPropertySymbols(probe);
  const by = (d: string) => syms.find((s) => s.description === d);
  const kBuffer = by('kBuffer'), kBufferCb = by('kBufferCb'), kBufferGen = by('kBufferGen');
  const p = probe as unknown as Record<symbol, unknown>;
  probe.destroy();
  // only trust slots that hold what the onread option put there
  if (!kBuffer || !kBufferCb || !kBufferGen || !(p[kBuffer] instanceof Uint8Array) || typeof p[kBufferCb] !== 'function') return null;
  return { kBuffer, kBufferCb, kBufferGen };
}

/** Whether readIntoBuffer() can switch sockets on this Node. */
export function canReadIntoBuffer(): boolean {
  if (slots === undefined) slots = findSlots();
  return slots !== null;
}

/** Where reads land and who hears of them. */
export interface ReadTarget {
  /** The buffer the next read lands in (at its start): asked once before each read. */
  nextBuffer(): Uint8Array;
  /** `n` bytes landed at the start of the buffer nextBuffer() last returned. */
  onRead(n: number): void;
  /** Bytes the stream had already buffered before the switch (handed over first, in order). */
  onChunk(chunk: Uint8Array): void;
}

/**
 * From now on, bytes read from `socket` land in the buffers `target.nextBuffer()` hands out and
 * are reported to `target.onRead()`; they stay ours: the socket never holds on to them. Returns
 * false (and changes nothing) where this Node does not allow it; the caller then listens for
 * 'data'. The socket must be paused; the caller resumes it.
 */
export function readIntoBuffer(socket: Socket, target: ReadTarget): boolean {
  if (!canReadIntoBuffer()) return false;
  const s = slots!;
  const sock = socket as unknown as Record<symbol, unknown> & { _handle?: { useUserBuffer?: (b: Uint8Array) => void } };
  const handle = sock._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || sock[s.kBuffer]) return false;
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null;) target.onChunk(chunk);
  const first = target.nextBuffer();
  sock[s.kBuffer] = first;
  sock[s.kBufferCb] = (nread: number) => {
    target.onRead(nread);
    return true; // keep reading
  };
  // asked after every read for the buffer of the next one (net.js onStreamRead)
  sock[s.kBufferGen] = () => target.nextBuffer();
  handle.useUserBuffer(first);
  return true;
}
