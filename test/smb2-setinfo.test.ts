// SET_INFO on the SMB3 server as Windows keeps it ([MS-FSA] 2.1.5.14). A delete is the file's, not
// the handle's (2.1.5.4): a disposition or DELETE_ON_CLOSE makes the file's delete pending, a CREATE
// of it meanwhile is STATUS_DELETE_PENDING, FileStandardInformation says so on every handle (with one
// link less), and the file goes when its last handle closes (a disconnect counts); a disposition can
// be taken back before that. An allocation below the end of file cuts the file; a file cannot be
// given FILE_ATTRIBUTE_DIRECTORY; sizes need FILE_WRITE_DATA, times and attributes FILE_WRITE_ATTRIBUTES.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { createServer } from '../src/smb2/index.js';
import { type TestSession, attachClient, testSession } from './support/smb2-client.js';

async function client(server: ReturnType<typeof createServer>) {
  const { conn, rpc } = attachClient(server);
  return { conn, rpc, s: await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' }) };
}

const hdr = (s: TestSession) => ({ messageId: s.nextId(), credits: 8, sessionId: s.sessionId, treeId: s.treeId });

describe('delete pending on the SMB3 server', () => {
  it('a disposition on one handle: others see DeletePending, a CREATE is STATUS_DELETE_PENDING, the file goes with the last handle (a disconnect too)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-delete-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    const a = await client(server);
    const b = await client(server);
    const open = async (c: typeof a, disposition: number) => {
      const m = await c.rpc(smb2.encodeSmb2CreateRequest({ header: hdr(c.s), name: 'f.txt', desiredAccess: 0x1f01ff, shareAccess: 7, createDisposition: disposition }));
      const h = smb2.decodeSmb2Header(m);
      return h.status === smb2.STATUS_SUCCESS ? smb2.decodeSmb2CreateResponse(m).fileId : h.status;
    };
    const fa = await open(a, smb2.FILE_DISPOSITION.CREATE) as smb2.Smb2FileId;
    const fb = await open(b, smb2.FILE_DISPOSITION.OPEN) as smb2.Smb2FileId;
    const disposition = (c: typeof a, fileId: smb2.Smb2FileId, on: boolean) => c.rpc(smb2.encodeSmb2SetInfoRequest({
      header: hdr(c.s), infoType: smb2.SMB2_INFO.FILE, infoClass: 13, buffer: Uint8Array.of(on ? 1 : 0), fileId,
    }));
    const standard = async (c: typeof a, fileId: smb2.Smb2FileId) => smb2.decodeSmb2OutputResponse(await c.rpc(smb2.encodeSmb2QueryInfoRequest({
      header: hdr(c.s), infoType: smb2.SMB2_INFO.FILE, infoClass: 5, outputBufferLength: 24, fileId,
    })), smb2.SMB2_COMMAND.QUERY_INFO).output;
    const pending = async (c: typeof a, fileId: smb2.Smb2FileId) => (await standard(c, fileId))[20];
    const close = async (c: typeof a, fileId: smb2.Smb2FileId) => smb2.decodeSmb2Header(await c.rpc(smb2.encodeSmb2CloseRequest({ header: hdr(c.s), fileId }))).status;
    // taken back before the last close: nothing happens
    assert.equal(smb2.decodeSmb2Header(await disposition(b, fb, true)).status, smb2.STATUS_SUCCESS);
    assert.equal(await pending(a, fa), 1, 'the other handle sees the delete pending');
    const std = await standard(a, fa);
    assert.equal(new DataView(std.buffer, std.byteOffset).getUint32(16, true), 0, 'NumberOfLinks: the name counts as gone');
    assert.equal(smb2.decodeSmb2Header(await disposition(a, fa, false)).status, smb2.STATUS_SUCCESS);
    assert.equal(await pending(b, fb), 0);
    // set again, and the handle that set it closes: the file stays while the other is open
    await disposition(b, fb, true);
    assert.equal(await close(b, fb), smb2.STATUS_SUCCESS);
    assert.ok(existsSync(join(dir, 'f.txt')), 'still there: a handle is open');
    assert.equal(await open(b, smb2.FILE_DISPOSITION.OPEN_IF), smb2.STATUS_DELETE_PENDING);
    // the last handle goes with its connection
    await a.conn.end();
    assert.ok(!existsSync(join(dir, 'f.txt')), 'deleted with the last handle');
    assert.notEqual(await open(b, smb2.FILE_DISPOSITION.OPEN), smb2.STATUS_DELETE_PENDING, 'and forgotten');
  });

  it('an allocation below the end of file cuts the file; FILE_ATTRIBUTE_DIRECTORY on a file is STATUS_INVALID_PARAMETER', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-setinfo-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    const a = await client(server);
    const fileId = smb2.decodeSmb2CreateResponse(await a.rpc(smb2.encodeSmb2CreateRequest({
      header: hdr(a.s), name: 'g.txt', desiredAccess: 0x1f01ff, createDisposition: smb2.FILE_DISPOSITION.CREATE,
    }))).fileId;
    await a.rpc(smb2.encodeSmb2WriteRequest({ header: hdr(a.s), fileId, offset: 0n, data: new Uint8Array(7).fill(1) }));
    const set = (infoClass: number, buffer: Uint8Array) => a.rpc(smb2.encodeSmb2SetInfoRequest({ header: hdr(a.s), infoType: smb2.SMB2_INFO.FILE, infoClass, buffer, fileId }));
    const alloc = new Uint8Array(8);
    assert.equal(smb2.decodeSmb2Header(await set(19, alloc)).status, smb2.STATUS_SUCCESS);
    assert.equal(statSync(join(dir, 'g.txt')).size, 0, 'cut to the allocation');
    const basic = new Uint8Array(40);
    new DataView(basic.buffer).setUint32(32, 0x10, true);
    assert.equal(smb2.decodeSmb2Header(await set(4, basic)).status, smb2.STATUS_INVALID_PARAMETER);
    // an open that may only read cannot change sizes or times
    const reader = smb2.decodeSmb2CreateResponse(await a.rpc(smb2.encodeSmb2CreateRequest({
      header: hdr(a.s), name: 'g.txt', desiredAccess: 0x00120089, shareAccess: 7, createDisposition: smb2.FILE_DISPOSITION.OPEN,
    }))).fileId;
    const setOn = (infoClass: number, buffer: Uint8Array) => a.rpc(smb2.encodeSmb2SetInfoRequest({ header: hdr(a.s), infoType: smb2.SMB2_INFO.FILE, infoClass, buffer, fileId: reader }));
    assert.equal(smb2.decodeSmb2Header(await setOn(20, new Uint8Array(8))).status, smb2.STATUS_ACCESS_DENIED, 'end of file');
    assert.equal(smb2.decodeSmb2Header(await setOn(4, new Uint8Array(40))).status, smb2.STATUS_ACCESS_DENIED, 'times and attributes');
  });
});
