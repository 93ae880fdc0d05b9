// Direct data placement's arithmetic ([MS-SMBD] 3.1.4.5 / 3.1.4.6): the checks on a peer's buffer
// descriptors where they enter the transport, and the offset walk that cuts a transfer into RDMA
// operations. Pure functions: the connection registers, posts and counts (docs/smbdirect/placement.md).
import { ADDRESS_END, type BufferDescriptor } from '../../framing/buffer-descriptor.js';

// The cache of whole-ArrayBuffer registrations the connection keeps for its transfers lives with
// the providers, whose verbs endpoint keeps one too (its windows' base registrations).
export { type CachedRegistration, RegistrationCache } from '../providers/registration-cache.js';

/** One RDMA operation of a transfer: `length` bytes at `at` in the local buffer, `remoteAddr` in
 * the peer's registration `rkey`. */
export interface RdmaSegment {
  at: number;
  length: number;
  remoteAddr: bigint;
  rkey: number;
}

/** Why a descriptor from the peer cannot be used, or undefined when it can. */
export function badDescriptor(d: BufferDescriptor | undefined): string | undefined {
  if (!d || typeof d.offset !== 'bigint' || !Number.isInteger(d.token) || !Number.isInteger(d.length)) {
    return 'every descriptor needs a bigint offset, an integer token and an integer length';
  }
  if (d.length <= 0 || d.length > 0xffffffff) return `a descriptor of length ${d.length} (must be 1..2^32 - 1)`;
  if (d.token < 0 || d.token > 0xffffffff) return `token ${d.token} is not 32 bits`;
  if (d.offset < 0n || d.offset + BigInt(d.length) > ADDRESS_END) {
    return `descriptor offset 0x${d.offset.toString(16)} + length ${d.length} is not inside the 64-bit address space`;
  }
  return undefined;
}

/** Why `descriptors` cannot carry a transfer of `length` bytes starting `skip` bytes in (each one
 * checked, and together they must cover skip + length), or undefined when they can. */
export function descriptorsProblem(descriptors: readonly BufferDescriptor[], skip: number, length: number): string | undefined {
  if (!Array.isArray(descriptors) || descriptors.length === 0) return 'needs a non-empty descriptor list';
  let covered = 0;
  for (const d of descriptors) {
    const bad = badDescriptor(d);
    if (bad) return bad;
    covered += d.length;
  }
  if (covered - skip < length) return `the descriptors cover ${covered} bytes, ${skip} + ${length} are needed`;
  return undefined;
}

/** The offset walk: byte i of the transfer lives in the descriptor whose range holds skip + i;
 * each descriptor's part is cut into operations of at most `maxOpSize` bytes, in order. The
 * descriptors must have passed descriptorsProblem(). */
export function planTransfer(descriptors: readonly BufferDescriptor[], skip: number, length: number, maxOpSize: number): RdmaSegment[] {
  const segments: RdmaSegment[] = [];
  let at = 0;
  let pos = skip;
  for (const d of descriptors) {
    if (at >= length) break;
    if (pos >= d.length) { pos -= d.length; continue; }
    let left = Math.min(d.length - pos, length - at);
    let remote = d.offset + BigInt(pos);
    while (left > 0) {
      const n = Math.min(left, maxOpSize);
      segments.push({ at, length: n, remoteAddr: remote, rkey: d.token });
      at += n; left -= n; remote += BigInt(n);
    }
    pos = 0;
  }
  return segments;
}
