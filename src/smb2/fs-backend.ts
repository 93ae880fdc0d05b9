// A share is a directory: SMB paths resolved inside its root and never outside it, and what the
// file system says turned into SMB's shapes (FileStat, NTSTATUS). The one place that touches the
// disk for the server.
import type { Stats } from 'node:fs';
import { lstat, readdir, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';

import { FILE_ATTRIBUTE, type FileStat, fileTimeOf } from '../../framing/smb2/fscc.js';
import {
  STATUS_ACCESS_DENIED, STATUS_DIRECTORY_NOT_EMPTY, STATUS_DISK_FULL, STATUS_FILE_IS_A_DIRECTORY, STATUS_NOT_A_DIRECTORY, STATUS_OBJECT_NAME_COLLISION,
  STATUS_OBJECT_NAME_INVALID, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND, STATUS_SHARING_VIOLATION, STATUS_UNSUCCESSFUL,
} from '../../framing/smb2/ntstatus.js';
import { Smb2Error } from './errors.js';
import type { SecurityDescriptor } from '../../framing/smb2/security.js';
import { STREAMS_DIR } from './streams.js';
import { createHash } from 'node:crypto';

/** Names Windows reserves for devices, with or without an extension: refused as names. */
const RESERVED = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i;
/** Characters NTFS refuses in a name (and the stream separator: streams.ts splits a name at it
 * first), and control characters. */
const BAD_CHARS = /[<>:"|?*]/;
const hasBadChar = (p: string) => BAD_CHARS.test(p) || [...p].some((c) => c.charCodeAt(0) < 0x20);

/**
 * The absolute path of SMB path `name` (backslash-separated, relative to the share) inside `root`.
 * Refused with the status Windows gives: `..` and `.` components, empty components, reserved device
 * names, characters NTFS refuses (STATUS_OBJECT_NAME_INVALID). Symlinks are checked at open time by
 * `checkInside`.
 */
export function resolveInShare(root: string, name: string): string {
  const trimmed = name.replace(/^\\+/, '');
  if (trimmed === '') return root;
  const parts = trimmed.split('\\');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..' || hasBadChar(p) || RESERVED.test(p) || p.endsWith(' ') || p.endsWith('.')) {
      throw new Smb2Error(STATUS_OBJECT_NAME_INVALID, `the name ${JSON.stringify(name)} is not valid`);
    }
    if (p.toLowerCase() === STREAMS_DIR) throw new Smb2Error(STATUS_ACCESS_DENIED, `${STREAMS_DIR} holds the share's named streams`);
  }
  return join(root, ...parts);
}

/**
 * `path` (under `root`, from resolveInShare; `missing`: the caller knows it is not there as given)
 * with each component that does not exist as given
 * replaced by the one entry of its directory that matches it case-insensitively, as Windows names
 * work (smbtorture's dir.modify opens "T017-17.txt" for "t017-17.txt"). An exact name costs one
 * lstat; a missing one a readdir of its directory, as ksmbd's caseless lookup does. What matches
 * nothing is kept as given (a name to create).
 */
export async function findCase(root: string, path: string, depth = 0, missing = false): Promise<string> {
  if (path === root || depth > 64 || !path.startsWith(root)) return path;
  if (!missing) {
    try {
      await lstat(path);
      return path;
    } catch {
      // not there as given: look for it in its (case-resolved) directory
    }
  }
  const parent = await findCase(root, dirname(path), depth + 1);
  const name = basename(path);
  const upper = name.toUpperCase();
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return join(parent, name);
  }
  return join(parent, names.find((n) => n.toUpperCase() === upper) ?? name);
}

/** Throws STATUS_ACCESS_DENIED when `path`'s real location (symlinks followed) is outside the real
 * `root`: a link inside the share may not lead out of it. A path that does not exist yet is checked
 * by its parent. */
export async function checkInside(realRoot: string, path: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    try {
      real = join(await realpath(join(path, '..')), path.slice(path.lastIndexOf(sep) + 1));
    } catch {
      return; // the parent is missing too: the open fails with OBJECT_PATH_NOT_FOUND
    }
  }
  const rel = relative(realRoot, real);
  if (rel.startsWith('..') || isAbsolute(rel)) throw new Smb2Error(STATUS_ACCESS_DENIED, 'the path leads outside the share');
}

/** An fs error as the NTSTATUS Windows gives for it. */
export function statusOfFsError(err: unknown, missingParent = false): number {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT': return missingParent ? STATUS_OBJECT_PATH_NOT_FOUND : STATUS_OBJECT_NAME_NOT_FOUND;
    case 'EEXIST': return STATUS_OBJECT_NAME_COLLISION;
    case 'EACCES': case 'EPERM': case 'EROFS': return STATUS_ACCESS_DENIED;
    case 'EISDIR': return STATUS_FILE_IS_A_DIRECTORY;
    case 'ENOTDIR': return STATUS_NOT_A_DIRECTORY;
    case 'ENOTEMPTY': return STATUS_DIRECTORY_NOT_EMPTY;
    case 'ENOSPC': case 'EDQUOT': return STATUS_DISK_FULL;
    case 'EBUSY': return STATUS_SHARING_VIOLATION;
    case 'ENAMETOOLONG': return STATUS_OBJECT_NAME_INVALID;
    default: return STATUS_UNSUCCESSFUL;
  }
}

