// The lines `smbdirect serve` prints per connection (main thread and workers alike).
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { describeError } from './args.js';

/** What was negotiated. */
export function describeConnection(conn: SmbDirectConnection): string {
  const n = conn.negotiated;
  const s = conn.stats();
  return n
    ? `MaxSendSize ${n.maxSendSize}, MaxReceiveSize ${n.maxReceiveSize}, MaxFragmentedSize ${n.maxFragmentedSendSize}/${n.maxFragmentedReceiveSize}, MaxReadWriteSize ${n.maxReadWriteSize}, credits ${s.receiveCreditTarget} offered / ${n.peerCreditsRequested} requested`
    : 'not negotiated';
}

/** What it carried, and how it ended. */
export function describeClose(conn: SmbDirectConnection, started: number, err?: Error): string {
  const s = conn.stats();
  return `closed after ${((Date.now() - started) / 1000).toFixed(1)} s: ${s.messagesReceived} messages in, ${s.messagesSent} out, ${s.rdmaWrites} RDMA writes, ${s.rdmaReads} RDMA reads${err ? `; ${describeError(err)}` : ''}`;
}
