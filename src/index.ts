// smbdirect: the public API. The connection and server APIs arrive with later layers; until then
// the root re-exports the wire codecs and their error class.
export * as framing from '../framing/index.js';
export { SmbDirectProtocolError, ERROR_CODES, type SmbDirectErrorCode } from '../framing/index.js';
