// decodeReadRequest and decodeTerminate (RFC 5040 4.4 / 4.8, siw's Terminate layout) on the raw
// bytes. A Read Request is all fields, so it must encode back to exactly its bytes; a Terminate
// must survive encodeTerminate + decodeTerminate with the same fields and views inside the input.
import { decodeReadRequest, decodeTerminate, encodeReadRequest, encodeTerminate } from '../../framing/ddp.js';
import { equalBytes } from '../lib/bytes.js';
import { check, decode, within } from '../lib/oracle.js';

const fields = (t: ReturnType<typeof decodeTerminate>) => JSON.stringify({ ...t, ddpHeader: t.ddpHeader && [...t.ddpHeader], rdmaHeader: t.rdmaHeader && [...t.rdmaHeader] });

export function fuzz(data: Buffer): void {
  const rr = decode('decodeReadRequest', () => decodeReadRequest(data));
  if (rr) check(equalBytes(encodeReadRequest(rr), data), 'Read Request does not encode back to its bytes');
  const t = decode('decodeTerminate', () => decodeTerminate(data));
  if (!t) return;
  check(t.layer <= 15 && t.etype <= 15 && t.errorCode <= 255, 'Terminate fields out of range');
  if (t.ddpHeader) check(within(t.ddpHeader, data) && (t.ddpHeader.length === 14 || t.ddpHeader.length === 18), 'DDP header is not a 14/18-byte view');
  if (t.rdmaHeader) check(within(t.rdmaHeader, data) && t.rdmaHeader.length === 28, 'RDMA header is not a 28-byte view');
  const again = decode('decodeTerminate(encodeTerminate(...))', () => decodeTerminate(encodeTerminate(t)));
  check(again && fields(again) === fields(t), 'Terminate does not survive encode + decode');
}
