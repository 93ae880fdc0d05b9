// Oplocks ([MS-SMB2] 3.3.1.10, 3.3.5.9.8, 3.3.5.22.1; [MS-FSA] 2.1.5.17): a client that alone has a
// file open may cache it (BATCH and EXCLUSIVE: reads, writes and the handle; LEVEL_II: reads). A
// CREATE by another open first breaks an EXCLUSIVE or BATCH holder to LEVEL_II (or to NONE when it
// overwrites) and waits for the holder's acknowledgment, its close, or a deadline; a write breaks
// LEVEL_II holders to NONE without waiting. The state hangs off the share-mode table's records
// (every connection's opens), so the leases issue can put its lease keys beside it.
import { SMB2_OPLOCK_LEVEL } from '../../framing/smb2/oplock.js';
import { replacesData } from '../../framing/smb2/create.js';
import { STATUS_INVALID_OPLOCK_PROTOCOL, STATUS_INVALID_PARAMETER } from '../../framing/smb2/ntstatus.js';
import { Smb2Error } from './errors.js';
import type { OpenRecord, OpenTable } from './share-modes.js';

/** How long a CREATE waits for a holder to acknowledge a break (Windows's default, 35 s). */
export const OPLOCK_BREAK_TIMEOUT_MS = 35_000;

/** What an open may hold without breaking anyone's oplock ([MS-FSA] 2.1.5.1.2: a "stat open"). */
const STAT_ACCESS = 0x00000080 | 0x00000100 | 0x00100000 | 0x00020000; // READ/WRITE_ATTRIBUTES, SYNCHRONIZE, READ_CONTROL
export const isStatOpen = (access: number): boolean => (access & ~STAT_ACCESS) === 0;

export interface OplockState {
  level: number;
  /** A break sent and not acknowledged yet: the level it goes to, and who waits for it. */
  breaking?: { to: number; waiters: Array<() => void>; timer: NodeJS.Timeout };
  /** Sends the holder a break notification (its connection's). */
  notify: (level: number) => void;
}

/** A CREATE that must wait for breaks before it can go on: the server answers it STATUS_PENDING
 * (or waits, inside a compound) and runs it again once `wait` settles. */
export class OplockBreakPending extends Error {
  constructor(readonly wait: Promise<void>) {
    super('waiting for an oplock break');
  }
}

function finish(rec: OpenRecord, level: number): void {
  const o = rec.oplock;
  if (!o?.breaking) return;
  clearTimeout(o.breaking.timer);
  const { waiters } = o.breaking;
  o.breaking = undefined;
  o.level = level;
  for (const w of waiters) w();
}

/**
 * Breaks what a new open of `key` (not a stat open) conflicts with, in [MS-FSA] 2.1.5.1.2.1's two
 * steps: 'batch' before the sharing check (a BATCH holder's handle may be what conflicts: it may
 * close it), 'others' once the check passed (EXCLUSIVE holders; a sharing violation breaks none).
 * Holders go to LEVEL_II, or NONE when the CREATE overwrites, and are waited for; LEVEL_II holders
 * of a file being overwritten go to NONE, told only. Returns what to wait for, if anything.
 */
export function breakOplocks(table: OpenTable, key: string, access: number, disposition: number, step: 'batch' | 'others', timeoutMs = OPLOCK_BREAK_TIMEOUT_MS): Promise<void> | undefined {
  if (isStatOpen(access)) return undefined;
  const overwrites = replacesData(disposition);
  const waits: Promise<void>[] = [];
  for (const rec of table.opensOf(key)) {
    const o = rec.oplock;
    if (!o || o.level === SMB2_OPLOCK_LEVEL.NONE) continue;
    if (step === 'batch' && o.level !== SMB2_OPLOCK_LEVEL.BATCH) continue;
    if (o.level === SMB2_OPLOCK_LEVEL.II && !o.breaking) {
      if (overwrites) {
        o.level = SMB2_OPLOCK_LEVEL.NONE;
        o.notify(SMB2_OPLOCK_LEVEL.NONE);
      }
      continue;
    }
    if (!o.breaking) {
      const to = overwrites ? SMB2_OPLOCK_LEVEL.NONE : SMB2_OPLOCK_LEVEL.II;
      // a holder that never answers loses its oplock at the deadline (3.3.6.3)
      o.breaking = { to, waiters: [], timer: setTimeout(() => finish(rec, to), timeoutMs) };
      o.breaking.timer.unref?.();
      o.notify(to);
    }
    const b = o.breaking;
    waits.push(new Promise<void>((resolve) => b.waiters.push(resolve)));
  }
  return waits.length ? Promise.all(waits).then(() => {}) : undefined;
}

/** The level a new open gets (3.3.5.9.8): what it asks for when it is the file's only open (stat
 * opens aside), LEVEL_II at most beside others, none for a directory, a stat open or a lease
 * request (leases are the next issue's). */
export function grantOplock(table: OpenTable, rec: OpenRecord, requested: number, isDirectory: boolean): number {
  if (isDirectory || isStatOpen(rec.access) || requested === SMB2_OPLOCK_LEVEL.LEASE) return SMB2_OPLOCK_LEVEL.NONE;
  if (requested !== SMB2_OPLOCK_LEVEL.II && requested !== SMB2_OPLOCK_LEVEL.EXCLUSIVE && requested !== SMB2_OPLOCK_LEVEL.BATCH) return SMB2_OPLOCK_LEVEL.NONE;
  let others = false;
  for (const r of table.opensOf(rec.key)) {
    if (r === rec || isStatOpen(r.access)) continue;
    if ((r.oplock?.level ?? 0) >= SMB2_OPLOCK_LEVEL.EXCLUSIVE) return SMB2_OPLOCK_LEVEL.NONE;
    others = true;
  }
  return others ? SMB2_OPLOCK_LEVEL.II : requested;
}

/** The holder's acknowledgment (3.3.5.22.1): the level it keeps. */
export function acknowledgeBreak(rec: OpenRecord, level: number): number {
  const b = rec.oplock?.breaking;
  if (!b) throw new Smb2Error(STATUS_INVALID_OPLOCK_PROTOCOL, 'no oplock break in progress on this open');
  if (level !== SMB2_OPLOCK_LEVEL.NONE && level !== SMB2_OPLOCK_LEVEL.II) throw new Smb2Error(STATUS_INVALID_PARAMETER, `an acknowledgment to level 0x${level.toString(16)}`);
  if (level === SMB2_OPLOCK_LEVEL.II && b.to === SMB2_OPLOCK_LEVEL.NONE) throw new Smb2Error(STATUS_INVALID_OPLOCK_PROTOCOL, 'LEVEL_II acknowledged for a break to NONE');
  finish(rec, level);
  return level;
}

/** The open is gone: whoever waited for its break goes on. */
export function releaseOplock(rec: OpenRecord): void {
  finish(rec, SMB2_OPLOCK_LEVEL.NONE);
  if (rec.oplock) rec.oplock.level = SMB2_OPLOCK_LEVEL.NONE;
}

/** A write through `writer` (or a size change): every other LEVEL_II holder of its file breaks to
 * NONE, told and not waited for (3.3.4.6). */
export function breakLevelII(table: OpenTable, writer: OpenRecord): void {
  for (const rec of table.opensOf(writer.key)) {
    if (rec === writer || rec.oplock?.level !== SMB2_OPLOCK_LEVEL.II || rec.oplock.breaking) continue;
    rec.oplock.level = SMB2_OPLOCK_LEVEL.NONE;
    rec.oplock.notify(SMB2_OPLOCK_LEVEL.NONE);
  }
}
