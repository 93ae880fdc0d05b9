// `smbdirect/smb2`: the SMB2/3 layer on the transport (DESIGN.md's settled names): the file server
// (`createServer`) and the client (`connect`), over direct TCP and SMB Direct (docs/smb2/README.md).
export { createServer, Smb2Server, type Smb2ServerOptions, type Smb2ListenOptions, type Smb2Share } from './server.js';
export { connect, Smb2Client, Smb2FileHandle, type Smb2ConnectOptions, type Smb2Stats, type Smb2Dirent } from './client.js';
export { Smb2Error } from './errors.js';
export * as NTSTATUS from '../../framing/smb2/ntstatus.js';
