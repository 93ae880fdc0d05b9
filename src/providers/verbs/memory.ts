// The verbs endpoint's memory: registrations (MemoryRegion over an ibv_mr) and, on devices with
// type-2 memory windows, per-I/O windows bound in a kept registration of the whole ArrayBuffer
// (a bind instead of a registration per I/O, and a key the peer can invalidate remotely on RoCE/IB:
// rxe invalidates windows, not MRs). The endpoint posts the binds (they are send-queue work); this
// module owns what is registered, what is bound, and their release.
import { markAsUntransferable } from 'node:worker_threads';

import * as native from '../../../native/index.js';
import type { ProtectionDomain } from '../../../native/index.js';
import { foreignRegionError } from '../endpoint-base.js';
import { RdmaError } from '../errors.js';
import { type CachedRegistration, RegistrationCache } from '../registration-cache.js';
import type { Access, MemoryRegion, Sge } from '../types.js';

/**
 * A registered JS-owned ArrayBuffer must not be detached: a transfer to a worker (postMessage,
 * structuredClone) would move its memory to another owner that may free it while the device still
 * reads and writes it. Marked untransferable, Node copies it on such a transfer instead, and the
 * registration keeps its memory. (Node 20 has no ArrayBuffer.prototype.transfer(); on later Nodes
 * that one call is not prevented, docs/completion.md.)
 */
export function pin(ab: ArrayBufferLike): void {
  if (ab instanceof ArrayBuffer) markAsUntransferable(ab);
}

export class VerbsRegion implements MemoryRegion {
  readonly buffer: Uint8Array;
  /** mr.handle and the length, read once: staged posts name the region by its handle. */
  readonly handle: number;
  readonly size: number;
  constructor(private readonly owner: EndpointMemory, readonly mr: native.MemoryRegion, buffer: Uint8Array) {
    this.buffer = buffer;
    this.handle = mr.handle;
    this.size = buffer.byteLength;
  }
  get addr(): bigint { return this.mr.addr; }
  get lkey(): number { return this.mr.lkey; }
  get rkey(): number { return this.mr.rkey; }
  get closed(): boolean { return this.mr.closed; }
  close(): void {
    if (this.mr.closed) return;
    this.mr.close();
    this.owner.forget(this);
  }
}

/** A per-I/O token as a type-2 memory window bound over a kept registration of the whole
 * ArrayBuffer. For the peer only: it is not a local SGE region. */
export class VerbsWindow implements MemoryRegion {
  /** The peer invalidated this key (a Send with Invalidate arrived for it): the window is free
   * again in the device and can be bound anew under the next key. */
  invalidatedByPeer = false;
  #released = false;
  constructor(private readonly owner: EndpointMemory, private readonly mw: native.MemoryWindow,
    readonly base: CachedRegistration<native.MemoryRegion>, readonly buffer: Uint8Array, readonly rkey: number) {}
  get addr(): bigint { return this.base.region.addr + BigInt(this.buffer.byteOffset); }
  get lkey(): number { return this.base.region.lkey; }
  get closed(): boolean { return this.#released || this.mw.closed; }
  close(): void {
    if (this.closed) return;
    this.#released = true;
    // A window the peer invalidated is kept for the next bind (ibv_alloc_mw and ibv_dealloc_mw are
    // a system call each: ~1.8 ms of the VM's ~20 ms per 1 MiB I/O). Any other is deallocated,
    // which invalidates it at once.
    if (!this.invalidatedByPeer || !this.owner.keepWindow(this.mw)) this.mw.close();
    this.owner.forgetWindow(this);
  }
}

/** Windows the peer invalidated, kept per endpoint for later binds: at most this many. */
const IDLE_WINDOWS = 64;
/** Whole-ArrayBuffer registrations kept for windows: at most this many, and bytes. */
const BASE_REGIONS = 8;
const BASE_BYTES = 256 * 1024 * 1024;

/** Binds `mw` over `buffer` in `base` with `access` (a send-queue work request); returns the key. */
export type BindWindow = (mw: native.MemoryWindow, base: native.MemoryRegion, buffer: Uint8Array, access: number) => number;

export class EndpointMemory {
  readonly #pd: ProtectionDomain;
  /** Whether a window the peer invalidated may be kept for the next bind (the endpoint is up). */
  readonly #canKeepWindows: () => boolean;
  readonly #regions = new Set<VerbsRegion>();
  readonly #windows = new Map<number, VerbsWindow>();
  readonly #idleWindows: native.MemoryWindow[] = [];
  /** The registrations windows are bound in (local write and bind rights only: their own rkey
   * grants nothing remotely), held by each window bound in them. */
  readonly #bases: RegistrationCache<native.MemoryRegion>;
  #closed = false;
  /** The region of the last SGE looked up: the next one is usually in it too. */
  #lastRegion?: VerbsRegion;

