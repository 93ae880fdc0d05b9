// Splitting an upper-layer message into data transfer payloads, and putting it back together
// under the rules of [MS-SMBD] 3.1.5.8.
import { DATA_TRANSFER_DATA_OFFSET, type DataTransfer } from './data-transfer.js';
import { fail } from './errors.js';
import { MIN_RECEIVE_SIZE } from './negotiate.js';

const U32_MAX = 0xffffffff;

export interface Fragment {
  remainingDataLength: number;
  /** A view into the message given to split() / at(): no bytes are copied. */
  data: Uint8Array;
}

export class Fragmenter {
  /** Payload bytes per fragment: MaxSendSize minus the 24-byte header. */
  readonly maxPayload: number;
  readonly maxMessageSize: number;

  /**
   * @param maxSendSize the negotiated MaxSendSize (>= 128)
   * @param maxFragmentedSize the peer's MaxFragmentedSize; longer messages are refused
   */
  constructor(maxSendSize: number, maxFragmentedSize = U32_MAX) {
    if (!Number.isInteger(maxSendSize) || maxSendSize < MIN_RECEIVE_SIZE || maxSendSize > U32_MAX) {
      fail('ERR_FRAMING_INVALID_ARGUMENT', `maxSendSize must be an integer in [${MIN_RECEIVE_SIZE}, 2^32 - 1], got ${maxSendSize}`);
    }
    if (!Number.isInteger(maxFragmentedSize) || maxFragmentedSize < 1 || maxFragmentedSize > U32_MAX) {
      fail('ERR_FRAMING_INVALID_ARGUMENT', `maxFragmentedSize must be an integer in [1, 2^32 - 1], got ${maxFragmentedSize}`);
    }
    this.maxPayload = maxSendSize - DATA_TRANSFER_DATA_OFFSET;
    this.maxMessageSize = maxFragmentedSize;
  }

  /** Fragments of `message` in send order; RemainingDataLength strictly decreases to 0. */
  split(message: Uint8Array): Fragment[] {
    const n = this.count(message.length);
    const out: Fragment[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.at(message, i);
    return out;
  }

  /** How many fragments a message of `length` bytes takes (refused as split() refuses it). */
  count(length: number): number {
    if (length === 0) fail('ERR_SMBD_EMPTY_MESSAGE', 'cannot send an empty upper-layer message');
    if (length > this.maxMessageSize) {
      fail('ERR_SMBD_MESSAGE_TOO_LARGE', `message of ${length} bytes exceeds MaxFragmentedSize ${this.maxMessageSize}`);
    }
    return Math.ceil(length / this.maxPayload);
  }

  /** Fragment `i` of `message` (0 <= i < count(message.length)), made when it is sent: a sender
   * that waits for credits between fragments holds no array of them. */
  at(message: Uint8Array, i: number): Fragment {
    const start = i * this.maxPayload;
    if (!Number.isInteger(i) || i < 0 || start >= message.length) {
      fail('ERR_FRAMING_INVALID_ARGUMENT', `fragment ${i} of a ${message.length}-byte message (${Math.ceil(message.length / this.maxPayload)} fragments)`);
    }
    const end = Math.min(start + this.maxPayload, message.length);
    return { remainingDataLength: message.length - end, data: message.subarray(start, end) };
  }
}

type Received = Pick<DataTransfer, 'remainingDataLength' | 'dataLength' | 'data'>;

/**
 * The [MS-SMBD] 3.1.5.8 fragment-sequence rules alone, with no buffer: `due` is what the message in
 * progress still announces (0: none in progress). Returns what is due after this fragment; throws
 * the typed error on a violation. A receiver that holds fragments before reassembling them (a
 * paused connection) checks each where it enters with this; Reassembler.push applies the same.
 */
export function nextFragmentDue(due: number, dataLength: number, remainingDataLength: number, maxFragmentedSize: number): number {
  if (dataLength + remainingDataLength > maxFragmentedSize) {
    fail('ERR_SMBD_FRAGMENT_OVERRUN', `DataLength ${dataLength} + RemainingDataLength ${remainingDataLength} exceeds MaxFragmentedSize ${maxFragmentedSize} ([MS-SMBD] 3.1.5.8)`);
  }
  if (due === 0) {
    if (dataLength === 0 && remainingDataLength !== 0) {
      fail('ERR_SMBD_FRAGMENT_MISMATCH', `a message cannot start with an empty fragment announcing ${remainingDataLength} more bytes`);
    }
    return remainingDataLength;
  }
  if (dataLength === 0 && remainingDataLength === 0) return due; // a credit grant in between
  if (due - dataLength !== remainingDataLength) {
    fail('ERR_SMBD_FRAGMENT_MISMATCH', `${due} bytes were still due; a fragment of ${dataLength} leaves ${due - dataLength}, not ${remainingDataLength} ([MS-SMBD] 3.1.5.8)`);
  }
  return remainingDataLength;
}

/** The first allocation of a message being reassembled: the whole of it only once this much has
 * arrived, so a peer announcing a large message in a small fragment does not make us reserve it. */
export const REASSEMBLY_FIRST_ALLOCATION = 64 * 1024;

export class Reassembler {
  readonly maxFragmentedSize: number;
  #buffer: Uint8Array | undefined;
  #filled = 0;
  #remaining = 0;

