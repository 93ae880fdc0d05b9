// SMB2/3 wire codecs ([MS-SMB2]): pure, every malformed input a typed error (SmbDirectProtocolError
// with an ERR_SMB2_* code and, where a server answers it, the NTSTATUS as `status`). Exported from
// `smbdirect/framing` as the `smb2` namespace. What is built so far: docs/smb2/README.md.
export * from './header.js';
export * from './negotiate.js';
export * from './session.js';
export * from './tree.js';
export * from './ioctl.js';
export * from './create.js';
export * from './file.js';
export * from './lock.js';
export * from './security.js';
export * from './fscc.js';
export * from './ntstatus.js';
export * from './ntlmssp.js';
export * from './spnego.js';
export * from './transform.js';
export * from './oplock.js';