  constructor(pd: ProtectionDomain, canKeepWindows: () => boolean) {
    this.#pd = pd;
    this.#canKeepWindows = canKeepWindows;
    this.#bases = new RegistrationCache({
      maxEntries: BASE_REGIONS, maxBytes: BASE_BYTES,
      register: (ab) => {
        try {
          pin(ab);
          return this.#pd.registerBuffer(new Uint8Array(ab), native.ACCESS.LOCAL_WRITE | native.ACCESS.MW_BIND);
        } catch {
          return undefined;
        }
      },
      deregister: (mr) => mr.close(),
      usable: (mr) => !mr.closed,
    });
  }

  /** A registration of its own: `size` bytes of addon-allocated memory, or the caller's buffer. */
  register(sizeOrBuffer: number | Uint8Array, access: Access): VerbsRegion {
    const bits = native.accessFlags({ localWrite: access.localWrite, remoteRead: access.remoteRead, remoteWrite: access.remoteWrite });
    let mr: native.MemoryRegion;
    let buffer: Uint8Array;
    if (typeof sizeOrBuffer === 'number') {
      mr = this.#pd.allocSlab(sizeOrBuffer, bits);
      buffer = new Uint8Array(mr.buffer);
    } else if (sizeOrBuffer instanceof Uint8Array) {
      pin(sizeOrBuffer.buffer);
      mr = this.#pd.registerBuffer(sizeOrBuffer, bits);
      buffer = sizeOrBuffer;
    } else {
      throw new RdmaError('ERR_INVALID_ARG_TYPE', 'registerMemory needs a size or a Uint8Array');
    }
    const r = new VerbsRegion(this, mr, buffer);
    this.#regions.add(r);
    return r;
  }

  /** A window over `buffer` for the peer, bound by `bind`; undefined where one is not to be had (a
   * buffer too large to keep registered, no window object, the bind refused): the caller registers
   * the buffer itself then. */
  window(buffer: Uint8Array, access: Access, bind: BindWindow): VerbsWindow | undefined {
    const base = this.#bases.acquire(buffer.buffer);
    if (!base) return undefined;
    let mw = this.#idleWindows.pop();
    if (!mw) {
      try {
        mw = this.#pd.allocMw();
      } catch {
        this.#bases.release(base);
        return undefined;
      }
    }
    let rkey: number;
    try {
      rkey = bind(mw, base.region, buffer, native.accessFlags({ remoteRead: access.remoteRead, remoteWrite: access.remoteWrite }));
    } catch {
      mw.close();
      this.#bases.release(base);
      return undefined;
    }
    const w = new VerbsWindow(this, mw, base, buffer, rkey);
    this.#windows.set(rkey, w);
    return w;
  }

  /** The region an SGE names, checked to be one of ours (ERR_INVALID_ARG_TYPE). */
  region(mr: Sge['mr']): VerbsRegion {
    if (mr === this.#lastRegion) return this.#lastRegion;
    const r = mr as VerbsRegion;
    if (!(r instanceof VerbsRegion) || !this.#regions.has(r)) throw foreignRegionError();
    this.#lastRegion = r;
    return r;
  }

  windowOf(rkey: number): VerbsWindow | undefined {
    return this.#windows.get(rkey);
  }

  regionOf(rkey: number): VerbsRegion | undefined {
    for (const r of this.#regions) if (r.rkey === rkey) return r;
    return undefined;
  }

  /** Called by VerbsWindow.close() for a window the peer invalidated: true if it is kept. */
  keepWindow(mw: native.MemoryWindow): boolean {
    if (this.#closed || !this.#canKeepWindows() || this.#idleWindows.length >= IDLE_WINDOWS) return false;
    this.#idleWindows.push(mw);
    return true;
  }

  /** Called by VerbsWindow.close(). */
  forgetWindow(w: VerbsWindow): void {
    this.#windows.delete(w.rkey);
    this.#bases.release(w.base);
  }

  /** Called by VerbsRegion.close(). */
  forget(r: VerbsRegion): void {
    this.#regions.delete(r);
    if (this.#lastRegion === r) this.#lastRegion = undefined;
  }

  /** Releases everything: regions, windows (and their bases), idle windows. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of [...this.#regions]) r.close();
    for (const w of [...this.#windows.values()]) w.close();
    for (const mw of this.#idleWindows) mw.close();
    this.#idleWindows.length = 0;
    this.#bases.clear();
  }
}
