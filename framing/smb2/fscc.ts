// [MS-FSCC] information classes a file server returns: directory entries (2.4.x for
// QUERY_DIRECTORY), file information (QUERY_INFO SMB2_0_INFO_FILE) and file system information
// (SMB2_0_INFO_FILESYSTEM), and the SET_INFO classes it accepts. Encoders for what a server sends,
// decoders for what a client sends it; all little-endian, times as FILETIME (100 ns since 1601).
import { putU32le, putU64le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const FILE_ATTRIBUTE = Object.freeze({ READONLY: 0x1, HIDDEN: 0x2, SYSTEM: 0x4, DIRECTORY: 0x10, ARCHIVE: 0x20, NORMAL: 0x80, REPARSE_POINT: 0x400 });
/** FileInformationClass values (2.4). */
export const FILE_INFO = Object.freeze({
  DIRECTORY: 1, FULL_DIRECTORY: 2, BOTH_DIRECTORY: 3, BASIC: 4, STANDARD: 5, INTERNAL: 6, EA: 7, ACCESS: 8, NAME: 9, RENAME: 10,
  NAMES: 12, DISPOSITION: 13, POSITION: 14, MODE: 16, ALIGNMENT: 17, ALL: 18, ALLOCATION: 19, END_OF_FILE: 20, ALTERNATE_NAME: 21,
  STREAM: 22, COMPRESSION: 28, NETWORK_OPEN: 34, ATTRIBUTE_TAG: 35, ID_BOTH_DIRECTORY: 37, ID_FULL_DIRECTORY: 38, DISPOSITION_EX: 64,
});
/** FileSystemInformationClass values (2.5). */
export const FS_INFO = Object.freeze({ VOLUME: 1, SIZE: 3, DEVICE: 4, ATTRIBUTE: 5, CONTROL: 6, FULL_SIZE: 7, OBJECT_ID: 8, SECTOR_SIZE: 11 });

/**
 * The fixed part of each class a server answers ([MS-FSCC] 2.4, 2.5; the sizes Windows checks,
 * as smbtorture's getinfo.q*_buffercheck pins them down): an output buffer shorter than it is
 * STATUS_INFO_LENGTH_MISMATCH; one that holds the fixed part but not the variable rest gets what
 * fits with STATUS_BUFFER_OVERFLOW ([MS-SMB2] 3.3.5.20.1).
 */
export const FILE_INFO_FIXED_SIZE: Readonly<Record<number, number>> = Object.freeze({
  4: 40, 5: 24, 6: 8, 7: 4, 8: 4, 9: 4, 14: 8, 16: 4, 17: 4, 18: 104, 21: 8, 22: 32, 28: 16, 34: 56, 35: 8,
});
export const FS_INFO_FIXED_SIZE: Readonly<Record<number, number>> = Object.freeze({ 1: 24, 3: 24, 4: 8, 5: 16, 6: 48, 7: 32, 8: 64, 11: 28 });

/** What every entry and most classes carry about a file. */
export interface FileStat {
  creationTime: bigint; lastAccessTime: bigint; lastWriteTime: bigint; changeTime: bigint;
  endOfFile: bigint; allocationSize: bigint; attributes: number;
  /** A 64-bit id unique in the share (the inode). */
  fileId: bigint;
  nlink: number;
  isDirectory: boolean;
}

/** JavaScript milliseconds (fractional, e.g. fs.Stats.mtimeMs) as a FILETIME. */
export function fileTimeOf(ms: number): bigint {
  return BigInt(Math.round(ms * 10_000)) + 116_444_736_000_000_000n;
}

/** A FILETIME as JavaScript milliseconds. */
export function msOfFileTime(ft: bigint): number {
  return Number(ft - 116_444_736_000_000_000n) / 10_000;
}

function invalid(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message, { status: STATUS_INVALID_PARAMETER });
}

const utf16 = (s: string) => Buffer.from(s, 'utf16le');

/** The fixed part of each directory class: where FileName starts. */
const DIR_NAME_AT: Readonly<Record<number, number>> = Object.freeze({
  [FILE_INFO.DIRECTORY]: 64, [FILE_INFO.FULL_DIRECTORY]: 68, [FILE_INFO.BOTH_DIRECTORY]: 94, [FILE_INFO.NAMES]: 12,
  [FILE_INFO.ID_BOTH_DIRECTORY]: 104, [FILE_INFO.ID_FULL_DIRECTORY]: 80,
});

