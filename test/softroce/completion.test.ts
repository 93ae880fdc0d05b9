// The completion pool under the verbs provider on rxe0 and siw0: four connections (eight QPs,
// both ends in this process) over a pool of two CQs on two comp vectors; thousands of small
// sends with sequence numbers arrive, and complete, in order on every QP; the per-CQ stats show
// the QPs and their completions spread over both CQs; nothing leaks.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import * as native from '../../native/index.js';
import { type Completion, type MemoryRegion, type RdmaEndpoint, createVerbsProvider } from '../../src/providers/index.js';
import { DEVICES, type Counts, baselineCounts, expectCountsBack, requireVm } from './helpers.js';

const CONNS = 4;
const MESSAGES = 2000;  // per connection
const BURST = 32;       // sends per round; the receiver has 2 x BURST receives posted
const SIZE = 64;
const RECVS = 2 * BURST;

interface Conn {
  client: RdmaEndpoint;
  server: RdmaEndpoint;
  cmr: MemoryRegion;
  smr: MemoryRegion;
  clientWcs: Completion[];
  serverSeqs: number[];
  serverRecvIds: number[];
  errors: string[];
  ack?: () => void;
  received: number;
}

async function open(provider: ReturnType<typeof createVerbsProvider>, host: string, port: number, listener: import('node:events').EventEmitter): Promise<Conn> {
  const got = once(listener, 'connection');
  const clientP = provider.connect({ host, port });
  const [server] = (await got) as [RdmaEndpoint];
  const smr = server.registerMemory(RECVS * SIZE + SIZE, { localWrite: true });
  const c = { server, smr, clientWcs: [], serverSeqs: [], serverRecvIds: [], errors: [], received: 0 } as unknown as Conn;
  let nextRecvId = 0;
  const postRecv = (i: number) => server.postRecv(nextRecvId++, { mr: smr, offset: i * SIZE, length: SIZE });
  for (let i = 0; i < RECVS; i++) postRecv(i);
  server.onCompletions((batch) => {
    for (const wc of batch) {
      if (wc.opcode !== 'recv') continue;
      if (wc.status !== 'success') { if (wc.status !== 'flushed') c.errors.push(`server ${wc.status}`); continue; }
      c.serverRecvIds.push(wc.wrId);
      const i = wc.wrId % RECVS;
      c.serverSeqs.push(new DataView(smr.buffer.buffer, smr.buffer.byteOffset + i * SIZE).getUint32(0, true));
      postRecv(i);
      // one ack per burst, once the burst's receives are posted again
      if (++c.received % BURST === 0) server.postSend(1e6 + c.received, [{ mr: smr, offset: RECVS * SIZE, length: 4 }]);
    }
  });
  await server.accept();
  const client = await clientP;
  const cmr = client.registerMemory(BURST * SIZE + 4 * SIZE, { localWrite: true });
  for (let i = 0; i < 4; i++) client.postRecv(5e6 + i, { mr: cmr, offset: BURST * SIZE + i * SIZE, length: SIZE });
  let ackId = 4;
  client.onCompletions((batch) => {
    for (const wc of batch) {
      if (wc.status !== 'success') { if (wc.status !== 'flushed') c.errors.push(`client ${wc.opcode} ${wc.status}`); continue; }
      if (wc.opcode === 'recv') {
        client.postRecv(5e6 + ackId++, { mr: cmr, offset: BURST * SIZE + (ackId % 4) * SIZE, length: SIZE });
        c.ack?.();
      } else c.clientWcs.push(wc);
    }
  });
  Object.assign(c, { client, cmr });
  return c;
}

