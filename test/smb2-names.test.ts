// 8.3 (short) names on the SMB3 server ([MS-FSCC] 2.1.5.2.1, 2.4.5, 2.4.8): a name that is one
// already in capitals, any other formed as Windows does once `~1` is taken (two characters, four hex
// digits of a hash, `~1`, the extension's first three); FileAlternateNameInformation and the
// ShortName of FileBothDirectoryInformation agree. And names are found case-insensitively (findCase).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { shortNameOf } from '../src/smb2/fs-backend.js';
import { createServer } from '../src/smb2/index.js';
import { attachClient, testSession } from './support/smb2-client.js';

describe('8.3 names', () => {
  it('a name that is 8.3 already comes back in capitals; a longer one is mangled, stable, with its extension', () => {
    assert.equal(shortNameOf('bufsize.txt'), 'BUFSIZE.TXT');
    assert.equal(shortNameOf('README'), 'README');
    assert.equal(shortNameOf('.'), undefined);
    const long = shortNameOf('a long file name.jpeg')!;
    assert.match(long, /^AL[0-9A-F]{4}~1\.JPE$/);
    assert.equal(shortNameOf('a long file name.jpeg'), long, 'stable');
    assert.notEqual(shortNameOf('a long file name2.jpeg'), long);
    assert.match(shortNameOf('.hidden')!, /^HI[0-9A-F]{4}~1$/);
    assert.match(shortNameOf('two.dots.txt')!, /^TW[0-9A-F]{4}~1\.TXT$/);
  });

  it('FileAlternateNameInformation and a listing\'s ShortName agree', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-names-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'Quarterly Report 2026.xlsx'), 'x');
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    const { rpc } = attachClient(server);
    const s = await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' });
    const hdr = () => ({ messageId: s.nextId(), credits: 8, sessionId: s.sessionId, treeId: s.treeId });
    const f = smb2.decodeSmb2CreateResponse(await rpc(smb2.encodeSmb2CreateRequest({
      header: hdr(), name: 'Quarterly Report 2026.xlsx', desiredAccess: 0x80, createDisposition: smb2.FILE_DISPOSITION.OPEN,
    })));
    const alt = smb2.decodeSmb2OutputResponse(await rpc(smb2.encodeSmb2QueryInfoRequest({
      header: hdr(), infoType: smb2.SMB2_INFO.FILE, infoClass: 21, outputBufferLength: 64, fileId: f.fileId,
    })), smb2.SMB2_COMMAND.QUERY_INFO).output;
    const altName = Buffer.from(alt.subarray(4, 4 + new DataView(alt.buffer, alt.byteOffset).getUint32(0, true))).toString('utf16le');
    assert.match(altName, /^QU[0-9A-F]{4}~1\.XLS$/);
    const root = smb2.decodeSmb2CreateResponse(await rpc(smb2.encodeSmb2CreateRequest({
      header: hdr(), name: '', desiredAccess: 0x1, createDisposition: smb2.FILE_DISPOSITION.OPEN, createOptions: smb2.FILE_OPTION.DIRECTORY_FILE,
    })));
    const list = smb2.decodeSmb2OutputResponse(await rpc(smb2.encodeSmb2QueryDirectoryRequest({
      header: hdr(), infoClass: 3, fileId: root.fileId, pattern: 'Quarterly*', outputBufferLength: 4096,
    })), smb2.SMB2_COMMAND.QUERY_DIRECTORY).output;
    assert.equal(Buffer.from(list.subarray(70, 70 + list[68]!)).toString('utf16le'), altName);
  });
});

describe('names are case-insensitive, as Windows names are', () => {
  it('an existing file or directory is found whatever the case of each component; CREATE of it is a collision; a new name keeps its case', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-case-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'Sub Dir'));
    writeFileSync(join(dir, 'Sub Dir', 'Report.TXT'), 'the report');
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    t.after(() => server.close());
    const { rpc } = attachClient(server);
    const s = await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' });
    const create = (name: string, disposition: number) => rpc(smb2.encodeSmb2CreateRequest({
      header: { messageId: s.nextId(), credits: 8, sessionId: s.sessionId, treeId: s.treeId }, name, desiredAccess: 0x0012019f, createDisposition: disposition,
    }));
    const opened = smb2.decodeSmb2CreateResponse(await create('SUB DIR\\report.txt', smb2.FILE_DISPOSITION.OPEN));
    assert.equal(opened.header.status, smb2.STATUS_SUCCESS, smb2.ntstatusName(opened.header.status));
    assert.equal(opened.endOfFile, 10n, 'the existing file, not a new one');
    assert.equal(smb2.decodeSmb2Header(await create('sub dir\\REPORT.txt', smb2.FILE_DISPOSITION.CREATE)).status, smb2.STATUS_OBJECT_NAME_COLLISION);
    assert.equal(smb2.decodeSmb2Header(await create('sub dir\\New File.Txt', smb2.FILE_DISPOSITION.CREATE)).status, smb2.STATUS_SUCCESS);
    assert.deepEqual(readdirSync(join(dir, 'Sub Dir')).sort(), ['New File.Txt', 'Report.TXT'], 'no second file under another case; the new one as named');
  });
});
