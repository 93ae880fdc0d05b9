// decodeBufferDescriptors ([MS-SMBD] 2.2.3.1): every bit of a descriptor is a field, so what
// decodes must encode back to exactly the input bytes.
import { decodeBufferDescriptors, encodeBufferDescriptors } from '../../framing/buffer-descriptor.js';
import { equalBytes } from '../lib/bytes.js';
import { check, decode } from '../lib/oracle.js';

export function fuzz(data: Buffer): void {
  const list = decode('decodeBufferDescriptors', () => decodeBufferDescriptors(data));
  if (!list) return;
  check(list.length > 0 && list.length * 16 === data.length, 'descriptor count does not match the byte count');
  check(equalBytes(encodeBufferDescriptors(list), data), 'descriptors do not encode back to their bytes');
}
