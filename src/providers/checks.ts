// Checks both providers make on what a caller hands a post call, so a bad value is refused at the
// call (a typed error) instead of failing later, deep in a socket read or a native call.
import { ADDRESS_END } from '../../framing/buffer-descriptor.js';
import { RdmaError } from './types.js';

/** A remote address range an RDMA Write or Read targets: [addr, addr + length) inside 2^64. */
export function checkRemote(remoteAddr: bigint, length: number, rkey: number): void {
  if (typeof remoteAddr !== 'bigint' || remoteAddr < 0n || remoteAddr + BigInt(length) > ADDRESS_END) {
    throw new RdmaError('ERR_OUT_OF_RANGE', `remote range 0x${String(typeof remoteAddr === 'bigint' ? remoteAddr.toString(16) : remoteAddr)} + ${length} is not inside the 64-bit address space`);
  }
  if (!Number.isInteger(rkey) || rkey < 0 || rkey > 0xffffffff) throw new RdmaError('ERR_OUT_OF_RANGE', `rkey must be a 32-bit integer, got ${rkey}`);
}
