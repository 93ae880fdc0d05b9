// Security descriptors on the SMB3 server: QUERY_INFO of a file nobody set one for (owner, group
// and DACL from its POSIX owner and mode), a buffer too small for it (STATUS_BUFFER_TOO_SMALL with
// the size needed), SET_INFO of parts (the access each part needs), the SecD create context, and
// what comes back byte for byte; a stored DACL checked at CREATE and passed on to new files.
// smbtorture's create.aclfile/acldir, getinfo.qsec_buffercheck and
// delete-on-close-perms (test/smb2-torture.test.ts) use the same paths.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { createServer } from '../src/smb2/index.js';
import { type TestSession, attachClient, createFile, testSession } from './support/smb2-client.js';

const { OWNER, GROUP, DACL } = smb2.SECINFO;
const READ_CONTROL = 0x20000, WRITE_DAC = 0x40000;

async function connect(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'smb2-sd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
  const { rpc } = attachClient(server);
  return { dir, rpc, s: await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' }) };
}

const hdr = (s: TestSession) => ({ messageId: s.nextId(), credits: 8, sessionId: s.sessionId, treeId: s.treeId });

async function open(s: TestSession, rpc: (m: Uint8Array) => Promise<Uint8Array>, name: string, access: number, sd?: Uint8Array) {
  const r = smb2.decodeSmb2CreateResponse(await rpc(smb2.encodeSmb2CreateRequest({
    header: hdr(s), name, desiredAccess: access, createDisposition: smb2.FILE_DISPOSITION.OPEN_IF, createOptions: smb2.FILE_OPTION.NON_DIRECTORY_FILE,
    contexts: sd ? [{ name: smb2.CREATE_CONTEXT.SD_BUFFER, data: sd }] : [],
  })));
  assert.equal(r.header.status, smb2.STATUS_SUCCESS, smb2.ntstatusName(r.header.status));
  return r.fileId;
}

const query = (s: TestSession, fileId: smb2.Smb2FileId, info: number, outputBufferLength = 4096) =>
  smb2.encodeSmb2QueryInfoRequest({ header: hdr(s), infoType: smb2.SMB2_INFO.SECURITY, infoClass: 0, outputBufferLength, fileId, additionalInformation: info });

describe('security descriptors on the SMB3 server', () => {
  it('a file nobody set one for: owner and group from its POSIX owner, a DACL from its mode; a short buffer is BUFFER_TOO_SMALL with the size needed', async (t) => {
    const { dir, rpc, s } = await connect(t);
    const fileId = await createFile(s, 'plain.txt');
    const st = statSync(join(dir, 'plain.txt'));
    const r = smb2.decodeSmb2OutputResponse(await rpc(query(s, fileId, OWNER | GROUP | DACL)), smb2.SMB2_COMMAND.QUERY_INFO);
    assert.equal(r.header.status, smb2.STATUS_SUCCESS);
    const sd = smb2.decodeSecurityDescriptor(r.output);
    assert.equal(smb2.sidToString(sd.owner!), `S-1-22-1-${st.uid}`);
    assert.equal(smb2.sidToString(sd.group!), `S-1-22-2-${st.gid}`);
    assert.ok(sd.control & smb2.SE_CONTROL.DACL_PRESENT && sd.dacl && sd.dacl[4] === 3, 'three ACEs: owner, group, Everyone');
    // only the owner asked for: no DACL, no group
    const ownerOnly = smb2.decodeSecurityDescriptor(smb2.decodeSmb2OutputResponse(await rpc(query(s, fileId, OWNER)), smb2.SMB2_COMMAND.QUERY_INFO).output);
    assert.equal(ownerOnly.dacl, undefined);
    assert.equal(ownerOnly.group, undefined);
    assert.equal(ownerOnly.control & smb2.SE_CONTROL.DACL_PRESENT, 0);
    const small = await rpc(query(s, fileId, OWNER | GROUP | DACL, 1));
    assert.equal(smb2.decodeSmb2Header(small).status, smb2.STATUS_BUFFER_TOO_SMALL);
    const v = new DataView(small.buffer, small.byteOffset);
    assert.equal(v.getUint32(64 + 4, true), 4, 'ByteCount: four bytes of ErrorData');
    assert.equal(v.getUint32(64 + 8, true), r.output.length, 'ErrorData: the size needed');
  });

  it('SET_INFO of a DACL needs WRITE_DAC; what was set comes back byte for byte, the other parts as they were; a SecD context sets it at CREATE', async (t) => {
    const { rpc, s } = await connect(t);
    const users = smb2.sidFromString('S-1-5-32-545');
    const dacl = smb2.encodeAcl([{ type: smb2.ACE_TYPE.ACCESS_ALLOWED, flags: 0, mask: 0x1f01ff, sid: users }]);
    const given = smb2.encodeSecurityDescriptor({ control: smb2.SE_CONTROL.DACL_PRESENT | smb2.SE_CONTROL.DACL_PROTECTED, dacl });
    const set = (fileId: smb2.Smb2FileId, buffer: Uint8Array, info: number) => rpc(smb2.encodeSmb2SetInfoRequest({
      header: hdr(s), infoType: smb2.SMB2_INFO.SECURITY, infoClass: 0, buffer, fileId, additionalInformation: info,
    }));
    const readOnly = await open(s, rpc, 'f.txt', READ_CONTROL | 0x80);
    assert.equal(smb2.decodeSmb2Header(await set(readOnly, given, DACL)).status, smb2.STATUS_ACCESS_DENIED, 'no WRITE_DAC');
    const before = smb2.decodeSecurityDescriptor(smb2.decodeSmb2OutputResponse(await rpc(query(s, readOnly, OWNER | GROUP | DACL)), smb2.SMB2_COMMAND.QUERY_INFO).output);
    const writer = await open(s, rpc, 'f.txt', READ_CONTROL | WRITE_DAC);
    assert.equal(smb2.decodeSmb2Header(await set(writer, given, DACL)).status, smb2.STATUS_SUCCESS);
    const after = smb2.decodeSecurityDescriptor(smb2.decodeSmb2OutputResponse(await rpc(query(s, readOnly, OWNER | GROUP | DACL)), smb2.SMB2_COMMAND.QUERY_INFO).output);
    assert.deepEqual([...after.dacl!], [...dacl]);
    assert.ok(after.control & smb2.SE_CONTROL.DACL_PROTECTED);
    assert.deepEqual([...after.owner!], [...before.owner!], 'the owner untouched');
    assert.equal(smb2.decodeSmb2Header(await set(writer, new Uint8Array(12), DACL)).status, smb2.STATUS_INVALID_PARAMETER, 'a malformed descriptor');
    // at CREATE: the whole descriptor a client gives comes back as given
    const full = smb2.encodeSecurityDescriptor({ control: smb2.SE_CONTROL.DACL_PRESENT, owner: users, group: users, dacl });
    const created = await open(s, rpc, 'g.txt', READ_CONTROL, full);
    const back = smb2.decodeSmb2OutputResponse(await rpc(query(s, created, OWNER | GROUP | DACL)), smb2.SMB2_COMMAND.QUERY_INFO).output;
    assert.deepEqual([...back], [...full]);
    // a descriptor without a DACL: the file gets the default one for it (the parts given win)
    const ownerOnly = smb2.encodeSecurityDescriptor({ control: 0, owner: users });
    const made = await open(s, rpc, 'h.txt', READ_CONTROL, ownerOnly);
    const filled = smb2.decodeSecurityDescriptor(smb2.decodeSmb2OutputResponse(await rpc(query(s, made, OWNER | GROUP | DACL)), smb2.SMB2_COMMAND.QUERY_INFO).output);
    assert.ok(filled.control & smb2.SE_CONTROL.DACL_PRESENT && filled.dacl, 'a DACL was filled in');
    assert.equal(smb2.sidToString(filled.owner!), 'S-1-5-32-545', 'the owner given');
  });

  it('a stored DACL is checked at CREATE (MAXIMUM_ALLOWED and MxAc give what it allows) and passed on to new files, which keep DELETE from their parent', async (t) => {
    const { rpc, s } = await connect(t);
    const mkdir = smb2.decodeSmb2CreateResponse(await rpc(smb2.encodeSmb2CreateRequest({
      header: hdr(s), name: 'd', desiredAccess: READ_CONTROL | WRITE_DAC | 0x80000, createDisposition: smb2.FILE_DISPOSITION.CREATE, createOptions: smb2.FILE_OPTION.DIRECTORY_FILE,
    })));
    assert.equal(mkdir.header.status, smb2.STATUS_SUCCESS);
    const me = smb2.sidFromString(`S-1-22-1-${process.getuid!()}`); // every session acts as the server's POSIX user
    const noDelete = 0x001e01bf & ~0x10000 & ~0x40; // everything but DELETE and FILE_DELETE_CHILD
    const dirSd = smb2.encodeSecurityDescriptor({ control: smb2.SE_CONTROL.DACL_PRESENT, owner: me,
      dacl: smb2.encodeAcl([{ type: smb2.ACE_TYPE.ACCESS_ALLOWED, flags: smb2.ACE_FLAG.OBJECT_INHERIT, mask: noDelete, sid: me }]) });
    const set = smb2.encodeSmb2SetInfoRequest({ header: hdr(s), infoType: smb2.SMB2_INFO.SECURITY, infoClass: 0, buffer: dirSd, fileId: mkdir.fileId, additionalInformation: OWNER | DACL });
    assert.equal(smb2.decodeSmb2Header(await rpc(set)).status, smb2.STATUS_SUCCESS);
    // a new file inherits the ACE and its creator gets what it asked for; the parent's DACL is not
    // AUTO_INHERITED, so the copy is not marked INHERITED (as Windows: smbtorture acls.INHERITANCE)
    const f = await open(s, rpc, 'd\\f.txt', READ_CONTROL | 0x10000);
    const sd = smb2.decodeSecurityDescriptor(smb2.decodeSmb2OutputResponse(await rpc(query(s, f, OWNER | DACL)), smb2.SMB2_COMMAND.QUERY_INFO).output);
    assert.equal(sd.control & smb2.SE_CONTROL.DACL_AUTO_INHERITED, 0);
    assert.equal(sd.dacl![8 + 1], 0, 'the ACE copied, its inherit flags gone (a file passes nothing on)');
    assert.equal(smb2.sidToString(sd.owner!), `S-1-22-1-${process.getuid!()}`, 'the owner on disk owns it, as in made descriptors');
    // reopening it for DELETE: neither the file's DACL nor the directory's (FILE_DELETE_CHILD) allows it
    const again = await rpc(smb2.encodeSmb2CreateRequest({ header: hdr(s), name: 'd\\f.txt', desiredAccess: 0x10000, createDisposition: smb2.FILE_DISPOSITION.OPEN }));
    assert.equal(smb2.decodeSmb2Header(again).status, smb2.STATUS_ACCESS_DENIED);
    const most = smb2.decodeSmb2CreateResponse(await rpc(smb2.encodeSmb2CreateRequest({
      header: hdr(s), name: 'd\\f.txt', desiredAccess: 0x02000000, createDisposition: smb2.FILE_DISPOSITION.OPEN, contexts: [{ name: smb2.CREATE_CONTEXT.QUERY_MAXIMAL_ACCESS, data: new Uint8Array(0) }],
    })));
    assert.equal(most.header.status, smb2.STATUS_SUCCESS);
    const mxac = most.contexts.find((c) => c.name === smb2.CREATE_CONTEXT.QUERY_MAXIMAL_ACCESS)!;
    assert.equal(new DataView(mxac.data.buffer, mxac.data.byteOffset).getUint32(4, true), noDelete | READ_CONTROL | WRITE_DAC, 'the DACL, and READ_CONTROL and WRITE_DAC for the owner');
    // a file nobody set a descriptor on is not checked
    const plain = await rpc(smb2.encodeSmb2CreateRequest({ header: hdr(s), name: 'plain.txt', desiredAccess: 0x10000, createDisposition: smb2.FILE_DISPOSITION.OPEN_IF }));
    assert.equal(smb2.decodeSmb2Header(plain).status, smb2.STATUS_SUCCESS);
  });
});
