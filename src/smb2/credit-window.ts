// The command sequence window of one connection ([MS-SMB2] 3.3.1.1, 3.3.5.2.3): the MessageIds the
// client may use are the ones the server granted as credits and that no request has used yet. A
// request consumes CreditCharge of them (at least one) starting at its MessageId; one outside the
// window, or used twice, ends the connection. Each response grants what its request asked for (at
// least one), as long as the window (lowest unused id to highest granted) stays within MAX_CREDITS:
// a skipped MessageId keeps the window from sliding, so a client cannot make the server remember
// an unbounded set of ids.

/** The most MessageIds a client may hold at once (Windows Server 2016's default; Samba's too). */
export const MAX_CREDITS = 8192;

export class CreditWindow {
  /** The lowest MessageId not used yet. */
  #low = 0n;
  /** One past the highest MessageId granted (the first NEGOTIATE's id 0 is granted implicitly). */
  #high = 1n;
  /** Ids in (low, high) used already (out of order). */
  readonly #used = new Set<bigint>();

  /** Consumes [messageId, messageId + charge): false if any of them is not granted or was used. */
  consume(messageId: bigint, charge: number): boolean {
    const n = BigInt(Math.max(1, charge));
    if (messageId < this.#low || messageId + n > this.#high) return false;
    for (let id = messageId; id < messageId + n; id++) if (this.#used.has(id)) return false;
    for (let id = messageId; id < messageId + n; id++) this.#used.add(id);
    while (this.#used.delete(this.#low)) this.#low++;
    return true;
  }

  /** Credits a response grants to a request that asked for `requested`: at least one, at most what
   * keeps the window within MAX_CREDITS (a full window holds an unused id, so the client keeps one). */
  grant(requested: number): number {
    const room = MAX_CREDITS - Number(this.#high - this.#low);
    const g = Math.max(0, Math.min(Math.max(1, requested), room));
    this.#high += BigInt(g);
    return g;
  }

  /** Credits the client holds now (granted, not used). */
  get outstanding(): number {
    return Number(this.#high - this.#low) - this.#used.size;
  }
}
