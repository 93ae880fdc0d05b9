// Wire compatibility with the kernel's soft-iWARP: our TypeScript iwarp-tcp endpoint against a
// native (libibverbs/librdmacm) endpoint on siw0, in both directions: MPA setup with private data,
// send/recv, 1 MiB RDMA write and read with content checks, and both close kinds.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import { type IwarpEndpoint, createIwarpProvider, createVerbsProvider } from '../../src/providers/index.js';
import { ANSWER, GREETING, greet } from '../providers/greeting.js';
import { Wcs } from '../support.js';
import {
  DATA, DEVICES, Events, SLAB, type Side, baselineCounts, closeAll, expectCountsBack, makeSide, pattern, requireVm, resolve,
  type Counts,
} from './helpers.js';

const RW = { localWrite: true, remoteRead: true, remoteWrite: true };
const MiB = 1 << 20;
const siw = DEVICES.find((d) => d.kind === 'iWARP')!;

/** True once the pcapng file holds a packet (an Enhanced Packet Block, type 6). */
/**
 * A native rdma_cm client connecting to our TCP listener, with `recvs` receives posted. siw takes
 * its local TCP port from rdma_cm's port space, which does not see the ports Node's sockets hold:
 * rdma_connect can fail with EADDRINUSE (seen once in CI). Like any rdma_cm client, retry.
 */
async function connectNative(events: Events, ip: string, port: number, recvs: number, privateData?: (nat: ReturnType<typeof makeSide>) => Uint8Array) {
  for (let attempt = 1; ; attempt++) {
    const id = await resolve(events, ip, port);
    const nat = makeSide(id);
    for (let i = 0; i < recvs; i++) nat.qp.postRecv(1000 + i, { mr: nat.mr, offset: SLAB - (i + 1) * 4096, length: 4096 });
    try {
      id.connect(privateData ? { privateData: privateData(nat), initiatorDepth: 4, responderResources: 4 } : { initiatorDepth: 4, responderResources: 4 });
      return { id, nat };
    } catch (err) {
      nat.pd.close(); nat.channel.close(); id.close();
      if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt === 3) throw err;
      console.log(`# rdma_connect: EADDRINUSE on attempt ${attempt}, retrying`);
    }
  }
}

function hasPacket(file: string): boolean {
  if (!existsSync(file)) return false;
  const b = readFileSync(file);
  for (let off = 0; off + 8 <= b.length;) {
    const type = b.readUInt32LE(off), len = b.readUInt32LE(off + 4);
    if (type === 6) return true;
    if (len < 12) return false;
    off += len;
  }
  return false;
}

/** The native side's region, advertised in private data: addr u64 LE, rkey u32 LE. */
function advertise(side: Omit<Side, 'peerPrivateData'>): Buffer {
  const pd = Buffer.alloc(12);
  pd.writeBigUInt64LE(side.mr.addr, 0);
  pd.writeUInt32LE(side.mr.rkey, 8);
  return pd;
}

