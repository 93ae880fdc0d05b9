// Oplocks (src/smb2/oplocks.ts) and session life (re-authentication, NULL sessions, a reconnect's
// PreviousSessionId) in the SMB3 server, driven by hand-written clients on connections of one
// server: what one client's CREATE does to another's oplock, on the wire (STATUS_PENDING, the
// break notification, the acknowledgment, the final response with its AsyncId). smbtorture's
// smb2.session subtests (test/smb2-torture.test.ts) prove the same against Samba's client.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { type Smb2ServerOptions, createServer } from '../src/smb2/index.js';
import { attachClient, sessionSetup, testSession, type TestSession } from './support/smb2-client.js';

const L = smb2.SMB2_OPLOCK_LEVEL;
const RW = 0x0012019f;
const SHARE_ALL = 7;

function setup(t: { after(fn: () => unknown): void }, options: Partial<Smb2ServerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'smb2-oplock-'));
  const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret', bob: 'pw' }, oplocks: true, ...options });
  t.after(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
  const client = async () => {
    const c = attachClient(server);
    const s = await testSession(c.rpc, { user: 'alice', password: 'secret', share: 'share' });
    return { ...c, s };
  };
  return { server, client };
}

const createReq = (s: TestSession, name: string, o: { oplock?: number; access?: number; share?: number; disposition?: number } = {}) => smb2.encodeSmb2CreateRequest({
  header: { messageId: s.nextId(), credits: 8, sessionId: s.sessionId, treeId: s.treeId }, name, desiredAccess: o.access ?? RW,
  shareAccess: o.share ?? SHARE_ALL, createDisposition: o.disposition ?? smb2.FILE_DISPOSITION.OPEN_IF, requestedOplockLevel: o.oplock ?? L.NONE,
  createOptions: smb2.FILE_OPTION.NON_DIRECTORY_FILE,
});

