// Registrations of whole ArrayBuffers, kept for reuse. A file server moves data from and into the
// same buffers again and again, and registering pins memory (0.3-1.5 ms per MiB on soft-RoCE, as
// long as an 8 MiB transfer itself), so a registration made once serves every later I/O in the same
// ArrayBuffer. Two users: the SMB Direct connection (local access for its RDMA reads and writes,
// src/smbdirect/placement.ts) and the verbs endpoint (the registrations its memory windows are
// bound in, verbs/memory.ts). The cache is least recently used first, bounded in entries and bytes,
// and never lets go of a registration while someone still uses it.

export interface CachedRegistration<R> {
  readonly region: R;
  /** The ArrayBuffer's length when it was registered (a detached or resized buffer misses). */
  readonly size: number;
  /** Users holding it (acquire() without release()). */
  busy: number;
  /** Still in the cache (false once evicted or cleared: its last user deregisters it). */
  cached: boolean;
}

export interface RegistrationCacheOptions<R> {
  maxEntries: number;
  maxBytes: number;
  /** Registers a whole ArrayBuffer, or undefined where it cannot be (the caller does without). */
  register(ab: ArrayBufferLike): R | undefined;
  /** Deregisters: called once per registration, when it is neither cached nor busy; also for one
   * closed behind the cache's back (usable() false), so that its owner's accounting ends. */
  deregister(region: R): void;
  /** Whether a registration is still usable (not closed by its endpoint's end, say). */
  usable(region: R): boolean;
  /** Further room the owner has for `bytes` more (memory limits); default: always. */
  fits?(bytes: number): boolean;
}

export class RegistrationCache<R> {
  readonly #o: RegistrationCacheOptions<R>;
  /** Map order is use order: the least recently used first. */
  readonly #entries = new Map<ArrayBufferLike, CachedRegistration<R>>();
  #bytes = 0;

  constructor(options: RegistrationCacheOptions<R>) {
    this.#o = options;
  }

  /** Cached registrations (busy or not). */
  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The registration of `ab`, made now or kept from before, held until release(); undefined for a
   * buffer larger than a quarter of the cache, when every entry is busy and there is no room, or
   * when registering fails. Evicts the least recently used idle entries to make room.
   */
  acquire(ab: ArrayBufferLike): CachedRegistration<R> | undefined {
    const hit = this.#entries.get(ab);
    if (hit && this.#o.usable(hit.region) && hit.size === ab.byteLength) {
      this.#entries.delete(ab); // most recently used last
      this.#entries.set(ab, hit);
      hit.busy++;
      return hit;
    }
    if (hit) this.#drop(ab, hit);
    if (ab.byteLength > this.#o.maxBytes / 4) return undefined;
    const room = () => this.#entries.size < this.#o.maxEntries && this.#bytes + ab.byteLength <= this.#o.maxBytes &&
      (this.#o.fits?.(ab.byteLength) ?? true);
    for (const [key, e] of this.#entries) {
      if (room()) break;
      if (e.busy === 0) this.#drop(key, e);
    }
    if (!room()) return undefined;
    const region = this.#o.register(ab);
    if (region === undefined) return undefined;
    const e: CachedRegistration<R> = { region, size: ab.byteLength, busy: 1, cached: true };
    this.#entries.set(ab, e);
    this.#bytes += e.size;
    return e;
  }

  /** One user lets go; an entry dropped from the cache meanwhile is deregistered by its last user. */
  release(e: CachedRegistration<R>): void {
    if (e.busy <= 0) return;
    if (--e.busy === 0 && !e.cached) this.#o.deregister(e.region);
  }

  /** Drops every entry: idle ones are deregistered now, busy ones at their last release(). */
  clear(): void {
    for (const [key, e] of [...this.#entries]) this.#drop(key, e);
  }

  #drop(key: ArrayBufferLike, e: CachedRegistration<R>): void {
    this.#entries.delete(key);
    this.#bytes -= e.size;
    e.cached = false;
    if (e.busy === 0) this.#o.deregister(e.region);
  }
}
