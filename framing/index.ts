// smbdirect/framing: pure codecs for SMB Direct ([MS-SMBD]), the SMB2 READ/WRITE RDMA channel
// fields, MPA (RFC 5044/6581) and DDP/RDMAP (RFC 5041/5040). No I/O, no timers.
export { ERROR_CODES, SmbDirectProtocolError, type SmbDirectErrorCode } from './errors.js';
export * from './negotiate.js';
export * from './data-transfer.js';
export * from './buffer-descriptor.js';
export * from './smb2-channel.js';
export * from './fragment.js';
export * from './mpa.js';
export * from './ddp.js';
export { crc32c, crc32cJs, crc32cImplementation, useCrc32c } from './crc32c.js';
export * as smb2 from './smb2/index.js';