/** The next message in `inbox` that `pred` accepts (taken out), waiting for it up to 5 s. */
async function take(inbox: Uint8Array[], pred: (h: smb2.Smb2Header) => boolean, what: string): Promise<Uint8Array> {
  for (let i = 0; i < 500; i++) {
    const at = inbox.findIndex((m) => pred(smb2.decodeSmb2Header(m)));
    if (at >= 0) return inbox.splice(at, 1)[0]!;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${what} came: ${inbox.map((m) => smb2.decodeSmb2Header(m).command).join(',')}`);
}
const isBreak = (h: smb2.Smb2Header) => h.command === smb2.SMB2_COMMAND.OPLOCK_BREAK && h.messageId === smb2.SMB2_NOTIFICATION_MESSAGE_ID;

describe('SMB3 server: oplocks', () => {
  it('a BATCH holder is broken to LEVEL_II by another connection\'s CREATE, which waits (STATUS_PENDING) for the acknowledgment', async (t) => {
    const { client } = setup(t);
    const a = await client(), b = await client();
    const ra = smb2.decodeSmb2CreateResponse(await a.rpc(createReq(a.s, 'f.txt', { oplock: L.BATCH })));
    assert.equal(ra.oplockLevel, L.BATCH, 'the only open gets the BATCH oplock it asked for');
    const msgId = b.s.nextId();
    await b.conn.message(smb2.encodeSmb2CreateRequest({ header: { messageId: msgId, credits: 8, sessionId: b.s.sessionId, treeId: b.s.treeId }, name: 'f.txt',
      desiredAccess: RW, shareAccess: SHARE_ALL, createDisposition: smb2.FILE_DISPOSITION.OPEN, requestedOplockLevel: L.BATCH }));
    const interim = smb2.decodeSmb2Header(b.inbox.shift()!);
    assert.equal(interim.status, smb2.STATUS_PENDING);
    assert.ok(interim.flags & smb2.SMB2_FLAGS.ASYNC_COMMAND);
    const brk = smb2.decodeSmb2OplockBreak(await take(a.inbox, isBreak, 'break notification'), true);
    assert.equal(brk.oplockLevel, L.II);
    assert.deepEqual(brk.fileId, ra.fileId);
    assert.equal(b.inbox.length, 0, 'the CREATE waits while the holder has not answered');
    const ack = smb2.decodeSmb2OplockBreak(await a.rpc(smb2.encodeSmb2OplockBreak({
      header: { messageId: a.s.nextId(), credits: 8, sessionId: a.s.sessionId, treeId: a.s.treeId }, oplockLevel: L.II, fileId: ra.fileId }, false)), true);
    assert.equal(ack.header.status, smb2.STATUS_SUCCESS);
    assert.equal(ack.oplockLevel, L.II);
    const final = smb2.decodeSmb2CreateResponse(await take(b.inbox, (h) => h.command === smb2.SMB2_COMMAND.CREATE, 'final CREATE response'));
    assert.equal(final.header.status, smb2.STATUS_SUCCESS);
    assert.equal(final.header.messageId, msgId);
    assert.equal(final.header.asyncId, interim.asyncId, 'the final response carries the AsyncId of the interim one');
    assert.equal(final.header.credits, 0, 'credits came with the interim response');
    assert.equal(final.oplockLevel, L.II, 'beside another open: LEVEL_II at most');
    // an acknowledgment with no break in progress
    const again = smb2.decodeSmb2Header(await a.rpc(smb2.encodeSmb2OplockBreak({
      header: { messageId: a.s.nextId(), credits: 8, sessionId: a.s.sessionId, treeId: a.s.treeId }, oplockLevel: L.NONE, fileId: ra.fileId }, false)));
    assert.equal(again.status, smb2.STATUS_INVALID_OPLOCK_PROTOCOL);
  });

  it('a holder that closes instead of answering lets the CREATE through its share mode; one that never answers loses the oplock at the deadline', async (t) => {
    const { client } = setup(t, { oplockBreakTimeoutMs: 300 });
    const a = await client(), b = await client();
    const ra = smb2.decodeSmb2CreateResponse(await a.rpc(createReq(a.s, 'g.txt', { oplock: L.BATCH, share: 0 })));
    assert.equal(ra.oplockLevel, L.BATCH);
    await b.conn.message(createReq(b.s, 'g.txt'));
    assert.equal(smb2.decodeSmb2Header(b.inbox.shift()!).status, smb2.STATUS_PENDING, 'a BATCH holder is asked before the sharing check');
    await take(a.inbox, isBreak, 'break notification');
    assert.equal(smb2.decodeSmb2Header(await a.rpc(smb2.encodeSmb2CloseRequest({
      header: { messageId: a.s.nextId(), credits: 8, sessionId: a.s.sessionId, treeId: a.s.treeId }, fileId: ra.fileId }))).status, smb2.STATUS_SUCCESS);
    const final = smb2.decodeSmb2CreateResponse(await take(b.inbox, (h) => h.command === smb2.SMB2_COMMAND.CREATE, 'final CREATE'));
    assert.equal(final.header.status, smb2.STATUS_SUCCESS, 'the holder closed: no sharing violation');

    // EXCLUSIVE, then silence: the CREATE goes on after oplockBreakTimeoutMs
    const rb = smb2.decodeSmb2CreateResponse(await b.rpc(createReq(b.s, 'h.txt', { oplock: L.EXCLUSIVE })));
    assert.equal(rb.oplockLevel, L.EXCLUSIVE);
    const started = Date.now();
    await a.conn.message(createReq(a.s, 'h.txt'));
    assert.equal(smb2.decodeSmb2Header(a.inbox.shift()!).status, smb2.STATUS_PENDING);
    await take(b.inbox, isBreak, 'break notification');
    const late = smb2.decodeSmb2CreateResponse(await take(a.inbox, (h) => h.command === smb2.SMB2_COMMAND.CREATE, 'final CREATE'));
    assert.equal(late.header.status, smb2.STATUS_SUCCESS);
    assert.ok(Date.now() - started >= 250, 'it waited for the deadline');
  });

  it('a sharing violation breaks no EXCLUSIVE oplock; a stat open breaks none; a write breaks LEVEL_II holders to NONE, told only', async (t) => {
    const { client } = setup(t);
    const a = await client(), b = await client();
    const ra = smb2.decodeSmb2CreateResponse(await a.rpc(createReq(a.s, 'x.txt', { oplock: L.EXCLUSIVE, share: 0 })));
    assert.equal(smb2.decodeSmb2Header(await b.rpc(createReq(b.s, 'x.txt'))).status, smb2.STATUS_SHARING_VIOLATION);
    assert.equal(smb2.decodeSmb2Header(await b.rpc(createReq(b.s, 'x.txt', { access: 0x80 /* FILE_READ_ATTRIBUTES */ }))).status, smb2.STATUS_SUCCESS);
    assert.equal(a.inbox.length, 0, 'no break was sent');
    await a.rpc(smb2.encodeSmb2CloseRequest({ header: { messageId: a.s.nextId(), credits: 8, sessionId: a.s.sessionId, treeId: a.s.treeId }, fileId: ra.fileId }));

    const l2a = smb2.decodeSmb2CreateResponse(await a.rpc(createReq(a.s, 'y.txt', { oplock: L.II })));
    assert.equal(l2a.oplockLevel, L.II);
    const l2b = smb2.decodeSmb2CreateResponse(await b.rpc(createReq(b.s, 'y.txt', { oplock: L.BATCH })));
    assert.equal(l2b.oplockLevel, L.II, 'beside a LEVEL_II holder, LEVEL_II');
    const w = smb2.decodeSmb2Header(await b.rpc(smb2.encodeSmb2WriteRequest({
      header: { messageId: b.s.nextId(), credits: 8, sessionId: b.s.sessionId, treeId: b.s.treeId }, fileId: l2b.fileId, offset: 0n, data: new Uint8Array(10) })));
    assert.equal(w.status, smb2.STATUS_SUCCESS);
    const brk = smb2.decodeSmb2OplockBreak(await take(a.inbox, isBreak, 'LEVEL_II break'), true);
    assert.equal(brk.oplockLevel, L.NONE);
    assert.deepEqual(brk.fileId, l2a.fileId);
    assert.equal(b.inbox.length, 0, 'the writer is not told about its own write');
  });

  it('a holder and the CREATE that breaks it on one connection: the CREATE goes async, so the acknowledgment is served; CANCEL ends a waiting CREATE', async (t) => {
    const { client } = setup(t);
    const a = await client();
    const ra = smb2.decodeSmb2CreateResponse(await a.rpc(createReq(a.s, 'z.txt', { oplock: L.BATCH })));
    await a.conn.message(createReq(a.s, 'z.txt'));
    assert.equal(smb2.decodeSmb2Header(await take(a.inbox, (h) => h.command === smb2.SMB2_COMMAND.CREATE, 'interim')).status, smb2.STATUS_PENDING);
    await take(a.inbox, isBreak, 'break notification');
    await a.rpc(smb2.encodeSmb2OplockBreak({ header: { messageId: a.s.nextId(), credits: 8, sessionId: a.s.sessionId, treeId: a.s.treeId }, oplockLevel: L.NONE, fileId: ra.fileId }, false));
    const final = smb2.decodeSmb2Header(await take(a.inbox, (h) => h.command === smb2.SMB2_COMMAND.CREATE, 'final CREATE'));
    assert.equal(final.status, smb2.STATUS_SUCCESS);

    const b = await client();
    const rb = smb2.decodeSmb2CreateResponse(await b.rpc(createReq(b.s, 'w.txt', { oplock: L.BATCH })));
    assert.equal(rb.oplockLevel, L.BATCH);
    await a.conn.message(createReq(a.s, 'w.txt'));
    const interim = smb2.decodeSmb2Header(a.inbox.shift()!);
    assert.equal(interim.status, smb2.STATUS_PENDING);
    await a.conn.message(smb2.encodeSmb2CancelRequest({ messageId: 0n, sessionId: a.s.sessionId, flags: smb2.SMB2_FLAGS.ASYNC_COMMAND, asyncId: interim.asyncId }));
    const cancelled = smb2.decodeSmb2Header(await take(a.inbox, (h) => h.command === smb2.SMB2_COMMAND.CREATE, 'cancelled CREATE'));
    assert.equal(cancelled.status, smb2.STATUS_CANCELLED);
  });
});

describe('SMB3 server: session life', () => {
  it('re-authentication keeps the session and its opens; a failed one ends the session and closes its opens', async (t) => {
    const { server, client } = setup(t);
    const a = await client();
    const f = smb2.decodeSmb2CreateResponse(await a.rpc(createReq(a.s, 'r.txt')));
    assert.equal((await sessionSetup(a.rpc, a.s.nextId, { user: 'bob', password: 'pw', sessionId: a.s.sessionId })).status, smb2.STATUS_SUCCESS);
    const anon = await sessionSetup(a.rpc, a.s.nextId, { user: '', password: '', sessionId: a.s.sessionId });
    assert.equal(anon.status, smb2.STATUS_SUCCESS, 'anonymous re-authentication');
    assert.ok(anon.sessionFlags & smb2.SMB2_SESSION_FLAG.IS_NULL);
    const q = () => a.rpc(smb2.encodeSmb2QueryInfoRequest({ header: { messageId: a.s.nextId(), credits: 8, sessionId: a.s.sessionId, treeId: a.s.treeId },
      infoType: smb2.SMB2_INFO.FILE, infoClass: 14 /* position */, outputBufferLength: 8, fileId: f.fileId }));
    assert.equal(smb2.decodeSmb2Header(await q()).status, smb2.STATUS_SUCCESS, 'the open survives re-authentication');
    assert.equal(server.openFiles, 1);
    assert.equal((await sessionSetup(a.rpc, a.s.nextId, { user: 'alice', password: 'wrong', sessionId: a.s.sessionId })).status, smb2.STATUS_LOGON_FAILURE);
    assert.equal(smb2.decodeSmb2Header(await q()).status, smb2.STATUS_USER_SESSION_DELETED);
    for (let i = 0; i < 50 && server.openFiles > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.openFiles, 0, 'its open closed');
  });

  it('a NULL session reaches IPC$ only; a reconnect naming its PreviousSessionId ends that session (same user only)', async (t) => {
    const { server, client } = setup(t);
    const c = attachClient(server);
    let id = 0n;
    const nextId = () => id++;
    await c.rpc(smb2.encodeSmb2NegotiateRequest({ dialects: [0x302], clientGuid: new Uint8Array(16), header: { messageId: nextId(), credits: 8 } }));
    const anon = await sessionSetup(c.rpc, nextId, { user: '', password: '' });
    assert.equal(anon.status, smb2.STATUS_SUCCESS);
    const tc = (path: string) => c.rpc(smb2.encodeSmb2TreeConnectRequest({ header: { messageId: nextId(), credits: 8, sessionId: anon.sessionId }, path }));
    assert.equal(smb2.decodeSmb2Header(await tc('\\\\h\\share')).status, smb2.STATUS_ACCESS_DENIED);
    assert.equal(smb2.decodeSmb2Header(await tc('\\\\h\\IPC$')).status, smb2.STATUS_SUCCESS);

    const old = await client();
    await old.rpc(createReq(old.s, 'p.txt'));
    assert.equal(server.openFiles, 1);
    // bob cannot end alice's session by naming it
    const other = attachClient(server);
    let oid = 0n;
    await other.rpc(smb2.encodeSmb2NegotiateRequest({ dialects: [0x302], clientGuid: new Uint8Array(16), header: { messageId: oid++, credits: 8 } }));
    assert.equal((await sessionSetup(other.rpc, () => oid++, { user: 'bob', password: 'pw', previousSessionId: old.s.sessionId })).status, smb2.STATUS_SUCCESS);
    assert.equal(smb2.decodeSmb2Header(await old.rpc(createReq(old.s, 'q.txt'))).status, smb2.STATUS_SUCCESS, 'alice\'s session lives on');
    assert.equal((await sessionSetup(other.rpc, () => oid++, { user: 'alice', password: 'secret', previousSessionId: old.s.sessionId })).status, smb2.STATUS_SUCCESS);
    assert.equal(smb2.decodeSmb2Header(await old.rpc(createReq(old.s, 'p.txt'))).status, smb2.STATUS_USER_SESSION_DELETED, 'the previous session is gone');
    for (let i = 0; i < 50 && server.openFiles > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.openFiles, 0, 'and its opens closed');
  });
});
