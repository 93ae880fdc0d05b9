// Hardening (#18) on real verbs, rxe0 (soft-RoCE) and siw0 (soft-iWARP), through the verbs provider
// and the SMB Direct API:
//  - a connect request the provider cannot set up (rdma_create_qp fails) never crashes a server,
//    not even one with no 'error' and no 'connectionError' listener (a separate process, which
//    must exit 0 by itself), also while server.close() runs; with a 'connectionError' listener
//    it is ERR_SMBD_SETUP_FAILED; clients are rejected at once (ERR_VERBS_REJECTED), not left to
//    time out;
//  - a registered JS buffer cannot be detached under its MR: structuredClone and postMessage
//    transfers leave it attached, and a peer's RDMA Write still lands in it;
//  - a QP error in the middle of an 8 MiB rdmaWrite / rdmaRead (the client releases the target)
//    and a write to a stale token: both ends end in bounded time with an error code, every
//    promise settles, and the same server serves a new client afterwards;
//  - a connect() while another connection on the same device is open leaves that one working.
// Kernel object counts are back at the baseline after the file.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';

import { connect, createServer } from '../../src/index.js';
import { type RdmaEndpoint, createVerbsProvider } from '../../src/providers/index.js';
import { resolveOptions } from '../../src/smbdirect/options.js';
import { verbsOptionsFor } from '../../src/smbdirect/server.js';
import { Inbox, closed } from '../smbdirect/helpers.js';
import { Wcs } from '../support.js';
import {
  DEVICES, type Counts, baselineCounts, closeAll, expectCountsBack, outcome, pattern, requireVm, settleAll, trace, within,
} from './helpers.js';
import { MiB, client, code, exercise, serve } from './smbd.js';

/** Past every device's inline limit (rxe and siw allow a few hundred bytes): rdma_create_qp fails. */
const FAILING_INLINE = 1 << 20;

// ---- a server process without listeners -------------------------------------------------------

interface Child {
  child: ChildProcess;
  lines: AsyncIterator<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string[];
}

function startSetupFailServer(ip: string): Child {
  const ts = import.meta.url.endsWith('.ts');
  const script = new URL(ts ? './setup-fail-server.ts' : './setup-fail-server.js', import.meta.url).pathname;
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT']; // a plain program, not a test file
  const child = spawn(process.execPath, [...(ts ? ['--import', 'tsx'] : []), script, ip], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), exited, stderr };
}