/**
 * What a client set that the file system cannot hold: a creation time (Linux has no settable
 * birth time), a change time, the DOS attributes it sets (HIDDEN, SYSTEM, ARCHIVE, READONLY), the
 * security descriptor it set (at CREATE or by SET_INFO).
 * Kept by real path for the server's life (a sidecar store on disk is a later step), moved on
 * rename, dropped on delete.
 */
export interface FileMeta { creationTime?: bigint; changeTime?: bigint; attributes?: number; sd?: SecurityDescriptor }

export class MetaStore {
  readonly #m = new Map<string, FileMeta>();
  get(path: string): FileMeta | undefined { return this.#m.get(path); }
  set(path: string, v: FileMeta): void {
    this.#m.set(path, { ...this.#m.get(path), ...v });
  }
  move(from: string, to: string): void {
    const v = this.#m.get(from);
    this.#m.delete(from);
    if (v) this.#m.set(to, v);
  }
  delete(path: string): void { this.#m.delete(path); }
}

/** fs.Stats (bigint: true not needed) as the fields SMB reports, with what `meta` holds for it. */
export function fileStatOf(st: Stats, readOnly: boolean, meta?: { creationTime?: bigint; changeTime?: bigint; attributes?: number }): FileStat {
  const isDirectory = st.isDirectory();
  let attributes: number = isDirectory ? FILE_ATTRIBUTE.DIRECTORY : FILE_ATTRIBUTE.ARCHIVE;
  if (readOnly || !(st.mode & 0o200)) attributes |= FILE_ATTRIBUTE.READONLY;
  if (meta?.attributes !== undefined) attributes = (meta.attributes & 0x27) | (isDirectory ? FILE_ATTRIBUTE.DIRECTORY : 0) | (readOnly ? FILE_ATTRIBUTE.READONLY : 0);
  if (attributes === 0) attributes = FILE_ATTRIBUTE.NORMAL;
  return {
    creationTime: meta?.creationTime ?? fileTimeOf(st.birthtimeMs || st.ctimeMs), lastAccessTime: fileTimeOf(st.atimeMs), lastWriteTime: fileTimeOf(st.mtimeMs),
    changeTime: meta?.changeTime ?? fileTimeOf(st.ctimeMs), endOfFile: isDirectory ? 0n : BigInt(st.size),
    allocationSize: isDirectory ? 0n : BigInt(st.blocks) * 512n, attributes, fileId: BigInt(st.ino), nlink: st.nlink, isDirectory,
  };
}

/** Windows-style wildcard match of `name` against `pattern` ('*' and '?', case-insensitive; '*'
 * alone and '' match everything; the DOS wildcards '<' '>' '"' as '*', '?', '.'). */
export function matchPattern(pattern: string, name: string): boolean {
  if (pattern === '' || pattern === '*' || pattern === '*.*') return true;
  const p = pattern.replace(/</g, '*').replace(/>/g, '?').replace(/"/g, '.');
  const re = new RegExp(`^${p.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('')}$`, 'is');
  return re.test(name);
}

/** Characters an 8.3 name may hold (besides letters and digits). */
const SHORT_EXTRA = "!#$%&'()-@^_`{}~";
const shortChar = (c: string) => /[A-Z0-9]/.test(c) || SHORT_EXTRA.includes(c);

/**
 * The 8.3 (short) name clients see for `name` ([MS-FSCC] 2.1.5.2.1): a name that is one already
 * (up to 8 characters, a dot and up to 3, of the characters allowed) in capitals; any other as
 * Windows forms one once the plain `~1` names are taken: the first two usable characters, four hex
 * digits of a hash of the whole name, `~1`, and the first three usable characters of the
 * extension. Unique enough for listings; not kept on disk, and a name cannot be opened by it.
 */
export function shortNameOf(name: string): string | undefined {
  if (name === '.' || name === '..') return undefined;
  const upper = name.toUpperCase();
  const dot = upper.lastIndexOf('.');
  const base = dot > 0 ? upper.slice(0, dot) : upper;
  const ext = dot > 0 ? upper.slice(dot + 1) : '';
  if (base.length >= 1 && base.length <= 8 && ext.length <= 3 && [...base, ...ext].every(shortChar) && (dot <= 0 || ext.length > 0)) {
    return ext ? `${base}.${ext}` : base;
  }
  const usable = (s: string) => [...s].filter(shortChar).join('');
  const hash = createHash('sha1').update(name).digest('hex').slice(0, 4).toUpperCase();
  const shortExt = usable(ext).slice(0, 3);
  return `${usable(base).slice(0, 2) || '_'}${hash}~1${shortExt ? `.${shortExt}` : ''}`;
}

