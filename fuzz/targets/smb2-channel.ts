// decodeSmb2ReadWriteChannel ([MS-SMB2] 2.2.19 / 2.2.21 channel fields): what decodes must obey
// the rules checked (descriptors non-zero and covering the transfer), and the fields must survive
// encodeSmb2ReadWriteChannel + decode.
import {
  SMB2_CHANNEL_NONE, SMB2_CHANNEL_RDMA_V1, SMB2_CHANNEL_RDMA_V1_INVALIDATE, decodeSmb2ReadWriteChannel,
  encodeSmb2ReadWriteChannel,
} from '../../framing/smb2-channel.js';
import { check, decode } from '../lib/oracle.js';

const fields = (c: ReturnType<typeof decodeSmb2ReadWriteChannel>) => JSON.stringify(c, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));

export function fuzz(data: Buffer): void {
  const c = decode('decodeSmb2ReadWriteChannel', () => decodeSmb2ReadWriteChannel(data));
  if (!c) return;
  check(c.channel === SMB2_CHANNEL_NONE || c.channel === SMB2_CHANNEL_RDMA_V1 || c.channel === SMB2_CHANNEL_RDMA_V1_INVALIDATE, `accepted channel ${c.channel}`);
  if (c.channel === SMB2_CHANNEL_NONE) {
    check(c.descriptors.length === 0, 'descriptors without an RDMA channel');
  } else {
    const transfer = c.command === 'read' ? c.length : c.remainingBytes;
    const covered = c.descriptors.reduce((s, d) => s + d.length, 0);
    check(transfer > 0 && c.descriptors.length > 0 && c.descriptors.every((d) => d.length > 0), 'an empty transfer or descriptor was accepted');
    check(covered >= transfer, `descriptors cover ${covered} bytes, the transfer is ${transfer}`);
    check(c.command === 'read' || c.length === 0, 'WRITE over RDMA accepted with an inline Length');
  }
  const again = decode('decodeSmb2ReadWriteChannel(encodeSmb2ReadWriteChannel(...))', () => decodeSmb2ReadWriteChannel(encodeSmb2ReadWriteChannel(c)));
  check(again && fields(again) === fields(c), 'channel fields do not survive encode + decode');
}