async function line(c: Child, ms = 30_000): Promise<Record<string, unknown>> {
  const r = await within(c.lines.next(), ms, `a line from the server process (stderr: ${c.stderr.join('')})`);
  if (r.done) throw new Error(`the server process closed its output; stderr: ${c.stderr.join('')}`);
  return JSON.parse(r.value) as Record<string, unknown>;
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => {
    try { await expectCountsBack(base, 'hardening.test'); } finally { closeAll(); }
  });

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind}): hardening`, () => {
      it(`${dev.name}: a server with no 'error' and no 'connectionError' listener survives connect requests it cannot set up, also during close()`, async () => {
        trace(`${dev.name}: a server with no 'error' and no 'connectionError' listener survives connect requests it cannot set up, also during close()`);
        const c = startSetupFailServer(dev.ip);
        try {
          const { port } = (await line(c)) as { port: number };
          const times: number[] = [];
          for (let i = 0; i < 3; i++) {
            const t0 = Date.now();
            const r = await settleAll({ [`connect #${i + 1}`]: connect({ host: dev.ip, port, provider: 'verbs' }) }, 15_000);
            times.push(Date.now() - t0);
            assert.equal(outcome(r[`connect #${i + 1}`]), 'ERR_VERBS_REJECTED', `connect #${i + 1}: ${c.stderr.join('')}`);
          }
          // three more while the server closes
          const during: Record<string, Promise<unknown>> = {};
          for (let i = 0; i < 3; i++) during[`connect during close() #${i + 1}`] = connect({ host: dev.ip, port, provider: 'verbs' });
          c.child.stdin!.write('close\n');
          const r = await settleAll(during, 30_000);
          const codes = Object.values(r).map(outcome);
          // a code each: ERR_VERBS_REJECTED, or on iWARP the refused TCP connect's errno (ECONNREFUSED)
          assert.ok(codes.every((x) => /^(ERR_VERBS_|E[A-Z]+$)/.test(x)), `rejected with a code each: ${codes.join(', ')}`);
          assert.deepEqual(await line(c), { closed: true });
          assert.deepEqual(await within(c.exited, 20_000, 'the server process exiting by itself'), { code: 0, signal: null }, c.stderr.join(''));
          assert.ok(!/Uncaught|Error/.test(c.stderr.join('')), c.stderr.join(''));
          console.log(`# ${dev.name}: 3 connect requests refused in ${times.join(', ')} ms; during close(): ${codes.join(', ')}`);
        } finally {
          c.child.kill('SIGKILL');
        }
      });

      it(`${dev.name}: with a 'connectionError' listener the failed setup is ERR_SMBD_SETUP_FAILED (rdma_create_qp EINVAL) and the server keeps listening`, async () => {

        trace(`${dev.name}: with a 'connectionError' listener the failed setup is ERR_SMBD_SETUP_FAILED (rdma_create_qp EINVAL) and the server keeps listening`);
        const server = createServer({ provider: createVerbsProvider({ ...verbsOptionsFor(resolveOptions({})), maxInlineData: FAILING_INLINE }) });
        const setupErrors: Error[] = [];
        const serverErrors: Error[] = [];
        server.on('connectionError', (e: Error) => setupErrors.push(e));
        server.on('error', (e: Error) => serverErrors.push(e));
        const { port } = await server.listen({ host: dev.ip, port: 0 });
        try {
          for (let i = 1; i <= 2; i++) {
            const r = await settleAll({ [`connect #${i}`]: connect({ host: dev.ip, port, provider: 'verbs' }) }, 15_000);
            assert.equal(outcome(r[`connect #${i}`]), 'ERR_VERBS_REJECTED');
            await within((async () => { while (setupErrors.length < i) await new Promise((res) => setTimeout(res, 10)); })(), 10_000, `'connectionError' #${i}`);
          }
          for (const e of setupErrors) {
            assert.equal(code(e), 'ERR_SMBD_SETUP_FAILED', e.message);
            assert.equal(code(e.cause), 'EINVAL', String((e.cause as Error | undefined)?.message));
            assert.match(e.message, /rdma_create_qp/);
          }
          assert.deepEqual(serverErrors, []);
          console.log(`# ${dev.name}: maxInlineData ${FAILING_INLINE}: ${setupErrors[0]!.message}`);
        } finally {
          await server.close();
        }
      });

      it(`${dev.name}: a registered JS buffer stays attached through structuredClone and postMessage transfers, and a peer's RDMA Write lands in it`, async () => {

        trace(`${dev.name}: a registered JS buffer stays attached through structuredClone and postMessage transfers, and a peer's RDMA Write lands in it`);
        const SIZE = 256 * 1024;
        const provider = createVerbsProvider();
        const listener = await provider.listen({ host: dev.ip, port: 0 });
        const connP = once(listener, 'connection') as Promise<[RdmaEndpoint]>;
        const clientP = provider.connect({ host: dev.ip, port: listener.port });
        const [sep] = await within(connP, 20_000, "the listener's 'connection'");
        const recvMr = sep.registerMemory(4 * 4096, { localWrite: true });
        const swcs = new Wcs(sep, 20_000);
        for (let i = 0; i < 4; i++) sep.postRecv(1000 + i, { mr: recvMr, offset: i * 4096, length: 4096 });
        await sep.accept();
        const cep = await clientP;
        const cwcs = new Wcs(cep, 20_000);
        await listener.close();
        try {
          // verbs provider: registerMemory(Uint8Array) over a plain ArrayBuffer
          const ab = new ArrayBuffer(SIZE);
          const buf = new Uint8Array(ab);
          const region = sep.registerMemory(buf, { localWrite: true, remoteWrite: true });
          const outcomes = detachAttempts(ab);
          assert.equal(ab.byteLength, SIZE, `the ArrayBuffer is still attached (${outcomes.clone})`);
          assert.equal(buf.byteLength, SIZE);
          const posted = await postTransfer(buf, ab);
          assert.equal(ab.byteLength, SIZE, `still attached after postMessage (${posted})`);
          // the peer writes into the region, then sends: the Send arrives after the data is placed
          const src = cep.registerMemory(SIZE + 64, { localWrite: true });
          src.buffer.set(pattern(SIZE, 31), 0);
          cep.postWrite(1, [{ mr: src, offset: 0, length: SIZE }], region.addr, region.rkey);
          await cwcs.ok(1);
          cep.postSend(2, [{ mr: src, offset: SIZE, length: 1 }]);
          await cwcs.ok(2);
          await swcs.ok(1000);
          assert.ok(Buffer.from(buf).equals(pattern(SIZE, 31)), 'the RDMA Write landed in the original buffer');
          console.log(`# ${dev.name}: verbs registerMemory: structuredClone ${outcomes.clone}, postMessage ${posted}`);
          region.close();
        } finally {
          await Promise.all([cep.disconnect(), sep.disconnect()]);
        }
        // the same through the SMB Direct API (rxe: a window over a kept registration of the whole
        // ArrayBuffer; siw: a registration of it)
        const s = await serve(dev.ip);
        try {
          const p = await client(s);
          const ab = new ArrayBuffer(SIZE);
          const buf = new Uint8Array(ab);
          const reg = p.client.registerBuffer(buf, 'write');
          const outcomes = detachAttempts(ab);
          const posted = await postTransfer(buf, ab);
          assert.equal(ab.byteLength, SIZE, `attached after structuredClone (${outcomes.clone}) and postMessage (${posted})`);
          const toClient = new Inbox(p.client);
          await within(p.accepted.rdmaWrite(reg.descriptors, pattern(SIZE, 32)), 30_000, 'rdmaWrite');
          await within(p.accepted.send(new Uint8Array([1])), 30_000, 'the response');
          await toClient.count(1, 30_000);
          assert.ok(Buffer.from(buf).equals(pattern(SIZE, 32)), 'the RDMA Write landed in the original buffer');
          reg.release();
          console.log(`# ${dev.name}: registerBuffer: structuredClone ${outcomes.clone}, postMessage ${posted}`);
          await within(p.client.close(), 30_000, 'client close()');
        } finally {
          await s.server.close();
        }
      });

      for (const op of ['rdmaWrite', 'rdmaRead'] as const) {
        it(`${dev.name}: a QP error in the middle of an 8 MiB ${op} (its second half names a released token): the first half is placed, the ${op} and the work queued behind it settle with codes, both ends end, the server serves the next client`, async () => {
          trace(`${dev.name}: a QP error in the middle of an 8 MiB ${op}`);
          const s = await serve(dev.ip);
          try {
            const p = await client(s);
            const half = 4 * MiB;
            const a = new Uint8Array(half), b = new Uint8Array(half);
            if (op === 'rdmaRead') { a.set(pattern(half, 42)); b.set(pattern(half, 43)); }
            const access = op === 'rdmaWrite' ? 'write' : 'read';
            const regA = p.client.registerBuffer(a, access);
            const regB = p.client.registerBuffer(b, access);
            const descriptors = [...regA.descriptors, ...regB.descriptors];
            regB.release(); // the second half's token is dead: the transfer fails where it reaches it
            const local = new Uint8Array(2 * half);
            if (op === 'rdmaWrite') local.set(pattern(local.length, 44));
            const run = (into: Uint8Array) => (op === 'rdmaWrite' ? p.accepted.rdmaWrite(descriptors, into) : p.accepted.rdmaRead(descriptors, into));
            const clientEnd = closed(p.client);
            const acceptedEnd = closed(p.accepted);
            const t0 = Date.now();
            const r = await settleAll({
              [`server ${op}`]: run(local), [`server ${op} queued behind it`]: run(new Uint8Array(2 * half)),
              'server response send queued behind them': p.accepted.send(new Uint8Array([2])),
              'client close': clientEnd, 'server connection close': acceptedEnd,
            }, 30_000);
            const serverEndErr = (r['server connection close'] as PromiseFulfilledResult<Error | undefined>).value;
            const clientEndErr = (r['client close'] as PromiseFulfilledResult<Error | undefined>).value;
            const summary = `${op} ${outcome(r[`server ${op}`])}, the one queued behind ${outcome(r[`server ${op} queued behind it`])}, ` +
              `response ${outcome(r['server response send queued behind them'])}; server connection ${code(serverEndErr)} (${serverEndErr?.message}), ` +
              `client ${code(clientEndErr) ?? 'no error'}${clientEndErr ? ` (${clientEndErr.message})` : ''}; ${Date.now() - t0} ms`;
            console.log(`# ${dev.name}: ${summary}`);
            assert.match(outcome(r[`server ${op}`]), /^ERR_/, summary);
            for (const k of [`server ${op} queued behind it`, 'server response send queued behind them']) {
              assert.ok(outcome(r[k]) === 'fulfilled' || outcome(r[k]).startsWith('ERR_'), `${k} settled: ${summary}`);
            }
            assert.match(code(serverEndErr) ?? '', /^ERR_/, `the server's connection ended with a code: ${summary}`);
            // an idle peer learns only that the connection went (RDMA has no reset): it ends, with
            // or without an error of its own
            assert.ok(clientEndErr === undefined || /^ERR_/.test(code(clientEndErr) ?? ''), summary);
            if (op === 'rdmaWrite') {
              assert.ok(Buffer.from(a).equals(Buffer.from(local.subarray(0, half))), 'the first half was placed');
              assert.ok(b.every((x) => x === 0), 'nothing through the released token');
            } else {
              assert.ok(Buffer.from(local.subarray(0, half)).equals(a), 'the first half was read');
            }
            regA.release();
            const q = await client(s);
            await exercise(q.client, q.accepted, 50);
            await within(q.client.close(), 30_000, 'the next client close()');
            assert.deepEqual(s.serverErrors, []);
          } finally {
            await within(s.server.close(), 30_000, 'server.close()');
          }
        });

        it(`${dev.name}: the client releases its registration right after the server posted 8 x 8 MiB ${op}s: nothing hangs, failures carry codes, the server serves the next client`, async () => {
          // whether the release lands while the device is still placing data depends on its speed (rxe
          // runs much of a user QP's work inside the post call): what must hold either way is asserted
          trace(`${dev.name}: release right after 8 x 8 MiB ${op}`);
          const s = await serve(dev.ip);
          try {
            const p = await client(s);
            const buf = new Uint8Array(8 * MiB);
            if (op === 'rdmaRead') buf.set(pattern(buf.length, 40));
            const reg = p.client.registerBuffer(buf, op === 'rdmaWrite' ? 'write' : 'read');
            const local = new Uint8Array(8 * MiB);
            if (op === 'rdmaWrite') local.set(pattern(local.length, 41));
            const clientEnd = closed(p.client);
            const acceptedEnd = closed(p.accepted);
            const ops: Record<string, Promise<unknown>> = {};
            for (let i = 1; i <= 8; i++) ops[`server ${op} #${i}`] = op === 'rdmaWrite' ? p.accepted.rdmaWrite(reg.descriptors, local) : p.accepted.rdmaRead(reg.descriptors, local);
            reg.release();
            const t0 = Date.now();
            const r = await settleAll(ops, 60_000);
            const failed = Object.keys(ops).filter((k) => outcome(r[k]) !== 'fulfilled');
            for (const k of failed) assert.match(outcome(r[k]), /^ERR_/, `${k}: ${outcome(r[k])}`);
            let ends = 'both connected';
            if (failed.length) {
              const e = await settleAll({ 'client close': clientEnd, 'server connection close': acceptedEnd }, 30_000);
              const serverEndErr = (e['server connection close'] as PromiseFulfilledResult<Error | undefined>).value;
              const clientEndErr = (e['client close'] as PromiseFulfilledResult<Error | undefined>).value;
              assert.match(code(serverEndErr) ?? '', /^ERR_/, "the server's connection ended with a code");
              ends = `server connection ${code(serverEndErr)}, client ${code(clientEndErr) ?? 'no error'}`;
            } else {
              await within(p.client.close(), 30_000, 'client close()');
            }
            console.log(`# ${dev.name}: release after posting 8 ${op}s: ${Object.keys(ops).map((k) => outcome(r[k])).join(' ')}; ${ends}; ${Date.now() - t0} ms`);
            const q = await client(s);
            await exercise(q.client, q.accepted, 60);
            await within(q.client.close(), 30_000, 'the next client close()');
            assert.deepEqual(s.serverErrors, []);
          } finally {
            await within(s.server.close(), 30_000, 'server.close()');
          }
        });
      }

      it(`${dev.name}: an rdmaWrite to a released (stale) token: the write rejects with a code, both ends end, nothing lands`, async () => {

        trace(`${dev.name}: an rdmaWrite to a released (stale) token: the write rejects with a code, both ends end, nothing lands`);
        const s = await serve(dev.ip);
        try {
          const p = await client(s);
          const buf = new Uint8Array(MiB);
          const reg = p.client.registerBuffer(buf, 'write');
          reg.release();
          const clientEnd = closed(p.client);
          const acceptedEnd = closed(p.accepted);
          const r = await settleAll({
            'server rdmaWrite': p.accepted.rdmaWrite(reg.descriptors, pattern(MiB, 60)), 'client close': clientEnd, 'server connection close': acceptedEnd,
          }, 30_000);
          const serverEndErr = (r['server connection close'] as PromiseFulfilledResult<Error | undefined>).value;
          const clientEndErr = (r['client close'] as PromiseFulfilledResult<Error | undefined>).value;
          console.log(`# ${dev.name}: stale token: write ${outcome(r['server rdmaWrite'])}, server ${code(serverEndErr)}, client ${code(clientEndErr)} (${clientEndErr?.message})`);
          assert.equal(outcome(r['server rdmaWrite']), 'ERR_SMBD_TRANSPORT');
          assert.ok(code(serverEndErr)?.startsWith('ERR_'));
          assert.ok(clientEndErr === undefined || /^ERR_/.test(code(clientEndErr) ?? ''));
          assert.ok(buf.every((b) => b === 0), 'nothing was placed through the stale token');
          const q = await client(s);
          await exercise(q.client, q.accepted, 70);
          await within(q.client.close(), 30_000, 'the next client close()');
        } finally {
          await within(s.server.close(), 30_000, 'server.close()');
        }
      });

      it(`${dev.name}: back-to-back rdmaWrites, each posted from the last one's completion, do not starve the event loop`, async () => {
        // rxe completes a user QP's work inside the post call: a handler that posts again from its
        // completions kept the CQ from running dry, and the drain never returned to the loop
        trace(`${dev.name}: back-to-back rdmaWrites do not starve the event loop`);
        const s = await serve(dev.ip);
        try {
          const p = await client(s);
          const buf = new Uint8Array(256 * 1024);
          const reg = p.client.registerBuffer(buf, 'write');
          const data = pattern(buf.length, 99);
          let ticks = 0, last = Date.now(), maxGap = 0;
          const iv = setInterval(() => { const t = Date.now(); maxGap = Math.max(maxGap, t - last); last = t; ticks++; }, 20);
          const t0 = Date.now();
          let writes = 0;
          try {
            while (Date.now() - t0 < 3000) {
              await p.accepted.rdmaWrite(reg.descriptors, data);
              writes++;
            }
          } finally {
            clearInterval(iv);
          }
          maxGap = Math.max(maxGap, Date.now() - last);
          console.log(`# ${dev.name}: ${writes} writes of 256 KiB in ${Date.now() - t0} ms; a 20 ms interval ticked ${ticks} times, longest gap ${maxGap} ms`);
          assert.ok(ticks >= 5 && maxGap < 1500, `the event loop ran during the loop: ${ticks} ticks, longest gap ${maxGap} ms`);
          reg.release();
          await within(p.client.close(), 30_000, 'close()');
        } finally {
          await within(s.server.close(), 30_000, 'server.close()');
        }
      });

      it(`${dev.name}: a connect() while another connection on the device is open leaves that connection working`, async () => {

        trace(`${dev.name}: a connect() while another connection on the device is open leaves that connection working`);
        const s = await serve(dev.ip);
        try {
          const a = await client(s);
          const b = await client(s); // resolves the provider and checks capacity again
          await exercise(a.client, a.accepted, 80);
          await exercise(b.client, b.accepted, 90);
          assert.equal(a.client.state, 'connected');
          await within(Promise.all([a.client.close(), b.client.close()]), 30_000, 'close()');
          assert.equal(await closed(a.accepted), undefined);
          assert.equal(await closed(b.accepted), undefined);
        } finally {
          await within(s.server.close(), 30_000, 'server.close()');
        }
      });
    });
  }
}

/** structuredClone with the buffer in the transfer list: copied (Node 20 ignores an untransferable
 * buffer there) or refused (DataCloneError on later Nodes); either way not detached. */
function detachAttempts(ab: ArrayBuffer): { clone: string } {
  try {
    const copy = structuredClone(ab, { transfer: [ab] });
    return { clone: copy === ab ? 'same object' : `copied (${copy.byteLength} bytes)` };
  } catch (err) {
    return { clone: `refused (${(err as Error).name})` };
  }
}

/** postMessage of a view with its buffer in the transfer list; what arrived. */
async function postTransfer(view: Uint8Array, ab: ArrayBuffer): Promise<string> {
  const { port1, port2 } = new MessageChannel();
  try {
    const got = once(port2, 'message') as Promise<[Uint8Array]>;
    try {
      port1.postMessage(view, [ab]);
    } catch (err) {
      return `refused (${(err as Error).name})`;
    }
    const [msg] = await within(got, 10_000, 'the posted message');
    return `copied (${msg.byteLength} bytes arrived)`;
  } finally {
    port1.close();
  }
}

