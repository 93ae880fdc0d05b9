// createWorkerPool() on rxe0 and siw0: a 2-worker server (connections handed from the main
// thread's listener to the workers with rdma_migrate_id) and 8 client connections in this
// thread. Every connection's completions are handled on its own worker's CQ (from the workers'
// stats), echoed data is byte-exact, and closing the server closes everything. Killing one
// worker mid-transfer ends its connections (the clients see them go, their transfers fail) while
// the other worker's transfers finish intact. Kernel objects back to the baseline afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  type Completion, type MemoryRegion, type VerbsEndpoint, type WorkerStats,
  createVerbsProvider, createWorkerPool,
} from '../../src/providers/index.js';
import * as native from '../../native/index.js';
import { DEVICES, Events, type Counts, baselineCounts, expectCountsBack, pattern, requireVm, resolve } from './helpers.js';

const WORKER = new URL('./echo-worker.js', import.meta.url);
const CONNS = 8;
const SIZE = 512;

interface ConnStats { peerPort: number; cqIndex: number; completions: number; threads: number[]; echoed: number; errors: string[] }

/** A client connection doing ping-pong: each message must come back byte-exact. */
class Client {
  mr: MemoryRegion;
  done = 0;
  events: string[] = [];
  private waiter?: { resolve: (c: Completion) => void; reject: (e: Error) => void };
  private closed = false;
  /** The client's own port: the server side sees it as the peer port. */
  readonly port: number;

  constructor(readonly ep: VerbsEndpoint, readonly n: number) {
    this.port = ep.localAddress!.port;
    this.mr = ep.registerMemory(2 * SIZE, { localWrite: true });
    ep.postRecv(1, { mr: this.mr, offset: SIZE, length: SIZE });
    ep.onCompletions((batch) => {
      for (const c of batch) if (c.opcode === 'recv') this.waiter?.resolve(c);
    });
    for (const e of ['disconnected', 'error', 'close']) ep.on(e, (err?: { code?: string }) => {
      this.events.push(e === 'error' ? `error:${err?.code}` : e);
      if (e === 'close') { this.closed = true; this.waiter?.reject(new Error('the connection ended')); }
    });
  }


  /** Sends `count` messages one at a time and checks each echo. */
  async run(count: number, onEach?: () => void): Promise<void> {
    for (let i = 0; i < count; i++) {
      if (this.closed) throw new Error('the connection ended');
      const msg = pattern(SIZE, this.n * 100_000 + this.done);
      this.mr.buffer.set(msg, 0);
      const echo = new Promise<Completion>((resolve, reject) => { this.waiter = { resolve, reject }; });
      this.ep.postSend(2, [{ mr: this.mr, offset: 0, length: SIZE }], { signaled: false });
      const c = await echo;
      this.waiter = undefined;
      if (c.status !== 'success') throw new Error(`echo ${this.done}: ${c.status}`);
      assert.equal(c.byteLength, SIZE);
      assert.ok(Buffer.from(this.mr.buffer.subarray(SIZE, 2 * SIZE)).equals(msg), `connection ${this.n}: echo ${this.done} differs`);
      this.ep.postRecv(1, { mr: this.mr, offset: SIZE, length: SIZE });
      this.done++;
      onEach?.();
    }
  }
}

