// Named streams ([MS-FSCC] 2.1.4, [MS-FSA] 2.1.5.1): "file:name[:$DATA]" opens the data stream
// `name` of `file`. Linux files have one stream, so the named ones live in a sidecar directory at
// the share's root (STREAMS_DIR, hidden from listings and refused as a name), one directory per
// file keyed by device and inode (a renamed file keeps its streams), one file per stream named by a
// hash of its lowercased name (names are case-insensitive, and may be longer than a Linux name
// allows) with the name as given beside it. Deleting a file deletes its streams.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { STATUS_OBJECT_NAME_INVALID } from '../../framing/smb2/ntstatus.js';
import { Smb2Error } from './errors.js';

/** The sidecar directory at a share's root: no client can open or list it. */
export const STREAMS_DIR = '.smbdirect-streams';
const MAX_STREAM_NAME = 255;

/** A CREATE name split at its stream part: the file, and the named stream (undefined: the file's
 * own data, as "file" or "file::$DATA"). */
export interface StreamName { file: string; stream?: string }

/**
 * Splits "dir\file:stream:$DATA" ([MS-FSCC] 2.1.5.1): the stream type, when given, must be $DATA
 * (any case); an empty type ("file:s:"), an empty name with no type ("file:"), or a name with a
 * path separator or NUL is STATUS_OBJECT_NAME_INVALID.
 */
export function parseStreamName(name: string): StreamName {
  const at = name.indexOf(':');
  if (at < 0) return { file: name };
  const file = name.slice(0, at);
  const parts = name.slice(at + 1).split(':');
  if (parts.length > 2) invalid(name);
  const [stream, type] = parts as [string, string | undefined];
  if (type !== undefined && type.toUpperCase() !== '$DATA') invalid(name);
  if (stream === '') {
    if (type === undefined) invalid(name);
    return { file };
  }
  // only the separators (and NUL) are refused: control characters and wildcards are fine in a
  // stream name (smbtorture's streams.names2 tries 0x01-0x7e)
  if (stream.length > MAX_STREAM_NAME || /[\\/]/.test(stream) || stream.includes('\0')) invalid(name);
  return { file, stream };
}

function invalid(name: string): never {
  throw new Smb2Error(STATUS_OBJECT_NAME_INVALID, `the stream name in ${JSON.stringify(name)} is not valid`);
}

/** Where a file's streams live. */
export function streamsDirOf(root: string, st: { dev: number | bigint | string; ino: number | bigint | string }): string {
  return join(root, STREAMS_DIR, `${st.dev}-${st.ino}`);
}

const keyOf = (stream: string) => createHash('sha256').update(stream.toLowerCase()).digest('hex');

/** The data file of `stream` of the file whose streams are in `dir`. */
export function streamDataPath(dir: string, stream: string): string {
  return join(dir, keyOf(stream));
}

/** Makes `stream`'s data file's directory and records its name as given (the first creator's case). */
export async function prepareStream(dir: string, stream: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const data = streamDataPath(dir, stream);
  await writeFile(`${data}.name`, stream, { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err; });
  return data;
}

/** Removes one stream. */
export async function removeStream(dir: string, stream: string): Promise<void> {
  const data = streamDataPath(dir, stream);
  await rm(data, { force: true });
  await rm(`${data}.name`, { force: true });
}

/** Removes every stream of a file (the file is gone). */
export async function removeStreams(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A file's named streams: their names as created and their sizes. */
export async function listStreams(dir: string): Promise<Array<{ name: string; size: bigint; allocation: bigint }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  // all at once (the thread pool overlaps them): a listing is one round of file system calls
  const found = await Promise.all(names.filter((n) => !n.endsWith('.name')).map(async (n) => {
    try {
      const [name, st] = await Promise.all([readFile(join(dir, `${n}.name`), 'utf8'), stat(join(dir, n))]);
      return { name, size: BigInt(st.size), allocation: BigInt(st.blocks) * 512n };
    } catch {
      return undefined; // half made or half removed by another request: not a stream (yet, or any more)
    }
  }));
  return found.filter((e) => e !== undefined);
}