export function isDirectoryInfoClass(c: number): boolean {
  return DIR_NAME_AT[c] !== undefined;
}

/** One directory entry of `infoClass` (NextEntryOffset 0: the caller chains them); classes 3 and 37
 * carry `shortName` (an 8.3 name, at most 12 characters) in their ShortName field; `fileIndex` is
 * the entry's FileIndex (its place in the listing; 0 says the server gives none). */
export function encodeDirectoryEntry(infoClass: number, name: string, st: FileStat, shortName?: string, fileIndex = 0): Uint8Array {
  const nameAt = DIR_NAME_AT[infoClass];
  if (nameAt === undefined) invalid(`directory information class ${infoClass}`);
  const n = utf16(name);
  const out = new Uint8Array(nameAt + n.length);
  putU32le(out, 4, fileIndex >>> 0);
  if (infoClass !== FILE_INFO.NAMES) {
    [st.creationTime, st.lastAccessTime, st.lastWriteTime, st.changeTime, st.endOfFile, st.allocationSize].forEach((v, i) => putU64le(out, 8 + 8 * i, v));
    putU32le(out, 56, st.attributes);
    putU32le(out, 60, n.length);
    if (infoClass === FILE_INFO.ID_BOTH_DIRECTORY) putU64le(out, 96, st.fileId);
    if (shortName && (infoClass === FILE_INFO.BOTH_DIRECTORY || infoClass === FILE_INFO.ID_BOTH_DIRECTORY)) {
      const sn = utf16(shortName).subarray(0, 24);
      out[68] = sn.length;
      out.set(sn, 70);
    }
    if (infoClass === FILE_INFO.ID_FULL_DIRECTORY) putU64le(out, 72, st.fileId);
  } else {
    putU32le(out, 8, n.length);
  }
  out.set(n, nameAt);
  return out;
}

/** Entries chained with NextEntryOffset, each 8-byte aligned, as many as fit in `max` bytes:
 * returns the buffer and how many were taken. */
export function chainDirectoryEntries(entries: readonly Uint8Array[], max: number): { buffer: Uint8Array; count: number } {
  let size = 0;
  let count = 0;
  for (const e of entries) {
    const start = (size + 7) & ~7;
    if (start + e.length > max) break;
    size = start + e.length;
    count++;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const e = entries[i]!;
    out.set(e, at);
    const next = i < count - 1 ? ((e.length + 7) & ~7) : 0;
    putU32le(out, at, next);
    at += next;
  }
  return { buffer: out, count };
}

// ---- file information (QUERY_INFO, SMB2_0_INFO_FILE) ------------------------------------------------

function basic(st: FileStat): Uint8Array {
  const out = new Uint8Array(40);
  [st.creationTime, st.lastAccessTime, st.lastWriteTime, st.changeTime].forEach((v, i) => putU64le(out, 8 * i, v));
  putU32le(out, 32, st.attributes);
  return out;
}

function standard(st: FileStat, deletePending: boolean): Uint8Array {
  const out = new Uint8Array(24);
  putU64le(out, 0, st.allocationSize);
  putU64le(out, 8, st.endOfFile);
  putU32le(out, 16, st.nlink);
  out[20] = deletePending ? 1 : 0;
  out[21] = st.isDirectory ? 1 : 0;
  return out;
}

export interface FileInfoContext {
  st: FileStat; deletePending: boolean; position: bigint; accessMask: number; mode: number; name: string;
  /** FileAlternateNameInformation: the 8.3 name. */
  shortName?: string;
  /** FileStreamInformation: the file's own data's size (a stream's handle has the stream's in `st`)
   * and its named streams; without them, the file's own data only. */
  streams?: { dataSize: bigint; dataAllocation: bigint; named: ReadonlyArray<{ name: string; size: bigint; allocation: bigint }> };
}

