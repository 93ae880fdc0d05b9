// Registered memory is accounted per connection and for the whole process: what a connection
// registers (its receive and send slabs, the caller's registerBuffer() buffers, the buffers of its
// RDMA reads and writes) is taken from its own account and from the process-wide one, and given
// back when it is deregistered. A registration that would go past either limit is refused with
// ERR_SMBD_RESOURCE_LIMIT (or, for a connection's slabs, the connection is not made), so the
// memory a set of peers can make this process pin is bounded by configuration, not by the peers.
import { totalmem } from 'node:os';

import { SmbDirectError } from './errors.js';

export class MemoryAccount {
  used = 0;
  peak = 0;
  /** `name`: the limit as the error message names it. */
  constructor(public limit: number, private readonly name: string, private readonly parent?: MemoryAccount) {}

  /** Whether `n` more bytes fit here (and in the parent). */
  fits(n: number): boolean {
    return this.used + n <= this.limit && (this.parent?.fits(n) ?? true);
  }

  /** Takes `n` bytes, or throws ERR_SMBD_RESOURCE_LIMIT naming the limit that refused. */
  take(n: number, what: string): void {
    if (this.used + n > this.limit) {
      throw new SmbDirectError('ERR_SMBD_RESOURCE_LIMIT', `${what}: ${n} more bytes would pass ${this.name} (${this.used} of ${this.limit} bytes registered)`);
    }
    this.parent?.take(n, what);
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  give(n: number): void {
    this.used -= n;
    this.parent?.give(n);
  }
}

/** The process-wide (per thread: each worker has its own) account: default a quarter of the
 * machine's memory, at most 4 GiB. */
const processAccount = new MemoryAccount(Math.min(4 * 2 ** 30, Math.floor(totalmem() / 4)), 'the process-wide registered memory limit (setRegisteredMemoryLimit())');

/** A connection's account, drawing on the process-wide one. */
export function connectionAccount(limit: number): MemoryAccount {
  return new MemoryAccount(limit, "the connection's maxRegisteredBytes", processAccount);
}

/** Sets the process-wide limit on memory SMB Direct connections register (bytes). */
export function setRegisteredMemoryLimit(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new SmbDirectError('ERR_SMBD_INVALID_ARGUMENT', `the registered memory limit must be a non-negative integer, got ${bytes}`);
  processAccount.limit = bytes;
}

/** Memory registered by SMB Direct connections in this process (thread), and the limit. */
export function registeredMemory(): { used: number; peak: number; limit: number } {
  return { used: processAccount.used, peak: processAccount.peak, limit: processAccount.limit };
}
