// `smbdirect/smb2`: the SMB2/3 layer on the transport (DESIGN.md's settled names). Built so far:
// the server's front door (NEGOTIATE, SESSION_SETUP with NTLMv2 and signing, TREE_CONNECT, ECHO,
// LOGOFF) over direct TCP and SMB Direct; the file commands and the client follow
// (docs/smb2/README.md).
export { createServer, Smb2Server, type Smb2ServerOptions, type Smb2ListenOptions, type Smb2Share } from './server.js';
export { Smb2Error } from './errors.js';
export * as NTSTATUS from '../../framing/smb2/ntstatus.js';