/** Exercises a connection: ts <-> nat both ways, 1 MiB write and read against nat's region. */
async function exchange(ts: IwarpEndpoint, tw: Wcs, nat: Omit<Side, 'peerPrivateData'>, natAddr: bigint, natRkey: number): Promise<void> {
  const tm = ts.registerMemory(2 * MiB, RW);
  // a failed completion says 'flushed'; the endpoint's error says why
  ts.on('error', (err: Error & { code?: string }) => console.log(`# our endpoint: ${err.code}: ${err.message}`));
  // ts -> native send (native receives were posted at wrIds 1000+ from the end of its slab)
  tm.buffer.set(pattern(3000, 1), 0);
  ts.postSend(1, [{ mr: tm, offset: 0, length: 3000 }]);
  await tw.ok(1);
  const rc = await nat.wcs.takeOk(1000);
  assert.equal(rc.byteLength, 3000);
  assert.ok(Buffer.from(nat.bytes.subarray(SLAB - 4096, SLAB - 4096 + 3000)).equals(pattern(3000, 1)), 'siw received our Send');
  // native -> ts send
  ts.postRecv(2, { mr: tm, offset: MiB, length: 4096 });
  nat.bytes.set(pattern(1500, 2), DATA);
  nat.qp.postSend(3, { mr: nat.mr, offset: DATA, length: 1500 });
  await nat.wcs.takeOk(3);
  const r2 = await tw.ok(2);
  assert.equal(r2.byteLength, 1500);
  assert.ok(Buffer.from(tm.buffer.subarray(MiB, MiB + 1500)).equals(pattern(1500, 2)), 'we received siw\'s Send');
  // RDMA write 1 MiB into siw's memory, then a Send: when siw has it, the write is placed
  tm.buffer.set(pattern(MiB, 3), 0);
  ts.postWrite(4, [{ mr: tm, offset: 0, length: MiB }], natAddr, natRkey);
  ts.postSend(5, [{ mr: tm, offset: 0, length: 8 }]);
  await tw.ok(4); await tw.ok(5);
  await nat.wcs.takeOk(1001);
  assert.ok(Buffer.from(nat.bytes.subarray(0, MiB)).equals(pattern(MiB, 3)), 'siw placed our 1 MiB RDMA Write');
  // RDMA read 1 MiB of siw's memory
  nat.bytes.set(pattern(MiB, 4), 0);
  ts.postRead(6, [{ mr: tm, offset: MiB, length: MiB }], natAddr, natRkey);
  await tw.ok(6);
  assert.ok(Buffer.from(tm.buffer.subarray(MiB, 2 * MiB)).equals(pattern(MiB, 4)), 'siw answered our 1 MiB RDMA Read');
  // and siw reads and writes ours
  const exposed = ts.registerMemory(MiB, RW);
  exposed.buffer.set(pattern(MiB, 5));
  nat.qp.postRead(7, { mr: nat.mr, offset: 0, length: MiB }, exposed.addr, exposed.rkey);
  await nat.wcs.takeOk(7);
  assert.ok(Buffer.from(nat.bytes.subarray(0, MiB)).equals(pattern(MiB, 5)), 'we answered siw\'s 1 MiB RDMA Read');
  nat.bytes.set(pattern(MiB, 6), 0);
  nat.qp.postWrite(8, { mr: nat.mr, offset: 0, length: MiB }, exposed.addr, exposed.rkey);
  ts.postRecv(9, { mr: tm, offset: MiB, length: 64 });
  nat.qp.postSend(10, { mr: nat.mr, offset: 0, length: 8 });
  await nat.wcs.takeOk(8); await nat.wcs.takeOk(10); await tw.ok(9);
  assert.ok(Buffer.from(exposed.buffer).equals(pattern(MiB, 6)), 'we placed siw\'s 1 MiB RDMA Write');
}

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => {
    try { await expectCountsBack(base, 'iwarp-siw.test'); } finally { closeAll(); }
  });

  describe(`a responder that sends first: iwarp-tcp <-> verbs on ${siw.name}, receives posted in prepare() (#23)`, () => {
    for (const [serverName, clientName] of [['verbs', 'iwarp-tcp'], ['iwarp-tcp', 'verbs']] as const) {
      it(`${serverName} responder greets at once, ${clientName} initiator receives it and answers`, async () => {
        const make = (name: string) => (name === 'verbs' ? createVerbsProvider() : createIwarpProvider());
        const o = await greet({ server: make(serverName), client: make(clientName), host: siw.ip, prepare: true, ms: 15_000 });
        assert.equal(o.connectError, undefined, String(o.connectError?.message));
        assert.deepEqual(o.greeting, GREETING, `the greeting (client: ${o.clientError?.message ?? 'no error'})`);
        assert.deepEqual(o.answer, ANSWER, `the answer (server: ${o.serverError?.message ?? 'no error'})`);
      });
    }
  });

  describe(`iwarp-tcp (TypeScript) <-> ${siw.name} (kernel siw)`, () => {
    for (const crc of [true, false]) {
      for (const close of ['graceful', 'abortive'] as const) {
        it(`our client -> native server on ${siw.name}: crc ${crc}, ${close} close by us`, async () => {
          const events = new Events();
          const listener = events.channel.createId();
          listener.bind(siw.ip, 0);
          listener.listen(4);
          const port = listener.localAddress!.port;
          const clientP = createIwarpProvider({ crc }).connect({ host: siw.ip, port, privateData: Buffer.from('ts client') });
          const req = await events.next(listener, ['CONNECT_REQUEST']);
          assert.equal(req.privateData!.subarray(0, 9).toString(), 'ts client', 'siw delivered our MPA private data');
          const nat = makeSide(req.id!);
          for (let i = 0; i < 4; i++) nat.qp.postRecv(1000 + i, { mr: nat.mr, offset: SLAB - (i + 1) * 4096, length: 4096 });
          req.id!.accept({ privateData: advertise(nat), initiatorDepth: 4, responderResources: 4 });
          const ts = (await clientP) as IwarpEndpoint;
          await events.next(req.id!, ['ESTABLISHED']);
          const pd = Buffer.from(ts.peerPrivateData);
          assert.ok(pd.length >= 12, 'siw delivered the accept private data');
          console.log(`# siw -> us: MPA crc ${ts.settings.crc}, ord ${ts.settings.ord}`);
          const tw = new Wcs(ts, 20_000);
          await exchange(ts, tw, nat, pd.readBigUInt64LE(0), pd.readUInt32LE(8));
          if (close === 'graceful') {
            await Promise.all([ts.disconnect(), events.next(req.id!, ['DISCONNECTED'])]);
          } else {
            ts.on('error', () => {});
            ts.destroy();
            await events.next(req.id!, ['DISCONNECTED']);
          }
          req.id!.close(); nat.pd.close(); nat.channel.close(); listener.close(); events.close();
        });

        it(`native client on ${siw.name} -> our server: crc ${crc}, ${close} close by siw`, async () => {
          const listener = await createIwarpProvider({ crc }).listen({ host: siw.ip, port: 0 });
          const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
          const events = new Events();
          const { id, nat } = await connectNative(events, siw.ip, listener.port, 4, (n) => advertise(n));
          const [ts] = await accepted;
          const pd = Buffer.from(ts.peerPrivateData);
          assert.ok(pd.length >= 12, 'siw sent its private data in the MPA Request');
          const tw = new Wcs(ts, 20_000);
          await ts.accept(Buffer.from('ts server'));
          const est = await events.next(id, ['ESTABLISHED']);
          assert.equal(est.privateData!.subarray(0, 9).toString(), 'ts server', 'siw got our MPA Reply private data');
          console.log(`# us -> siw: MPA crc ${ts.settings.crc}`);
          await exchange(ts, tw, nat, pd.readBigUInt64LE(0), pd.readUInt32LE(8));
          const ended = new Promise<string>((r) => { ts.once('disconnected', () => r('disconnected')); ts.once('error', (e: { code: string }) => r(e.code)); });
          if (close === 'graceful') {
            id.disconnect();
            assert.equal(await ended, 'disconnected');
            await events.next(id, ['DISCONNECTED']);
            id.close();
          } else {
            id.close(); // destroy the cm_id and QP without a disconnect: siw aborts the connection
            console.log(`# siw abort -> our endpoint: ${await ended}`);
          }
          nat.pd.close(); nat.channel.close(); events.close();
          await listener.close();
        });
      }
    }

    it(`a Terminate from ${siw.name} (read with a wrong STag) reaches us as a remote access error`, async () => {
      const events = new Events();
      const listener = events.channel.createId();
      listener.bind(siw.ip, 0);
      listener.listen(4);
      const clientP = createIwarpProvider().connect({ host: siw.ip, port: listener.localAddress!.port });
      const req = await events.next(listener, ['CONNECT_REQUEST']);
      const nat = makeSide(req.id!);
      req.id!.accept({ privateData: advertise(nat), initiatorDepth: 4, responderResources: 4 });
      const ts = (await clientP) as IwarpEndpoint;
      await events.next(req.id!, ['ESTABLISHED']);
      const tw = new Wcs(ts, 20_000);
      const err = new Promise<{ code: string; message: string; layer: number; etype: number }>((r) => ts.once('error', r));
      const tm = ts.registerMemory(4096, RW);
      ts.postRead(1, [{ mr: tm, offset: 0, length: 4096 }], nat.mr.addr, (nat.mr.rkey ^ 0x5a5a5a00) >>> 0);
      const e = await err;
      console.log(`# siw's Terminate, decoded by us: ${e.message}`);
      assert.equal(e.code, 'ERR_IWARP_TERMINATED');
      const wc = tw.all.find((c) => c.wrId === 1);
      assert.equal(wc?.status, 'remote-access');
      await events.next(req.id!, ['DISCONNECTED']);
      req.id!.close(); nat.pd.close(); nat.channel.close(); listener.close(); events.close();
    });

    it(`our Terminate (write to a read-only region) takes the ${siw.name} QP down; nothing is written`, async () => {
      const listener = await createIwarpProvider().listen({ host: siw.ip, port: 0 });
      const accepted = once(listener, 'connection') as Promise<[IwarpEndpoint]>;
      const events = new Events();
      const { id, nat } = await connectNative(events, siw.ip, listener.port, 2);
      const [ts] = await accepted;
      const backing = new Uint8Array(3 * 4096).fill(0xee);
      const ro = ts.registerMemory(backing.subarray(4096, 8192), { localWrite: true, remoteRead: true });
      const err = new Promise<{ code: string }>((r) => ts.once('error', r));
      await ts.accept();
      await events.next(id, ['ESTABLISHED']);
      nat.qp.postWrite(1, { mr: nat.mr, offset: 0, length: 4096 }, ro.addr, ro.rkey);
      assert.equal((await err).code, 'ERR_IWARP_ACCESS');
      // siw takes its QP to error on our Terminate: the posted receives flush
      for (let i = 0; i < 2; i++) assert.equal((await nat.wcs.take(1000 + i)).status, 'flushed');
      assert.ok(backing.every((b) => b === 0xee), 'not a byte written');
      id.close(); nat.pd.close(); nat.channel.close(); events.close();
      await listener.close();
    });

    it(`wireshark decodes a captured session with ${siw.name} as MPA / DDP / RDMAP, nothing malformed`, async () => {
      const dir = process.env['SMBDIRECT_VMOUT'] ?? '/tmp';
      const file = `${dir}/iwarp-siw.pcapng`;
      const events = new Events();
      const listener = events.channel.createId();
      listener.bind(siw.ip, 0);
      listener.listen(4);
      const port = listener.localAddress!.port;
      // the TCP connection between our socket and siw runs over lo (both ends are local)
      const cap = spawn('dumpcap', ['-q', '-i', 'lo', '-f', `port ${port}`, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      let capErr = '';
      cap.stderr!.on('data', (d: Buffer) => { capErr += d.toString(); });
      for (let i = 0; i < 600 && !/Capturing on/.test(capErr); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(capErr, /Capturing on/, `dumpcap did not start: ${capErr}`);
      // "Capturing on" comes before packets are really captured: send UDP probes to the port until
      // one lands in the file, so the MPA handshake is never missed
      const probe = createSocket('udp4');
      for (let i = 0; i < 400 && !hasPacket(file); i++) {
        probe.send(Buffer.from('probe'), port, siw.ip);
        await new Promise((r) => setTimeout(r, 50));
      }
      probe.close();
      assert.ok(hasPacket(file), 'dumpcap captured a probe');
      const clientP = createIwarpProvider().connect({ host: siw.ip, port, privateData: Buffer.from('capture') });
      const req = await events.next(listener, ['CONNECT_REQUEST']);
      const nat = makeSide(req.id!);
      for (let i = 0; i < 4; i++) nat.qp.postRecv(1000 + i, { mr: nat.mr, offset: SLAB - (i + 1) * 4096, length: 4096 });
      req.id!.accept({ privateData: advertise(nat), initiatorDepth: 4, responderResources: 4 });
      const ts = (await clientP) as IwarpEndpoint;
      await events.next(req.id!, ['ESTABLISHED']);
      const tw = new Wcs(ts, 20_000);
      const tm = ts.registerMemory(256 * 1024, RW);
      ts.postSend(1, [{ mr: tm, offset: 0, length: 200 }]);
      ts.postWrite(2, [{ mr: tm, offset: 0, length: 100_000 }], nat.mr.addr, nat.mr.rkey);
      ts.postRead(3, [{ mr: tm, offset: 0, length: 100_000 }], nat.mr.addr, nat.mr.rkey);
      await tw.ok(1); await tw.ok(2); await tw.ok(3);
      await Promise.all([ts.disconnect(), events.next(req.id!, ['DISCONNECTED'])]);
      req.id!.close(); nat.pd.close(); nat.channel.close(); listener.close(); events.close();
      await new Promise((r) => setTimeout(r, 300));
      cap.kill('SIGINT');
      await once(cap, 'exit');
      const tshark = (filter: string) => execFileSync('tshark', ['-r', file, '-Y', filter], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'ignore'] });
      const frames = tshark('iwarp_mpa || iwarp_ddp_rdmap');
      console.log(frames.split('\n').filter(Boolean).map((l) => `# ${l.trim()}`).join('\n'));
      for (const what of ['MPA Request Frame', 'MPA Reply Frame']) assert.ok(frames.includes(what), `the capture shows the ${what}`);
      // several FPDUs share a TCP segment (one writev per tick): count RDMAP opcodes, not Info lines
      const opcodes = new Set(execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'iwarp_rdma.opcode'], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'ignore'] })
        .split(/[\s,]+/).filter(Boolean).map((x) => Number(x)));
      for (const [op, name] of [[0, 'Write'], [1, 'Read Request'], [2, 'Read Response'], [3, 'Send']] as const) {
        assert.ok(opcodes.has(op), `the capture decodes an RDMAP ${name}`);
      }
      // TCP's own notes (window full, D-SACK under emulation) are not about the iWARP layers
      assert.equal(tshark('_ws.malformed || (_ws.expert.severity >= warning && !tcp.analysis && !tcp.options.sack.dsack_le)').trim(), '',
        'no malformed packet, no MPA/DDP/RDMAP warning');
    });
  });
}
