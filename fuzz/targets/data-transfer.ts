// decodeDataTransfer ([MS-SMBD] 2.2.3, the per-message checks of 3.1.5.8) and the header writer.
// What decodes must be self-consistent (data is a view inside the message, offsets aligned and in
// bounds), and encoding the decoded fields must decode to the same fields and bytes.
import { DATA_TRANSFER_DATA_OFFSET, decodeDataTransfer, encodeDataTransfer } from '../../framing/data-transfer.js';
import { equalBytes } from '../lib/bytes.js';
import { check, decode, within } from '../lib/oracle.js';

export function fuzz(data: Buffer): void {
  const m = decode('decodeDataTransfer', () => decodeDataTransfer(data));
  if (!m) return;
  check(m.creditsRequested > 0, 'accepted CreditsRequested 0');
  check(m.dataOffset % 8 === 0 && (m.dataLength === 0 || m.dataOffset >= DATA_TRANSFER_DATA_OFFSET), `accepted DataOffset ${m.dataOffset}`);
  check(m.dataOffset + m.dataLength <= data.length, 'data runs past the message');
  check(m.data.length === m.dataLength && within(m.data, data), 'data is not a view of DataLength bytes inside the message');
  check(m.data.byteOffset - data.byteOffset === m.dataOffset, 'data does not start at DataOffset');
  const wire = encodeDataTransfer({
    creditsRequested: m.creditsRequested, creditsGranted: m.creditsGranted, flags: m.flags,
    remainingDataLength: m.remainingDataLength, data: m.data,
  });
  const again = decode('decodeDataTransfer(encodeDataTransfer(...))', () => decodeDataTransfer(wire));
  check(again, 'the encoding of an accepted message is refused');
  check(again.creditsRequested === m.creditsRequested && again.creditsGranted === m.creditsGranted && again.flags === m.flags &&
    again.remainingDataLength === m.remainingDataLength && again.dataLength === m.dataLength && equalBytes(again.data, m.data),
  'fields do not survive encode + decode');
}
