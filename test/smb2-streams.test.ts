// Named streams on the SMB3 server ("file:name[:$DATA]"): made with their file, read and written,
// listed by FileStreamInformation, names case-insensitive, refused names, renamed, deleted alone or
// with their file, dropped when the file is overwritten; the sidecar store at the share's root is
// neither listed nor reachable by name; a file deleted while a stream of it is open waits for it
// (STATUS_DELETE_PENDING meanwhile). smbtorture's smb2.streams (test/smb2-torture.test.ts) runs
// the rest.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { createServer } from '../src/smb2/index.js';
import { STREAMS_DIR } from '../src/smb2/streams.js';
import { type TestSession, attachClient, testSession } from './support/smb2-client.js';

const { OPEN, CREATE, OPEN_IF, OVERWRITE } = smb2.FILE_DISPOSITION;
const ALL = 0x001f01ff;

async function connect(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'smb2-streams-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
  const { rpc } = attachClient(server);
  return { dir, rpc, s: await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' }) };
}

const hdr = (s: TestSession) => ({ messageId: s.nextId(), credits: 8, sessionId: s.sessionId, treeId: s.treeId });

/** CREATE: the response, or (a failure) its header with an empty FileId and size. */
async function createIn(s: TestSession, rpc: (m: Uint8Array) => Promise<Uint8Array>, name: string, disposition: number, options: number) {
  const m = await rpc(smb2.encodeSmb2CreateRequest({ header: hdr(s), name, desiredAccess: ALL, createDisposition: disposition, createOptions: options, shareAccess: 7 }));
  const header = smb2.decodeSmb2Header(m);
  if (header.status !== smb2.STATUS_SUCCESS) return { header, fileId: { persistent: 0n, volatile: 0n }, endOfFile: -1n };
  return smb2.decodeSmb2CreateResponse(m);
}

describe('named streams on the SMB3 server', () => {
  it('a stream is made with its file, read and written on its own, listed, found in any case; its file keeps its own data', async (t) => {
    const { dir, rpc, s } = await connect(t);
    const create = (name: string, disposition: number, options = 0) => createIn(s, rpc, name, disposition, options);
    const made = await create('f.txt:Zone.Identifier', CREATE);
    assert.equal(made.header.status, smb2.STATUS_SUCCESS, smb2.ntstatusName(made.header.status));
    assert.ok(existsSync(join(dir, 'f.txt')), 'the file was made for its stream');
    const w = smb2.encodeSmb2WriteRequest({ header: hdr(s), fileId: made.fileId, offset: 0n, data: Buffer.from('[ZoneTransfer]') });
    assert.equal(smb2.decodeSmb2Header(await rpc(w)).status, smb2.STATUS_SUCCESS);
    const again = await create('f.txt:ZONE.IDENTIFIER:$DATA', OPEN);
    assert.equal(again.header.status, smb2.STATUS_SUCCESS, 'the name in another case, with its type');
    assert.equal(again.endOfFile, 14n, 'the stream\'s size, not the file\'s');
    const r = smb2.decodeSmb2ReadResponse(await rpc(smb2.encodeSmb2ReadRequest({ header: hdr(s), fileId: again.fileId, offset: 0n, length: 100 })));
    assert.equal(Buffer.from(r.data).toString(), '[ZoneTransfer]');
    const base = await create('f.txt', OPEN);
    assert.equal(base.endOfFile, 0n, 'the file\'s own data is untouched');
    const list = smb2.decodeSmb2OutputResponse(await rpc(smb2.encodeSmb2QueryInfoRequest({
      header: hdr(s), infoType: smb2.SMB2_INFO.FILE, infoClass: 22, outputBufferLength: 4096, fileId: base.fileId,
    })), smb2.SMB2_COMMAND.QUERY_INFO).output;
    const names: string[] = [];
    for (let at = 0; ;) {
      const v = new DataView(list.buffer, list.byteOffset + at);
      names.push(Buffer.from(list.subarray(at + 24, at + 24 + v.getUint32(4, true))).toString('utf16le'));
      if (!v.getUint32(0, true)) break;
      at += v.getUint32(0, true);
    }
    assert.deepEqual(names, ['::$DATA', ':Zone.Identifier:$DATA']);
    // names Windows refuses, and a stream of a file that is not there
    for (const bad of ['f.txt:', 'f.txt:x:', 'f.txt:x:$FOO', 'f.txt:a\\b', 'f.txt:a:b:$DATA']) {
      assert.equal((await create(bad, OPEN_IF)).header.status, smb2.STATUS_OBJECT_NAME_INVALID, bad);
    }
    assert.equal((await create('nosuch.txt:s', OPEN)).header.status, smb2.STATUS_OBJECT_NAME_NOT_FOUND);
    assert.equal((await create('f.txt:s', OPEN, smb2.FILE_OPTION.DIRECTORY_FILE)).header.status, smb2.STATUS_NOT_A_DIRECTORY);
    // the store is neither listed nor reachable
    assert.ok(readdirSync(dir).includes(STREAMS_DIR));
    assert.equal((await create(STREAMS_DIR, OPEN)).header.status, smb2.STATUS_ACCESS_DENIED);
    const root = await create('', OPEN, smb2.FILE_OPTION.DIRECTORY_FILE);
    const listing = smb2.decodeSmb2OutputResponse(await rpc(smb2.encodeSmb2QueryDirectoryRequest({
      header: hdr(s), infoClass: 1, fileId: root.fileId, pattern: '*', outputBufferLength: 65536,
    })), smb2.SMB2_COMMAND.QUERY_DIRECTORY).output;
    assert.ok(!Buffer.from(listing).toString('utf16le').includes(STREAMS_DIR), 'not listed');
  });

  it('a stream is renamed, deleted on close alone; overwriting its file drops its streams, deleting the file deletes them', async (t) => {
    const { dir, rpc, s } = await connect(t);
    const create = (name: string, disposition: number, options = 0) => createIn(s, rpc, name, disposition, options);
    const close = async (fileId: smb2.Smb2FileId) => assert.equal(smb2.decodeSmb2Header(await rpc(smb2.encodeSmb2CloseRequest({ header: hdr(s), fileId }))).status, smb2.STATUS_SUCCESS);
    const a = await create('g.txt:one', CREATE);
    const rename = (fileId: smb2.Smb2FileId, to: string) => {
      const name = Buffer.from(to, 'utf16le');
      const info = new Uint8Array(20 + name.length);
      new DataView(info.buffer).setUint32(16, name.length, true);
      info.set(name, 20);
      return rpc(smb2.encodeSmb2SetInfoRequest({ header: hdr(s), infoType: smb2.SMB2_INFO.FILE, infoClass: 10, buffer: info, fileId }));
    };
    assert.equal(smb2.decodeSmb2Header(await rename(a.fileId, ':two:$DATA')).status, smb2.STATUS_SUCCESS);
    await close(a.fileId);
    assert.equal((await create('g.txt:one', OPEN)).header.status, smb2.STATUS_OBJECT_NAME_NOT_FOUND);
    const two = await create('g.txt:two', OPEN, smb2.FILE_OPTION.DELETE_ON_CLOSE);
    assert.equal(two.header.status, smb2.STATUS_SUCCESS);
    await close(two.fileId);
    assert.equal((await create('g.txt:two', OPEN)).header.status, smb2.STATUS_OBJECT_NAME_NOT_FOUND, 'deleted');
    const base = await create('g.txt', OPEN);
    assert.equal(base.header.status, smb2.STATUS_SUCCESS, 'its file stays');
    await close(base.fileId);
    await close((await create('g.txt:three', CREATE)).fileId);
    await close((await create('g.txt', OVERWRITE)).fileId);
    assert.equal((await create('g.txt:three', OPEN)).header.status, smb2.STATUS_OBJECT_NAME_NOT_FOUND, 'overwriting the file dropped it');
    await close((await create('g.txt:four', CREATE)).fileId);
    const streamsOf = () => readdirSync(join(dir, STREAMS_DIR)).length;
    assert.equal(streamsOf(), 1);
    // a file deleted while a stream of it is open stays (DELETE_PENDING) until that stream closes
    const four = await create('g.txt:four', OPEN);
    await close((await create('g.txt', OPEN, smb2.FILE_OPTION.DELETE_ON_CLOSE)).fileId);
    assert.equal((await create('g.txt', OPEN_IF)).header.status, smb2.STATUS_DELETE_PENDING);
    assert.equal(streamsOf(), 1);
    await close(four.fileId);
    assert.equal(streamsOf(), 0, 'deleting the file deleted its streams');
    assert.ok(!existsSync(join(dir, 'g.txt')));
  });
});
