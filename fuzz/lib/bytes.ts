// A small cursor over a fuzz input: targets that need several values (a sequence of fragments,
// a choice of options) take them from the front of the input, the rest is payload.
export class Cursor {
  at = 0;
  constructor(readonly data: Uint8Array) {}

  get left(): number {
    return this.data.length - this.at;
  }

  u8(): number {
    return this.at < this.data.length ? this.data[this.at++]! : 0;
  }

  u16(): number {
    return this.u8() | (this.u8() << 8);
  }

  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }

  /** Up to n bytes (fewer at the end of the input); a view. */
  take(n: number): Uint8Array {
    const end = Math.min(this.data.length, this.at + n);
    const out = this.data.subarray(this.at, end);
    this.at = end;
    return out;
  }

  rest(): Uint8Array {
    return this.take(this.left);
  }
}

/** Concatenates byte arrays into one new Uint8Array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
