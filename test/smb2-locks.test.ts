// SMB2 LOCK and CANCEL on the server, driven by hand over two in-process connections (`attach`),
// where smbtorture cannot look: the async form of the responses (AsyncId, credits in the interim
// response and none in the final one), a CANCEL that overtakes its LOCK, a holder whose connection
// drops, a peer that goes away while its lock waits, and malformed requests. smbtorture's smb2.lock
// suite (test/smb2-torture.test.ts) pins down the locking rules themselves; the kernel's cifs client
// takes locks through the server in the VM (test/softroce/smb2-cifs.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { smb2 } from '../framing/index.js';
import { type Smb2Server, createServer } from '../src/smb2/index.js';
import { type TestSession, createFile, testSession } from './support/smb2-client.js';

const { EXCLUSIVE, SHARED, FAIL_IMMEDIATELY, UNLOCK } = smb2.SMB2_LOCKFLAG;

/** A connection through `attach`: responses queue in arrival order. */
function client(server: Smb2Server) {
  const inbox: Uint8Array[] = [];
  const waiting: Array<(m: Uint8Array) => void> = [];
  const conn = server.attach({ send: (m) => { const w = waiting.shift(); if (w) w(m); else inbox.push(m); }, close: () => {} });
  const next = (): Promise<Uint8Array> => (inbox.length ? Promise.resolve(inbox.shift()!) : new Promise((resolve) => waiting.push(resolve)));
  const send = (m: Uint8Array) => { void conn.message(m); };
  return { conn, next, send, rpc: (m: Uint8Array) => { send(m); return next(); }, pending: () => inbox.length };
}

async function setup(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'smb2-locks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = createServer({ shares: [{ name: 'share', path: dir }], users: { alice: 'secret' } });
  const open = async () => {
    const c = client(server);
    const s = await testSession(c.rpc, { user: 'alice', password: 'secret', share: 'share' });
    return { ...c, s, fileId: await createFile(s, 'f.bin', smb2.FILE_DISPOSITION.OPEN_IF) };
  };
  return { server, a: await open(), b: await open() };
}

const hdr = (s: TestSession, messageId = s.nextId()) => ({ messageId, credits: 5, sessionId: s.sessionId, treeId: s.treeId });
const lockReq = (s: TestSession, fileId: smb2.Smb2FileId, flags: number, messageId?: bigint) =>
  smb2.encodeSmb2LockRequest({ header: hdr(s, messageId), fileId, locks: [{ offset: 0n, length: 10n, flags }] });
const status = (m: Uint8Array) => smb2.decodeSmb2Header(m).status;

