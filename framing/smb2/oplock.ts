// SMB2 OPLOCK_BREAK ([MS-SMB2] 2.2.23.1 notification, 2.2.24.1 acknowledgment, 2.2.25.1 response):
// one body for all three (StructureSize 24: OplockLevel, FileId). The lease forms (StructureSize 44
// and 36) belong to the leases issue. Pure codecs over whole PDUs.
import { checkUint } from '../bytes.js';
import { SMB2_COMMAND, SMB2_HEADER_SIZE, type Smb2Header, type Smb2HeaderInit } from './header.js';
import { type Smb2FileId, readFileId, smb2Body, smb2Pdu, writeFileId } from './tree.js';

/** Oplock levels (2.2.13 RequestedOplockLevel): LEASE stands for a lease context. */
export const SMB2_OPLOCK_LEVEL = Object.freeze({ NONE: 0x00, II: 0x01, EXCLUSIVE: 0x08, BATCH: 0x09, LEASE: 0xff });

/** The MessageId of a server's unsolicited notification (3.3.4.6). */
export const SMB2_NOTIFICATION_MESSAGE_ID = 0xffffffffffffffffn;

export interface Smb2OplockBreak { header: Smb2Header; oplockLevel: number; fileId: Smb2FileId }

/** A break notification or response (`response` true) or a client's acknowledgment. */
export function encodeSmb2OplockBreak(r: { header?: Omit<Smb2HeaderInit, 'command'>; oplockLevel: number; fileId: Smb2FileId }, response: boolean): Uint8Array {
  const out = smb2Pdu(SMB2_COMMAND.OPLOCK_BREAK, r.header, response, 24, 24);
  out[SMB2_HEADER_SIZE + 2] = checkUint('oplockLevel', r.oplockLevel, 8);
  writeFileId(out, SMB2_HEADER_SIZE + 8, r.fileId);
  return out;
}

/** Reads one (ERR_SMB2_BAD_REQUEST with STATUS_INVALID_PARAMETER for another StructureSize). */
export function decodeSmb2OplockBreak(pdu: Uint8Array, response: boolean): Smb2OplockBreak {
  const { header, b } = smb2Body(pdu, SMB2_COMMAND.OPLOCK_BREAK, 24, 24, response);
  return { header, oplockLevel: pdu[b + 2]!, fileId: readFileId(pdu, b + 8) };
}
