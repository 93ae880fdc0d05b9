// The file commands of the SMB2 server on a share that is a directory: CREATE, CLOSE, READ, WRITE,
// FLUSH, QUERY_DIRECTORY, QUERY_INFO, SET_INFO ([MS-SMB2] 3.3.5.9-3.3.5.21). One instance per
// connection holds its opens. Paths stay inside the share (fs-backend.ts); a failure is an
// Smb2Error whose status the connection answers with.
import type { FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { debuglog } from 'node:util';

import type { BufferDescriptor } from '../../framing/buffer-descriptor.js';
import {
  CREATE_CONTEXT, type CreateContext, FILE_ACTION, FILE_DISPOSITION, FILE_OPTION, type Smb2CreateRequest, decodeSmb2CreateRequest, replacesData,
} from '../../framing/smb2/create.js';
import {
  SMB2_CHANNEL, SMB2_INFO, SMB2_QUERY_DIRECTORY_FLAG, decodeSmb2QueryDirectoryRequest, decodeSmb2QueryInfoRequest, decodeSmb2ReadRequest,
  decodeSmb2SetInfoRequest, decodeSmb2WriteRequest,
} from '../../framing/smb2/file.js';
import {
  FILE_ATTRIBUTE, FILE_INFO, FILE_INFO_FIXED_SIZE, FS_INFO_FIXED_SIZE, type FileInfoContext, type FileStat, chainDirectoryEntries, decodeFileBasicInfo, decodeFileRenameInfo, decodeU64Info, encodeDirectoryEntry, encodeFileInfo,
  encodeFsInfo, isDirectoryInfoClass, msOfFileTime,
} from '../../framing/smb2/fscc.js';
import {
  STATUS_ACCESS_DENIED, STATUS_BAD_IMPERSONATION_LEVEL, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_DELETE_PENDING, STATUS_CANNOT_DELETE, STATUS_DIRECTORY_NOT_EMPTY, STATUS_END_OF_FILE, STATUS_FILE_CLOSED, STATUS_FILE_IS_A_DIRECTORY, STATUS_FILE_LOCK_CONFLICT, STATUS_INVALID_LOCK_RANGE, STATUS_LOCK_NOT_GRANTED, STATUS_RANGE_NOT_LOCKED,
  STATUS_INFO_LENGTH_MISMATCH, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_INFO_CLASS, STATUS_INVALID_PARAMETER, STATUS_NOT_A_DIRECTORY,
  STATUS_NOT_SUPPORTED, STATUS_NO_MORE_FILES, STATUS_NO_SUCH_FILE, STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_SHARING_VIOLATION,
  STATUS_SUCCESS,
} from '../../framing/smb2/ntstatus.js';
import { SMB2_COMMAND } from '../../framing/smb2/header.js';
import { SMB2_LOCKFLAG, decodeSmb2LockRequest } from '../../framing/smb2/lock.js';
import type { Smb2IoctlRequest } from '../../framing/smb2/ioctl.js';
import type { Smb2FileId } from '../../framing/smb2/tree.js';
import { type LockWaiter, LockTable, MAX_LOCKS_PER_OPEN, lockRangeOverflows } from './byte-locks.js';
import { type SecurityDescriptor, decodeSecurityDescriptor, encodeSecurityDescriptor, sidFromString } from '../../framing/smb2/security.js';
import {
  FILE_ALL_ACCESS, MAXIMUM_ALLOWED, READ_CONTROL, type Token, accessToSet, defaultSecurityDescriptor, inheritedDescriptor, mapGeneric, maximalAccess,
  descriptorAsSet, mergeParts, partsOf, selectParts,
} from './security.js';
import { Smb2Error } from './errors.js';
import { IoBuffers } from './io-buffers.js';
import { OPLOCK_BREAK_TIMEOUT_MS, OplockBreakPending, acknowledgeBreak, breakLevelII, breakOplocks, grantOplock, releaseOplock } from './oplocks.js';
import { SMB2_OPLOCK_LEVEL } from '../../framing/smb2/oplock.js';
import { STREAMS_DIR, listStreams, parseStreamName, prepareStream, removeStream, removeStreams, streamDataPath, streamsDirOf } from './streams.js';
import { MetaStore, checkInside, fileStatOf, findCase, matchPattern, resolveInShare, shortNameOf, statusOfFsError } from './fs-backend.js';
import {
  DELETE, FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_WRITE_DATA, type OpenRecord, OpenTable, SHARE_READ, SHARE_WRITE, fileKey, fileKeyOf,
} from './share-modes.js';

const debug = debuglog('smbdirect_smb2');

/** Access rights that change something ([MS-SMB2] 2.2.13.1.1): refused on a read-only share. */
const WRITE_ACCESS = 0x00000002 | 0x00000004 | 0x00000010 | 0x00000100 | 0x00010000 | 0x40000000 | 0x10000000;
const READ_ACCESS = 0x001200a9;
const FILE_ATTRIBUTE_READONLY = 0x1, FILE_ATTRIBUTE_TEMPORARY = 0x100;
const FILE_DELETE_CHILD = 0x40, FILE_WRITE_ATTRIBUTES = 0x100, FILE_READ_ATTRIBUTES = 0x80, FILE_LIST_DIRECTORY = 0x1;
/** Lock elements one LOCK may carry: a bound on the work one request asks for. */
export const MAX_LOCK_ELEMENTS = 1024;
const FSCTL_GET_OBJECT_ID = 0x0009009c, FSCTL_CREATE_OR_GET_OBJECT_ID = 0x000900c0;

/** The access an open is granted: what it asked for, generic rights mapped to file rights
 * ([MS-SMB2] 2.2.13.1.1), MAXIMUM_ALLOWED as everything the share allows. */
function grantedAccess(desired: number, readOnly: boolean): number {
  const all = readOnly ? READ_ACCESS : FILE_ALL_ACCESS;
  const g = mapGeneric(desired) | (desired & MAXIMUM_ALLOWED ? all : 0);
  return (g & all) >>> 0;
}
/** Opens one connection may hold: a bound on the handles a peer makes us keep. */
export const MAX_OPENS_PER_CONNECTION = 4096;

export interface ShareRef { name: string; path: string; readOnly: boolean; realRoot: string }

interface Open {
  id: Smb2FileId;
  sessionId: bigint;
  treeId: number;
  share: ShareRef;
  /** The name as the client opened it (for FileNameInformation). */
  name: string;
  isDir: boolean;
  fh?: FileHandle;
  access: number;
  /** Its entry in the server's share-mode table. */
  record: OpenRecord;
  /** FILE_DELETE_ON_CLOSE: the file's delete becomes pending when this open closes. */
  deleteOnClose: boolean;
  position: bigint;
  /** A named stream's open: its name and the directory of its file's streams (`fh` is the stream's). */
  stream?: { name: string; dir: string };
  /** A listing in progress: the names matched when it started, stat'ed as they are returned. */
  dir?: { names: string[]; pos: number; pattern: string };
}

/** What a command answers: a status and, for success, the response body's encoder input. */
export type Reply<T> = { status: number; value?: T };

/** READ/WRITE bytes: `rdmaBytesWritten` went to clients by RDMA Write (their READs), `rdmaBytesRead`
 * came from them by RDMA Read (their WRITEs); the inline ones in SMB2 messages. */
export interface FileCounters { rdmaBytesRead: number; rdmaBytesWritten: number; inlineBytesRead: number; inlineBytesWritten: number }

/** Direct placement for READ/WRITE over an RDMA channel (SMB Direct connections only). */
export interface Placement {
  /** Queues the RDMA Write and returns its completion; throws at once if it cannot be queued (a
   * response sent after it returns reaches the client after the data). */
  write(descriptors: readonly BufferDescriptor[], data: Uint8Array): Promise<number>;
  read(descriptors: readonly BufferDescriptor[], into: Uint8Array): Promise<number>;
}

const fail = (status: number, message?: string): never => { throw new Smb2Error(status, message); };

/**
 * The token a READ or WRITE with SMB2_CHANNEL_RDMA_V1_INVALIDATE asks the server to invalidate with
 * its response, whatever that response's status ([MS-SMB2] 3.3.5.12, 3.3.5.13; ksmbd does the
 * same): the Linux cifs client on 3.0.2 and 3.1.1 leaves the invalidation to the server and
 * re-registers the memory region for its next I/O, which fails on a region still valid (rxe:
 * "mr->lkey not free") and costs a reconnect. Undefined for any other request or channel.
 */
export function channelInvalidateToken(req: Uint8Array, command: number): number | undefined {
  if (command !== SMB2_COMMAND.READ && command !== SMB2_COMMAND.WRITE) return undefined;
  try {
    const r = command === SMB2_COMMAND.READ ? decodeSmb2ReadRequest(req) : decodeSmb2WriteRequest(req);
    return r.channel === SMB2_CHANNEL.RDMA_V1_INVALIDATE ? r.descriptors[0]?.token : undefined;
  } catch {
    return undefined; // malformed: answered with its status, and nothing to invalidate
  }
}

export class FileOps {
  /** RDMA READ/WRITE transfer buffers, kept for reuse. */
  readonly #ioBuffers = new IoBuffers();

  readonly #opens = new Map<bigint, Open>();
  #next = 1n;
  /** Bytes moved by RDMA and inline (the server's, shared by its connections). */
  readonly counters: FileCounters;

  /** Times and attributes clients set that the file system cannot hold (the server's). */
  readonly #meta: MetaStore;
  /** Every open of the server, for share modes (the server's). */
  readonly #table: OpenTable;
  /** Every byte-range lock of the server (the server's). */
  readonly #locks: LockTable;

  constructor(counters: FileCounters = { rdmaBytesRead: 0, rdmaBytesWritten: 0, inlineBytesRead: 0, inlineBytesWritten: 0 }, meta = new MetaStore(),
    table = new OpenTable(), locks = new LockTable()) {
    this.counters = counters;
    this.#meta = meta;
    this.#table = table;
    this.#locks = locks;
  }

  /** The FileId a related compound request's all-ones FileId stands for (3.3.5.2.7.2). */
  relatedFileId?: Smb2FileId;

  /** Sends the client an oplock break of one of its opens (set by the connection). */
  onOplockBreak?: (fileId: Smb2FileId, sessionId: bigint, level: number) => void;
  /** Whether opens get the oplocks they ask for (the server's `oplocks` option). */
  grantOplocks = false;
  /** How long a CREATE waits for an oplock holder's acknowledgment. */
  oplockBreakTimeoutMs = OPLOCK_BREAK_TIMEOUT_MS;

  /** OPLOCK_BREAK acknowledgment (3.3.5.22.1): the level the open keeps. */
  acknowledgeOplockBreak(fileId: Smb2FileId, sessionId: bigint, treeId: number, level: number): number {
    return acknowledgeBreak(this.#get(fileId, sessionId, treeId).record, level);
  }

  #get(id: Smb2FileId, sessionId: bigint, treeId: number): Open {
    if (id.persistent === 0xffffffffffffffffn && id.volatile === 0xffffffffffffffffn && this.relatedFileId) id = this.relatedFileId;
    const o = this.#opens.get(id.volatile);
    if (!o || o.id.persistent !== id.persistent || o.sessionId !== sessionId || o.treeId !== treeId) fail(STATUS_FILE_CLOSED);
    return o!;
  }

  async create(req: Uint8Array, sessionId: bigint, treeId: number, share: ShareRef, token?: Token): Promise<{
    fileId: Smb2FileId; action: number; st: FileStat; contexts: CreateContext[]; oplockLevel?: number;
  }> {
    const r = decodeSmb2CreateRequest(req);
    if (this.#opens.size >= MAX_OPENS_PER_CONNECTION) fail(STATUS_INVALID_PARAMETER, 'too many opens on this connection');
    // 3.3.5.9: Anonymous, Identification, Impersonation, Delegate, nothing else
    if (r.impersonationLevel > 3) fail(STATUS_BAD_IMPERSONATION_LEVEL);
    if (r.createDisposition > FILE_DISPOSITION.OVERWRITE_IF) fail(STATUS_INVALID_PARAMETER, `CreateDisposition ${r.createDisposition}`);
    // names are relative to the share: Windows and Samba refuse a leading separator
    if (r.name.startsWith('\\')) fail(STATUS_INVALID_PARAMETER, 'a name with a leading backslash');
    const named = parseStreamName(r.name);
    if (named.stream !== undefined) return this.#createStream(r, named.file, named.stream, sessionId, treeId, share, token);
    // "file::$DATA" is the file's own data: never a directory
    const dataOnly = named.file !== r.name;
    let path = resolveInShare(share.path, named.file);
    await checkInside(share.realRoot, path);
    const wantsWrite = (r.desiredAccess & WRITE_ACCESS) !== 0 || r.createDisposition !== FILE_DISPOSITION.OPEN || (r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) !== 0;
    if (share.readOnly && wantsWrite && r.createDisposition !== FILE_DISPOSITION.OPEN_IF) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
    let access = grantedAccess(r.desiredAccess, share.readOnly);
    // 3.3.5.9: FILE_DELETE_ON_CLOSE needs DELETE (or what grants it)
    if ((r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) && !(access & DELETE)) fail(STATUS_ACCESS_DENIED, 'FILE_DELETE_ON_CLOSE without DELETE access');
    const dirWanted = (r.createOptions & FILE_OPTION.DIRECTORY_FILE) !== 0, fileWanted = (r.createOptions & FILE_OPTION.NON_DIRECTORY_FILE) !== 0 || dataOnly;
    if (dataOnly && dirWanted) fail(STATUS_NOT_A_DIRECTORY, 'the ::$DATA stream of a directory');
    // SMB2_CREATE_SD_BUFFER: the descriptor of a file this CREATE makes, decoded before anything is made
    const sdContext = r.contexts.find((c) => c.name === CREATE_CONTEXT.SD_BUFFER);
    const initialSd = sdContext ? decodeSecurityDescriptor(sdContext.data) : undefined;
    const statOf = async (p: string) => {
      try {
        return await stat(p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fail(statusOfFsError(err));
        return undefined;
      }
    };
    let existing = await statOf(path);
    if (!existing) {
      // not there as named: under another case, as Windows names work (the exact name costs nothing more)
      const found = await findCase(share.path, path, 0, true);
      if (found !== path) {
        path = found;
        await checkInside(share.realRoot, path);
        existing = await statOf(path);
      }
    }
    if (existing && this.#table.isDeletePending(fileKey(existing))) fail(STATUS_DELETE_PENDING);
    if (existing && dirWanted && !existing.isDirectory()) fail(STATUS_NOT_A_DIRECTORY);
    if (existing && fileWanted && existing.isDirectory()) fail(STATUS_FILE_IS_A_DIRECTORY);
    const d = r.createDisposition;
    const truncate = replacesData(d);
    // overwriting or superseding writes the file whatever was asked: FILE_WRITE_DATA is checked too (as Windows and Samba)
    if (existing && d !== FILE_DISPOSITION.CREATE) access = this.#storedAccess(path, token, r.desiredAccess, access, truncate ? FILE_WRITE_DATA : 0);
    const parentSd = token ? this.#meta.get(dirname(path))?.sd : undefined;
    // the sharing check, and the open's place in the table taken at once (before any await), so
    // that two CREATEs of one file cannot both pass; given back if the CREATE fails
    let record: OpenRecord | undefined;
    if (existing && d !== FILE_DISPOSITION.CREATE) { // (CREATE of an existing name: a collision, below)
      // oplocks in the way are broken first: BATCH before the sharing check (its holder may close
      // and so end the conflict), EXCLUSIVE once it passed
      const key = fileKey(existing);
      const breaks = (step: 'batch' | 'others') => existing.isDirectory() ? undefined : breakOplocks(this.#table, key, access, d, step, this.oplockBreakTimeoutMs);
      let wait = breaks('batch');
      if (!wait && !this.#table.conflicts(key, access, r.shareAccess)) wait = breaks('others');
      if (wait) throw new OplockBreakPending(wait);
      record = this.#table.claim({ key: fileKey(existing), path, access, share: r.shareAccess }) ?? fail(STATUS_SHARING_VIOLATION);
    }
    let action: number = FILE_ACTION.OPENED;
    let fh: FileHandle | undefined;
    const writable = !share.readOnly && ((r.desiredAccess & WRITE_ACCESS) !== 0 || d !== FILE_DISPOSITION.OPEN);
    try {
      if (existing) {
        if (d === FILE_DISPOSITION.CREATE) fail(STATUS_OBJECT_NAME_COLLISION);
        if ((r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) && (fileStatOf(existing, share.readOnly, this.#meta.get(path)).attributes & FILE_ATTRIBUTE_READONLY)) {
          fail(STATUS_CANNOT_DELETE);
        }
        if (truncate && share.readOnly) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
        // a read-only file is not overwritten or superseded ([MS-FSA] 2.1.5.1.2.1)
        if (truncate && !existing.isDirectory() && (fileStatOf(existing, share.readOnly, this.#meta.get(path)).attributes & FILE_ATTRIBUTE_READONLY)) {
          fail(STATUS_ACCESS_DENIED, 'overwriting a read-only file');
        }
        action = truncate ? (d === FILE_DISPOSITION.SUPERSEDE ? FILE_ACTION.SUPERSEDED : FILE_ACTION.OVERWRITTEN) : FILE_ACTION.OPENED;
        if (!existing.isDirectory()) {
          fh = await open(path, writable ? 'r+' : 'r');
          if (truncate) await fh.truncate(0);
        }
      } else {
        if (d === FILE_DISPOSITION.OPEN || d === FILE_DISPOSITION.OVERWRITE) {
          try {
            await stat(dirname(path));
          } catch {
            fail(statusOfFsError({ code: 'ENOENT' }, true));
          }
          fail(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        if (share.readOnly) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
        // a read-only file cannot be created to be deleted
        if ((r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) && (r.fileAttributes & FILE_ATTRIBUTE_READONLY)) fail(STATUS_CANNOT_DELETE);
        action = FILE_ACTION.CREATED;
        try {
          if (dirWanted) await mkdir(path);
          else fh = await open(path, 'wx+');
        } catch (err) {
          // another CREATE (of any connection) made it meanwhile: OPEN_IF opens what it made
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || d !== FILE_DISPOSITION.OPEN_IF) throw err;
          const now = await stat(path);
          if (dirWanted !== now.isDirectory()) fail(dirWanted ? STATUS_NOT_A_DIRECTORY : STATUS_FILE_IS_A_DIRECTORY);
          record = this.#table.claim({ key: fileKey(now), path, access, share: r.shareAccess }) ?? fail(STATUS_SHARING_VIOLATION);
          action = FILE_ACTION.OPENED;
          if (!dirWanted) fh = await open(path, writable ? 'r+' : 'r');
        }
      }
    } catch (err) {
      if (record) this.#table.remove(record);
      await fh?.close().catch(() => {});
      if (err instanceof Smb2Error) throw err;
      fail(statusOfFsError(err, (err as NodeJS.ErrnoException).code === 'ENOENT'));
    }
    // overwriting or superseding a file drops its named streams, as NTFS does
    if ((action === FILE_ACTION.SUPERSEDED || action === FILE_ACTION.OVERWRITTEN) && existing) await removeStreams(streamsDirOf(share.path, existing)).catch(() => {});
    if (action === FILE_ACTION.CREATED || action === FILE_ACTION.SUPERSEDED || action === FILE_ACTION.OVERWRITTEN) {
      // an overwritten file keeps its descriptor; a new (or superseding) one gets its own below
      const kept = action === FILE_ACTION.OVERWRITTEN ? this.#meta.get(path)?.sd : undefined;
      this.#meta.delete(path);
      if (kept) this.#meta.set(path, { sd: kept });
    }
    // a new, superseding or overwriting CREATE gives the file the attributes it names ([MS-FSA] 2.1.5.1.2.1)
    if (action !== FILE_ACTION.OPENED && r.fileAttributes & 0x27) this.#meta.set(path, { attributes: r.fileAttributes });
    let raw;
    try {
      raw = fh ? await fh.stat() : await stat(path);
    } catch (err) {
      if (record) this.#table.remove(record);
      await fh?.close().catch(() => {});
      return fail(statusOfFsError(err));
    }
    record ??= this.#table.add({ key: fileKey(raw), path, access, share: r.shareAccess });
    if ((action === FILE_ACTION.CREATED || action === FILE_ACTION.SUPERSEDED) && (initialSd || parentSd)) {
      // [MS-DTYP] 2.5.3.4: what the parent passes on (else the default), with the parts the SecD
      // context gives in their place (a descriptor without DACL_PRESENT gets the inherited DACL)
      // the owner is who owns the file on disk (the server's POSIX user, whom every session acts
      // as), as in the descriptors made for files nobody set one on: one owner throughout
      const base = (parentSd && token && inheritedDescriptor(parentSd, token, raw.isDirectory(), sidFromString(`S-1-22-1-${raw.uid}`))) || undefined;
      const sd = initialSd ? mergeParts(base ?? defaultSecurityDescriptor(raw), initialSd, partsOf(initialSd)) : base;
      if (sd) this.#meta.set(path, { sd });
    }
    const st = fileStatOf(raw, share.readOnly, this.#meta.get(path));
    const id = this.#next++;
    const o: Open = {
      id: { persistent: id, volatile: id }, sessionId, treeId, share, name: r.name, isDir: st.isDirectory, fh,
      access, record, deleteOnClose: (r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) !== 0, position: 0n,
    };
    this.#opens.set(id, o);
    const oplockLevel = this.grantOplocks ? grantOplock(this.#table, record, r.requestedOplockLevel, st.isDirectory) : SMB2_OPLOCK_LEVEL.NONE;
    if (oplockLevel !== SMB2_OPLOCK_LEVEL.NONE) record.oplock = { level: oplockLevel, notify: (level) => this.onOplockBreak?.(o.id, sessionId, level) };
    const contexts = this.#answerContexts(r.contexts, share, path, st, token);
    return { fileId: o.id, action, st, contexts, oplockLevel };
  }

  /** The create contexts answered (3.3.5.9): MxAc (maximal access) and QFid; the rest ignored. */
  #answerContexts(asked: readonly CreateContext[], share: ShareRef, path: string, st: FileStat, token?: Token): CreateContext[] {
    const contexts: CreateContext[] = [];
    for (const c of asked) {
      if (c.name === CREATE_CONTEXT.QUERY_MAXIMAL_ACCESS) {
        const data = new Uint8Array(8);
        // the most this user may get: the share's, and a stored descriptor's
        const sd = token && this.#meta.get(path)?.sd;
        const most = (share.readOnly ? READ_ACCESS : FILE_ALL_ACCESS) & (sd ? maximalAccess(sd, token) : 0xffffffff);
        new DataView(data.buffer).setUint32(4, most >>> 0, true);
        contexts.push({ name: c.name, data });
      } else if (c.name === CREATE_CONTEXT.QUERY_ON_DISK_ID) {
        const data = new Uint8Array(32);
        new DataView(data.buffer).setBigUint64(0, st.fileId, true);
        contexts.push({ name: c.name, data });
      }
    }
    return contexts;
  }

  /**
   * CREATE of a named stream ("file:name"): the file is made first (empty) when the disposition
   * may create and it is missing; then the disposition applies to the stream. A stream's share modes
   * are its own; a stored descriptor of the file is checked as for the file.
   */
  async #createStream(r: Smb2CreateRequest, file: string, stream: string, sessionId: bigint, treeId: number, share: ShareRef, token?: Token): Promise<{
    fileId: Smb2FileId; action: number; st: FileStat; contexts: CreateContext[];
  }> {
    if (r.createOptions & FILE_OPTION.DIRECTORY_FILE) fail(STATUS_NOT_A_DIRECTORY, 'a stream is not a directory');
    const path = await findCase(share.path, resolveInShare(share.path, file));
    await checkInside(share.realRoot, path);
    const d = r.createDisposition;
    const mayCreate = d !== FILE_DISPOSITION.OPEN && d !== FILE_DISPOSITION.OVERWRITE;
    const statOrNone = (p: string) => stat(p).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : fail(statusOfFsError(err))));
    let base = await statOrNone(path);
    if (!base) {
      if (!mayCreate) {
        if (!(await statOrNone(dirname(path)))) fail(statusOfFsError({ code: 'ENOENT' }, true));
        fail(STATUS_OBJECT_NAME_NOT_FOUND);
      }
      if (share.readOnly) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
      try {
        await (await open(path, 'wx')).close();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') fail(statusOfFsError(err, (err as NodeJS.ErrnoException).code === 'ENOENT'));
      }
      base = await statOrNone(path) ?? fail(STATUS_OBJECT_NAME_NOT_FOUND);
    }
    const access = this.#storedAccess(path, token, r.desiredAccess, grantedAccess(r.desiredAccess, share.readOnly));
    if ((r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) && !(access & DELETE)) fail(STATUS_ACCESS_DENIED, 'FILE_DELETE_ON_CLOSE without DELETE access');
    const streamKey = `${fileKey(base)}:${stream.toLowerCase()}`;
    if (this.#table.isDeletePending(fileKey(base)) || this.#table.isDeletePending(streamKey)) fail(STATUS_DELETE_PENDING);
    const dir = streamsDirOf(share.path, base);
    const data = streamDataPath(dir, stream);
    const exists = (await statOrNone(data)) !== undefined;
    if (exists && d === FILE_DISPOSITION.CREATE) fail(STATUS_OBJECT_NAME_COLLISION);
    if (!exists && !mayCreate) fail(STATUS_OBJECT_NAME_NOT_FOUND);
    const truncate = exists && replacesData(d);
    if ((truncate || !exists) && share.readOnly) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
    const writable = !share.readOnly && ((r.desiredAccess & WRITE_ACCESS) !== 0 || d !== FILE_DISPOSITION.OPEN);
    const record = this.#table.claim({ key: streamKey, path, access, share: r.shareAccess }) ?? fail(STATUS_SHARING_VIOLATION);
    let fh: FileHandle | undefined;
    try {
      if (!exists) await prepareStream(dir, stream);
      fh = await open(data, exists && !writable ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT, 0o600);
      if (truncate) await fh.truncate(0);
    } catch (err) {
      this.#table.remove(record);
      await fh?.close().catch(() => {});
      if (err instanceof Smb2Error) throw err;
      fail(statusOfFsError(err));
    }
    const action = !exists ? FILE_ACTION.CREATED : !truncate ? FILE_ACTION.OPENED : d === FILE_DISPOSITION.SUPERSEDE ? FILE_ACTION.SUPERSEDED : FILE_ACTION.OVERWRITTEN;
    const id = this.#next++;
    const o: Open = {
      id: { persistent: id, volatile: id }, sessionId, treeId, share, name: r.name, isDir: false, fh, access, record,
      deleteOnClose: (r.createOptions & FILE_OPTION.DELETE_ON_CLOSE) !== 0, position: 0n, stream: { name: stream, dir },
    };
    this.#opens.set(id, o);
    const st = await this.#stat(o);
    return { fileId: o.id, action, st, contexts: this.#answerContexts(r.contexts, share, path, st, token) };
  }

  /**
   * An FSCTL on a file ([MS-FSCC] 2.3): the handle checked first (STATUS_FILE_CLOSED, also in a
   * related chain whose CREATE failed); FSCTL_CREATE_OR_GET_OBJECT_ID and FSCTL_GET_OBJECT_ID answer
   * an object id made from the file's id; the others STATUS_NOT_SUPPORTED.
   */
  async fsctl(r: Smb2IoctlRequest, sessionId: bigint, treeId: number): Promise<Uint8Array> {
    const o = this.#get(r.fileId, sessionId, treeId);
    switch (r.ctlCode) {
      case FSCTL_CREATE_OR_GET_OBJECT_ID:
      case FSCTL_GET_OBJECT_ID: {
        if (r.maxOutputResponse < 64) fail(STATUS_BUFFER_TOO_SMALL, 'an object id needs 64 bytes');
        // FILE_OBJECTID_BUFFER: ObjectId, BirthVolumeId, BirthObjectId, DomainId
        const out = new Uint8Array(64);
        const v = new DataView(out.buffer);
        const { fileId } = await this.#stat(o);
        v.setBigUint64(0, fileId, true);
        v.setBigUint64(32, fileId, true);
        return out;
      }
      default:
        return fail(STATUS_NOT_SUPPORTED, `FSCTL 0x${r.ctlCode.toString(16)}`);
    }
  }

  /** Where the streams of an open's file live. */
  #streamsDir(o: Open): string {
    const [dev, ino] = o.record.key.split(':');
    return streamsDirOf(o.share.path, { dev: dev!, ino: ino! });
  }

  async close(id: Smb2FileId, sessionId: bigint, treeId: number, postQuery: boolean): Promise<FileStat | undefined> {
    const o = this.#get(id, sessionId, treeId);
    this.#forget(o);
    let st: FileStat | undefined;
    if (postQuery) st = await this.#stat(o).catch(() => undefined);
    await o.fh?.close().catch(() => {});
    await this.#deleteIfDone(o);
    return st;
  }

  /** Closes everything a session or tree held (LOGOFF, TREE_DISCONNECT, the connection's end);
   * pending deletes happen as at a CLOSE. */
  async closeAll(match: (sessionId: bigint, treeId: number) => boolean): Promise<void> {
    for (const o of [...this.#opens.values()]) {
      if (!match(o.sessionId, o.treeId)) continue;
      this.#forget(o);
      await o.fh?.close().catch(() => {});
      await this.#deleteIfDone(o).catch((err: unknown) => debug('a pending delete at the end of %s: %s', o.record.path, (err as Error).message));
    }
  }

  /** Takes an open out of the tables at once (before any await); a DELETE_ON_CLOSE open makes its
   * file's (or stream's) delete pending. */
  #forget(o: Open): void {
    this.#opens.delete(o.id.volatile);
    releaseOplock(o.record);
    this.#table.remove(o.record);
    this.#locks.release(o.record.key, o);
    if (o.deleteOnClose) this.#table.setDeletePending(o.record.key, true);
  }

  /**
   * A file or stream whose delete is pending goes when its last open closes ([MS-FSA] 2.1.5.4): a
   * file also waits for the opens of its streams, and takes its streams with it.
   */
  async #deleteIfDone(o: Open): Promise<void> {
    const key = o.record.key;
    const file = fileKeyOf(key);
    try {
      if (o.stream && this.#table.isDeletePending(key) && !this.#table.inUse(key)) {
        this.#table.setDeletePending(key, false);
        await removeStream(o.stream.dir, o.stream.name);
      }
      if (this.#table.isDeletePending(file) && !this.#table.inUse(file)) {
        this.#table.setDeletePending(file, false);
        const st = await stat(o.record.path);
        if (st.isDirectory()) await rmdir(o.record.path);
        else await rm(o.record.path);
        this.#meta.delete(o.record.path);
        await removeStreams(this.#streamsDir(o)); // a file's streams go with it
      }
    } catch (err) {
      fail(statusOfFsError(err));
    }
  }

  /**
   * LOCK ([MS-SMB2] 3.3.5.14): the first element says whether the request locks or unlocks.
   * Unlocks go in order and stop at the first that fails (STATUS_RANGE_NOT_LOCKED; those before it
   * stay unlocked). Locks are all or nothing: a conflict takes back the ones this request took
   * (STATUS_LOCK_NOT_GRANTED). A lone lock without FAIL_IMMEDIATELY waits for its range when
   * `settle` is given (the caller answers STATUS_PENDING and later what settle says): the waiter
   * is returned, for CANCEL. Without `settle` (inside a compound) it fails at once.
   */
  lock(req: Uint8Array, sessionId: bigint, treeId: number, settle?: (granted: boolean) => void): LockWaiter | undefined {
    const r = decodeSmb2LockRequest(req);
    const o = this.#get(r.fileId, sessionId, treeId);
    if (r.locks.length === 0) fail(STATUS_INVALID_PARAMETER, 'LockCount 0');
    if (r.locks.length > MAX_LOCK_ELEMENTS) fail(STATUS_INVALID_PARAMETER, `LockCount ${r.locks.length} (at most ${MAX_LOCK_ELEMENTS})`);
    if (o.isDir || !o.fh) fail(STATUS_INVALID_DEVICE_REQUEST, 'a byte-range lock on a directory');
    const key = o.record.key;
    if (r.locks[0]!.flags & SMB2_LOCKFLAG.UNLOCK) {
      for (const l of r.locks) {
        if (l.flags !== SMB2_LOCKFLAG.UNLOCK) fail(STATUS_INVALID_PARAMETER, `lock flags 0x${l.flags.toString(16)} among unlocks`);
        if (!this.#locks.unlock(key, o, l)) fail(STATUS_RANGE_NOT_LOCKED);
      }
      return undefined;
    }
    const { SHARED, EXCLUSIVE, FAIL_IMMEDIATELY } = SMB2_LOCKFLAG;
    for (const l of r.locks) {
      const mode = l.flags & ~FAIL_IMMEDIATELY;
      if (mode !== SHARED && mode !== EXCLUSIVE) fail(STATUS_INVALID_PARAMETER, `lock flags 0x${l.flags.toString(16)}`);
      // 3.3.5.14.2: only a lone lock may wait
      if (r.locks.length > 1 && !(l.flags & FAIL_IMMEDIATELY)) fail(STATUS_INVALID_PARAMETER, 'a blocking lock among several');
    }
    const taken: object[] = [];
    for (const l of r.locks) {
      if (!this.#locks.mayLock(o)) {
        this.#locks.drop(key, taken);
        fail(STATUS_INSUFFICIENT_RESOURCES, `an open holding ${MAX_LOCKS_PER_OPEN} byte-range locks`);
      }
      if (lockRangeOverflows(l)) {
        this.#locks.drop(key, taken);
        fail(STATUS_INVALID_LOCK_RANGE);
      }
      const exclusive = (l.flags & EXCLUSIVE) !== 0;
      const got = this.#locks.tryLock(key, o, l, exclusive);
      if (got) { taken.push(got); continue; }
      this.#locks.drop(key, taken);
      if (l.flags & FAIL_IMMEDIATELY || !settle) fail(STATUS_LOCK_NOT_GRANTED);
      const w: LockWaiter = { key, owner: o, offset: l.offset, length: l.length, exclusive, settle: settle! };
      this.#locks.wait(w);
      return w;
    }
    return undefined;
  }

  /** Takes a blocking lock off its queue (CANCEL): false if it was granted or failed already. */
  cancelLock(w: LockWaiter): boolean {
    return this.#locks.cancel(w);
  }

  async #stat(o: Open): Promise<FileStat> {
    try {
      if (o.stream) {
        // a stream: its file's times and attributes, its own size
        const [base, own] = await Promise.all([stat(o.record.path), o.fh!.stat()]);
        const st = fileStatOf(base, o.share.readOnly, this.#meta.get(o.record.path));
        return { ...st, endOfFile: BigInt(own.size), allocationSize: BigInt(own.blocks) * 512n, isDirectory: false };
      }
      return fileStatOf(o.fh ? await o.fh.stat() : await stat(o.record.path), o.share.readOnly, this.#meta.get(o.record.path));
    } catch (err) {
      return fail(statusOfFsError(err));
    }
  }

  async read(req: Uint8Array, sessionId: bigint, treeId: number, maxRead: number, placement?: Placement): Promise<{ data?: Uint8Array; placed?: number }> {
    const r = decodeSmb2ReadRequest(req);
    const o = this.#get(r.fileId, sessionId, treeId);
    if (o.isDir || !o.fh) fail(STATUS_INVALID_DEVICE_REQUEST);
    if (!(o.access & (FILE_READ_DATA | FILE_EXECUTE))) fail(STATUS_ACCESS_DENIED, 'the open has no read access'); // 3.3.5.12: either grants READ
    if (r.length > maxRead) fail(STATUS_INVALID_PARAMETER, `a READ of ${r.length} bytes (MaxReadSize ${maxRead})`);
    if (r.descriptors.length && !placement) fail(STATUS_INVALID_PARAMETER, 'an RDMA channel on a connection without one');
    if (this.#locks.ioConflict(o.record.key, o, r.offset, BigInt(r.length), false)) fail(STATUS_FILE_LOCK_CONFLICT);
    const placed = r.descriptors.length > 0 && r.length > 0;
    const buf = placed ? this.#ioBuffers.take(r.length) : Buffer.allocUnsafe(r.length);
    let lent = false; // the buffer is the RDMA Write's until it completes
    try {
      let n: number;
      try {
        n = (await o.fh!.read(buf, 0, r.length, Number(r.offset))).bytesRead;
      } catch (err) {
        return fail(statusOfFsError(err));
      }
      if (n === 0 && r.length > 0) fail(STATUS_END_OF_FILE);
      if (n < r.minimumCount) fail(STATUS_END_OF_FILE);
      o.position = r.offset + BigInt(n);
      if (placed) {
        // direct placement ([MS-SMBD] 3.1.4.5): the bytes go by RDMA Write into the client's
        // buffers. The response need not wait for the Write's completion: it is posted after the
        // Write on the same reliable connection, which delivers it only once the Write's data is
        // placed (InfiniBand's ordering of a Send after an RDMA Write, RFC 5040 5.5 on iWARP), so
        // the client never sees the response before its data. The buffer waits for the completion.
        // A Write that fails has failed its connection: the response is never delivered.
        let written: Promise<number>;
        try {
          written = placement!.write(r.descriptors, buf.subarray(0, n));
        } catch (err) {
          // not queued (descriptors that do not cover the data, a registration limit): no byte
          // went, and the response says so
          return fail(STATUS_INVALID_PARAMETER, `READ: ${(err as Error).message}`);
        }
        lent = true;
        written.catch((err: unknown) => debug('READ: the RDMA Write failed: %s', (err as Error).message))
          .finally(() => this.#ioBuffers.give(buf));
        this.counters.rdmaBytesWritten += n;
        return { placed: n };
      }
      this.counters.inlineBytesRead += n;
      return { data: buf.subarray(0, n) };
    } finally {
      if (placed && !lent) this.#ioBuffers.give(buf);
    }
  }

  async write(req: Uint8Array, sessionId: bigint, treeId: number, maxWrite: number, placement?: Placement): Promise<{ count: number }> {
    const r = decodeSmb2WriteRequest(req);
    const o = this.#get(r.fileId, sessionId, treeId);
    if (o.share.readOnly) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
    if (o.isDir || !o.fh) fail(STATUS_INVALID_DEVICE_REQUEST);
    if (!(o.access & (FILE_WRITE_DATA | FILE_APPEND_DATA))) fail(STATUS_ACCESS_DENIED, 'the open has no write access');
    const length = r.descriptors.length ? r.remainingBytes : r.data.length;
    if (this.#locks.ioConflict(o.record.key, o, r.offset, BigInt(length), true)) fail(STATUS_FILE_LOCK_CONFLICT);
    breakLevelII(this.#table, o.record);
    let data = r.data;
    let pooled: Uint8Array | undefined;
    try {
      if (r.descriptors.length) {
        if (!placement) fail(STATUS_INVALID_PARAMETER, 'an RDMA channel on a connection without one');
        if (r.remainingBytes > maxWrite) fail(STATUS_INVALID_PARAMETER, `a WRITE of ${r.remainingBytes} bytes (MaxWriteSize ${maxWrite})`);
        // direct placement ([MS-SMBD] 3.1.4.6): the bytes come by RDMA Read from the client's buffers
        if (r.remainingBytes > 0) data = pooled = this.#ioBuffers.take(r.remainingBytes);
        else data = new Uint8Array(0);
        if (data.length) await placement!.read(r.descriptors, data);
        this.counters.rdmaBytesRead += data.length;
      } else {
        if (data.length > maxWrite) fail(STATUS_INVALID_PARAMETER, `a WRITE of ${data.length} bytes (MaxWriteSize ${maxWrite})`);
        this.counters.inlineBytesWritten += data.length;
      }
      try {
        const { bytesWritten } = await o.fh!.write(data, 0, data.length, Number(r.offset));
        o.position = r.offset + BigInt(bytesWritten);
        return { count: bytesWritten };
      } catch (err) {
        return fail(statusOfFsError(err));
      }
    } finally {
      if (pooled) this.#ioBuffers.give(pooled);
    }
  }

  async flush(id: Smb2FileId, sessionId: bigint, treeId: number): Promise<void> {
    const o = this.#get(id, sessionId, treeId);
    await o.fh?.datasync().catch((err: unknown) => fail(statusOfFsError(err)));
  }

  async queryDirectory(req: Uint8Array, sessionId: bigint, treeId: number): Promise<Uint8Array> {
    const r = decodeSmb2QueryDirectoryRequest(req);
    const o = this.#get(r.fileId, sessionId, treeId);
    if (!o.isDir) fail(STATUS_INVALID_PARAMETER, 'QUERY_DIRECTORY on a file');
    if (!isDirectoryInfoClass(r.infoClass)) fail(STATUS_INVALID_INFO_CLASS);
    const restart = (r.flags & (SMB2_QUERY_DIRECTORY_FLAG.RESTART_SCANS | SMB2_QUERY_DIRECTORY_FLAG.REOPEN)) !== 0;
    const first = !o.dir || restart;
    if (first) {
      const all = await readdir(o.record.path).catch((err: unknown) => fail(statusOfFsError(err)));
      const atRoot = o.record.path === o.share.path;
      const names = ['.', '..', ...all.sort().filter((n) => !(atRoot && n === STREAMS_DIR))].filter((n) => matchPattern(r.pattern, n));
      o.dir = { names, pos: 0, pattern: r.pattern };
    }
    const d = o.dir!;
    // each entry is stat'ed when it is returned (a file changed during a listing shows as it is
    // now: smbtorture's dir.modify), at most as many as the output buffer can hold (12 bytes is the
    // smallest entry), so a long listing costs one stat per name however many calls it takes
    const single = (r.flags & SMB2_QUERY_DIRECTORY_FLAG.RETURN_SINGLE_ENTRY) !== 0;
    const withShortNames = r.infoClass === FILE_INFO.BOTH_DIRECTORY || r.infoClass === FILE_INFO.ID_BOTH_DIRECTORY;
    const encoded: Uint8Array[] = [];
    const consumed: number[] = [];
    let at = d.pos;
    for (const limit = Math.ceil(r.outputBufferLength / 12); at < d.names.length && encoded.length < (single ? 1 : limit); at++) {
      const st = await this.#entryStat(o, d.names[at]!);
      if (!st) continue;
      encoded.push(encodeDirectoryEntry(r.infoClass, d.names[at]!, st, withShortNames ? shortNameOf(d.names[at]!) : undefined, at + 1));
      consumed.push(at + 1);
    }
    if (encoded.length === 0) {
      d.pos = at;
      fail(first ? STATUS_NO_SUCH_FILE : STATUS_NO_MORE_FILES);
    }
    const { buffer, count } = chainDirectoryEntries(encoded, r.outputBufferLength);
    if (count === 0) fail(STATUS_INFO_LENGTH_MISMATCH, 'the output buffer cannot hold one entry');
    d.pos = consumed[count - 1]!;
    return buffer;
  }

  /** A listed name's attributes now, or undefined when it is gone or is a link that leads out of
   * the share (not listed). */
  async #entryStat(o: Open, name: string): Promise<FileStat | undefined> {
    if (name === '.' || name === '..') return this.#stat(o);
    try {
      const full = `${o.record.path}/${name}`;
      const ls = await lstat(full);
      if (ls.isSymbolicLink()) await checkInside(o.share.realRoot, full);
      return fileStatOf(ls.isSymbolicLink() ? await stat(full) : ls, o.share.readOnly, this.#meta.get(full));
    } catch {
      return undefined;
    }
  }

  async queryInfo(req: Uint8Array, sessionId: bigint, treeId: number): Promise<{ status: number; output: Uint8Array; errorData?: Uint8Array }> {
    const r = decodeSmb2QueryInfoRequest(req);
    const o = this.#get(r.fileId, sessionId, treeId);
    let out: Uint8Array | undefined;
    let fixed: number | undefined;
    if (r.infoType === SMB2_INFO.FILE) {
      let st = await this.#stat(o);
      let streams: FileInfoContext['streams'];
      if (r.infoClass === FILE_INFO.STREAM) {
        const base = o.stream ? await stat(o.record.path).catch((err: unknown) => fail(statusOfFsError(err))) : undefined;
        streams = {
          dataSize: base ? BigInt(base.size) : st.endOfFile, dataAllocation: base ? BigInt(base.blocks) * 512n : st.allocationSize,
          named: await listStreams(this.#streamsDir(o)),
        };
      }
      // a file whose delete is pending has one link less (Windows and Samba count the name as gone)
      const deletePending = o.deleteOnClose || this.#table.isDeletePending(o.record.key);
      if (deletePending) st = { ...st, nlink: Math.max(0, st.nlink - 1) };
      // (the 8.3 name, a hash for a long name, only for the class that carries it)
      const shortName = r.infoClass === FILE_INFO.ALTERNATE_NAME ? shortNameOf(parseStreamName(o.name).file.split('\\').pop() ?? '') ?? '' : undefined;
      out = encodeFileInfo(r.infoClass, { st, deletePending, shortName, position: o.position, accessMask: o.access, mode: 0, name: `\\${o.name}`, streams });
      fixed = FILE_INFO_FIXED_SIZE[r.infoClass];
    } else if (r.infoType === SMB2_INFO.FILESYSTEM) {
      const fs = await statfs(o.share.path).catch((err: unknown) => fail(statusOfFsError(err)));
      out = encodeFsInfo(r.infoClass, {
        totalUnits: BigInt(fs.blocks), freeUnits: BigInt(fs.bavail), sectorsPerUnit: Math.max(1, Math.floor(fs.bsize / 512)), bytesPerSector: 512,
        label: o.share.name, serial: 0x5342d1ec, created: 0n,
      });
      fixed = FS_INFO_FIXED_SIZE[r.infoClass];
    } else if (r.infoType === SMB2_INFO.SECURITY) {
      // [MS-SMB2] 3.3.5.20.3: the parts AdditionalInformation names; a short buffer is
      // STATUS_BUFFER_TOO_SMALL with the size needed as its ErrorData
      if (!(o.access & READ_CONTROL)) fail(STATUS_ACCESS_DENIED, 'the open has no READ_CONTROL');
      const sd = encodeSecurityDescriptor(selectParts(await this.#securityOf(o), r.additionalInformation));
      if (sd.length > r.outputBufferLength) {
        const need = new Uint8Array(4);
        new DataView(need.buffer).setUint32(0, sd.length, true);
        return { status: STATUS_BUFFER_TOO_SMALL, output: new Uint8Array(0), errorData: need };
      }
      return { status: STATUS_SUCCESS, output: sd };
    } else {
      fail(STATUS_INVALID_PARAMETER, `info type ${r.infoType}`);
    }
    if (!out) fail(STATUS_INVALID_INFO_CLASS, `information class ${r.infoClass} of type ${r.infoType}`);
    if (r.outputBufferLength < Math.min(fixed ?? out!.length, out!.length)) fail(STATUS_INFO_LENGTH_MISMATCH);
    if (out!.length > r.outputBufferLength) return { status: STATUS_BUFFER_OVERFLOW, output: out!.subarray(0, r.outputBufferLength) };
    return { status: STATUS_SUCCESS, output: out! };
  }

  /**
   * The access an open of `path` gets ([MS-FSA] 2.1.5.1.2.1): what the share grants when no client
   * set a descriptor on it (those are not checked); with a stored one, what it asked for
   * (MAXIMUM_ALLOWED: all the DACL allows) within what the share grants, DELETE also when the
   * parent's descriptor grants FILE_DELETE_CHILD; anything asked and not allowed is
   * STATUS_ACCESS_DENIED.
   */
  #storedAccess(path: string, token: Token | undefined, desired: number, shareGrants: number, implied = 0): number {
    const sd = token && this.#meta.get(path)?.sd;
    if (!sd) return shareGrants;
    let allowed = maximalAccess(sd, token);
    if (!(allowed & DELETE) || !(allowed & FILE_READ_ATTRIBUTES)) {
      // what the parent grants on its children ([MS-FSA] 2.1.5.1.2.1): DELETE through
      // FILE_DELETE_CHILD, FILE_READ_ATTRIBUTES through FILE_LIST_DIRECTORY
      const parent = this.#meta.get(dirname(path))?.sd;
      const onChildren = parent ? maximalAccess(parent, token) : FILE_ALL_ACCESS;
      if (onChildren & FILE_DELETE_CHILD) allowed |= DELETE;
      if (onChildren & FILE_LIST_DIRECTORY) allowed |= FILE_READ_ATTRIBUTES;
    }
    // every bit asked for must be granted, those no file has (0x200-0x8000) included: never
    const wanted = ((mapGeneric(desired) | implied) & ~MAXIMUM_ALLOWED) >>> 0;
    if (wanted & ~allowed) fail(STATUS_ACCESS_DENIED, `access 0x${(wanted & ~allowed).toString(16)} not allowed by the file's DACL`);
    return desired & MAXIMUM_ALLOWED ? shareGrants & allowed : shareGrants;
  }

  /** The descriptor a client set on the file, or the one made from its owner and mode. */
  async #securityOf(o: Open): Promise<SecurityDescriptor> {
    const stored = this.#meta.get(o.record.path)?.sd;
    if (stored) return stored;
    try {
      return defaultSecurityDescriptor(o.fh ? await o.fh.stat() : await stat(o.record.path));
    } catch (err) {
      return fail(statusOfFsError(err));
    }
  }

  /** A stream renamed to another stream of its file (":new" or ":new:$DATA"), or to the file's own
   * data ("::$DATA", which must be empty). */
  async #renameStream(o: Open, name: string, replace: boolean): Promise<void> {
    if (o.stream && !name.startsWith(':')) {
      // "file:stream" names a path: the stream's own file is in use through this very handle
      // (Windows's answer, smbtorture streams.rename2); any other path is not a stream's to take
      const target = await findCase(o.share.path, resolveInShare(o.share.path, parseStreamName(name).file));
      fail(target === o.record.path ? STATUS_SHARING_VIOLATION : STATUS_INVALID_PARAMETER, 'a stream is renamed only within its file');
    }
    if (!o.stream) fail(STATUS_INVALID_PARAMETER, 'a file is not renamed to a stream');
    if (!(o.access & DELETE)) fail(STATUS_ACCESS_DENIED, 'a rename needs DELETE access on the open');
    const to = parseStreamName(`f${name}`).stream;
    const { dir, name: from } = o.stream!;
    if (to === undefined) {
      // onto the file's data: only an empty one is replaced (as NTFS); the stream is gone after
      const size = (await stat(o.record.path)).size;
      if (size > 0) fail(replace ? STATUS_INVALID_PARAMETER : STATUS_OBJECT_NAME_COLLISION, 'the file\'s data is not empty');
      await copyFile(streamDataPath(dir, from), o.record.path);
      await o.fh?.close().catch(() => {});
      o.fh = await open(o.record.path, 'r+');
      await removeStream(dir, from);
      o.stream = undefined;
      return;
    }
    if (to.toLowerCase() === from.toLowerCase()) return;
    const target = streamDataPath(dir, to);
    // onto an existing stream: a collision, or (replacing) refused unless that stream is empty, as NTFS does
    const existing = await stat(target).catch(() => undefined);
    if (existing && !replace) fail(STATUS_OBJECT_NAME_COLLISION);
    if (existing && existing.size > 0) fail(STATUS_INVALID_PARAMETER, 'replacing a stream that holds data');
    await rename(streamDataPath(dir, from), target);
    await writeFile(`${target}.name`, to);
    await rm(`${streamDataPath(dir, from)}.name`, { force: true });
    o.stream = { dir, name: to };
  }

  async setInfo(req: Uint8Array, sessionId: bigint, treeId: number): Promise<void> {
    const r = decodeSmb2SetInfoRequest(req);
    const o = this.#get(r.fileId, sessionId, treeId);
    if (r.infoType === SMB2_INFO.SECURITY) {
      if (o.share.readOnly) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
      const needed = accessToSet(r.additionalInformation);
      if ((o.access & needed) !== needed) fail(STATUS_ACCESS_DENIED, `setting these parts needs access 0x${needed.toString(16)}`);
      const given = descriptorAsSet(decodeSecurityDescriptor(r.buffer), r.additionalInformation);
      this.#meta.set(o.record.path, { sd: mergeParts(await this.#securityOf(o), given, r.additionalInformation) });
      return;
    }
    if (r.infoType !== SMB2_INFO.FILE) fail(STATUS_INVALID_PARAMETER);
    if (o.share.readOnly && r.infoClass !== FILE_INFO.POSITION) fail(STATUS_ACCESS_DENIED, 'the share is read-only');
    // the access each class needs ([MS-FSA] 2.1.5.14): times and attributes FILE_WRITE_ATTRIBUTES,
    // sizes FILE_WRITE_DATA (rename and disposition check DELETE below)
    const needs = r.infoClass === FILE_INFO.BASIC ? FILE_WRITE_ATTRIBUTES
      : r.infoClass === FILE_INFO.END_OF_FILE || r.infoClass === FILE_INFO.ALLOCATION ? FILE_WRITE_DATA : 0;
    if ((o.access & needs) !== needs) fail(STATUS_ACCESS_DENIED, `SET_INFO class ${r.infoClass} needs access 0x${needs.toString(16)}`);
    try {
      switch (r.infoClass) {
        case FILE_INFO.BASIC: {
          const { times, attributes } = decodeFileBasicInfo(r.buffer);
          // [MS-FSA] 2.1.5.14.2: a directory cannot be FILE_ATTRIBUTE_TEMPORARY
          if (o.isDir && (attributes & FILE_ATTRIBUTE_TEMPORARY)) fail(STATUS_INVALID_PARAMETER, 'FILE_ATTRIBUTE_TEMPORARY on a directory');
          // ... and a file cannot be made a directory
          if (!o.isDir && (attributes & FILE_ATTRIBUTE.DIRECTORY)) fail(STATUS_INVALID_PARAMETER, 'FILE_ATTRIBUTE_DIRECTORY on a file');
          const [ctimeBirth, atime, mtime, change] = times as [bigint, bigint, bigint, bigint];
          const keep = (t: bigint) => t === 0n || t === 0xffffffffffffffffn || t === 0xfffffffffffffffen;
          if (!keep(ctimeBirth)) this.#meta.set(o.record.path, { creationTime: ctimeBirth });
          if (!keep(change)) this.#meta.set(o.record.path, { changeTime: change });
          if (attributes !== 0) this.#meta.set(o.record.path, { attributes });
          if (!keep(atime) || !keep(mtime)) {
            const st = await stat(o.record.path);
            await utimes(o.record.path, keep(atime) ? st.atime : new Date(msOfFileTime(atime)), keep(mtime) ? st.mtime : new Date(msOfFileTime(mtime)));
          }
          return;
        }
        case FILE_INFO.END_OF_FILE: {
          if (!o.fh) fail(STATUS_INVALID_PARAMETER);
          breakLevelII(this.#table, o.record);
          await o.fh!.truncate(Number(decodeU64Info(r.buffer, 'FileEndOfFileInformation')));
          return;
        }
        case FILE_INFO.ALLOCATION: {
          // space is allocated as written; an allocation below the end of file cuts the file there ([MS-FSA] 2.1.5.14.1)
          const alloc = decodeU64Info(r.buffer, 'FileAllocationInformation');
          if (o.fh && alloc < BigInt((await o.fh.stat()).size)) await o.fh.truncate(Number(alloc));
          return;
        }
        case FILE_INFO.POSITION:
          o.position = decodeU64Info(r.buffer, 'FilePositionInformation');
          return;
        case FILE_INFO.DISPOSITION:
        case FILE_INFO.DISPOSITION_EX: {
          if (r.buffer.length < 1) fail(STATUS_INFO_LENGTH_MISMATCH);
          const del = (r.buffer[0]! & 1) !== 0;
          if (del && !(o.access & DELETE)) fail(STATUS_ACCESS_DENIED, 'the open has no DELETE access');
          if (del && ((await this.#stat(o)).attributes & FILE_ATTRIBUTE_READONLY)) fail(STATUS_CANNOT_DELETE);
          if (del && o.isDir && (await readdir(o.record.path)).length > 0) fail(STATUS_DIRECTORY_NOT_EMPTY);
          this.#table.setDeletePending(o.record.key, del);
          return;
        }
        case FILE_INFO.RENAME: {
          const rn = decodeFileRenameInfo(r.buffer);
          if (o.stream || rn.name.startsWith(':')) {
            await this.#renameStream(o, rn.name, rn.replaceIfExists);
            return;
          }
          if (!(o.access & DELETE)) fail(STATUS_ACCESS_DENIED, 'a rename needs DELETE access on the open');
          const target = resolveInShare(o.share.path, rn.name);
          await checkInside(o.share.realRoot, target);
          if (o.isDir && this.#table.openBelow(o.record.path)) fail(STATUS_ACCESS_DENIED, 'a directory with opens below it');
          // the rename opens the target's directory to add a name (FILE_WRITE_DATA, sharing read and
          // write, as Windows' I/O manager does): an open there that does not share that conflicts
          const parent = await stat(dirname(target));
          if (this.#table.conflicts(fileKey(parent), FILE_WRITE_DATA, SHARE_READ | SHARE_WRITE)) fail(STATUS_SHARING_VIOLATION);
          const exists = await lstat(target).then(() => true, () => false);
          if (exists && !rn.replaceIfExists) fail(STATUS_OBJECT_NAME_COLLISION);
          await rename(o.record.path, target);
          this.#meta.move(o.record.path, target);
          this.#table.moved(o.record.key, target); // this open's and every other open's of the file
          o.name = rn.name.replace(/^\\+/, '');
          return;
        }
        default:
          fail(STATUS_INVALID_INFO_CLASS, `SET_INFO class ${r.infoClass}`);
      }
    } catch (err) {
      if (err instanceof Smb2Error) throw err;
      fail(statusOfFsError(err));
    }
  }
}

/** The real path of a share's root (symlinks resolved), for the inside-the-share checks. */
export async function shareRef(s: { name: string; path: string; readOnly?: boolean }): Promise<ShareRef> {
  return { name: s.name, path: s.path, readOnly: s.readOnly ?? false, realRoot: await realpath(s.path) };
}
