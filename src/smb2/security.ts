// Security descriptors of the files a share serves: what QUERY_INFO answers when a client set none
// (an owner, group and DACL made from the file's POSIX owner and mode, as Samba maps them), which
// parts of a descriptor a request names (SECURITY_INFORMATION), and what SET_INFO leaves stored.
// Descriptors clients set are kept and returned byte for byte, checked at CREATE against the
// session's token (`maximalAccess`), and passed on to new files (`inheritedDescriptor`); a file
// nobody set one for is not checked: access to it is the share's (read-only or not) and the file
// system's, as docs/smb2/README.md says.
import { createHash } from 'node:crypto';

import {
  ACE_TYPE, type Ace, SECINFO, SE_CONTROL, type SecurityDescriptor, encodeAcl, sidFromString,
} from '../../framing/smb2/security.js';
import { STATUS_INVALID_PARAMETER } from '../../framing/smb2/ntstatus.js';
import { Smb2Error } from './errors.js';
import { DELETE } from './share-modes.js';

export const READ_CONTROL = 0x00020000;
export const WRITE_DAC = 0x00040000;
export const WRITE_OWNER = 0x00080000;

const FILE_GENERIC_READ = 0x00120089, FILE_GENERIC_WRITE = 0x00120116, FILE_GENERIC_EXECUTE = 0x001200a0;
const FILE_DELETE_CHILD = 0x00000040;
const EVERYONE = sidFromString('S-1-1-0');

function maskOf(bits: number, isDir: boolean): number {
  // write on a directory lets POSIX remove its entries: FILE_DELETE_CHILD (as Samba maps it)
  return (bits & 4 ? FILE_GENERIC_READ : 0) | (bits & 2 ? FILE_GENERIC_WRITE | (isDir ? FILE_DELETE_CHILD : 0) : 0) | (bits & 1 ? FILE_GENERIC_EXECUTE : 0);
}

/** The descriptor of a file nobody set one for: owner S-1-22-1-<uid> and group S-1-22-2-<gid>
 * (Samba's Unix users and groups), a DACL allowing owner, group and Everyone what the mode allows
 * (the owner also READ_CONTROL, WRITE_DAC, WRITE_OWNER and DELETE). */
