// The smbdirect target's input format (fuzz/targets/smbdirect.ts), shared with the seed writer.
import { resolveOptions } from '../../src/smbdirect/options.js';
import type { Cursor } from './bytes.js';

export const OPTIONS = resolveOptions({
  credits: 8, maxSendSize: 512, maxReceiveSize: 1024, maxFragmentedSize: 131072, maxReadWriteSize: 65536,
  sendQueueDepth: 16, rdmaReadDepth: 2, maxRdmaOpSize: 4096, acceptTimeoutMs: 10_000, negotiateTimeoutMs: 10_000,
  keepaliveIntervalMs: 60_000, keepaliveTimeoutMs: 5_000, closeTimeoutMs: 5_000,
});
export const SEGMENT = 64;
export const MAX_IO = 65536;

export interface Msg { variant: number; bytes: Uint8Array; token?: number; offset?: number }

export function readMessages(c: Cursor): Msg[] {
  const out: Msg[] = [];
  while (c.left >= 2 && out.length < 256) {
    const h = c.u16();
    const variant = h >> 13;
    let token: number | undefined;
    let offset: number | undefined;
    if (variant === 6) {
      const pick = c.u8();
      token = pick === 0 ? -1 : pick === 1 ? -2 : c.u32();
    } else if (variant === 7) offset = c.u8() * 16;
    out.push({ variant, bytes: c.take(h & 0x1fff), token, offset });
  }
  return out;
}

