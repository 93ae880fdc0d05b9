// The RDMA channel fields of SMB2 READ (2.2.19) and WRITE (2.2.21) requests ([MS-SMB2]).
// Offsets in those requests count from the start of the SMB2 header (64 bytes).
import { checkU64, checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from './bytes.js';
import { type BufferDescriptor, BUFFER_DESCRIPTOR_SIZE, decodeBufferDescriptors, writeBufferDescriptors } from './buffer-descriptor.js';
import { fail } from './errors.js';

export const SMB2_HEADER_SIZE = 64;
export const SMB2_READ = 0x0008;
export const SMB2_WRITE = 0x0009;
export const SMB2_CHANNEL_NONE = 0;
export const SMB2_CHANNEL_RDMA_V1 = 1;
export const SMB2_CHANNEL_RDMA_V1_INVALIDATE = 2;
export const SMB2_CHANNEL_RDMA_TRANSFORM = 3;
/** Fixed part of READ and WRITE requests (StructureSize 49 counts one byte of Buffer). */
const BODY_FIXED = 48;
const FIXED_END = SMB2_HEADER_SIZE + BODY_FIXED;

export interface Smb2ReadWriteChannel {
  command: 'read' | 'write';
  channel: number;
  /** READ: bytes to read. WRITE: inline bytes (0 over an RDMA channel). */
  length: number;
  /** WRITE over RDMA: bytes the server reads from the descriptors. */
  remainingBytes: number;
  /** File offset of the I/O. */
  fileOffset: bigint;
  /** Empty for SMB2_CHANNEL_NONE. */
  descriptors: BufferDescriptor[];
}

export interface Smb2ReadWriteInit {
  command: 'read' | 'write';
  channel: number;
  length: number;
  remainingBytes?: number;
  fileOffset?: bigint;
  descriptors?: readonly BufferDescriptor[];
  messageId?: bigint;
  /** CreditCharge: by default one credit per 64 KiB of Length or RemainingBytes ([MS-SMB2] 3.2.4.1.5), at most 65535. */
  creditCharge?: number;
  /** CreditRequest: by default the charge (a client that asks back what it spends keeps its credits). */
  credits?: number;
  sessionId?: bigint;
  treeId?: number;
  /** 16 bytes: persistent + volatile handle. */
  fileId?: Uint8Array;
}

// Per-command offsets inside the request body.
const LAYOUT = {
  read: { channel: 36, remaining: 40, infoOffset: 44, infoLength: 46 },
  write: { channel: 32, remaining: 36, infoOffset: 40, infoLength: 42 },
} as const;

/**
 * Decodes the channel fields of the first SMB2 READ or WRITE request in `smb2Pdu` (the SMB
 * Direct message payload, no RFC1002 length prefix) and validates them against the PDU.
 */
export function decodeSmb2ReadWriteChannel(smb2Pdu: Uint8Array): Smb2ReadWriteChannel {
  const pdu = smb2Pdu;
  if (pdu.length < FIXED_END) fail('ERR_SMB2_SHORT_PDU', `SMB2 PDU of ${pdu.length} bytes is shorter than ${FIXED_END}`);
  if (pdu[0] !== 0xfe || pdu[1] !== 0x53 || pdu[2] !== 0x4d || pdu[3] !== 0x42 || u16le(pdu, 4) !== SMB2_HEADER_SIZE) {
    fail('ERR_SMB2_BAD_PROTOCOL_ID', 'not an SMB2 header (ProtocolId 0xFE "SMB", StructureSize 64)');
  }
  const cmd = u16le(pdu, 12);
  if (cmd !== SMB2_READ && cmd !== SMB2_WRITE) fail('ERR_SMB2_NOT_READ_WRITE', `SMB2 command 0x${cmd.toString(16)} is not READ or WRITE`);
  const command = cmd === SMB2_READ ? 'read' : 'write';
  const body = SMB2_HEADER_SIZE;
  if (u16le(pdu, body) !== 49) fail('ERR_SMB2_BAD_STRUCTURE_SIZE', `${command} request StructureSize ${u16le(pdu, body)} is not 49`);

  // In a compound, this request ends where the next one starts.
  const next = u32le(pdu, 20);
  if (next !== 0 && (next < FIXED_END || next > pdu.length)) {
    fail('ERR_SMB2_BAD_NEXT_COMMAND', `NextCommand ${next} is outside [${FIXED_END}, ${pdu.length}]`);
  }
  const end = next !== 0 ? next : pdu.length;

  const at = LAYOUT[command];
  const channel = u32le(pdu, body + at.channel);
  const length = u32le(pdu, body + 4);
  const remainingBytes = u32le(pdu, body + at.remaining);
  const fileOffset = u64le(pdu, body + 8);
  const base = { command, channel, length, remainingBytes, fileOffset } as const;
  if (channel === SMB2_CHANNEL_NONE) return { ...base, descriptors: [] };
  if (channel === SMB2_CHANNEL_RDMA_TRANSFORM) fail('ERR_SMB2_UNSUPPORTED_CHANNEL', 'SMB2_CHANNEL_RDMA_TRANSFORM is not supported');
  if (channel !== SMB2_CHANNEL_RDMA_V1 && channel !== SMB2_CHANNEL_RDMA_V1_INVALIDATE) {
    fail('ERR_SMB2_BAD_CHANNEL', `unknown SMB2 channel ${channel}`);
  }

  const infoOffset = u16le(pdu, body + at.infoOffset);
  const infoLength = u16le(pdu, body + at.infoLength);
  if (infoLength === 0 || infoLength % BUFFER_DESCRIPTOR_SIZE !== 0 || infoOffset < FIXED_END || infoOffset + infoLength > end) {
    fail('ERR_SMB2_BAD_CHANNEL_INFO', `channel info at ${infoOffset} length ${infoLength} is not whole descriptors inside bytes [${FIXED_END}, ${end})`);
  }
  const descriptors = decodeBufferDescriptors(pdu.subarray(infoOffset, infoOffset + infoLength));

  if (command === 'write' && length !== 0) {
    fail('ERR_SMB2_BAD_WRITE_LENGTH', `WRITE over an RDMA channel has Length ${length}; its bytes belong in RemainingBytes`);
  }
  const transfer = command === 'read' ? length : remainingBytes;
  if (transfer === 0) fail('ERR_SMB2_ZERO_LENGTH_TRANSFER', `${command} over an RDMA channel moves 0 bytes`);
  let covered = 0;
  for (const d of descriptors) {
    if (d.length === 0) fail('ERR_SMB2_ZERO_LENGTH_DESCRIPTOR', `${command} channel has a zero-length buffer descriptor`);
    covered += d.length;
  }
  if (covered < transfer) {
    fail('ERR_SMB2_DESCRIPTORS_TOO_SHORT', `descriptors cover ${covered} bytes, the ${command} moves ${transfer}`);
  }
  return { ...base, descriptors };
}

/**
 * Builds an SMB2 READ or WRITE request carrying the given channel fields (a client's request,
 * or a test vector). The channel info follows the fixed part at offset 112.
 */
export function encodeSmb2ReadWriteChannel(r: Smb2ReadWriteInit): Uint8Array {
  const descriptors = r.descriptors ?? [];
  const infoLength = descriptors.length * BUFFER_DESCRIPTOR_SIZE;
  if (infoLength > 0xffff) fail('ERR_FRAMING_INVALID_ARGUMENT', `${descriptors.length} descriptors do not fit a 16-bit channel info length`);
  if (r.fileId && r.fileId.length !== 16) fail('ERR_FRAMING_INVALID_ARGUMENT', 'fileId must be 16 bytes');
  // StructureSize 49 promises at least one Buffer byte, even with no channel info.
  const pdu = new Uint8Array(FIXED_END + Math.max(infoLength, 1));
  pdu.set([0xfe, 0x53, 0x4d, 0x42], 0);
  putU16le(pdu, 4, SMB2_HEADER_SIZE);
  const charge = r.creditCharge ?? Math.min(0xffff, Math.max(1, Math.ceil(Math.max(r.length, r.remainingBytes ?? 0) / 65536)));
  putU16le(pdu, 6, checkUint('creditCharge', charge, 16));
  putU16le(pdu, 12, r.command === 'read' ? SMB2_READ : SMB2_WRITE);
  putU16le(pdu, 14, checkUint('credits', r.credits ?? charge, 16));
  putU64le(pdu, 24, checkU64('messageId', r.messageId ?? 0n));
  putU32le(pdu, 36, checkUint('treeId', r.treeId ?? 0, 32));
  putU64le(pdu, 40, checkU64('sessionId', r.sessionId ?? 0n));

  const body = SMB2_HEADER_SIZE;
  const at = LAYOUT[r.command];
  putU16le(pdu, body, 49);
  putU32le(pdu, body + 4, checkUint('length', r.length, 32));
  putU64le(pdu, body + 8, checkU64('fileOffset', r.fileOffset ?? 0n));
  if (r.fileId) pdu.set(r.fileId, body + 16);
  putU32le(pdu, body + at.channel, checkUint('channel', r.channel, 32));
  putU32le(pdu, body + at.remaining, checkUint('remainingBytes', r.remainingBytes ?? 0, 32));
  if (r.command === 'write') putU16le(pdu, body + 2, FIXED_END); // DataOffset: where inline data would start
  if (infoLength > 0) {
    putU16le(pdu, body + at.infoOffset, FIXED_END);
    putU16le(pdu, body + at.infoLength, infoLength);
    writeBufferDescriptors(pdu, FIXED_END, descriptors);
  }
  return pdu;
}