/** The bytes of file information class `infoClass`, or undefined for a class not supported. */
export function encodeFileInfo(infoClass: number, c: FileInfoContext): Uint8Array | undefined {
  const u32 = (v: number) => { const b = new Uint8Array(4); putU32le(b, 0, v); return b; };
  const u64 = (v: bigint) => { const b = new Uint8Array(8); putU64le(b, 0, v); return b; };
  switch (infoClass) {
    case FILE_INFO.BASIC: return basic(c.st);
    case FILE_INFO.STANDARD: return standard(c.st, c.deletePending);
    case FILE_INFO.INTERNAL: return u64(c.st.fileId);
    case FILE_INFO.EA: return u32(0);
    case FILE_INFO.ACCESS: return u32(c.accessMask);
    case FILE_INFO.POSITION: return u64(c.position);
    case FILE_INFO.MODE: return u32(c.mode);
    case FILE_INFO.ALIGNMENT: return u32(0);
    case FILE_INFO.ATTRIBUTE_TAG: { const b = new Uint8Array(8); putU32le(b, 0, c.st.attributes); return b; }
    case FILE_INFO.NETWORK_OPEN: {
      const b = new Uint8Array(56);
      [c.st.creationTime, c.st.lastAccessTime, c.st.lastWriteTime, c.st.changeTime, c.st.allocationSize, c.st.endOfFile].forEach((v, i) => putU64le(b, 8 * i, v));
      putU32le(b, 48, c.st.attributes);
      return b;
    }
    case FILE_INFO.ALTERNATE_NAME: {
      if (c.shortName === undefined) return undefined;
      const n = utf16(c.shortName);
      const b = new Uint8Array(4 + n.length);
      putU32le(b, 0, n.length);
      b.set(n, 4);
      return b;
    }
    case FILE_INFO.NAME: { const n = utf16(c.name); const b = new Uint8Array(4 + n.length); putU32le(b, 0, n.length); b.set(n, 4); return b; }
    case FILE_INFO.ALL: {
      const n = utf16(c.name);
      const b = new Uint8Array(100 + n.length);
      b.set(basic(c.st), 0);
      b.set(standard(c.st, c.deletePending), 40);
      putU64le(b, 64, c.st.fileId);
      putU32le(b, 72, 0); // EA size
      putU32le(b, 76, c.accessMask);
      putU64le(b, 80, c.position);
      putU32le(b, 88, c.mode);
      putU32le(b, 92, 0); // alignment
      putU32le(b, 96, n.length);
      b.set(n, 100);
      return b;
    }
    case FILE_INFO.COMPRESSION: {
      // not compressed: CompressedFileSize is the size, CompressionFormat 0 (none)
      const b = new Uint8Array(16);
      putU64le(b, 0, c.st.endOfFile);
      return b;
    }
    case FILE_INFO.STREAM: {
      // "::$DATA" for a file's own data (a directory has none), then ":name:$DATA" per named stream,
      // each entry 8-byte aligned
      const list: Array<{ name: string; size: bigint; allocation: bigint }> = [];
      if (!c.st.isDirectory) list.push({ name: '::$DATA', size: c.streams?.dataSize ?? c.st.endOfFile, allocation: c.streams?.dataAllocation ?? c.st.allocationSize });
      for (const n of c.streams?.named ?? []) list.push({ name: `:${n.name}:$DATA`, size: n.size, allocation: n.allocation });
      const names = list.map((e) => utf16(e.name));
      const sizes = names.map((n, i) => (i === names.length - 1 ? 24 + n.length : (24 + n.length + 7) & ~7));
      const b = new Uint8Array(sizes.reduce((a, x) => a + x, 0));
      let at = 0;
      list.forEach((e, i) => {
        if (i < list.length - 1) putU32le(b, at, sizes[i]!);
        putU32le(b, at + 4, names[i]!.length);
        putU64le(b, at + 8, e.size);
        putU64le(b, at + 16, e.allocation);
        b.set(names[i]!, at + 24);
        at += sizes[i]!;
      });
      return b;
    }
    default: return undefined;
  }
}

// ---- file system information (SMB2_0_INFO_FILESYSTEM) ------------------------------------------------

export interface FsInfoContext { totalUnits: bigint; freeUnits: bigint; sectorsPerUnit: number; bytesPerSector: number; label: string; serial: number; created: bigint }