async function run(c: Conn): Promise<void> {
  const dv = new DataView(c.cmr.buffer.buffer, c.cmr.buffer.byteOffset);
  for (let seq = 0; seq < MESSAGES;) {
    const acked = new Promise<void>((resolve) => { c.ack = resolve; });
    for (let k = 0; k < BURST && seq < MESSAGES; k++, seq++) {
      const off = k * SIZE;
      dv.setUint32(off, seq, true);
      c.client.postSend(seq, [{ mr: c.cmr, offset: off, length: SIZE }]);
    }
    if (seq % BURST === 0) await acked;
  }
  const end = Date.now() + 60_000;
  while (c.received < MESSAGES && Date.now() < end && !c.errors.length) await new Promise((r) => setTimeout(r, 10));
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => { await expectCountsBack(base, 'completion.test'); });

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind})`, () => {
      it(`${dev.name}: ${CONNS} connections x ${MESSAGES} sends complete in order per QP, spread over 2 CQs`, async () => {
        const vectors = native.openDevice(dev.name).query().numCompVectors;
        assert.ok(vectors >= 2, `${dev.name} has ${vectors} comp vectors: the spread needs 2`);
        const provider = createVerbsProvider({ completion: { cqs: 2 }, maxSendWr: 64, maxRecvWr: RECVS });
        const listener = await provider.listen({ host: dev.ip, port: 0 });
        const conns: Conn[] = [];
        try {
          for (let i = 0; i < CONNS; i++) conns.push(await open(provider, dev.ip, listener.port, listener));
          await Promise.all(conns.map(run));
          for (const [i, c] of conns.entries()) {
            assert.deepEqual(c.errors, [], `connection ${i}`);
            assert.equal(c.serverSeqs.length, MESSAGES, `connection ${i}: all messages received`);
            for (let k = 0; k < MESSAGES; k++) {
              if (c.serverSeqs[k] !== k) assert.fail(`connection ${i}: message ${k} carried sequence ${c.serverSeqs[k]}`);
              if (c.serverRecvIds[k] !== k) assert.fail(`connection ${i}: receive ${k} completed as wrId ${c.serverRecvIds[k]}`);
            }
            const sends = c.clientWcs.filter((w) => w.opcode === 'send').map((w) => w.wrId);
            assert.equal(sends.length, MESSAGES);
            for (let k = 0; k < MESSAGES; k++) if (sends[k] !== k) assert.fail(`connection ${i}: send completion ${k} is wrId ${sends[k]}`);
          }
          const st = provider.stats()[dev.name]!;
          console.log(`# ${dev.name} pool: ${JSON.stringify(st)}`);
          assert.equal(st.length, 2);
          assert.notEqual(st[0]!.compVector, st[1]!.compVector, 'each CQ on its own comp vector');
          for (const cq of st) {
            assert.equal(cq.qps, CONNS, `CQ ${cq.index} holds ${cq.qps} of the ${2 * CONNS} QPs`);
            assert.ok(cq.completions >= MESSAGES * CONNS / 2, `CQ ${cq.index}: ${cq.completions} completions`);
            assert.ok(cq.events > 0 && cq.batches > 0 && cq.polls >= cq.batches && cq.maxBatch >= 1, JSON.stringify(cq));
            assert.equal(cq.orphans, 0);
          }
        } finally {
          await listener.close();
          await Promise.all(conns.flatMap((c) => [c.client.disconnect(), c.server.disconnect()]));
        }
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(provider.stats(), {}, 'the pool closes with its last QP');
      });

      it(`${dev.name}: hash placement puts connections with the same key on the same CQ`, async () => {
        // key: the peer's port parity -> CQ (port % 2); the listener's accepted QPs all share its port
        const provider = createVerbsProvider({ completion: { cqs: 2, placement: (k) => k }, placementKey: (peer) => (peer ? peer.port % 2 : undefined) });
        const listener = await provider.listen({ host: dev.ip, port: 0 });
        const eps: RdmaEndpoint[] = [];
        try {
          listener.on('connection', (ep: RdmaEndpoint) => { eps.push(ep); void ep.accept(); });
          for (let i = 0; i < 4; i++) eps.push(await provider.connect({ host: dev.ip, port: listener.port }));
          while (eps.length < 8) await new Promise((r) => setTimeout(r, 10));
          const want = (ep: RdmaEndpoint) => (ep as unknown as { peerAddress: { port: number } }).peerAddress.port % 2;
          for (const ep of eps) assert.equal((ep as unknown as { cqIndex: number }).cqIndex, want(ep), 'CQ = hash(key) % 2');
          const st = provider.stats()[dev.name]!;
          assert.equal(st[0]!.qps + st[1]!.qps, 8);
          assert.equal(st[listener.port % 2]!.qps >= 4, true, 'the server side QPs (peer = the clients) and clients (peer = the listener port) follow their keys');
        } finally {
          await listener.close();
          await Promise.all(eps.map((ep) => ep.disconnect()));
        }
      });
    });
  }
}
