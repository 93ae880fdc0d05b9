// The SMB Direct credit ledger ([MS-SMBD] 3.1.1.1, 3.1.5.1, 3.1.5.8, 3.1.5.9): every count the
// two credit flows need, and every rule that changes them, in one place the connection asks. No
// I/O: the connection posts and sends, the ledger says what may go and what a header carries.
// docs/smbdirect/credits.md has the why (the Linux peers' history included).
import { SmbDirectError } from './errors.js';

/** The smallest credit target: with 1 or 2 every message leaves its sender at the floor and the
 * two sides would answer each other's empty messages forever (credits.md). */
export const MIN_CREDIT_TARGET = 3;

export class CreditLedger {
  /** Send credits: messages we may send, granted by the peer and not yet used. */
  send = 0;
  /** Receive credits the peer holds: granted by us, not yet used by a message. */
  granted = 0;
  /** What the peer asks to hold (its CreditsRequested), clamped to [MIN_CREDIT_TARGET, max]. */
  target = 1;
  /** Receives posted and not yet completed. */
  posted = 0;

  /** `max`: our credits option, the most the peer may hold and the most we ask for. */
  constructor(readonly max: number) {}

  /** Credits we may grant with the next message: posted but not yet granted, up to the target. */
  grantable(): number {
    return Math.max(0, Math.min(this.posted - this.granted, this.target - this.granted));
  }

  /** A message may use a credit when we hold one; the last only on a message that grants credits
   * back (3.1.5.1), else both sides could end up with none. */
  canSend(grant: number): boolean {
    return this.send > 0 && (this.send > 1 || grant > 0);
  }

  /** The peer asked to hold `requested` (negotiation, or any data transfer header). */
  peerRequested(requested: number): void {
    this.target = Math.max(MIN_CREDIT_TARGET, Math.min(requested, this.max));
  }

  /** The peer granted `credits` (a header's CreditsGranted); a count past 0xffff is held at it. */
  peerGranted(credits: number): void {
    this.send = Math.min(this.send + credits, 0xffff);
  }

  /** A message arrived: it used one of the credits the peer holds (3.1.5.8). */
  received(): void {
    if (this.granted <= 0) {
      throw new SmbDirectError('ERR_SMBD_CREDIT_VIOLATION', 'the peer sent a message without a receive credit ([MS-SMBD] 3.1.5.8)');
    }
    this.granted--;
  }

  /** A message goes out using one send credit and granting `grant` (from grantable()). */
  spend(grant: number): void {
    this.granted += grant;
    this.send--;
  }

  /** Whether the peer is low enough that an empty message should refill it: down to a quarter of
   * its target (or to one credit) with credits to give. Refills come in bulk, so a refill leaves
   * the peer far above this and an empty message never answers an empty message. */
  lowOnCredits(grant: number): boolean {
    return grant > 0 && this.granted <= Math.max(1, this.target >> 2);
  }
}
