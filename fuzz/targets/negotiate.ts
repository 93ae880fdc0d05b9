// decodeNegotiateRequest and decodeNegotiateResponse ([MS-SMBD] 2.2.1/2.2.2, 3.1.5.6/3.1.5.7) on the
// same bytes. The response is decoded without and with the request we "sent" (its MaxReceiveSize
// taken from the bytes after the 32-byte response, when there are 4). What decodes must obey the
// rules the decoder checks, and encode + decode must give the same fields back.
import {
  MIN_FRAGMENTED_SIZE, MIN_RECEIVE_SIZE, SMBD_VERSION_1, decodeNegotiateRequest, decodeNegotiateResponse,
  encodeNegotiateRequest, encodeNegotiateResponse,
} from '../../framing/negotiate.js';
import { check, decode } from '../lib/oracle.js';

export function fuzz(data: Buffer): void {
  const req = decode('decodeNegotiateRequest', () => decodeNegotiateRequest(data));
  if (req) {
    check(req.minVersion <= SMBD_VERSION_1 && req.maxVersion >= SMBD_VERSION_1, 'request accepted without version 0x0100 in its range');
    check(req.creditsRequested > 0, 'request accepted with 0 credits');
    check(req.maxReceiveSize >= MIN_RECEIVE_SIZE && req.maxFragmentedSize >= MIN_FRAGMENTED_SIZE, 'request accepted with sizes below the minimum');
    const again = decode('decodeNegotiateRequest(encodeNegotiateRequest(...))', () => decodeNegotiateRequest(encodeNegotiateRequest(req)));
    check(again && JSON.stringify(again) === JSON.stringify(req), 'request does not survive encode + decode');
  }
  const sent = data.length >= 36 ? { maxReceiveSize: data.readUInt32LE(32) } : undefined;
  for (const s of sent ? [undefined, sent] : [undefined]) {
    const res = decode('decodeNegotiateResponse', () => decodeNegotiateResponse(data, s));
    if (!res) continue;
    check(res.status === 0 && res.negotiatedVersion === SMBD_VERSION_1, 'response accepted with a failure status or another version');
    check(res.creditsRequested > 0 && res.creditsGranted > 0, 'response accepted with 0 credits');
    check(res.maxReceiveSize >= MIN_RECEIVE_SIZE && res.maxFragmentedSize >= MIN_FRAGMENTED_SIZE, 'response accepted with sizes below the minimum');
    check(!s || res.preferredSendSize <= s.maxReceiveSize, 'response accepted with PreferredSendSize above our MaxReceiveSize');
    const again = decode('decodeNegotiateResponse(encodeNegotiateResponse(...))', () => decodeNegotiateResponse(encodeNegotiateResponse(res), s));
    check(again && JSON.stringify(again) === JSON.stringify(res), 'response does not survive encode + decode');
  }
}
