// CRC32c (Castagnoli), the MPA FPDU checksum (RFC 5044 section 6). The SIMD/SSE4.2 implementation
// comes from @node-rs/crc32; where its prebuilt binary cannot load, a slice-by-8 table in JS serves.
import { createRequire } from 'node:module';

type Crc32c = (data: Uint8Array, initial?: number) => number;

const POLY = 0x82f63b78; // reflected Castagnoli polynomial
const TABLES = makeTables();

function makeTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n] >>> 8) ^ t[t[(k - 1) * 256 + n] & 0xff];
  }
  return t;
}

/** Pure-JS CRC32c (slice-by-8). `initial` is a previous result, to continue over split data. */
export function crc32cJs(data: Uint8Array, initial = 0): number {
  const t = TABLES;
  let c = ~initial;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    c =
      t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^ t[1024 + (a >>> 24)] ^
      t[768 + data[i + 4]] ^ t[512 + data[i + 5]] ^ t[256 + data[i + 6]] ^ t[data[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function loadNative(): Crc32c | undefined {
  try {
    const mod = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c: Crc32c };
    // Guard against a binding that loads but computes something else (check value of "123456789").
    return mod.crc32c(new TextEncoder().encode('123456789')) === 0xe3069283 ? mod.crc32c : undefined;
  } catch {
    return undefined;
  }
}

const native = loadNative();

/** Which implementation `crc32c` uses: 'native' (@node-rs/crc32), 'js', or one installed with
 * `useCrc32c` (the package's own addon installs 'addon': three interleaved SSE4.2 lanes). */
export let crc32cImplementation: string = native ? 'native' : 'js';

/** CRC32c of `data`; pass a previous result as `initial` to continue over data split in pieces. */
export let crc32c: Crc32c = native ?? crc32cJs;

/**
 * Installs a faster CRC32c for every codec here (framing itself loads nothing else). It is
 * checked first against the check value and the JS implementation, split and whole; a function
 * that disagrees is refused (returns false) and the current one stays.
 */
export function useCrc32c(fn: Crc32c, name: string): boolean {
  const check = new TextEncoder().encode('123456789');
  const sample = new Uint8Array(20_000).map((_, i) => (i * 131 + 17) & 0xff);
  const ok = fn(check) === 0xe3069283 && fn(sample) === crc32cJs(sample) &&
    fn(sample.subarray(7_000), fn(sample.subarray(0, 7_000))) === crc32cJs(sample);
  if (ok) {
    crc32c = fn;
    crc32cImplementation = name;
  }
  return ok;
}
