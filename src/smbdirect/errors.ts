// Errors of the SMB Direct connection (src/smbdirect/). Codes are stable; docs/errors.md lists
// them (a test keeps the table and this list in step). Malformed messages from the peer surface
// as framing's SmbDirectProtocolError, and provider failures as RdmaError, with their own codes.
export const CONNECTION_ERROR_CODES = {
  ERR_SMBD_NEGOTIATE_TIMEOUT: 'no negotiate request (acceptor, 5 s) or response (initiator, 120 s) in time',
  ERR_SMBD_NEGOTIATE_REFUSED: 'the acceptor answered STATUS_NOT_SUPPORTED: no SMB Direct version in common',
  ERR_SMBD_KEEPALIVE_TIMEOUT: 'no message within keepaliveTimeoutMs of a keepalive that asked for a response',
  ERR_SMBD_CREDIT_VIOLATION: 'the peer sent a message without holding a receive credit',
  ERR_SMBD_RECEIVE_TOO_LARGE: 'a received message is longer than the negotiated MaxReceiveSize',
  ERR_SMBD_BAD_INVALIDATE: 'the peer invalidated a token that is not a live registration of this connection',
  ERR_SMBD_TRANSPORT: 'a send, receive or RDMA operation completed with an error status (error.completionStatus)',
  ERR_SMBD_DISCONNECTED: 'the peer disconnected while work was pending',
  ERR_SMBD_CLOSED: 'the connection is closing or closed: no new work',
  ERR_SMBD_CLOSE_TIMEOUT: 'a graceful close did not drain queued work within closeTimeoutMs',
  ERR_SMBD_BAD_DESCRIPTORS: "descriptor list empty, with a zero-length entry or one running past 2^64, or covering fewer bytes than the transfer (the peer's fault: its SMB2 channel info)",
  ERR_SMBD_TRANSFER_SIZE: 'RDMA transfer of 0 bytes or more than the negotiated MaxReadWriteSize',
  ERR_SMBD_INVALID_ARGUMENT: 'an option or argument is out of range (a caller mistake, not a peer one)',
  ERR_SMBD_RESOURCE_LIMIT: 'a limit refused the work: maxConnections or maxNegotiating (the connection is rejected), maxRegisteredBytes or the process-wide registered memory limit',
  ERR_SMBD_SETUP_FAILED: 'the provider could not set up a connection request (a queue pair it could not create, say); the server keeps serving',
} as const;

export type ConnectionErrorCode = keyof typeof CONNECTION_ERROR_CODES;

export class SmbDirectError extends Error {
  readonly code: ConnectionErrorCode;
  /** The failed work completion's status for ERR_SMBD_TRANSPORT (e.g. 'remote-access'). */
  readonly completionStatus?: string;

  constructor(code: ConnectionErrorCode, message: string, options?: { cause?: unknown; completionStatus?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SmbDirectError';
    this.code = code;
    if (options?.completionStatus !== undefined) this.completionStatus = options.completionStatus;
  }

  /** @deprecated The completion status: read `completionStatus`. In every other error family (and
   * the SMB2 layer's) `status` is an NTSTATUS number; this string alias goes in the next major. */
  get status(): string | undefined {
    return this.completionStatus;
  }
}