export function defaultSecurityDescriptor(st: { uid: number; gid: number; mode: number }): SecurityDescriptor {
  const owner = sidFromString(`S-1-22-1-${st.uid}`);
  const group = sidFromString(`S-1-22-2-${st.gid}`);
  const isDir = (st.mode & 0o170000) === 0o040000;
  const dacl = encodeAcl([
    { type: ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: maskOf(st.mode >> 6, isDir) | READ_CONTROL | WRITE_DAC | WRITE_OWNER | DELETE, sid: owner },
    { type: ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: maskOf(st.mode >> 3, isDir), sid: group },
    { type: ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: maskOf(st.mode, isDir), sid: EVERYONE },
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

/** The parts a descriptor carries, as SECURITY_INFORMATION bits. */
export function partsOf(sd: SecurityDescriptor): number {
  return (sd.owner ? SECINFO.OWNER : 0) | (sd.group ? SECINFO.GROUP : 0) | (sd.control & SE_CONTROL.DACL_PRESENT ? SECINFO.DACL : 0) |
    (sd.control & SE_CONTROL.SACL_PRESENT ? SECINFO.SACL : 0);
}

/** The access SET_INFO of these parts needs ([MS-FSA] 2.1.5.16): WRITE_OWNER for owner and group,
 * WRITE_DAC for the DACL; a SACL needs ACCESS_SYSTEM_SECURITY, which no open is granted here. */
export function accessToSet(info: number): number {
  return (info & (SECINFO.OWNER | SECINFO.GROUP) ? WRITE_OWNER : 0) | (info & SECINFO.DACL ? WRITE_DAC : 0) | (info & SECINFO.SACL ? 0x01000000 : 0);
}

// ---- access checks against stored descriptors ------------------------------------------------------

/** Who a session is, for access checks: its user's SID and the groups it belongs to. */
export interface Token { user: Uint8Array; sids: readonly Uint8Array[] }

const CREATOR_OWNER = sidFromString('S-1-3-0');
const CREATOR_GROUP = sidFromString('S-1-3-1');
const OWNER_RIGHTS = sidFromString('S-1-3-4');
const AUTHENTICATED_USERS = sidFromString('S-1-5-11');
const BUILTIN_USERS = sidFromString('S-1-5-32-545');
const GUEST_RID = 501;

/**
 * A session's token. Users get SIDs of the server's own domain (S-1-5-21 and three numbers from
 * the server's GUID), the RID from their name; guests RID 501. Every session also holds the
 * server's POSIX user and group (S-1-22-1-uid, S-1-22-2-gid): all file access on disk is done as
 * them, and the descriptors of files nobody set one for name them.
 */
export function tokenFor(serverGuid: Uint8Array, user: string | undefined, guest: boolean): Token {
  const v = new DataView(serverGuid.buffer, serverGuid.byteOffset, serverGuid.byteLength);
  const domain = `S-1-5-21-${v.getUint32(0, true)}-${v.getUint32(4, true)}-${v.getUint32(8, true)}`;
  let rid = GUEST_RID;
  if (!guest && user) {
    const h = createHash('sha256').update(user.toLowerCase()).digest();
    rid = 1000 + (h.readUInt32LE(0) % 0x3fff0000);
  }
  const sid = sidFromString(`${domain}-${rid}`);
  const sids = [sid, EVERYONE, BUILTIN_USERS, sidFromString(`S-1-22-1-${process.getuid?.() ?? 0}`), sidFromString(`S-1-22-2-${process.getgid?.() ?? 0}`)];
  if (!guest) sids.push(AUTHENTICATED_USERS);
  return { user: sid, sids };
}

const GENERIC_READ = 0x80000000, GENERIC_WRITE = 0x40000000, GENERIC_EXECUTE = 0x20000000, GENERIC_ALL = 0x10000000;
/** Every specific and standard right of a file. */
export const FILE_ALL_ACCESS = 0x001f01ff;
export const MAXIMUM_ALLOWED = 0x02000000;

/** Generic rights as the file rights they stand for ([MS-SMB2] 2.2.13.1.1). */
export function mapGeneric(mask: number): number {
  let m = mask & ~(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL);
  if (mask & GENERIC_READ) m |= FILE_GENERIC_READ;
  if (mask & GENERIC_WRITE) m |= FILE_GENERIC_WRITE;
  if (mask & GENERIC_EXECUTE) m |= FILE_GENERIC_EXECUTE;
  if (mask & GENERIC_ALL) m |= FILE_ALL_ACCESS;
  return m >>> 0;
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const holds = (t: Token, sid: Uint8Array) => t.sids.some((s) => same(s, sid));

interface RawAce { type: number; flags: number; mask: number; sid: Uint8Array }

/** The allow/deny/audit ACEs of an ACL (others are kept by the ACL's bytes but not evaluated). */
export function acesOf(acl: Uint8Array): RawAce[] {
  const aces: RawAce[] = [];
  const count = acl[4]! | (acl[5]! << 8);
  for (let i = 0, p = 8; i < count; i++) {
    const size = acl[p + 2]! | (acl[p + 3]! << 8);
    const type = acl[p]!;
    if (type <= 2) aces.push({ type, flags: acl[p + 1]!, mask: new DataView(acl.buffer, acl.byteOffset + p + 4, 4).getUint32(0, true), sid: acl.subarray(p + 8, p + size) });
    p += size;
  }
  return aces;
}

/**
 * The most a token may do to an object with this descriptor ([MS-DTYP] 2.5.3.2, the parts a file
 * server meets): no DACL or a NULL DACL allows everything; otherwise ACEs in order, a deny taking
 * the bits not granted before it; the owner also gets READ_CONTROL and WRITE_DAC unless an OWNER
 * RIGHTS ACE says what the owner gets.
 */
export function maximalAccess(sd: SecurityDescriptor, t: Token): number {
  if (!(sd.control & SE_CONTROL.DACL_PRESENT) || !sd.dacl) return FILE_ALL_ACCESS;
  let granted = 0;
  let denied = 0;
  const aces = acesOf(sd.dacl).filter((a) => !(a.flags & IO));
  const isOwner = sd.owner !== undefined && holds(t, sd.owner);
  const ownerRights = aces.some((a) => same(a.sid, OWNER_RIGHTS));
  for (const a of aces) {
    const applies = holds(t, a.sid) || (isOwner && same(a.sid, OWNER_RIGHTS));
    if (!applies) continue;
    const mask = mapGeneric(a.mask);
    if (a.type === ACE_TYPE.ACCESS_ALLOWED) granted |= mask & ~denied;
    else if (a.type === ACE_TYPE.ACCESS_DENIED) denied |= mask & ~granted;
  }
  if (isOwner && !ownerRights) granted |= (READ_CONTROL | WRITE_DAC) & ~denied;
  return (granted & FILE_ALL_ACCESS) >>> 0;
}

const OI = 0x1, CI = 0x2, NP = 0x4, IO = 0x8, INHERITED_ACE = 0x10;

/**
 * The descriptor a new file or directory gets from its parent's ([MS-DTYP] 2.5.3.4, the common
 * case): the creator as owner, the parent's group, and the ACEs the parent passes on (OBJECT_INHERIT
 * to files, CONTAINER_INHERIT to directories, which also carry OBJECT_INHERIT ones on as
 * inherit-only), marked INHERITED, CREATOR OWNER / CREATOR GROUP made the owner and group, generic
 * rights mapped. Undefined when the parent passes nothing on (the child keeps the default).
 */
export function inheritedDescriptor(parent: SecurityDescriptor, t: Token, isDir: boolean, owner: Uint8Array = t.user): SecurityDescriptor | undefined {
  if (!parent.dacl) return undefined;
  const group = parent.group ?? t.user;
  const out: Ace[] = [];
  // inherited ACEs say so only under automatic inheritance (a parent whose DACL is AUTO_INHERITED,
  // as Windows makes them): a DACL a client set without it passes plain copies (acls.INHERITANCE)
  const auto = (parent.control & SE_CONTROL.DACL_AUTO_INHERITED) !== 0;
  const INHERITED = auto ? INHERITED_ACE : 0;
  for (const a of acesOf(parent.dacl)) {
    const toFiles = (a.flags & OI) !== 0, toDirs = (a.flags & CI) !== 0;
    if (!isDir && !toFiles) continue;
    if (isDir && !toDirs && !(toFiles && !(a.flags & NP))) continue;
    const effective = !isDir || toDirs;
    const creator = same(a.sid, CREATOR_OWNER) ? owner : same(a.sid, CREATOR_GROUP) ? group : undefined;
    // what passes on further (a directory's inheritable copy), unchanged but INHERITED
    const passesOn = isDir && !(a.flags & NP) && (toDirs || toFiles);
    if (effective) {
      const flags = passesOn && !creator ? (a.flags & (OI | CI)) | INHERITED : INHERITED;
      out.push({ type: a.type, flags, mask: passesOn && !creator ? a.mask : mapGeneric(a.mask), sid: creator ?? a.sid });
      if (passesOn && creator) out.push({ type: a.type, flags: (a.flags & (OI | CI)) | IO | INHERITED, mask: a.mask, sid: a.sid });
    } else if (passesOn) {
      out.push({ type: a.type, flags: (a.flags & (OI | CI)) | IO | INHERITED, mask: a.mask, sid: a.sid });
    }
  }
  if (!out.length) return undefined;
  return { control: SE_CONTROL.SELF_RELATIVE | SE_CONTROL.DACL_PRESENT | (auto ? SE_CONTROL.DACL_AUTO_INHERITED : 0), owner, group, dacl: encodeAcl(out) };
}

const GENERIC_ANY = GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL;

/**
 * A DACL as Windows stores one a client sets: generic rights in an ACE that applies to the object
 * mapped to specific ones; one that is also inheritable split in two, the object's own (mapped, not
 * inheritable) and an INHERIT_ONLY copy that keeps the generic rights for the children to map
 * (smbtorture acls.CREATOR and INHERITANCE compare what comes back). An ACL with other ACE types
 * than allow, deny and audit is kept as it is.
 */
export function normalizeDacl(dacl: Uint8Array): Uint8Array {
  const count = dacl[4]! | (dacl[5]! << 8);
  const aces = acesOf(dacl);
  if (aces.length !== count || !aces.some((a) => a.mask & GENERIC_ANY && !(a.flags & IO))) return dacl;
  const out: Ace[] = [];
  for (const a of aces) {
    if (!(a.mask & GENERIC_ANY) || a.flags & IO) {
      out.push(a);
      continue;
    }
    const inheritable = (a.flags & (OI | CI)) !== 0;
    out.push({ type: a.type, flags: inheritable ? a.flags & ~(OI | CI | NP) : a.flags, mask: mapGeneric(a.mask), sid: a.sid });
    if (inheritable) out.push({ type: a.type, flags: a.flags | IO, mask: a.mask, sid: a.sid });
  }
  return encodeAcl(out);
}

/**
 * A descriptor a client sets (SET_INFO with `info`) as Windows stores it: a DACL part without
 * DACL_PRESENT is a NULL DACL (no ACL: everyone may do anything; smbtorture create.nulldacl);
 * AUTO_INHERIT_REQ asks for automatic inheritance and is not kept, and without it the DACL is not
 * AUTO_INHERITED (acls.INHERITFLAGS); generic rights mapped (normalizeDacl). A CREATE's SecD
 * context differs: its missing DACL is the inherited one (mergeParts with the base).
 */
export function descriptorAsSet(given: SecurityDescriptor, info: number): SecurityDescriptor {
  if (!(info & SECINFO.DACL)) return given;
  const req = SE_CONTROL.DACL_AUTO_INHERIT_REQ, auto = SE_CONTROL.DACL_AUTO_INHERITED;
  const control = given.control & ~req & ((given.control & (req | auto)) === (req | auto) ? ~0 : ~auto);
  if (!(given.control & SE_CONTROL.DACL_PRESENT)) return { ...given, control: control | SE_CONTROL.DACL_PRESENT, dacl: undefined };
  return { ...given, control, dacl: given.dacl && normalizeDacl(given.dacl) };
}