export function encodeFsInfo(infoClass: number, c: FsInfoContext): Uint8Array | undefined {
  switch (infoClass) {
    case FS_INFO.VOLUME: {
      const l = utf16(c.label);
      const b = new Uint8Array(18 + l.length);
      putU64le(b, 0, c.created);
      putU32le(b, 8, c.serial);
      putU32le(b, 12, l.length);
      b.set(l, 18);
      return b;
    }
    case FS_INFO.SIZE: {
      const b = new Uint8Array(24);
      putU64le(b, 0, c.totalUnits);
      putU64le(b, 8, c.freeUnits);
      putU32le(b, 16, c.sectorsPerUnit);
      putU32le(b, 20, c.bytesPerSector);
      return b;
    }
    case FS_INFO.FULL_SIZE: {
      const b = new Uint8Array(32);
      putU64le(b, 0, c.totalUnits);
      putU64le(b, 8, c.freeUnits);
      putU64le(b, 16, c.freeUnits);
      putU32le(b, 24, c.sectorsPerUnit);
      putU32le(b, 28, c.bytesPerSector);
      return b;
    }
    case FS_INFO.CONTROL: {
      // no quotas: no free-space filtering, default quota threshold and limit "none" (all ones)
      const b = new Uint8Array(48);
      putU64le(b, 24, 0xffffffffffffffffn);
      putU64le(b, 32, 0xffffffffffffffffn);
      return b;
    }
    case FS_INFO.OBJECT_ID: {
      // the volume's object id: its serial number, the extended info zero
      const b = new Uint8Array(64);
      putU32le(b, 0, c.serial);
      return b;
    }
    case FS_INFO.DEVICE: { const b = new Uint8Array(8); putU32le(b, 0, 0x07 /* FILE_DEVICE_DISK */); putU32le(b, 4, 0x20 /* FILE_DEVICE_IS_MOUNTED */); return b; }
    case FS_INFO.ATTRIBUTE: {
      const n = utf16('NTFS');
      const b = new Uint8Array(12 + n.length);
      // case-preserved and case-sensitive names, Unicode on disk, named streams; persistent ACLs off
      putU32le(b, 0, 0x00000001 | 0x00000002 | 0x00000004 | 0x00040000 /* FILE_NAMED_STREAMS */);
      putU32le(b, 4, 255);
      putU32le(b, 8, n.length);
      b.set(n, 12);
      return b;
    }
    case FS_INFO.SECTOR_SIZE: {
      const b = new Uint8Array(28);
      for (const at of [0, 4, 8, 12]) putU32le(b, at, c.bytesPerSector);
      putU32le(b, 16, 0x3); // ALIGNED_DEVICE | PARTITION_ALIGNED_ON_DEVICE
      return b;
    }
    default: return undefined;
  }
}

// ---- SET_INFO classes --------------------------------------------------------------------------------

export interface FileRenameInfo { replaceIfExists: boolean; name: string }

export function decodeFileRenameInfo(b: Uint8Array): FileRenameInfo {
  if (b.length < 20) throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', 'FileRenameInformation shorter than 20 bytes', { status: STATUS_INFO_LENGTH_MISMATCH });
  const len = u32le(b, 16);
  if (len === 0 || len % 2 !== 0 || 20 + len > b.length) invalid(`FileRenameInformation: a name of ${len} bytes in ${b.length}`);
  return { replaceIfExists: b[0] !== 0, name: Buffer.from(b.buffer, b.byteOffset + 20, len).toString('utf16le') };
}

export function encodeFileRenameInfo(r: FileRenameInfo): Uint8Array {
  const n = utf16(r.name);
  const b = new Uint8Array(20 + n.length);
  b[0] = r.replaceIfExists ? 1 : 0;
  putU32le(b, 16, n.length);
  b.set(n, 20);
  return b;
}

/** FileBasicInformation as sent in SET_INFO: times (0: leave, -1 / -2: stop updating) and attributes. */
export function decodeFileBasicInfo(b: Uint8Array): { times: bigint[]; attributes: number } {
  if (b.length < 36) throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', 'FileBasicInformation shorter than 36 bytes', { status: STATUS_INFO_LENGTH_MISMATCH });
  return { times: [0, 8, 16, 24].map((at) => u64le(b, at)), attributes: u32le(b, 32) };
}

/** An 8-byte class (FileEndOfFileInformation, FileAllocationInformation, FilePositionInformation). */
export function decodeU64Info(b: Uint8Array, what: string): bigint {
  if (b.length < 8) throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', `${what} shorter than 8 bytes`, { status: STATUS_INFO_LENGTH_MISMATCH });
  return u64le(b, 0);
}


// ---- decoders for what a server sends (the client's side) ----------------------------------------

