// Makes crypto.randomBytes deterministic in the fuzz process. The iWARP endpoint draws its STag
// start and key tables from it (src/providers/iwarp/stag.ts: a peer must not guess STags), but a
// fuzzer needs an input to mean the same thing on every run: with the same bytes every time, the
// STags of the regions a target registers are fixed, so seeds can name them and the fuzzer can
// learn them, and a saved finding replays. The peer still has to find the STags (they are not
// 0x100, 0x200, ...): the tables are a fixed pseudo-random pattern, not zeros.
// Only this process is affected; nothing here is used outside fuzz/.
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const crypto = require('node:crypto') as typeof import('node:crypto');

function pattern(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

let done = false;

export function deterministicRandomBytes(): void {
  if (done) return;
  done = true;
  const fixed = (size: number, cb?: (err: Error | null, buf: Buffer) => void): Buffer | undefined => {
    const buf = pattern(size);
    if (cb) { process.nextTick(cb, null, buf); return undefined; }
    return buf;
  };
  (crypto as unknown as Record<string, unknown>).randomBytes = fixed;
  syncBuiltinESMExports();
}

deterministicRandomBytes();