  constructor(maxFragmentedSize: number) {
    if (!Number.isInteger(maxFragmentedSize) || maxFragmentedSize < 1 || maxFragmentedSize > U32_MAX) {
      fail('ERR_FRAMING_INVALID_ARGUMENT', `maxFragmentedSize must be an integer in [1, 2^32 - 1], got ${maxFragmentedSize}`);
    }
    this.maxFragmentedSize = maxFragmentedSize;
  }

  /** True while a message is partly received. */
  get pending(): boolean {
    return this.#buffer !== undefined;
  }

  /** Bytes of the pending message received so far. */
  get receivedLength(): number {
    return this.#filled;
  }

  /** Bytes allocated for the pending message: 64 KiB until that much arrived, then all of it. */
  get allocatedLength(): number {
    return this.#buffer?.length ?? 0;
  }

  /**
   * Feeds one decoded data transfer message. Returns the whole upper-layer message when its last
   * fragment arrives, else undefined (also for messages with no data, e.g. credit grants).
   * A message that arrives in one fragment is returned as `m.data` itself, a view into the
   * receive buffer: copy it before that buffer is reused. Reassembled messages are new memory.
   * An empty message (DataLength and RemainingDataLength 0: a credit grant or keepalive) between
   * two fragments of a message carries nothing and is passed over, as the Linux peers do; Linux
   * before its 2025 fixes sends one there. Memory grows with what arrives: 64 KiB at first, the
   * whole announced length once that is full.
   * Throws on any 3.1.5.8 violation; the connection must then be terminated.
   */
  push(m: Received): Uint8Array | undefined {
    const { dataLength, remainingDataLength } = m;
    if (m.data.length !== dataLength) {
      fail('ERR_FRAMING_INVALID_ARGUMENT', `data holds ${m.data.length} bytes but dataLength says ${dataLength}`);
    }
    try {
      nextFragmentDue(this.#remaining, dataLength, remainingDataLength, this.maxFragmentedSize);
    } catch (err) {
      this.reset();
      throw err;
    }
    const buffer = this.#buffer;
    if (buffer === undefined) {
      if (dataLength === 0) return undefined; // a credit grant or keepalive
      if (remainingDataLength === 0) return m.data;
      const total = dataLength + remainingDataLength;
      const first = Buffer.allocUnsafeSlow(total <= REASSEMBLY_FIRST_ALLOCATION ? total : Math.max(REASSEMBLY_FIRST_ALLOCATION, dataLength));
      first.set(m.data, 0);
      this.#buffer = first;
      this.#filled = dataLength;
      this.#remaining = remainingDataLength;
      return undefined;
    }
    if (dataLength === 0 && remainingDataLength === 0) return undefined; // a credit grant in between
    let target = buffer;
    if (this.#filled + dataLength > buffer.length) {
      // the peer has sent 64 KiB of it: now the whole message
      target = Buffer.allocUnsafeSlow(this.#filled + this.#remaining);
      target.set(buffer.subarray(0, this.#filled), 0);
      this.#buffer = target;
    }
    target.set(m.data, this.#filled);
    this.#filled += dataLength;
    this.#remaining = remainingDataLength;
    if (remainingDataLength !== 0) return undefined;
    this.reset();
    return target;
  }

  /** Drops a partly received message. */
  reset(): void {
    this.#buffer = undefined;
    this.#filled = 0;
    this.#remaining = 0;
  }
}