function connsOf(s: WorkerStats): ConnStats[] {
  return s.user as ConnStats[];
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => { await expectCountsBack(base, 'workers.test'); });

  it('CmId.detach() / EventChannel.adoptId(): a handle is adopted once; forged, stale and QP-bearing ids are refused', async () => {
    const dev = DEVICES[0]!;
    const events = new Events();
    const other = new Events();
    try {
      const id = await resolve(events, dev.ip, 9);
      const handle = id.detach();
      assert.equal(typeof handle, 'bigint');
      assert.ok(id.closed, 'the detached object is closed');
      const adopted = other.channel.adoptId(handle);
      assert.equal(adopted.deviceName, dev.name, 'the adopted id keeps its resolved device');
      assert.throws(() => other.channel.adoptId(handle), (e: native.NativeError) => e.code === 'ERR_INVALID_HANDLE');
      assert.throws(() => other.channel.adoptId(12345n), (e: native.NativeError) => e.code === 'ERR_INVALID_HANDLE');
      assert.equal(native.destroyDetachedId(handle), false, 'already adopted');
      const again = adopted.detach();
      assert.equal(native.destroyDetachedId(again), true, 'an unadopted id is freed');
      assert.throws(() => other.channel.adoptId(again), (e: native.NativeError) => e.code === 'ERR_INVALID_HANDLE');
      const withQp = await resolve(events, dev.ip, 9);
      const d = withQp.device!;
      const pd = d.allocPd();
      const ch = d.createCompChannel();
      const cq = d.createCq(16, ch, 0, () => {});
      withQp.createQp(pd, cq, cq, {});
      assert.throws(() => withQp.detach(), (e: native.NativeError) => e.code === 'ERR_QP_EXISTS');
      withQp.close();
      pd.close();
      ch.close();
    } finally {
      events.close();
      other.close();
    }
  });

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind})`, () => {
      it(`${dev.name}: 2 workers x ${CONNS} connections: each connection's completions on its own worker, data intact, close ends all`, async () => {
        const pool = await createWorkerPool({ workers: 2, module: WORKER });
        const listener = await pool.listen({ host: dev.ip, port: 0 });
        const provider = createVerbsProvider();
        const clients: Client[] = [];
        try {
          for (let i = 0; i < CONNS; i++) clients.push(new Client(await provider.connect({ host: dev.ip, port: listener.port }), i));
          await Promise.all(clients.map((c) => c.run(50)));
          const stats = await pool.stats();
          assert.equal(stats.length, 2);
          const threads = stats.map((s) => s.threadId);
          assert.ok(threads[0] !== threads[1] && !threads.includes(0), `two worker threads: ${threads}`);
          const ports = new Map<number, number>(); // client port -> worker index
          for (const s of stats) {
            assert.equal(s.connections, CONNS / 2, `worker ${s.index} serves half of the connections`);
            const cqs = s.pools[dev.name]!;
            assert.equal(cqs.length, 1, 'one CQ set per worker');
            assert.equal(cqs[0]!.threadId, s.threadId, 'the CQ is polled on the worker');
            assert.equal(cqs[0]!.compVector, s.index, 'worker i on comp vector i');
            assert.equal(cqs[0]!.qps, CONNS / 2);
            for (const c of connsOf(s)) {
              assert.deepEqual(c.threads, [s.threadId], `connection from port ${c.peerPort}: completions handled on worker ${s.index} only`);
              assert.deepEqual(c.errors, []);
              assert.ok(c.completions >= 100 && c.echoed === 50, JSON.stringify(c));
              ports.set(c.peerPort, s.index);
            }
            assert.ok(cqs[0]!.completions >= connsOf(s).reduce((n, c) => n + c.completions, 0), JSON.stringify(cqs[0]));
          }
          assert.deepEqual([...ports.keys()].sort(), clients.map((c) => c.port).sort(), 'every client connection is on a worker');
          console.log(`# ${dev.name}: ${JSON.stringify(stats.map((s) => ({ worker: s.index, threadId: s.threadId, cq: s.pools[dev.name]![0] })))}`);
        } finally {
          const ended = Promise.all(clients.map((c) => new Promise((r) => c.ep.once('close', r))));
          await pool.close();
          await ended;
        }
        for (const c of clients) assert.deepEqual(c.events, ['disconnected', 'close'], `client ${c.n}`);
        assert.ok(pool.workers.every((w) => !w.alive));
      });

      it(`${dev.name}: killing one worker mid-transfer ends only its connections`, async () => {
        const pool = await createWorkerPool({ workers: 2, module: WORKER });
        const listener = await pool.listen({ host: dev.ip, port: 0 });
        const provider = createVerbsProvider();
        const clients: Client[] = [];
        try {
          for (let i = 0; i < CONNS; i++) clients.push(new Client(await provider.connect({ host: dev.ip, port: listener.port }), i));
          const stats = await pool.stats();
          const victims = new Set(connsOf(stats.find((s) => s.index === 0)!).map((c) => c.peerPort));
          assert.equal(victims.size, CONNS / 2);
          // everyone transfers; once each has done 10 round trips, worker 0 is killed
          let killed: Promise<void> | undefined;
          let tKill = 0;
          const kill = () => {
            if (!killed && clients.every((c) => c.done >= 10)) { tKill = Date.now(); killed = pool.kill(0); }
          };
          for (const c of clients) c.ep.once('close', () => { if (tKill && victims.has(c.port)) console.log(`# ${dev.name}: victim ${c.n} closed ${Date.now() - tKill} ms after the kill`); });
          const results = await Promise.allSettled(clients.map((c) => c.run(victims.has(c.port) ? 100_000 : 150, kill)));
          await killed;
          for (const [i, c] of clients.entries()) {
            if (victims.has(c.port)) {
              assert.equal(results[i]!.status, 'rejected', `client ${i} on the killed worker cannot finish`);
              if (!c.events.includes('close')) await new Promise((r) => c.ep.once('close', r));
              assert.ok(c.events.includes('close'), `client ${i}: ${c.events}`);
            } else {
              assert.equal(results[i]!.status, 'fulfilled', `client ${i}: ${(results[i] as PromiseRejectedResult).reason}`);
              assert.equal(c.done, 150);
            }
          }
          console.log(`# ${dev.name}: killed worker's clients: ${clients.filter((c) => victims.has(c.port)).map((c) => `${c.done} echoes, ${c.events.join('>')}`).join('; ')}`);
          const after = await pool.stats();
          assert.deepEqual(after.map((s) => s.index), [1], 'worker 1 lives on');
          assert.equal(after[0]!.connections, CONNS / 2);
        } finally {
          await pool.close();
          await Promise.all(clients.map((c) => c.ep.disconnect()));
        }
      });
    });
  }
}
