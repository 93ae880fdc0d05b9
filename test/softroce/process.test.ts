// Two processes on rxe0 and siw0: this one connects to a peer process (peer.ts)
// through rdma_cm. Data both ways, RDMA into the peer's memory, a graceful
// disconnect, a peer that exits with everything open, and a peer killed in
// the middle of a transfer: error completions and events, never a hang, and
// the kernel's object counts back to their baseline.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';

import {
  DATA, DEVICES, Events, SLAB, baselineCounts, closeAll, expectCountsBack, makeSide, pattern, requireVm, resolve,
  type Counts, type TestDevice,
} from './helpers.js';

const MSG = DATA;
const RECV = 4096;

interface Peer {
  child: ChildProcess;
  lines: AsyncIterator<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string[];
}

function startPeer(ip: string, mode: 'echo' | 'exit-open'): Peer {
  const ts = import.meta.url.endsWith('.ts');
  const script = new URL(ts ? './peer.ts' : './peer.js', import.meta.url).pathname;
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT']; // the peer is a plain program, not a test file
  const child = spawn(process.execPath, [...(ts ? ['--import', 'tsx'] : []), script, ip, mode], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })));
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), exited, stderr };
}

async function line(peer: Peer, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`peer said nothing in ${timeoutMs} ms; stderr: ${peer.stderr.join('')}`)), timeoutMs);
  });
  try {
    const r = await Promise.race([peer.lines.next(), timeout]);
    if (r.done) throw new Error(`peer closed its output; stderr: ${peer.stderr.join('')}`);
    return JSON.parse(r.value) as Record<string, unknown>;
  } finally {
    clearTimeout(timer);
  }
}

/** Connects to a fresh peer; returns our side and the peer's advertised region. */
async function connectToPeer(dev: TestDevice, mode: 'echo' | 'exit-open') {
  const peer = startPeer(dev.ip, mode);
  const { port } = (await line(peer)) as { port: number };
  const events = new Events();
  const id = await resolve(events, dev.ip, port);
  const side = makeSide(id);
  for (let i = 0; i < 8; i++) side.qp.postRecv(1000 + i, { mr: side.mr, offset: SLAB - (i + 1) * RECV, length: RECV });
  id.connect({ initiatorDepth: 4, responderResources: 4 });
  const est = await events.next(id, ['ESTABLISHED']);
  assert.equal((await line(peer)).established, true);
  const pd = est.privateData!;
  const region = { addr: pd.readBigUInt64LE(0), rkey: pd.readUInt32LE(8), length: pd.readUInt32LE(12) };
  assert.equal(region.length, DATA);
  return { peer, events, id, side, region };
}

