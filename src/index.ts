// smbdirect: the public API file servers and clients consume, plus the wire codecs.
export * as framing from '../framing/index.js';
export { SmbDirectProtocolError, ERROR_CODES, type SmbDirectErrorCode } from '../framing/index.js';
export {
  SmbDirectConnection, type ConnectionState, type ConnectionStats, type Negotiated, type PlacementAccess, type PlacementOptions,
  type Registration, type Role, type SendOptions,
} from './smbdirect/connection.js';
export { CONNECTION_ERROR_CODES, SmbDirectError, type ConnectionErrorCode } from './smbdirect/errors.js';
export type { HistogramSummary } from './smbdirect/histogram.js';
export { DEFAULTS, MAX_PREFERRED_SEND_SIZE, type SmbDirectOptions } from './smbdirect/options.js';
export { registeredMemory, setRegisteredMemoryLimit } from './smbdirect/limits.js';
export {
  SERVER_DEFAULTS, SMB_DIRECT_IWARP_PORT, SMB_DIRECT_PORT, SmbDirectServer, connect, createServer, type ConnectOptions, type ProviderChoice,
  type ServerOptions,
} from './smbdirect/server.js';
export { SmbDirectStream } from './smbdirect/stream.js';
