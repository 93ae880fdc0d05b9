// MD4 (RFC 1320) and RC4, which NTLM needs and Node's OpenSSL 3 keeps in its legacy provider
// (`createHash('md4')` and the 'rc4' cipher throw there). Small, allocation-lean, and only for
// NTLM: the NT hash of a password (MD4) and the exported session key under KEY_EXCH (RC4).

const S = [3, 7, 11, 19, 3, 5, 9, 13, 3, 9, 11, 15];

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/** MD4 of `data` (16 bytes). */
export function md4(data: Uint8Array): Uint8Array {
  const bitLength = data.length * 8;
  const padded = new Uint8Array(((data.length + 8) >> 6) * 64 + 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, bitLength >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bitLength / 2 ** 32), true);
  let a = 0x67452301, b = 0xefcdab89, c = 0x98badcfe, d = 0x10325476;
  const x = new Uint32Array(16);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) x[i] = view.getUint32(off + 4 * i, true);
    const [aa, bb, cc, dd] = [a, b, c, d];
    // round 1: F(x, y, z) = (x & y) | (~x & z)
    for (let i = 0; i < 16; i++) {
      const t = (a + ((b & c) | (~b & d)) + x[i]!) | 0;
      [a, b, c, d] = [d, rotl(t, S[i % 4]!), b, c];
    }
    // round 2: G = (x & y) | (x & z) | (y & z), words in column order, + 0x5A827999
    for (let i = 0; i < 16; i++) {
      const k = (i % 4) * 4 + (i >> 2);
      const t = (a + ((b & c) | (b & d) | (c & d)) + x[k]! + 0x5a827999) | 0;
      [a, b, c, d] = [d, rotl(t, S[4 + (i % 4)]!), b, c];
    }
    // round 3: H = x ^ y ^ z, words in bit-reversed order, + 0x6ED9EBA1
    const order = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
    for (let i = 0; i < 16; i++) {
      const t = (a + (b ^ c ^ d) + x[order[i]!]! + 0x6ed9eba1) | 0;
      [a, b, c, d] = [d, rotl(t, S[8 + (i % 4)]!), b, c];
    }
    a = (a + aa) | 0; b = (b + bb) | 0; c = (c + cc) | 0; d = (d + dd) | 0;
  }
  const out = new Uint8Array(16);
  const ov = new DataView(out.buffer);
  ov.setUint32(0, a >>> 0, true); ov.setUint32(4, b >>> 0, true); ov.setUint32(8, c >>> 0, true); ov.setUint32(12, d >>> 0, true);
  return out;
}

/** RC4 of `data` under `key` (a new keystream each call: NTLM uses it once per session key). */
export function rc4(key: Uint8Array, data: Uint8Array): Uint8Array {
  const s = new Uint8Array(256);
  for (let i = 0; i < 256; i++) s[i] = i;
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
  const out = new Uint8Array(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 0xff;
    j = (j + s[i]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
    out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 0xff]!;
  }
  return out;
}
