/**
 * The one error class every codec in framing/ throws. Each rule has a stable `code`;
 * docs/errors.md lists them all (a test keeps that table and this list in step).
 */
export const ERROR_CODES = {
  // [MS-SMBD] messages
  ERR_SMBD_SHORT_MESSAGE: 'message shorter than its fixed header (20 / 32 bytes)',
  ERR_SMBD_NO_COMMON_VERSION: 'negotiate request offers no version in common; the acceptor answers STATUS_NOT_SUPPORTED',
  ERR_SMBD_BAD_NEGOTIATED_VERSION: 'negotiate response names a version other than 0x0100',
  ERR_SMBD_NEGOTIATE_FAILED: 'negotiate response carries a failure Status (error.status)',
  ERR_SMBD_ZERO_CREDITS_REQUESTED: 'CreditsRequested is 0',
  ERR_SMBD_ZERO_CREDITS_GRANTED: 'negotiate response grants 0 credits',
  ERR_SMBD_RECEIVE_SIZE_TOO_SMALL: 'MaxReceiveSize below 128',
  ERR_SMBD_FRAGMENTED_SIZE_TOO_SMALL: 'MaxFragmentedSize below 131072',
  ERR_SMBD_PREFERRED_SEND_SIZE_TOO_LARGE: "response PreferredSendSize exceeds the initiator's MaxReceiveSize",
  ERR_SMBD_BAD_DATA_OFFSET: 'DataOffset not 8-byte aligned, or inside the header while DataLength > 0',
  ERR_SMBD_DATA_OVERRUN: 'DataOffset + DataLength past the end of the received message',
  ERR_SMBD_FRAGMENT_OVERRUN: 'DataLength + RemainingDataLength exceeds MaxFragmentedSize',
  ERR_SMBD_FRAGMENT_MISMATCH: 'RemainingDataLength does not continue the message being reassembled',
  ERR_SMBD_EMPTY_MESSAGE: 'an upper-layer message must carry at least one byte',
  ERR_SMBD_MESSAGE_TOO_LARGE: 'message longer than MaxFragmentedSize (or 2^32 - 1)',
  ERR_SMBD_BAD_DESCRIPTOR_LIST: 'buffer descriptor list empty or not a multiple of 16 bytes',
  ERR_SMBD_DESCRIPTOR_OVERFLOW: 'a buffer descriptor whose Offset + Length runs past 2^64',
  // [MS-SMB2] READ / WRITE channel fields
  ERR_SMB2_SHORT_PDU: 'PDU shorter than the SMB2 header plus the READ/WRITE fixed part',
  ERR_SMB2_BAD_PROTOCOL_ID: 'ProtocolId is not 0xFE "SMB" or header StructureSize is not 64',
  ERR_SMB2_NOT_READ_WRITE: 'command is neither SMB2 READ (0x0008) nor SMB2 WRITE (0x0009)',
  ERR_SMB2_BAD_STRUCTURE_SIZE: 'READ/WRITE request StructureSize is not 49',
  ERR_SMB2_BAD_NEXT_COMMAND: 'NextCommand points past the PDU or inside the fixed part',
  ERR_SMB2_BAD_CHANNEL: 'Channel is not one of NONE, RDMA_V1, RDMA_V1_INVALIDATE, RDMA_TRANSFORM',
  ERR_SMB2_UNSUPPORTED_CHANNEL: 'SMB2_CHANNEL_RDMA_TRANSFORM is not supported',
  ERR_SMB2_BAD_CHANNEL_INFO: 'channel info offset/length outside the PDU, inside the fixed part, or not 16-byte items',
  ERR_SMB2_ZERO_LENGTH_DESCRIPTOR: 'a buffer descriptor has Length 0',
  ERR_SMB2_ZERO_LENGTH_TRANSFER: 'RDMA transfer of 0 bytes',
  ERR_SMB2_DESCRIPTORS_TOO_SHORT: 'the descriptors cover fewer bytes than the transfer',
  ERR_SMB2_BAD_WRITE_LENGTH: 'WRITE over an RDMA channel must have Length 0 (bytes go in RemainingBytes)',
  // [MS-SMB2] messages (framing/smb2/); error.status is the NTSTATUS a server answers with
  ERR_SMB2_BAD_COMMAND: 'SMB2 header Command is not one of the 19 commands',
  ERR_SMB2_BAD_NEGOTIATE: 'NEGOTIATE request/response malformed: sizes, dialects, or negotiate contexts (offsets, lengths, duplicates, missing preauth)',
  ERR_SMB2_NEGOTIATE_FAILED: 'NEGOTIATE response carries a failure Status (error.status)',
  ERR_SMB2_BAD_TRANSFORM: 'TRANSFORM_HEADER malformed: Flags not 0x0001, or OriginalMessageSize not what follows the header (at least 64 bytes)',
  ERR_SMB2_BAD_REQUEST: 'an SMB2 request/response body malformed: wrong command or direction, StructureSize, too short, a buffer outside the PDU',
  ERR_SPNEGO_BAD_TOKEN: 'SPNEGO token malformed: a DER length past its container or indefinite, an unexpected tag, not SPNEGO, no mechTypes, too long',
  ERR_NTLM_BAD_MESSAGE: 'NTLMSSP message malformed: signature, type, a field outside the message, odd UTF-16, AV pairs without EOL, too long',
  // MPA (RFC 5044 / 6581)
  ERR_MPA_SHORT_FRAME: 'MPA request/reply shorter than its header plus PD_Length',
  ERR_MPA_BAD_KEY: 'MPA key is neither "MPA ID Req Frame" nor "MPA ID Rep Frame" (or not the one expected)',
  ERR_MPA_BAD_REVISION: 'MPA revision other than 1 or 2',
  ERR_MPA_PRIVATE_DATA_TOO_LONG: 'MPA private data longer than 512 bytes',
  ERR_MPA_BAD_IRD_ORD: 'enhanced (rev 2) frame whose private data cannot hold IRD/ORD',
  ERR_MPA_BAD_ULPDU_LENGTH: 'FPDU ULPDU_Length shorter than the DDP header it must carry',
  ERR_MPA_BAD_CRC: 'FPDU CRC32c does not match',
  // DDP (RFC 5041)
  ERR_DDP_BAD_VERSION: 'DDP version is not 1',
  ERR_DDP_BAD_QN: 'untagged queue number does not match the RDMAP opcode',
  ERR_DDP_BAD_BUFFER_MODEL: 'tagged flag does not match the RDMAP opcode',
  // RDMAP (RFC 5040)
  ERR_RDMAP_BAD_VERSION: 'RDMAP version is not 1',
  ERR_RDMAP_BAD_OPCODE: 'RDMAP opcode not one of 0-7',
  ERR_RDMAP_BAD_READ_REQUEST: 'RDMA Read Request not a single 28-byte segment',
  ERR_RDMAP_BAD_TERMINATE: 'Terminate message malformed or not a single segment',
  // Callers
  ERR_FRAMING_INVALID_ARGUMENT: 'a value given to an encoder or constructor is out of range for its field',
} as const;

export type SmbDirectErrorCode = keyof typeof ERROR_CODES;

export class SmbDirectProtocolError extends Error {
  readonly code: SmbDirectErrorCode;
  /** NTSTATUS: of a failed negotiate response (ERR_SMBD_NEGOTIATE_FAILED, ERR_SMB2_NEGOTIATE_FAILED),
   * or the one a server answers a malformed SMB2 request with (ERR_SMB2_*). */
  readonly status?: number;

  constructor(code: SmbDirectErrorCode, message: string, extra?: { status?: number }) {
    super(message);
    this.name = 'SmbDirectProtocolError';
    this.code = code;
    if (extra?.status !== undefined) this.status = extra.status;
  }
}

export function fail(code: SmbDirectErrorCode, message: string): never {
  throw new SmbDirectProtocolError(code, message);
}