function badResponse(message: string): never {
  throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', message);
}

/** A directory entry as a client reads it: its name and what the class carries about it. */
export interface DirectoryEntry extends FileStat { name: string; shortName: string }

/**
 * The entries of a QUERY_DIRECTORY output buffer of `infoClass` (any class but FileNamesInformation),
 * following NextEntryOffset. Every offset and length is checked against the buffer: an entry that
 * leaves it, an offset that goes backwards or is not 8-byte aligned, or a name of an odd length is
 * ERR_SMB2_BAD_REQUEST. At most `max` entries (a bound on what a server makes us build).
 */
export function decodeDirectoryEntries(infoClass: number, b: Uint8Array, max = 65536): DirectoryEntry[] {
  const nameAt = DIR_NAME_AT[infoClass];
  if (nameAt === undefined || infoClass === FILE_INFO.NAMES) badResponse(`directory information class ${infoClass} is not decoded here`);
  const out: DirectoryEntry[] = [];
  let at = 0;
  for (;;) {
    if (out.length >= max) badResponse(`more than ${max} directory entries in one response`);
    if (b.length - at < nameAt) badResponse(`a directory entry at ${at} is cut short (${b.length - at} of ${nameAt} bytes)`);
    const next = u32le(b, at);
    const nameLength = u32le(b, at + 60);
    if (nameLength % 2 !== 0 || nameLength > b.length - at - nameAt) badResponse(`a directory entry's name of ${nameLength} bytes leaves the buffer`);
    if (next !== 0 && (next < nameAt + nameLength || next % 8 !== 0 || next > b.length - at)) badResponse(`NextEntryOffset ${next} at ${at} is outside the buffer or inside the entry`);
    const name = Buffer.from(b.buffer, b.byteOffset + at + nameAt, nameLength).toString('utf16le');
    const hasShort = infoClass === FILE_INFO.BOTH_DIRECTORY || infoClass === FILE_INFO.ID_BOTH_DIRECTORY;
    const shortLength = hasShort ? Math.min(b[at + 68]!, 24) & ~1 : 0;
    const attributes = u32le(b, at + 56);
    const fileId = infoClass === FILE_INFO.ID_BOTH_DIRECTORY ? u64le(b, at + 96) : infoClass === FILE_INFO.ID_FULL_DIRECTORY ? u64le(b, at + 72) : 0n;
    out.push({
      name, shortName: shortLength ? Buffer.from(b.buffer, b.byteOffset + at + 70, shortLength).toString('utf16le') : '',
      creationTime: u64le(b, at + 8), lastAccessTime: u64le(b, at + 16), lastWriteTime: u64le(b, at + 24), changeTime: u64le(b, at + 32),
      endOfFile: u64le(b, at + 40), allocationSize: u64le(b, at + 48), attributes, fileId, nlink: 1,
      isDirectory: (attributes & FILE_ATTRIBUTE.DIRECTORY) !== 0,
    });
    if (next === 0) return out;
    at += next;
  }
}

/** FileAllInformation (2.4.2) as a client reads it: the file's times, sizes, attributes, id, link
 * count, delete-pending flag and name. Shorter than its fixed 100 bytes, or a name that leaves the
 * buffer: ERR_SMB2_BAD_REQUEST. */
export function decodeFileAllInfo(b: Uint8Array): FileStat & { deletePending: boolean; name: string } {
  if (b.length < 100) badResponse(`FileAllInformation of ${b.length} bytes (at least 100)`);
  const nameLength = u32le(b, 96);
  if (nameLength % 2 !== 0 || nameLength > b.length - 100) badResponse(`FileAllInformation's name of ${nameLength} bytes leaves the buffer`);
  const attributes = u32le(b, 32);
  return {
    creationTime: u64le(b, 0), lastAccessTime: u64le(b, 8), lastWriteTime: u64le(b, 16), changeTime: u64le(b, 24), attributes,
    allocationSize: u64le(b, 40), endOfFile: u64le(b, 48), nlink: u32le(b, 56), deletePending: b[60] !== 0,
    isDirectory: b[61] !== 0 || (attributes & FILE_ATTRIBUTE.DIRECTORY) !== 0, fileId: u64le(b, 64),
    name: Buffer.from(b.buffer, b.byteOffset + 100, nameLength).toString('utf16le'),
  };
}
