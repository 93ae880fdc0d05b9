// SMB2 LOCK (2.2.26/2.2.27) and CANCEL (2.2.30) of [MS-SMB2]: pure codecs over whole PDUs. What the
// lock elements mean (which combinations are valid, ranges, conflicts) is the server's to judge: the
// codec checks only that the elements the request counts are in the PDU.
import { checkUint, putU16le, putU32le, putU64le, u16le, u32le, u64le } from '../bytes.js';
import { SmbDirectProtocolError } from '../errors.js';
import { SMB2_COMMAND, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit } from './header.js';
import { STATUS_INVALID_PARAMETER } from './ntstatus.js';
import { type Smb2FileId, readFileId, smb2Body, smb2Pdu, writeFileId } from './tree.js';

/** SMB2_LOCK_ELEMENT Flags (2.2.26.1). */
export const SMB2_LOCKFLAG = Object.freeze({ SHARED: 0x01, EXCLUSIVE: 0x02, UNLOCK: 0x04, FAIL_IMMEDIATELY: 0x10 });
export const SMB2_LOCK_ELEMENT_SIZE = 24;

export interface Smb2LockElement { offset: bigint; length: bigint; flags: number }
export interface Smb2LockRequest {
  header: Smb2Header;
  /** LockSequenceNumber (low 4 bits) and LockSequenceIndex (high 28): used by resilient handles only. */
  lockSequence: number;
  fileId: Smb2FileId;
  /** LockCount elements; empty when the request says 0 (the server answers STATUS_INVALID_PARAMETER). */
  locks: Smb2LockElement[];
}

/** LOCK's request: StructureSize 48 with the first element in the fixed part; every counted element
 * must be inside the PDU (ERR_SMB2_BAD_REQUEST, STATUS_INVALID_PARAMETER). */
export function decodeSmb2LockRequest(pdu: Uint8Array): Smb2LockRequest {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.LOCK, 48, 48, false);
  const count = u16le(pdu, b + 2);
  const at = b + 24;
  if (count > Math.floor((pdu.length - at) / SMB2_LOCK_ELEMENT_SIZE)) {
    throw new SmbDirectProtocolError('ERR_SMB2_BAD_REQUEST', `LockCount ${count}: ${pdu.length - at} bytes hold ${Math.floor((pdu.length - at) / SMB2_LOCK_ELEMENT_SIZE)} elements`,
      { status: STATUS_INVALID_PARAMETER });
  }
  const locks: Smb2LockElement[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const e = at + i * SMB2_LOCK_ELEMENT_SIZE;
    locks[i] = { offset: u64le(pdu, e), length: u64le(pdu, e + 8), flags: u32le(pdu, e + 16) };
  }
  return { header, lockSequence: u32le(pdu, b + 4), fileId: readFileId(pdu, b + 8), locks };
}

export function encodeSmb2LockRequest(r: { header?: Omit<Smb2HeaderInit, 'command'>; lockSequence?: number; fileId: Smb2FileId; locks: readonly Smb2LockElement[] }): Uint8Array {
  const n = checkUint('lock count', r.locks.length, 16);
  const out = smb2Pdu(SMB2_COMMAND.LOCK, r.header, false, 48, 24 + Math.max(1, n) * SMB2_LOCK_ELEMENT_SIZE);
  const b = SMB2_HEADER_SIZE;
  putU16le(out, b + 2, n);
  putU32le(out, b + 4, checkUint('lockSequence', r.lockSequence ?? 0, 32));
  writeFileId(out, b + 8, r.fileId);
  r.locks.forEach((l, i) => {
    const e = b + 24 + i * SMB2_LOCK_ELEMENT_SIZE;
    putU64le(out, e, l.offset);
    putU64le(out, e + 8, l.length);
    putU32le(out, e + 16, checkUint('flags', l.flags, 32));
  });
  return out;
}

/** LOCK's response: StructureSize 4 (as TREE_DISCONNECT's). */
export function encodeSmb2LockResponse(header?: Omit<Smb2HeaderInit, 'command'>): Uint8Array {
  return smb2Pdu(SMB2_COMMAND.LOCK, header, true, 4, 4);
}

export function decodeSmb2LockResponse(pdu: Uint8Array): Smb2Header {
  return smb2Body(pdu, SMB2_COMMAND.LOCK, 4, 4, true).header;
}

/** CANCEL's request (StructureSize 4): which request it cancels is in its header (MessageId, or
 * AsyncId in the async form). It has no response. */
export function decodeSmb2CancelRequest(pdu: Uint8Array): Smb2Header {
  return smb2Body(pdu, SMB2_COMMAND.CANCEL, 4, 4, false).header;
}

export function encodeSmb2CancelRequest(header: Omit<Smb2HeaderInit, 'command'>): Uint8Array {
  return smb2Pdu(SMB2_COMMAND.CANCEL, header, false, 4, 4);
}
