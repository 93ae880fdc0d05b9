// Security descriptors of the files a share serves: what QUERY_INFO answers when a client set none
// (an owner, group and DACL made from the file's POSIX owner and mode, as Samba maps them), which
// parts of a descriptor a request names (SECURITY_INFORMATION), and what SET_INFO leaves stored.
// Descriptors clients set are kept and returned byte for byte; they are not enforced: access is the
// share's (read-only or not) and the file system's, as docs/smb2/README.md says.
import {
  ACE_TYPE, SECINFO, SE_CONTROL, type SecurityDescriptor, encodeAcl, sidFromString,
} from '../../framing/smb2/security.js';
import { STATUS_INVALID_PARAMETER } from '../../framing/smb2/ntstatus.js';
import { Smb2Error } from './errors.js';

export const READ_CONTROL = 0x00020000;
export const WRITE_DAC = 0x00040000;
export const WRITE_OWNER = 0x00080000;

const FILE_GENERIC_READ = 0x00120089, FILE_GENERIC_WRITE = 0x00120116, FILE_GENERIC_EXECUTE = 0x001200a0;
const DELETE = 0x00010000;
const EVERYONE = sidFromString('S-1-1-0');

function maskOf(bits: number): number {
  return (bits & 4 ? FILE_GENERIC_READ : 0) | (bits & 2 ? FILE_GENERIC_WRITE : 0) | (bits & 1 ? FILE_GENERIC_EXECUTE : 0);
}

/** The descriptor of a file nobody set one for: owner S-1-22-1-<uid> and group S-1-22-2-<gid>
 * (Samba's Unix users and groups), a DACL allowing owner, group and Everyone what the mode allows
 * (the owner also READ_CONTROL, WRITE_DAC, WRITE_OWNER and DELETE). */
export function defaultSecurityDescriptor(st: { uid: number; gid: number; mode: number }): SecurityDescriptor {
  const owner = sidFromString(`S-1-22-1-${st.uid}`);
  const group = sidFromString(`S-1-22-2-${st.gid}`);
  const dacl = encodeAcl([
    { type: ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: maskOf(st.mode >> 6) | READ_CONTROL | WRITE_DAC | WRITE_OWNER | DELETE, sid: owner },
    { type: ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: maskOf(st.mode >> 3), sid: group },
    { type: ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: maskOf(st.mode), sid: EVERYONE },
  ]);
  return { control: SE_CONTROL.SELF_RELATIVE | SE_CONTROL.DACL_PRESENT, owner, group, dacl };
}

const DACL_BITS = SE_CONTROL.DACL_PRESENT | SE_CONTROL.DACL_DEFAULTED | SE_CONTROL.DACL_AUTO_INHERITED | SE_CONTROL.DACL_PROTECTED;
const SACL_BITS = SE_CONTROL.SACL_PRESENT | SE_CONTROL.SACL_DEFAULTED | SE_CONTROL.SACL_AUTO_INHERITED | SE_CONTROL.SACL_PROTECTED;

/** The parts of `sd` that `info` names (the others left out, with their control bits). */
export function selectParts(sd: SecurityDescriptor, info: number): SecurityDescriptor {
  let control = sd.control | SE_CONTROL.SELF_RELATIVE;
  if (!(info & SECINFO.OWNER)) control &= ~SE_CONTROL.OWNER_DEFAULTED;
  if (!(info & SECINFO.GROUP)) control &= ~SE_CONTROL.GROUP_DEFAULTED;
  if (!(info & SECINFO.DACL)) control &= ~DACL_BITS;
  if (!(info & SECINFO.SACL)) control &= ~SACL_BITS;
  const out: SecurityDescriptor = { control };
  if (info & SECINFO.OWNER && sd.owner) out.owner = sd.owner;
  if (info & SECINFO.GROUP && sd.group) out.group = sd.group;
  if (info & SECINFO.DACL && sd.dacl) out.dacl = sd.dacl;
  if (info & SECINFO.SACL && sd.sacl) out.sacl = sd.sacl;
  return out;
}

/** `current` with the parts `info` names taken from `given` (SET_INFO). An owner or group named
 * but not given is STATUS_INVALID_PARAMETER (Windows: STATUS_INVALID_OWNER / _PRIMARY_GROUP). */
export function mergeParts(current: SecurityDescriptor, given: SecurityDescriptor, info: number): SecurityDescriptor {
  const out: SecurityDescriptor = { ...current };
  if (info & SECINFO.OWNER) {
    if (!given.owner) throw new Smb2Error(STATUS_INVALID_PARAMETER, 'SET_INFO names the owner but the descriptor has none');
    out.owner = given.owner;
    out.control = (out.control & ~SE_CONTROL.OWNER_DEFAULTED) | (given.control & SE_CONTROL.OWNER_DEFAULTED);
  }
  if (info & SECINFO.GROUP) {
    if (!given.group) throw new Smb2Error(STATUS_INVALID_PARAMETER, 'SET_INFO names the group but the descriptor has none');
    out.group = given.group;
    out.control = (out.control & ~SE_CONTROL.GROUP_DEFAULTED) | (given.control & SE_CONTROL.GROUP_DEFAULTED);
  }
  if (info & SECINFO.DACL) {
    if (given.dacl) out.dacl = given.dacl;
    else delete out.dacl;
    out.control = (out.control & ~DACL_BITS) | (given.control & DACL_BITS);
  }
  if (info & SECINFO.SACL) {
    if (given.sacl) out.sacl = given.sacl;
    else delete out.sacl;
    out.control = (out.control & ~SACL_BITS) | (given.control & SACL_BITS);
  }
  return out;
}

/** The access SET_INFO of these parts needs ([MS-FSA] 2.1.5.16): WRITE_OWNER for owner and group,
 * WRITE_DAC for the DACL; a SACL needs ACCESS_SYSTEM_SECURITY, which no open is granted here. */
export function accessToSet(info: number): number {
  return (info & (SECINFO.OWNER | SECINFO.GROUP) ? WRITE_OWNER : 0) | (info & SECINFO.DACL ? WRITE_DAC : 0) | (info & SECINFO.SACL ? 0x01000000 : 0);
}
