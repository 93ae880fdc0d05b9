// Share modes ([MS-FSA] 2.1.5.1.2, "check sharing access"): every open of the server, across all
// connections, with the access it was granted and the access it shares, so that a CREATE whose
// access another open does not share (or that does not share what another open uses) gets
// STATUS_SHARING_VIOLATION. Opens are keyed by the file's identity (device and inode): hard links
// and a renamed file stay one file. A later issue's leases and durable handles hang off the same
// records.

import type { OplockState } from './oplocks.js';

export const FILE_READ_DATA = 0x1;
export const FILE_WRITE_DATA = 0x2;
export const FILE_APPEND_DATA = 0x4;
export const FILE_EXECUTE = 0x20;
export const DELETE = 0x10000;
export const SHARE_READ = 0x1;
export const SHARE_WRITE = 0x2;
export const SHARE_DELETE = 0x4;

/** Opens with none of these ("stat opens": attributes, security) neither conflict nor are conflicted with. */
const DATA_ACCESS = FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE | DELETE;

export interface OpenRecord {
  /** `${dev}:${ino}` of the file; a named stream's open adds `:${lowercased name}` (streams have
   * share modes of their own). */
  key: string;
  /** Where the file is now (kept current across renames through its opens). */
  path: string;
  access: number;
  share: number;
  /** Its oplock (oplocks.ts), when it was granted one. */
  oplock?: OplockState;
}

/** Whether an open with `access`/`share` conflicts with an existing one ([MS-FSA] 2.1.5.1.2). */
export function sharingConflict(existing: { access: number; share: number }, access: number, share: number): boolean {
  if (!(existing.access & DATA_ACCESS) || !(access & DATA_ACCESS)) return false;
  const reads = (a: number) => (a & (FILE_READ_DATA | FILE_EXECUTE)) !== 0;
  const writes = (a: number) => (a & (FILE_WRITE_DATA | FILE_APPEND_DATA)) !== 0;
  const deletes = (a: number) => (a & DELETE) !== 0;
  return (reads(access) && !(existing.share & SHARE_READ)) || (writes(access) && !(existing.share & SHARE_WRITE)) ||
    (deletes(access) && !(existing.share & SHARE_DELETE)) || (reads(existing.access) && !(share & SHARE_READ)) ||
    (writes(existing.access) && !(share & SHARE_WRITE)) || (deletes(existing.access) && !(share & SHARE_DELETE));
}

export function fileKey(st: { dev: number | bigint; ino: number | bigint }): string {
  return `${st.dev}:${st.ino}`;
}

/** The file key of a (file or stream) key. */
export function fileKeyOf(key: string): string {
  return key.split(':', 2).join(':');
}

const isStreamKey = (key: string) => key.split(':').length > 2;

/** The server's opens, by file. */
export class OpenTable {
  readonly #byKey = new Map<string, Set<OpenRecord>>();

  /** Whether an open of `key` with this access and share would conflict with one already there;
   * an open of a file for DELETE also with an open of one of its streams that does not share delete
   * ([MS-FSA] 2.1.5.1.2: a file goes with its streams). */
  conflicts(key: string, access: number, share: number): boolean {
    for (const e of this.#byKey.get(key) ?? []) if (sharingConflict(e, access, share)) return true;
    if (access & DELETE && !isStreamKey(key)) {
      for (const [k, set] of this.#byKey) {
        if (k.startsWith(`${key}:`)) for (const e of set) if (!(e.share & SHARE_DELETE)) return true;
      }
    }
    return false;
  }

  /** Files (and streams) whose delete is pending: deleted when their last open closes; a CREATE of
   * one is STATUS_DELETE_PENDING meanwhile. */
  readonly #deletePending = new Set<string>();

  setDeletePending(key: string, on: boolean): void {
    if (on) this.#deletePending.add(key);
    else this.#deletePending.delete(key);
  }

  isDeletePending(key: string): boolean {
    return this.#deletePending.has(key);
  }

  /** Whether `key` is still open (a file also through any of its streams). */
  inUse(key: string): boolean {
    if (this.#byKey.has(key)) return true;
    if (isStreamKey(key)) return false;
    for (const k of this.#byKey.keys()) if (k.startsWith(`${key}:`)) return true;
    return false;
  }

  /** The sharing check and the open's entry at once (call it before any await, so that two opens
   * of one file cannot both pass): the new record, or undefined on a conflict. */
  claim(rec: OpenRecord): OpenRecord | undefined {
    return this.conflicts(rec.key, rec.access, rec.share) ? undefined : this.add(rec);
  }

  /** Records an open (right after its check, before any await: two CREATEs cannot both pass). */
  add(rec: OpenRecord): OpenRecord {
    let set = this.#byKey.get(rec.key);
    if (!set) this.#byKey.set(rec.key, (set = new Set()));
    set.add(rec);
    return rec;
  }

  /** The opens of `key` (a file's, or one stream's). */
  opensOf(key: string): Iterable<OpenRecord> {
    return this.#byKey.get(key) ?? [];
  }

  remove(rec: OpenRecord): void {
    const set = this.#byKey.get(rec.key);
    if (!set?.delete(rec)) return;
    if (!set.size) this.#byKey.delete(rec.key);
  }

  /** The file `key` was renamed to `path`: its opens follow it, its streams' (keyed `key:stream`) too. */
  moved(key: string, path: string): void {
    for (const [k, set] of this.#byKey) if (k === key || k.startsWith(`${key}:`)) for (const e of set) e.path = path;
  }

  /** Whether any open is of something inside directory `dir` (a directory with opens below it
   * cannot be renamed: STATUS_ACCESS_DENIED, as Windows answers). */
  openBelow(dir: string): boolean {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    for (const set of this.#byKey.values()) for (const e of set) if (e.path.startsWith(prefix)) return true;
    return false;
  }

  get size(): number {
    let n = 0;
    for (const set of this.#byKey.values()) n += set.size;
    return n;
  }
}