describe('SMB2 LOCK and CANCEL: async responses, cancellation and teardown', () => {
  it('a blocking lock answers STATUS_PENDING at once (async form, credits granted), then CANCELLED with no credits when cancelled by AsyncId', async (t) => {
    const { server, a, b } = await setup(t);
    assert.equal(status(await a.rpc(lockReq(a.s, a.fileId, EXCLUSIVE))), smb2.STATUS_SUCCESS);
    const id = b.s.nextId();
    const interim = smb2.decodeSmb2Header(await b.rpc(lockReq(b.s, b.fileId, EXCLUSIVE, id)));
    assert.equal(interim.status, smb2.STATUS_PENDING);
    assert.ok(interim.flags & smb2.SMB2_FLAGS.ASYNC_COMMAND, 'the interim response is in the async form');
    assert.ok(interim.asyncId > 0n);
    assert.equal(interim.messageId, id);
    assert.equal(interim.credits, 5, 'the interim response grants the credits asked for');
    assert.deepEqual(server.lockTable.counts, { held: 1, waiting: 1 });
    b.send(smb2.encodeSmb2CancelRequest({ messageId: id, sessionId: b.s.sessionId, flags: smb2.SMB2_FLAGS.ASYNC_COMMAND, asyncId: interim.asyncId }));
    const final = smb2.decodeSmb2Header(await b.next());
    assert.equal(final.status, smb2.STATUS_CANCELLED);
    assert.equal(final.asyncId, interim.asyncId);
    assert.equal(final.credits, 0, 'the final response grants none (the interim one did)');
    assert.deepEqual(server.lockTable.counts, { held: 1, waiting: 0 });
    // a CANCEL of nothing has no answer and changes nothing
    b.send(smb2.encodeSmb2CancelRequest({ messageId: 999n, sessionId: b.s.sessionId, flags: smb2.SMB2_FLAGS.ASYNC_COMMAND, asyncId: 12345n }));
    // nor does a malformed one (StructureSize 9): it is dropped, the connection serves on
    const bad = smb2.encodeSmb2CancelRequest({ messageId: 998n, sessionId: b.s.sessionId });
    new DataView(bad.buffer).setUint16(64, 9, true);
    b.send(bad);
    assert.equal(status(await b.rpc(smb2.encodeSmb2Empty(smb2.SMB2_COMMAND.ECHO, hdr(b.s), false))), smb2.STATUS_SUCCESS);
    assert.equal(b.pending(), 0, 'no response to a CANCEL');
  });

  it('a CANCEL that overtakes its LOCK (sync form, by MessageId) still cancels it', async (t) => {
    const { a, b } = await setup(t);
    assert.equal(status(await a.rpc(lockReq(a.s, a.fileId, EXCLUSIVE))), smb2.STATUS_SUCCESS);
    const id = b.s.nextId();
    // the LOCK waits behind a slower message; the CANCEL is handled on arrival
    b.send(smb2.encodeSmb2QueryInfoRequest({ header: hdr(b.s), infoType: smb2.SMB2_INFO.FILE, infoClass: 18, outputBufferLength: 4096, fileId: b.fileId }));
    b.send(lockReq(b.s, b.fileId, EXCLUSIVE, id));
    b.send(smb2.encodeSmb2CancelRequest({ messageId: id, sessionId: b.s.sessionId }));
    assert.equal(status(await b.next()), smb2.STATUS_SUCCESS, 'QUERY_INFO');
    const r = smb2.decodeSmb2Header(await b.next());
    assert.equal(r.messageId, id);
    assert.equal(r.status, smb2.STATUS_CANCELLED);
  });

  it('the holder\'s connection drops: the waiting lock is granted; the waiter\'s drops: nothing is kept', async (t) => {
    const { server, a, b } = await setup(t);
    assert.equal(status(await a.rpc(lockReq(a.s, a.fileId, SHARED))), smb2.STATUS_SUCCESS);
    assert.equal(status(await b.rpc(lockReq(b.s, b.fileId, EXCLUSIVE))), smb2.STATUS_PENDING);
    await a.conn.end();
    const granted = smb2.decodeSmb2Header(await b.next());
    assert.equal(granted.status, smb2.STATUS_SUCCESS);
    assert.ok(granted.flags & smb2.SMB2_FLAGS.ASYNC_COMMAND);
    // b holds it now; a new client waits, then goes away while waiting
    const c = client(server);
    const s = await testSession(c.rpc, { user: 'alice', password: 'secret', share: 'share' });
    const fileId = await createFile(s, 'f.bin', smb2.FILE_DISPOSITION.OPEN_IF);
    assert.equal(status(await c.rpc(lockReq(s, fileId, EXCLUSIVE))), smb2.STATUS_PENDING);
    assert.deepEqual(server.lockTable.counts, { held: 1, waiting: 1 });
    await c.conn.end();
    assert.deepEqual(server.lockTable.counts, { held: 1, waiting: 0 }, 'the dropped waiter is gone');
    await b.conn.end();
    assert.deepEqual(server.lockTable.counts, { held: 0, waiting: 0 });
    assert.equal(server.openFiles, 0);
    assert.equal(c.pending() + b.pending(), 0, 'nothing sent to connections that ended');
  });

  it('closing the handle of a waiting lock answers it STATUS_RANGE_NOT_LOCKED; I/O across another open\'s lock is STATUS_FILE_LOCK_CONFLICT', async (t) => {
    const { a, b } = await setup(t);
    assert.equal(status(await a.rpc(smb2.encodeSmb2WriteRequest({ header: hdr(a.s), fileId: a.fileId, offset: 0n, data: new Uint8Array(100) }))), smb2.STATUS_SUCCESS);
    assert.equal(status(await a.rpc(lockReq(a.s, a.fileId, EXCLUSIVE))), smb2.STATUS_SUCCESS);
    assert.equal(status(await b.rpc(smb2.encodeSmb2ReadRequest({ header: hdr(b.s), fileId: b.fileId, offset: 5n, length: 10 }))), smb2.STATUS_FILE_LOCK_CONFLICT);
    assert.equal(status(await b.rpc(smb2.encodeSmb2ReadRequest({ header: hdr(b.s), fileId: b.fileId, offset: 10n, length: 10 }))), smb2.STATUS_SUCCESS, 'past the lock');
    assert.equal(status(await b.rpc(lockReq(b.s, b.fileId, SHARED))), smb2.STATUS_PENDING);
    b.send(smb2.encodeSmb2CloseRequest({ header: hdr(b.s), fileId: b.fileId }));
    const got = [smb2.decodeSmb2Header(await b.next()), smb2.decodeSmb2Header(await b.next())];
    const byCommand = new Map(got.map((h) => [h.command, h.status]));
    assert.equal(byCommand.get(smb2.SMB2_COMMAND.LOCK), smb2.STATUS_RANGE_NOT_LOCKED, 'the waiting lock, its handle closed');
    assert.equal(byCommand.get(smb2.SMB2_COMMAND.CLOSE), smb2.STATUS_SUCCESS);
    assert.equal(status(await a.rpc(lockReq(a.s, a.fileId, UNLOCK))), smb2.STATUS_SUCCESS);
  });

  it('malformed and invalid requests get their status and the connection serves on; a peer cannot pile up locks', async (t) => {
    const { server, a } = await setup(t);
    const past = lockReq(a.s, a.fileId, EXCLUSIVE | FAIL_IMMEDIATELY);
    new DataView(past.buffer).setUint16(66, 3, true); // LockCount 3, one element in the PDU
    assert.equal(status(await a.rpc(past)), smb2.STATUS_INVALID_PARAMETER);
    const none = smb2.encodeSmb2LockRequest({ header: hdr(a.s), fileId: a.fileId, locks: [] });
    assert.equal(status(await a.rpc(none)), smb2.STATUS_INVALID_PARAMETER);
    const blockingPair = smb2.encodeSmb2LockRequest({ header: hdr(a.s), fileId: a.fileId, locks: [{ offset: 0n, length: 1n, flags: SHARED }, { offset: 5n, length: 1n, flags: SHARED }] });
    assert.equal(status(await a.rpc(blockingPair)), smb2.STATUS_INVALID_PARAMETER, 'only a lone lock may wait');
    const overflow = smb2.encodeSmb2LockRequest({ header: hdr(a.s), fileId: a.fileId, locks: [{ offset: 1n << 63n, length: 1n << 63n, flags: SHARED | FAIL_IMMEDIATELY }, { offset: 2n, length: 1n, flags: 0x40 }] });
    assert.equal(status(await a.rpc(overflow)), smb2.STATUS_INVALID_PARAMETER, 'flags checked before anything is locked');
    const wrapped = smb2.encodeSmb2LockRequest({ header: hdr(a.s), fileId: a.fileId, locks: [{ offset: 1n << 63n, length: (1n << 63n) + 1n, flags: SHARED | FAIL_IMMEDIATELY }] });
    assert.equal(status(await a.rpc(wrapped)), smb2.STATUS_INVALID_LOCK_RANGE);
    assert.equal(status(await a.rpc(lockReq(a.s, { persistent: 7n, volatile: 7n }, EXCLUSIVE))), smb2.STATUS_FILE_CLOSED);
    // bounds on what a peer makes the server keep: elements per LOCK, locks per open
    const many = (n: number, base: number) => smb2.encodeSmb2LockRequest({ header: { ...hdr(a.s), creditCharge: 1 }, fileId: a.fileId,
      locks: Array.from({ length: n }, (_, i) => ({ offset: BigInt(base + i), length: 1n, flags: SHARED | FAIL_IMMEDIATELY })) });
    assert.equal(status(await a.rpc(many(1025, 0))), smb2.STATUS_INVALID_PARAMETER, 'more than 1024 elements');
    for (let i = 0; i < 10; i++) assert.equal(status(await a.rpc(many(1000, i * 1000))), smb2.STATUS_SUCCESS);
    assert.equal(status(await a.rpc(many(1, 20_000))), smb2.STATUS_INSUFFICIENT_RESOURCES, 'the 10001st lock of one open');
    assert.equal(status(await a.rpc(smb2.encodeSmb2CloseRequest({ header: hdr(a.s), fileId: a.fileId }))), smb2.STATUS_SUCCESS);
    assert.deepEqual(server.lockTable.counts, { held: 0, waiting: 0 }, 'closing the open gave them all back');
    assert.equal(status(await a.rpc(smb2.encodeSmb2Empty(smb2.SMB2_COMMAND.ECHO, hdr(a.s), false))), smb2.STATUS_SUCCESS);
  });
});
