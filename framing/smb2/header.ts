// The SMB2 packet header ([MS-SMB2] 2.2.1, sync and async forms) and compound chains (3.2.4.1.4,
// 3.3.5.2.7): pure codecs, every length and offset checked where it enters. The signature field is
// carried as bytes; signing lives in src/smb2/.
import { checkU64, checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';

export const SMB2_HEADER_SIZE = 64;
export const SMB2_PROTOCOL_ID = 0x424d53fe; // 0xFE 'S' 'M' 'B', read little-endian
export const SMB2_SIGNATURE_OFFSET = 48;
export const SMB2_SIGNATURE_SIZE = 16;

/** Commands (2.2.1.2). */
export const SMB2_COMMAND = Object.freeze({
  NEGOTIATE: 0x0000, SESSION_SETUP: 0x0001, LOGOFF: 0x0002, TREE_CONNECT: 0x0003, TREE_DISCONNECT: 0x0004,
  CREATE: 0x0005, CLOSE: 0x0006, FLUSH: 0x0007, READ: 0x0008, WRITE: 0x0009, LOCK: 0x000a, IOCTL: 0x000b,
  CANCEL: 0x000c, ECHO: 0x000d, QUERY_DIRECTORY: 0x000e, CHANGE_NOTIFY: 0x000f, QUERY_INFO: 0x0010,
  SET_INFO: 0x0011, OPLOCK_BREAK: 0x0012,
});
export type Smb2Command = (typeof SMB2_COMMAND)[keyof typeof SMB2_COMMAND];
export const LAST_COMMAND = SMB2_COMMAND.OPLOCK_BREAK;

/** Header flags (2.2.1.2). */
export const SMB2_FLAGS = Object.freeze({
  SERVER_TO_REDIR: 0x00000001, ASYNC_COMMAND: 0x00000002, RELATED_OPERATIONS: 0x00000004, SIGNED: 0x00000008,
  PRIORITY_MASK: 0x00000070, DFS_OPERATIONS: 0x10000000, REPLAY_OPERATION: 0x20000000,
});

export interface Smb2Header {
  /** 2.1+: credits this request is charged (a multi-credit READ/WRITE: ceil(bytes / 65536)). */
  creditCharge: number;
  /** Responses: the NTSTATUS. Requests on 3.x: ChannelSequence in the low 16 bits. */
  status: number;
  command: number;
  /** CreditRequest in a request, CreditResponse in a response. */
  credits: number;
  flags: number;
  /** Offset of the next header of a compound chain from this one's start; 0 for the last. */
  nextCommand: number;
  messageId: bigint;
  /** Async form (SMB2_FLAGS_ASYNC_COMMAND): the AsyncId; sync form: 0n. */
  asyncId: bigint;
  /** Sync form: TreeId (and ProcessId, reserved); async form: 0. */
  treeId: number;
  processId: number;
  sessionId: bigint;
  /** A view of the 16 signature bytes in the message (not a copy). */
  signature: Uint8Array;
}

export type Smb2HeaderInit = Partial<Omit<Smb2Header, 'signature'>> & { command: number; signature?: Uint8Array };

function bad(code: 'ERR_SMB2_SHORT_PDU' | 'ERR_SMB2_BAD_PROTOCOL_ID' | 'ERR_SMB2_BAD_NEXT_COMMAND' | 'ERR_SMB2_BAD_COMMAND', message: string): never {
  throw new SmbDirectProtocolError(code, message, { status: STATUS_INVALID_PARAMETER });
}

/** Reads the header at `offset` of `pdu` (a compound's later headers are at their NextCommand).
 * A command past OPLOCK_BREAK is ERR_SMB2_BAD_COMMAND unless `anyCommand` (a server answers it
 * STATUS_INVALID_PARAMETER and serves the rest of the chain). */
export function decodeSmb2Header(pdu: Uint8Array, offset = 0, anyCommand = false): Smb2Header {
  if (offset < 0 || pdu.length - offset < SMB2_HEADER_SIZE) {
    bad('ERR_SMB2_SHORT_PDU', `an SMB2 header needs 64 bytes, ${Math.max(0, pdu.length - offset)} at offset ${offset}`);
  }
  const o = offset;
  if (u32le(pdu, o) !== SMB2_PROTOCOL_ID || u16le(pdu, o + 4) !== SMB2_HEADER_SIZE) {
    bad('ERR_SMB2_BAD_PROTOCOL_ID', `not an SMB2 header at offset ${o} (ProtocolId 0x${u32le(pdu, o).toString(16)}, StructureSize ${u16le(pdu, o + 4)})`);
  }
  const command = u16le(pdu, o + 12);
  if (command > LAST_COMMAND && !anyCommand) bad('ERR_SMB2_BAD_COMMAND', `unknown SMB2 command 0x${command.toString(16)}`);
  const flags = u32le(pdu, o + 16);
  const async = (flags & SMB2_FLAGS.ASYNC_COMMAND) !== 0;
  return {
    creditCharge: u16le(pdu, o + 6),
    status: u32le(pdu, o + 8),
    command,
    credits: u16le(pdu, o + 14),
    flags,
    nextCommand: u32le(pdu, o + 20),
    messageId: u64le(pdu, o + 24),
    asyncId: async ? u64le(pdu, o + 32) : 0n,
    processId: async ? 0 : u32le(pdu, o + 32),
    treeId: async ? 0 : u32le(pdu, o + 36),
    sessionId: u64le(pdu, o + 40),
    signature: pdu.subarray(o + SMB2_SIGNATURE_OFFSET, o + SMB2_SIGNATURE_OFFSET + SMB2_SIGNATURE_SIZE),
  };
}

/** Writes a header at `offset` of `out` (64 bytes); the async form when flags has ASYNC_COMMAND. */
export function writeSmb2Header(out: Uint8Array, offset: number, h: Smb2HeaderInit): void {
  if (offset < 0 || out.length - offset < SMB2_HEADER_SIZE) {
    throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `64 bytes needed for an SMB2 header at ${offset}, ${out.length - offset} there`);
  }
  const o = offset;
  const flags = checkUint('flags', h.flags ?? 0, 32);
  putU32le(out, o, SMB2_PROTOCOL_ID);
  putU16le(out, o + 4, SMB2_HEADER_SIZE);
  putU16le(out, o + 6, checkUint('creditCharge', h.creditCharge ?? 0, 16));
  putU32le(out, o + 8, checkUint('status', h.status ?? 0, 32));
  putU16le(out, o + 12, checkUint('command', h.command, 16));
  putU16le(out, o + 14, checkUint('credits', h.credits ?? 0, 16));
  putU32le(out, o + 16, flags);
  putU32le(out, o + 20, checkUint('nextCommand', h.nextCommand ?? 0, 32));
  putU64le(out, o + 24, checkU64('messageId', h.messageId ?? 0n));
  if (flags & SMB2_FLAGS.ASYNC_COMMAND) {
    putU64le(out, o + 32, checkU64('asyncId', h.asyncId ?? 0n));
  } else {
    putU32le(out, o + 32, checkUint('processId', h.processId ?? 0, 32));
    putU32le(out, o + 36, checkUint('treeId', h.treeId ?? 0, 32));
  }
  putU64le(out, o + 40, checkU64('sessionId', h.sessionId ?? 0n));
  const sig = h.signature;
  if (sig && sig.length !== SMB2_SIGNATURE_SIZE) {
    throw new SmbDirectProtocolError('ERR_FRAMING_INVALID_ARGUMENT', `a signature is 16 bytes, got ${sig.length}`);
  }
  if (sig) out.set(sig, o + SMB2_SIGNATURE_OFFSET);
  else out.fill(0, o + SMB2_SIGNATURE_OFFSET, o + SMB2_SIGNATURE_OFFSET + SMB2_SIGNATURE_SIZE);
}

