// Smb2Error (DESIGN.md's settled name): an SMB2 failure with the NTSTATUS as `status` and a
// Node-style `code` (ENOENT, EACCES, ...) where one fits, else the status name.
import { NTSTATUS_NAMES, STATUS_ACCESS_DENIED, STATUS_BAD_NETWORK_NAME, STATUS_DIRECTORY_NOT_EMPTY, STATUS_FILE_IS_A_DIRECTORY, STATUS_LOGON_FAILURE,
  STATUS_NOT_A_DIRECTORY, STATUS_NOT_SUPPORTED, STATUS_NO_SUCH_FILE, STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND,
  STATUS_OBJECT_PATH_NOT_FOUND, STATUS_SHARING_VIOLATION, STATUS_DISK_FULL, STATUS_INVALID_PARAMETER, ntstatusName } from '../../framing/smb2/ntstatus.js';

/** Node-style codes for the statuses a file API meets. */
const NODE_CODES: Readonly<Record<number, string>> = Object.freeze({
  [STATUS_OBJECT_NAME_NOT_FOUND]: 'ENOENT', [STATUS_OBJECT_PATH_NOT_FOUND]: 'ENOENT', [STATUS_NO_SUCH_FILE]: 'ENOENT',
  [STATUS_OBJECT_NAME_COLLISION]: 'EEXIST', [STATUS_ACCESS_DENIED]: 'EACCES', [STATUS_LOGON_FAILURE]: 'EACCES',
  [STATUS_FILE_IS_A_DIRECTORY]: 'EISDIR', [STATUS_NOT_A_DIRECTORY]: 'ENOTDIR', [STATUS_DIRECTORY_NOT_EMPTY]: 'ENOTEMPTY',
  [STATUS_SHARING_VIOLATION]: 'EBUSY', [STATUS_DISK_FULL]: 'ENOSPC', [STATUS_INVALID_PARAMETER]: 'EINVAL',
  [STATUS_NOT_SUPPORTED]: 'ENOTSUP', [STATUS_BAD_NETWORK_NAME]: 'ENOENT',
});

export class Smb2Error extends Error {
  /** The NTSTATUS. */
  readonly status: number;
  /** A Node-style code where one fits (ENOENT, EACCES, ...), else the status's name. */
  readonly code: string;

  constructor(status: number, message?: string, options?: { cause?: unknown }) {
    super(message ?? ntstatusName(status), options);
    this.name = 'Smb2Error';
    this.status = status >>> 0;
    this.code = NODE_CODES[this.status] ?? NTSTATUS_NAMES[this.status] ?? `NTSTATUS_0x${this.status.toString(16).padStart(8, '0')}`;
  }
}