function teardown(c: Awaited<ReturnType<typeof connectToPeer>>): void {
  c.id.close();
  c.side.pd.close();
  c.side.channel.close();
  c.events.close();
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => {
    try { await expectCountsBack(base, 'process.test'); } finally { closeAll(); }
  });

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind}) across two processes`, () => {
      it(`${dev.name}: echo, RDMA read and write of the peer's memory, graceful disconnect`, async () => {
        const c = await connectToPeer(dev, 'echo');
        const { side, region } = c;
        try {
          // messages echo back byte for byte
          for (let i = 0; i < 3; i++) {
            const msg = pattern(100 + i * 1000, 50 + i);
            side.bytes.set(msg, MSG);
            side.qp.postSend(i + 1, { mr: side.mr, offset: MSG, length: msg.length });
            await side.wcs.takeOk(i + 1);
            const rc = await side.wcs.takeOk(1000 + i);
            assert.equal(rc.byteLength, msg.length);
            const at = SLAB - (i + 1) * RECV;
            assert.ok(Buffer.from(side.bytes.subarray(at, at + rc.byteLength)).equals(msg), `echo ${i}`);
          }
          // the peer's 1 MiB region, read whole
          side.qp.postRead(10, { mr: side.mr, offset: 0, length: DATA }, region.addr, region.rkey);
          await side.wcs.takeOk(10);
          assert.ok(Buffer.from(side.bytes.buffer, 0, DATA).equals(pattern(DATA, 77)), 'peer memory read back');
          // write 256 KiB into it, read it back
          const w = pattern(256 << 10, 78);
          side.bytes.set(w, 0);
          side.qp.postWrite(11, { mr: side.mr, offset: 0, length: w.length }, region.addr + 4096n, region.rkey);
          await side.wcs.takeOk(11);
          side.bytes.fill(0, 0, DATA);
          side.qp.postRead(12, { mr: side.mr, offset: 0, length: w.length }, region.addr + 4096n, region.rkey);
          await side.wcs.takeOk(12);
          assert.ok(Buffer.from(side.bytes.buffer, 0, w.length).equals(w), 'written bytes are in the peer');
          // graceful: we disconnect, the peer answers, closes everything and exits 0
          c.id.disconnect();
          await c.events.next(c.id, ['DISCONNECTED']);
          assert.equal((await line(c.peer)).closed, true);
          assert.deepEqual(await c.peer.exited, { code: 0, signal: null });
          for (let i = 3; i < 8; i++) assert.equal((await side.wcs.take(1000 + i)).status, 'flushed');
        } finally {
          teardown(c);
          c.peer.child.kill('SIGKILL');
        }
        await expectCountsBack(base, 'graceful two-process run');
      });

      it(`${dev.name}: a peer that exits with everything open is cleaned up by the kernel`, async () => {
        const c = await connectToPeer(dev, 'exit-open');
        try {
          c.side.bytes.set(Buffer.from('exit'), MSG);
          c.side.qp.postSend(1, { mr: c.side.mr, offset: MSG, length: 4 });
          assert.deepEqual(await c.peer.exited, { code: 0, signal: null }, c.peer.stderr.join(''));
          // the kernel tears down the peer's cm_id: we see the disconnect, not a hang
          const ev = await c.events.next(c.id, ['DISCONNECTED'], 60_000);
          assert.equal(ev.type, 'DISCONNECTED');
          c.id.disconnect();
          for (let i = 0; i < 8; i++) {
            const wc = await c.side.wcs.take(1000 + i);
            assert.equal(wc.status, 'flushed', `receive ${i}`);
          }
        } finally {
          teardown(c);
          c.peer.child.kill('SIGKILL');
        }
        await expectCountsBack(base, 'peer exit with everything open');
      });

      it(`${dev.name}: a peer killed mid-transfer yields error completions and a disconnect, not a hang`, async () => {
        const c = await connectToPeer(dev, 'echo');
        const { side, region } = c;
        const t0 = Date.now();
        try {
          // keep 4 reads of 256 KiB in flight; kill the peer after 8 have completed
          let next = 100, done = 0, failed: string | undefined;
          const post = () => {
            const wr = next++;
            side.qp.postRead(wr, { mr: side.mr, offset: (wr % 4) * (256 << 10), length: 256 << 10 }, region.addr, region.rkey);
            return wr;
          };
          const inflight = [post(), post(), post(), post()];
          // The kernel destroys the dead peer's cm_id: DISCONNECTED arrives here.
          // Answering it with rdma_disconnect moves our QP to error, so reads that
          // the device would otherwise retry for a long time complete (flushed).
          let disconnected = false;
          const disc = c.events.next(c.id, ['DISCONNECTED'], 60_000).then(() => {
            disconnected = true;
            c.id.disconnect();
          });
          while (!failed) {
            const wc = await side.wcs.take(inflight.shift()!, 60_000);
            if (wc.status !== 'success') { failed = wc.status; break; }
            if (++done === 8) c.peer.child.kill('SIGKILL');
            // nothing new after the kill: siw never completes work posted once its QP is in
            // the error state (the completion layer must flush those itself at close)
            if (done < 8) inflight.push(post());
            if (inflight.length === 0) break;
          }
          await disc;
          for (const wr of inflight) {
            const wc = await side.wcs.take(wr, 60_000);
            if (wc.status !== 'success') failed ??= wc.status;
          }
          console.log(`# ${dev.name}: ${done} reads of 256 KiB, then ${failed ?? 'no error'} (disconnected: ${disconnected}) ${Date.now() - t0} ms after start`);
          assert.ok(done >= 8, 'the transfer was under way when the peer died');
          assert.ok(disconnected, 'DISCONNECTED after the peer died');
          assert.equal((await c.peer.exited).signal, 'SIGKILL');
        } finally {
          teardown(c);
          c.peer.child.kill('SIGKILL');
        }
        await expectCountsBack(base, 'killed peer');
      });
    });
  }
}
