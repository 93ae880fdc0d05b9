// Byte-range locks ([MS-SMB2] 3.3.5.14, [MS-FSA] 2.1.5.7): every lock of the server, across all
// connections, by file (device and inode, as share modes), with the blocking requests waiting for
// one. The owner of a lock is the open that took it (SMB2 has no process in it: smbtorture's
// lock.context). The rules are Windows's, as smbtorture's smb2.lock suite pins them down:
// - an exclusive request conflicts with every overlapping lock, the owner's own included; a shared
//   one only with another open's exclusive lock (an open stacks shared locks on its exclusive one);
// - a zero-length lock is a point: it overlaps a range that holds it strictly inside, never another
//   point;
// - an unlock names exactly one lock of the open (offset and length), its exclusive one first;
// - READ conflicts with another open's exclusive lock, WRITE with any shared lock (its own too) and
//   another open's exclusive lock (STATUS_FILE_LOCK_CONFLICT); zero-length I/O with nothing.
// All of it runs without an await, so a check and the lock it grants are one step.

export interface LockRange { offset: bigint; length: bigint }
interface Held extends LockRange { owner: object; exclusive: boolean }

/** A blocking lock request waiting for its range. */
export interface LockWaiter extends LockRange {
  readonly key: string;
  readonly owner: object;
  readonly exclusive: boolean;
  /** Called once: true when the lock was granted, false when the owner's open went away. */
  readonly settle: (granted: boolean) => void;
}

/** Whether two locks overlap ([MS-FSA] 2.1.5.7's zero-length rule included). */
export function locksOverlap(a: LockRange, b: LockRange): boolean {
  if (a.length === 0n && b.length === 0n) return false;
  if (a.length === 0n) return b.offset < a.offset && a.offset < b.offset + b.length;
  if (b.length === 0n) return a.offset < b.offset && b.offset < a.offset + a.length;
  return a.offset < b.offset + b.length && b.offset < a.offset + a.length;
}

/** Whether a range ends past the last byte a 64-bit offset names (STATUS_INVALID_LOCK_RANGE; one
 * that ends exactly at 2^64 is valid). */
export function lockRangeOverflows(r: LockRange): boolean {
  return r.offset + r.length > 1n << 64n;
}

interface FileLocks { held: Held[]; waiting: LockWaiter[] }

/** Locks one open may hold: a bound on what a peer makes the server keep (and on the cost of the
 * conflict checks, which walk a file's locks). Beyond it a lock is refused (the caller answers
 * STATUS_INSUFFICIENT_RESOURCES). */
export const MAX_LOCKS_PER_OPEN = 10_000;

export class LockTable {
  readonly #files = new Map<string, FileLocks>();
  /** Locks held per owner. */
  readonly #perOwner = new Map<object, number>();

  #count(owner: object, delta: number): void {
    const n = (this.#perOwner.get(owner) ?? 0) + delta;
    if (n > 0) this.#perOwner.set(owner, n);
    else this.#perOwner.delete(owner);
  }

  /** Whether `owner` may take another lock. */
  mayLock(owner: object): boolean {
    return (this.#perOwner.get(owner) ?? 0) < MAX_LOCKS_PER_OPEN;
  }

  #file(key: string): FileLocks {
    let f = this.#files.get(key);
    if (!f) this.#files.set(key, (f = { held: [], waiting: [] }));
    return f;
  }

  #tidy(key: string, f: FileLocks): void {
    if (!f.held.length && !f.waiting.length) this.#files.delete(key);
  }

  #conflicts(f: FileLocks | undefined, owner: object, r: LockRange, exclusive: boolean): boolean {
    for (const l of f?.held ?? []) {
      if (!locksOverlap(l, r)) continue;
      if (exclusive || (l.exclusive && l.owner !== owner)) return true;
    }
    return false;
  }

  /** Takes the lock if nothing conflicts: the lock (for `drop`), or undefined. */
  tryLock(key: string, owner: object, r: LockRange, exclusive: boolean): object | undefined {
    if (this.#conflicts(this.#files.get(key), owner, r, exclusive)) return undefined;
    const l: Held = { offset: r.offset, length: r.length, owner, exclusive };
    this.#file(key).held.push(l);
    this.#count(owner, 1);
    return l;
  }

  /** Takes back locks `tryLock` just gave (a multi-element LOCK that failed part way). */
  drop(key: string, locks: readonly object[]): void {
    const f = this.#files.get(key);
    if (!f) return;
    f.held = f.held.filter((l) => {
      if (!locks.includes(l)) return true;
      this.#count(l.owner, -1);
      return false;
    });
    this.#wake(key, f);
  }

  /** Removes the owner's lock of exactly this range (its exclusive one first): false if it has none. */
  unlock(key: string, owner: object, r: LockRange): boolean {
    const f = this.#files.get(key);
    if (!f) return false;
    const same = (l: Held) => l.owner === owner && l.offset === r.offset && l.length === r.length;
    let i = f.held.findIndex((l) => same(l) && l.exclusive);
    if (i < 0) i = f.held.findIndex(same);
    if (i < 0) return false;
    f.held.splice(i, 1);
    this.#count(owner, -1);
    this.#wake(key, f);
    return true;
  }

  /** Queues a blocking request (granted in arrival order as ranges come free). */
  wait(w: LockWaiter): void {
    this.#file(w.key).waiting.push(w);
  }

  /** Takes a waiting request off its queue (CANCEL): false if it was no longer waiting. */
  cancel(w: LockWaiter): boolean {
    const f = this.#files.get(w.key);
    const i = f ? f.waiting.indexOf(w) : -1;
    if (i < 0) return false;
    f!.waiting.splice(i, 1);
    this.#tidy(w.key, f!);
    return true;
  }

  /** The owner's open is closing: its waiting requests fail (settle(false)), its locks go, and
   * whatever waited for them is granted. */
  release(key: string, owner: object): void {
    const f = this.#files.get(key);
    if (!f) return;
    const mine = f.waiting.filter((w) => w.owner === owner);
    f.waiting = f.waiting.filter((w) => w.owner !== owner);
    f.held = f.held.filter((l) => l.owner !== owner);
    this.#perOwner.delete(owner);
    for (const w of mine) w.settle(false);
    this.#wake(key, f);
  }

  /** Whether I/O by `owner` of [offset, offset + length) meets another's lock (or, writing, any
   * shared one): STATUS_FILE_LOCK_CONFLICT. */
  ioConflict(key: string, owner: object, offset: bigint, length: bigint, write: boolean): boolean {
    const f = this.#files.get(key);
    if (!f || length === 0n) return false;
    for (const l of f.held) {
      if (l.length === 0n || !(offset < l.offset + l.length && l.offset < offset + length)) continue;
      if (l.exclusive ? l.owner !== owner : write) return true;
    }
    return false;
  }

  /** Grants waiting requests, oldest first, whose range is free now. */
  #wake(key: string, f: FileLocks): void {
    for (let i = 0; i < f.waiting.length;) {
      const w = f.waiting[i]!;
      if (this.#conflicts(f, w.owner, w, w.exclusive)) { i++; continue; }
      f.waiting.splice(i, 1);
      f.held.push({ offset: w.offset, length: w.length, owner: w.owner, exclusive: w.exclusive });
      this.#count(w.owner, 1);
      w.settle(true);
    }
    this.#tidy(key, f);
  }

  /** Locks held and requests waiting, server-wide (stats, leak checks). */
  get counts(): { held: number; waiting: number } {
    let held = 0;
    let waiting = 0;
    for (const f of this.#files.values()) { held += f.held.length; waiting += f.waiting.length; }
    return { held, waiting };
  }
}
