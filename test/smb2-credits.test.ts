// Credits on the SMB3 server ([MS-SMB2] 3.3.1.1, 3.3.5.2.3, 3.3.5.2.5): the command sequence window
// on its own (src/smb2/credit-window.ts), then the server: a MessageId it did not grant or one used
// twice ends the connection, a READ/WRITE larger than its CreditCharge is refused, multi-credit
// requests consume their charge. smbtorture's smb2.credits (test/smb2-torture.test.ts) checks the
// grants against what Windows gives.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { CreditWindow, MAX_CREDITS } from '../src/smb2/credit-window.js';
import { createServer } from '../src/smb2/index.js';
import { attachClient, createFile, testSession } from './support/smb2-client.js';

describe('the command sequence window', () => {
  it('ids are granted by responses, used once each, in any order; a skipped id holds the window at MAX_CREDITS', () => {
    const w = new CreditWindow();
    assert.equal(w.consume(1n, 1), false, 'only id 0 is granted at first');
    assert.ok(w.consume(0n, 1));
    assert.equal(w.consume(0n, 1), false, 'used twice');
    assert.equal(w.grant(10), 10);
    assert.equal(w.outstanding, 10);
    assert.ok(w.consume(3n, 4), 'a multi-credit request takes ids 3..6');
    assert.equal(w.consume(5n, 1), false);
    assert.ok(w.consume(1n, 2));
    assert.equal(w.outstanding, 4);
    // id 7 is skipped: the window cannot slide past it, so grants stop at MAX_CREDITS ids
    assert.equal(w.grant(100_000), MAX_CREDITS - 4);
    for (let id = 8n; id < 8n + BigInt(MAX_CREDITS - 1); id++) assert.ok(w.consume(id, 1));
    assert.equal(w.grant(5), 0, 'the window is full: nothing more until id 7 comes');
    assert.equal(w.outstanding, 1, 'the client still holds the skipped id');
    assert.ok(w.consume(7n, 1));
    assert.equal(w.grant(100_000), MAX_CREDITS, 'a full window again once it slid');
    assert.equal(w.grant(0), 0);
  });
});

describe('the SMB3 server keeps the window', () => {
  async function connect(t: { after(fn: () => unknown): void }) {
    const dir = mkdtempSync(join(tmpdir(), 'smb2-credits-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
    const { conn, rpc, inbox, closed } = attachClient(server);
    const s = await testSession(rpc, { user: 'alice', password: 'secret', share: 'share' });
    return { s, rpc, conn, inbox, isClosed: closed, fileId: await createFile(s, 'f.bin') };
  }

  it('a READ or WRITE larger than its CreditCharge pays for is STATUS_INVALID_PARAMETER; one that pays consumes its charge', async (t) => {
    const { s, rpc, fileId } = await connect(t);
    const data = new Uint8Array(200_000);
    const under = smb2.encodeSmb2WriteRequest({ header: { messageId: s.nextId(), creditCharge: 1, credits: 8, sessionId: s.sessionId, treeId: s.treeId }, fileId, offset: 0n, data });
    assert.equal(smb2.decodeSmb2Header(await rpc(under)).status, smb2.STATUS_INVALID_PARAMETER);
    const paid = smb2.encodeSmb2WriteRequest({ header: { messageId: s.nextId(4), credits: 8, sessionId: s.sessionId, treeId: s.treeId }, fileId, offset: 0n, data });
    assert.equal(new DataView(paid.buffer).getUint16(6, true), 4, 'the encoder charges one credit per 64 KiB');
    assert.equal(smb2.decodeSmb2Header(await rpc(paid)).status, smb2.STATUS_SUCCESS);
    const read = smb2.encodeSmb2ReadRequest({ header: { messageId: s.nextId(4), credits: 8, sessionId: s.sessionId, treeId: s.treeId }, fileId, offset: 0n, length: data.length });
    assert.equal(smb2.decodeSmb2ReadResponse(await rpc(read)).data.length, data.length);
  });

  it('a MessageId used twice ends the connection', async (t) => {
    const { s, conn, inbox, isClosed } = await connect(t);
    const echo = (messageId: bigint) => smb2.encodeSmb2Empty(smb2.SMB2_COMMAND.ECHO, { messageId, credits: 1, sessionId: s.sessionId }, false);
    const id = s.nextId();
    await conn.message(echo(id));
    assert.equal(smb2.decodeSmb2Header(inbox.shift()!).status, smb2.STATUS_SUCCESS);
    await conn.message(echo(id));
    assert.ok(isClosed(), 'closed');
    assert.equal(inbox.length, 0, 'not answered');
  });

  it('a MessageId past the credits granted ends the connection', async (t) => {
    const { s, conn, inbox, isClosed } = await connect(t);
    await conn.message(smb2.encodeSmb2Empty(smb2.SMB2_COMMAND.ECHO, { messageId: s.nextId() + 100_000n, credits: 1, sessionId: s.sessionId }, false));
    assert.ok(isClosed());
    assert.equal(inbox.length, 0);
  });
});