/** A 64-byte header on its own. */
export function encodeSmb2Header(h: Smb2HeaderInit): Uint8Array {
  const out = new Uint8Array(SMB2_HEADER_SIZE);
  writeSmb2Header(out, 0, h);
  return out;
}

/** One request or response of a compound chain: where it starts and how long it is in the PDU. */
export interface Smb2ChainItem {
  offset: number;
  length: number;
  header: Smb2Header;
}

/** At most this many commands in one chain: a bound on the work one message can ask for (Windows
 * and Samba accept far fewer in practice; cifs sends 3-5). */
export const MAX_COMPOUND = 64;

/**
 * Splits a PDU into its compound chain (one item when NextCommand is 0). Every NextCommand must be
 * 8-byte aligned, leave room for a header, and stay inside the PDU (3.3.5.2.7); the last item runs
 * to the end of the PDU.
 */
export function splitSmb2Compound(pdu: Uint8Array, maxItems = MAX_COMPOUND, anyCommand = false): Smb2ChainItem[] {
  const items: Smb2ChainItem[] = [];
  let at = 0;
  for (;;) {
    const header = decodeSmb2Header(pdu, at, anyCommand);
    const next = header.nextCommand;
    if (next === 0) {
      items.push({ offset: at, length: pdu.length - at, header });
      return items;
    }
    if (next % 8 !== 0 || next < SMB2_HEADER_SIZE || next > pdu.length - at - SMB2_HEADER_SIZE) {
      bad('ERR_SMB2_BAD_NEXT_COMMAND', `NextCommand ${next} at offset ${at}: must be 8-byte aligned, at least 64, and leave a header inside the ${pdu.length}-byte PDU`);
    }
    items.push({ offset: at, length: next, header });
    if (items.length >= maxItems) bad('ERR_SMB2_BAD_NEXT_COMMAND', `a compound chain longer than ${maxItems} commands`);
    at += next;
  }
}
