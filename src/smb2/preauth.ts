// SMB 3.1.1 preauth integrity ([MS-SMB2] 3.2.5.2, 3.3.5.4, 3.3.5.5): a SHA-512 chain over the
// NEGOTIATE request and response (the connection's value), continued per session over each
// SESSION_SETUP request and response but the final successful one. The session's signing key is
// derived from its value (signing.ts), so a tampered NEGOTIATE or SESSION_SETUP breaks signing.
import { createHash } from 'node:crypto';

export class PreauthIntegrity {
  #value: Uint8Array;

  constructor(from?: Uint8Array) {
    this.#value = from ? Uint8Array.from(from) : new Uint8Array(64);
  }

  /** H = SHA-512(H || message). */
  update(message: Uint8Array): this {
    this.#value = new Uint8Array(createHash('sha512').update(this.#value).update(message).digest());
    return this;
  }

  /** The current hash (a copy). */
  get value(): Uint8Array {
    return Uint8Array.from(this.#value);
  }

  /** A session's chain starts from the connection's value. */
  fork(): PreauthIntegrity {
    return new PreauthIntegrity(this.#value);
  }
}
