// The provider contract (docs/providers.md, the doc comments of src/providers/types.ts) as one
// suite of node:test cases, run unchanged against every RdmaProvider: iwarp-tcp on the host
// (test/provider-contract.test.ts) and verbs on rxe0 and siw0 in the VM
// (test/softroce/provider-contract.test.ts). One rule per case where practical; the public API
// only (src/providers/index.ts). Where the providers legitimately differ (docs/providers.md "Where
// the two providers differ"), the options state the documented behaviour of the provider under
// test, or skip a case with the reason.
//
// Every endpoint keeps a timeline (completions and events, in the order seen), on which some
// rules are checked in every case: no batch from inside a post call, nothing after 'close', at
// most one of 'error'/'disconnected' and one 'close', every completion before the event, every
// posted receive completed exactly once and in posting order once the endpoint is closed. Every
// wait is bounded; every endpoint and listener is closed at the end of each case.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type Completion, type ConnectOptions, type MemoryRegion, type PostSendOptions, RdmaError, type RdmaEndpoint,
  type RdmaListener, type RdmaProvider, type Sge,
} from '../../src/providers/index.js';
import { pattern, within } from '../support.js';

export interface ContractTarget {
  provider: RdmaProvider;
  /** The address to listen on and connect to. */
  host: string;
}

/** The cases, by id (for `skip`). */
export const CONTRACT_CASES = [
  'setup', 'private-data', 'receives-before-accept', 'send-recv', 'rdma-write-read', 'sge-reuse', 'unsignaled',
  'queue-full', 'misuse', 'misuse-then-disconnect', 'access-at-post', 'read-depths', 'read-depths-lowered',
  'disconnect-initiator', 'disconnect-responder', 'destroy-error', 'destroy-plain', 'reject', 'listener-close',
  'connect-refused', 'memory', 'local-invalidate', 'remote-invalidate', 'check-capacity',
  'responder-first', 'prepare-throws',
] as const;
export type ContractCase = (typeof CONTRACT_CASES)[number];

export interface ContractOptions {
  /** The send / receive queue sizes of make()'s provider (its maxSendWr / maxRecvWr as configured;
   * on verbs the send queue includes the window slots). */
  maxSendWr: number;
  maxRecvWr: number;
  /** The read depths make()'s provider asks for and offers by default (ORD = IRD). */
  readDepth: number;
  /** The transport pads private data to a fixed size (IB CM: RoCE); else it is carried exactly. */
  privateDataPadded: boolean;
  /** responderResources (this side's IRD) lowered to the peer's ORD (verbs), or this side's own
   * IRD as advertised (iwarp-tcp). */
  responderResourcesLowered: boolean;
  /** How the peer of a destroyed endpoint ends: 'error' (iwarp-tcp: the Terminate) or
   * 'disconnected' (verbs: rdma_cm DISCONNECTED). */
  peerOfDestroy: 'error' | 'disconnected';
  /** A Send-with-Invalidate of a registration of a whole ArrayBuffer with remote access: reported as
   * `invalidatedRkey` (iwarp-tcp; rxe, where it is a memory window) or not (siw). */
  remoteInvalidation: 'reported' | 'not-reported';
  /** reject(): the endpoint ends with 'close' only and its receives flushed (verbs), or with no
   * event and its receives never completed (iwarp-tcp). */
  rejectEnds: 'close' | 'silent';
  /** An RDMA Read takes one sink SGE only (iwarp-tcp, siw: two throw ERR_DEVICE_LIMIT). */
  oneReadSge: boolean;
  /** Cases not run on this provider, each with the reason. */
  skip?: Partial<Record<ContractCase, string>>;
  /** Multiplies every deadline and quiet period (the VM is slow). Default 1. */
  slow?: number;
  /** Runs after each case, once everything of it is closed (e.g. kernel objects back to baseline). */
  afterEach?: () => Promise<void> | void;
}

const MiB = 1 << 20;
/** Each end's slab: [0, BULK) for RDMA and long messages, receive slots, a send area. */
const BULK = MiB;
const RECV = 4096;
const SEND_AREA = 256 * 1024;
const RW = { localWrite: true, remoteRead: true, remoteWrite: true } as const;
const enc = (s: string) => new TextEncoder().encode(s);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Same bytes (whatever Uint8Array subclass each is). */
function sameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want), `${what}: got [${[...got.subarray(0, 64)]}] (${got.length} bytes), want [${[...want.subarray(0, 64)]}] (${want.length} bytes)`);
}

/** Set while a post call of any endpoint runs: a completion batch must never come from inside one. */
let inPost = 0;

function codeOf(e: unknown): string | undefined {
  return (e as { code?: string } | undefined)?.code;
}

/** `fn` throws synchronously an RdmaError with one of `codes`. */
function throwsCode(fn: () => void, codes: string | string[], what: string): void {
  const want = typeof codes === 'string' ? [codes] : codes;
  let thrown: unknown;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    thrown = e;
  }
  assert.ok(threw, `${what}: did not throw (want ${want.join('|')})`);
  assert.ok(thrown instanceof RdmaError, `${what}: threw ${String(thrown)}, not an RdmaError`);
  assert.ok(want.includes(codeOf(thrown) ?? ''), `${what}: threw ${codeOf(thrown)} (${(thrown as Error).message}), want ${want.join('|')}`);
}

/** The bytes of `e`'s slab at [at, at + len) as they were when `wrId` completed (verbs detaches the
 * slab when the endpoint closes, right after). */
function sinkAtCompletion(e: End, wrId: number, at: number, len: number): () => Uint8Array {
  let snap: Uint8Array | undefined;
  const prev = e.onCompletion;
  e.onCompletion = (c) => {
    prev?.(c);
    if (c.wrId === wrId && c.opcode !== 'recv' && e.mr.buffer.byteLength >= at + len) snap = e.mr.buffer.slice(at, at + len);
  };
  return () => {
    assert.ok(snap, `the sink of ${wrId} at its completion`);
    return snap;
  };
}

/** One endpoint under test with its timeline. */
class End {
  /** Completions ('recv#1000=success') and events ('disconnected', 'error(CODE)', 'close'), in order. */
  readonly log: string[] = [];
  readonly wcs: Completion[] = [];
  readonly violations: string[] = [];
  readonly recvsPosted: number[] = [];
  readonly signaledPosted: number[] = [];
  /** Where each receive was posted (copied at the post), and the bytes of each successful one, copied
   * at its completion (verbs detaches a slab when the endpoint closes). */
  private readonly recvAt = new Map<number, { mr: MemoryRegion; offset: number }>();
  private readonly received = new Map<number, Uint8Array>();
  readonly mr: MemoryRegion;
  closed = false;
  /** reject() answered the request (iwarp-tcp: no event follows). */
  rejected = false;
  /** Runs for each completion, after it is logged (inside the batch handler). */
  onCompletion?: (c: Completion) => void;

  constructor(readonly ep: RdmaEndpoint, readonly name: string, readonly layout: Layout, listenErrors = true) {
    ep.onCompletions((batch) => {
      if (inPost > 0) this.violations.push('a completion batch was delivered from inside a post call');
      for (const c of batch) {
        this.record(`${c.opcode}#${c.wrId}=${c.status}`);
        this.wcs.push(c);
        if (c.opcode === 'recv' && c.status === 'success') this.keep(c);
        this.onCompletion?.(c);
      }
    });
    ep.on('disconnected', () => this.record('disconnected'));
    if (listenErrors) ep.on('error', (err: Error) => this.record(`error(${codeOf(err) ?? err.message})`));
    ep.on('close', () => {
      this.record('close');
      this.closed = true;
    });
    this.mr = ep.registerMemory(layout.slab, RW);
  }

  private keep(c: Completion): void {
    const at = this.recvAt.get(c.wrId);
    if (!at) return;
    const buf = at.mr.buffer;
    if (buf.byteLength < at.offset + c.byteLength) this.violations.push(`receive ${c.wrId} reported 'success' after its memory was released`);
    else this.received.set(c.wrId, buf.slice(at.offset, at.offset + c.byteLength));
  }

  private record(entry: string): void {
    if (this.closed) this.violations.push(`after 'close': ${entry}`);
    this.log.push(entry);
  }

  /** The events seen ('disconnected', 'error(CODE)', 'close'), in order. */
  get events(): string[] {
    return this.log.filter((x) => !x.includes('#'));
  }

  slot(i: number): number {
    return this.layout.recvAt + i * RECV;
  }

  post(fn: () => void): void {
    inPost++;
    try {
      fn();
    } finally {
      inPost--;
    }
  }

  recv(wrId: number, sge: Sge = { mr: this.mr, offset: this.slot(this.recvsPosted.length % this.layout.slots), length: RECV }): void {
    const at = { mr: sge.mr, offset: sge.offset };
    this.post(() => this.ep.postRecv(wrId, sge));
    this.recvsPosted.push(wrId);
    this.recvAt.set(wrId, at);
  }

  /** `n` receives into the slots (wrIds 1000, 1001, ...: slot i for wrId 1000 + i). */
  recvs(n: number, from = 1000): void {
    for (let i = 0; i < n; i++) this.recv(from + i, { mr: this.mr, offset: this.slot((from - 1000 + i) % this.layout.slots), length: RECV });
  }

  /** A send of `bytes`, copied to the send area at `at` first. */
  sendBytes(wrId: number, bytes: Uint8Array, opts?: PostSendOptions, at = 0): void {
    this.mr.buffer.set(bytes, this.layout.sendAt + at);
    this.send(wrId, bytes.length ? [{ mr: this.mr, offset: this.layout.sendAt + at, length: bytes.length }] : [], opts);
  }

  send(wrId: number, sges: Sge[], opts?: PostSendOptions): void {
    this.post(() => this.ep.postSend(wrId, sges, opts));
    if (opts?.signaled !== false) this.signaledPosted.push(wrId);
  }

  write(wrId: number, sges: Sge[], addr: bigint, rkey: number): void {
    this.post(() => this.ep.postWrite(wrId, sges, addr, rkey));
    this.signaledPosted.push(wrId);
  }

  read(wrId: number, sges: Sge[], addr: bigint, rkey: number): void {
    this.post(() => this.ep.postRead(wrId, sges, addr, rkey));
    this.signaledPosted.push(wrId);
  }

  /** The first `len` bytes receive `wrId` placed, as they were at its completion. */
  slotBytes(wrId: number, len: number): Uint8Array {
    const got = this.received.get(wrId);
    assert.ok(got, `${this.name}: receive ${wrId} has not completed successfully; timeline: ${this.log.join(' ')}`);
    assert.ok(got.length >= len, `${this.name}: receive ${wrId} has ${got.length} bytes, not ${len}`);
    return got.subarray(0, len);
  }

  completionsOf(wrId: number, opcode?: string): Completion[] {
    return this.wcs.filter((c) => c.wrId === wrId && (!opcode || c.opcode === opcode));
  }

  /** Waits for `pred`, bounded; the error shows the timeline. */
  async until(pred: () => boolean, what: string, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`${this.name}: ${what}: not within ${ms} ms; timeline: ${this.log.join(' ')}`);
      await sleep(5);
    }
  }

  /** The completion of `wrId` (of `opcode`), bounded. */
  async take(wrId: number, opcode: Completion['opcode'], ms: number): Promise<Completion> {
    await this.until(() => this.completionsOf(wrId, opcode).length > 0, `the ${opcode} completion of wrId ${wrId}`, ms);
    return this.completionsOf(wrId, opcode)[0]!;
  }

  async ok(wrId: number, opcode: Completion['opcode'], ms: number): Promise<Completion> {
    const c = await this.take(wrId, opcode, ms);
    assert.equal(c.status, 'success', `${this.name}: ${opcode} ${wrId}: ${JSON.stringify(c)}; timeline: ${this.log.join(' ')}`);
    return c;
  }

  /** Once closed: every completion came before the first event, the events are exactly
   * `events`, every posted receive completed once and in posting order (statuses in `recvStatuses`
   * when given), every signaled send-queue work request at most once. */
  checkEnd(events: string[] | ((evs: string[]) => boolean), recvStatuses?: string[]): void {
    const evs = this.events;
    if (typeof events === 'function') assert.ok(events(evs), `${this.name}: events ${JSON.stringify(evs)}`);
    else assert.deepEqual(evs, events, `${this.name}: events; timeline: ${this.log.join(' ')}`);
    const firstEvent = this.log.findIndex((x) => !x.includes('#'));
    let lastWc = -1;
    this.log.forEach((x, i) => { if (x.includes('#')) lastWc = i; });
    if (firstEvent >= 0) assert.ok(lastWc < firstEvent, `${this.name}: a completion after the endpoint's event: ${this.log.join(' ')}`);
    this.checkReceives(recvStatuses);
  }

  checkReceives(recvStatuses?: string[]): void {
    const recvs = this.wcs.filter((c) => c.opcode === 'recv');
    assert.deepEqual(recvs.map((c) => c.wrId), this.recvsPosted, `${this.name}: every posted receive completes once, in posting order; timeline: ${this.log.join(' ')}`);
    if (recvStatuses) for (const c of recvs) assert.ok(recvStatuses.includes(c.status), `${this.name}: receive ${c.wrId} completed ${c.status}, want ${recvStatuses.join('|')}`);
    for (const id of this.signaledPosted) {
      assert.ok(this.wcs.filter((c) => c.opcode !== 'recv' && c.wrId === id).length <= 1, `${this.name}: wrId ${id} completed more than once`);
    }
  }
}

interface Layout {
  slab: number;
  recvAt: number;
  slots: number;
  sendAt: number;
}

/** One case's provider, endpoints and listeners; cleanup() closes whatever is left. */
class Ctx {
  readonly provider: RdmaProvider;
  readonly host: string;
  readonly ends: End[] = [];
  private readonly raw = new Set<RdmaEndpoint>();
  private readonly closedEps = new Set<RdmaEndpoint>();
  private readonly listeners = new Set<RdmaListener>();
  private readonly connects = new Set<Promise<unknown>>();
  readonly layout: Layout;
  /** Deadlines: a step (connect, a completion) and a quiet period (nothing more happens). */
  readonly step: number;
  readonly quiet: number;

  constructor(target: ContractTarget, readonly opts: ContractOptions) {
    this.provider = target.provider;
    this.host = target.host;
    const slow = opts.slow ?? 1;
    this.step = 10_000 * slow;
    this.quiet = 50 * slow;
    const slots = opts.maxRecvWr;
    this.layout = { slab: BULK + slots * RECV + SEND_AREA, recvAt: BULK, slots, sendAt: BULK + slots * RECV };
  }

  async listen(): Promise<RdmaListener> {
    const l = await within(this.provider.listen({ host: this.host, port: 0 }), this.step, 'listen()');
    this.listeners.add(l);
    return l;
  }

  /** The listener's next 'connection' endpoint, bounded. */
  nextConnection(l: RdmaListener): Promise<RdmaEndpoint> {
    return within(new Promise<RdmaEndpoint>((resolve, reject) => {
      const onErr = (err: Error) => { l.off('connection', onConn); reject(err); };
      const onConn = (ep: RdmaEndpoint) => {
        l.off('error', onErr);
        this.track(ep);
        resolve(ep);
      };
      l.once('connection', onConn);
      l.once('error', onErr);
    }), this.step, "the listener's 'connection'");
  }

  /** provider.connect(), tracked: an endpoint it resolves with is closed by cleanup(). */
  connect(o: Partial<ConnectOptions> & { port: number }): Promise<RdmaEndpoint> {
    const p = this.provider.connect({ host: this.host, ...o });
    const tracked = p.then((ep) => { this.track(ep); return ep; });
    this.connects.add(tracked.catch(() => {}));
    return tracked;
  }

  private track(ep: RdmaEndpoint): void {
    this.raw.add(ep);
    ep.once('close', () => this.closedEps.add(ep));
  }

  end(ep: RdmaEndpoint, name: string, listenErrors = true): End {
    const e = new End(ep, name, this.layout, listenErrors);
    this.ends.push(e);
    return e;
  }

  /** A connected pair: the server End posts `serverRecvs` receives before accept(), the client End
   * `clientRecvs` once connect() resolved. */
  async pair(o: { serverRecvs?: number; clientRecvs?: number; connect?: Partial<ConnectOptions>; serverPd?: Uint8Array; keepListener?: boolean; clientListenErrors?: boolean } = {}): Promise<{ client: End; server: End; listener: RdmaListener }> {
    const listener = await this.listen();
    const conn = this.nextConnection(listener);
    const clientP = this.connect({ port: listener.port, ...o.connect });
    clientP.catch(() => {}); // awaited below; not unhandled meanwhile
    const server = this.end(await conn, 'server');
    server.recvs(o.serverRecvs ?? 4);
    await within(server.ep.accept(o.serverPd), this.step, 'accept()');
    const client = this.end(await within(clientP, this.step, 'connect()'), 'client', o.clientListenErrors ?? true);
    client.recvs(o.clientRecvs ?? 4);
    if (!o.keepListener) {
      await listener.close();
      this.listeners.delete(listener);
    }
    return { client, server, listener };
  }

  /** Waits until `e` is closed. */
  closed(e: End, what = "'close'"): Promise<void> {
    return e.until(() => e.closed, what, this.step);
  }

  /** Nothing happens on any endpoint for a quiet period. */
  async quietly(): Promise<void> {
    const before = this.ends.map((e) => e.log.length);
    await sleep(this.quiet);
    this.ends.forEach((e, i) => assert.equal(e.log.length, before[i], `${e.name}: more after the end: ${e.log.slice(before[i]).join(' ')}`));
  }

  /** Closes what is left. With `check`, also the rules every case keeps. */
  async cleanup(check: boolean): Promise<void> {
    const errors: string[] = [];
    for (const l of this.listeners) await l.close();
    this.listeners.clear();
    await within(Promise.all(this.connects), this.step * 2, 'pending connect() calls').catch((e: Error) => { errors.push(e.message); });
    const ends = new Map<RdmaEndpoint, End>(this.ends.map((e) => [e.ep, e]));
    for (const ep of this.raw) {
      const e = ends.get(ep);
      if (this.closedEps.has(ep) || (e?.rejected && this.opts.rejectEnds === 'silent')) continue;
      let closed = false;
      ep.once('close', () => { closed = true; });
      if (!e && ep.listenerCount('error') === 0) ep.on('error', () => {});
      ep.destroy();
      const end = Date.now() + this.step;
      while (!closed && Date.now() < end) await sleep(5);
      if (!closed) errors.push(`an endpoint did not close within ${this.step} ms of destroy()`);
    }
    if (check) {
      await sleep(this.quiet); // nothing after 'close'
      for (const e of this.ends) {
        assert.deepEqual(e.violations, [], `${e.name}: ${e.violations.join('; ')}`);
        const evs = e.events;
        assert.ok(evs.filter((x) => x === 'close').length <= 1, `${e.name}: 'close' more than once: ${evs.join(' ')}`);
        assert.ok(evs.filter((x) => x !== 'close').length <= 1, `${e.name}: more than one of 'error'/'disconnected': ${evs.join(' ')}`);
        if (evs.length > 1) assert.equal(evs.at(-1), 'close', `${e.name}: 'close' is the last event: ${evs.join(' ')}`);
        if (e.closed) e.checkReceives();
      }
    }
    assert.deepEqual(errors, [], 'cleanup');
    await this.opts.afterEach?.();
  }
}

/**
 * Registers the contract's cases (node:test describe/it) for one provider. `make` gives a fresh
 * provider for each case (both ends of a case use it).
 */
export function contractSuite(name: string, make: () => ContractTarget, opts: ContractOptions): void {
  const D = opts.readDepth;

  describe(`provider contract: ${name}`, () => {
    function contractCase(id: ContractCase, title: string, fn: (c: Ctx) => Promise<void>): void {
      const reason = opts.skip?.[id];
      it(`${id}: ${title}`, reason ? { skip: reason } : {}, async () => {
        const c = new Ctx(make(), opts);
        let failed = true;
        try {
          await fn(c);
          failed = false;
        } finally {
          if (failed) await c.cleanup(false).catch(() => {});
          else await c.cleanup(true);
        }
      });
    }

    contractCase('setup', "connect() resolves established (RTS: every post allowed); the listener's 'connection' is an unaccepted endpoint, answered once", async (c) => {
      const listener = await c.listen();
      assert.ok(listener.port > 0, 'the listener has its port');
      // a failure to listen rejects
      await assert.rejects(within(c.provider.listen({ host: c.host, port: listener.port }), c.step, 'listen() on a port in use'),
        (e: Error) => codeOf(e) === 'EADDRINUSE');
      const conn = c.nextConnection(listener);
      let settled = false;
      const clientP = c.connect({ port: listener.port });
      clientP.then(() => { settled = true; }, () => { settled = true; });
      const server = c.end(await conn, 'server');
      // IDLE: receives only
      throwsCode(() => server.post(() => server.ep.postSend(1, [{ mr: server.mr, offset: c.layout.sendAt, length: 1 }])), 'ERR_INVALID_STATE', 'postSend before accept()');
      throwsCode(() => server.post(() => server.ep.postWrite(2, [{ mr: server.mr, offset: 0, length: 1 }], server.mr.addr, server.mr.rkey)), 'ERR_INVALID_STATE', 'postWrite before accept()');
      server.recvs(2);
      await sleep(c.quiet);
      assert.equal(settled, false, 'connect() does not resolve before the request is accepted');
      await within(server.ep.accept(), c.step, 'accept()');
      await assert.rejects(server.ep.accept(), (e: Error) => codeOf(e) === 'ERR_INVALID_STATE', 'accept() twice');
      await assert.rejects(server.ep.reject(), (e: Error) => codeOf(e) === 'ERR_INVALID_STATE', 'reject() after accept()');
      const client = c.end(await within(clientP, c.step, 'connect()'), 'client');
      // established: a send, a receive and an RDMA Read are all allowed at once, in the same task
      const msg = pattern(100, 1);
      client.recv(1000);
      client.sendBytes(1, msg);
      server.mr.buffer.set(pattern(RECV, 2), 0);
      client.read(2000, [{ mr: client.mr, offset: 0, length: RECV }], server.mr.addr, server.mr.rkey);
      await client.ok(1, 'send', c.step);
      const rc = await server.ok(1000, 'recv', c.step);
      assert.equal(rc.byteLength, msg.length);
      assert.deepEqual(server.slotBytes(1000, msg.length), msg);
      await client.ok(2000, 'read', c.step);
      assert.deepEqual(client.mr.buffer.subarray(0, RECV), pattern(RECV, 2));
      // no private data: an empty (or, padded, all-zero) peerPrivateData
      for (const e of [client, server]) {
        assert.ok(e.ep.peerPrivateData instanceof Uint8Array, `${e.name}: peerPrivateData is a Uint8Array`);
        if (opts.privateDataPadded) assert.ok(e.ep.peerPrivateData.every((b) => b === 0), `${e.name}: padding only`);
        else assert.equal(e.ep.peerPrivateData.length, 0, `${e.name}: no private data`);
      }
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('private-data', 'private data both ways: the request\'s at the responder, the reply\'s at the initiator', async (c) => {
      const cpd = enc('client hello'), spd = enc('server hello, accepted');
      const { client, server } = await c.pair({ connect: { privateData: cpd }, serverPd: spd });
      for (const [e, want] of [[server, cpd], [client, spd]] as const) {
        const got = e.ep.peerPrivateData;
        sameBytes(got.subarray(0, want.length), want, `${e.name}: peerPrivateData`);
        if (opts.privateDataPadded) assert.ok(got.subarray(want.length).every((b) => b === 0), `${e.name}: padded with zeros`);
        else assert.equal(got.length, want.length, `${e.name}: carried exactly (no MPA IRD/ORD word)`);
      }
    });

    contractCase('receives-before-accept', "receives posted before accept() take the initiator's first Send; posts are allowed from the completion of that receive on", async (c) => {
      const listener = await c.listen();
      const conn = c.nextConnection(listener);
      const clientP = c.connect({ port: listener.port });
      clientP.catch(() => {});
      const server = c.end(await conn, 'server');
      server.recvs(2);
      // the server answers from its completion handler, as SMB Direct's negotiate response does:
      // possibly before accept() resolved
      let accepted = false;
      let answeredBeforeAccept: boolean | undefined;
      server.onCompletion = (wc) => {
        if (wc.opcode !== 'recv' || wc.status !== 'success' || wc.wrId !== 1000) return;
        answeredBeforeAccept = !accepted;
        try {
          server.sendBytes(1, pattern(wc.byteLength, 4));
        } catch (err) {
          server.violations.push(`the answer to the first receive was refused: ${codeOf(err)}`);
        }
      };
      const acceptP = server.ep.accept().then(() => { accepted = true; });
      const client = c.end(await within(clientP, c.step, 'connect()'), 'client');
      // the initiator posts its receive and sends at once, in the task connect() resolved in
      client.recv(1000);
      const first = pattern(333, 3);
      client.sendBytes(1, first);
      await within(acceptP, c.step, 'accept()');
      const rc = await server.ok(1000, 'recv', c.step);
      assert.equal(rc.byteLength, first.length);
      assert.deepEqual(server.slotBytes(1000, first.length), first);
      await server.ok(1, 'send', c.step);
      const ac = await client.ok(1000, 'recv', c.step);
      assert.equal(ac.byteLength, first.length);
      assert.deepEqual(client.slotBytes(1000, first.length), pattern(first.length, 4));
      assert.notEqual(answeredBeforeAccept, undefined);
      assert.deepEqual([...server.violations, ...client.violations], []);
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('send-recv', 'sends deliver exact bytes and lengths, in posting order, into receives completed in posting order', async (c) => {
      const n = 7; // the messages of each direction below, each into its own receive
      const { client, server } = await c.pair({ serverRecvs: n, clientRecvs: n });
      for (const [a, b] of [[client, server], [server, client]] as const) {
        const base = a === client ? 10 : 50;
        // lengths: empty, 1 byte, odd, a receive exactly, one short of it; a 3-piece gather list
        const msgs = [new Uint8Array(0), pattern(1, base + 1), pattern(100, base + 2), pattern(RECV, base + 3), pattern(RECV - 1, base + 4), pattern(1364, base + 5)];
        let at = 0;
        const ats: number[] = [];
        for (const m of msgs) { ats.push(at); a.mr.buffer.set(m, a.layout.sendAt + at); at += m.length + 64; }
        // all posted in one task, before any completion can come
        msgs.forEach((m, i) => a.send(i + 1, m.length ? [{ mr: a.mr, offset: a.layout.sendAt + ats[i]!, length: m.length }] : []));
        const g = [pattern(10, base + 6), pattern(300, base + 7), pattern(7, base + 8)];
        const gAt = [at, at + 1000, at + 5000];
        g.forEach((p, i) => a.mr.buffer.set(p, a.layout.sendAt + gAt[i]!));
        a.send(msgs.length + 1, g.map((p, i) => ({ mr: a.mr, offset: a.layout.sendAt + gAt[i]!, length: p.length })));
        const all = [...msgs, Buffer.concat(g)];
        const sends = [];
        for (let i = 0; i < all.length; i++) sends.push(await a.ok(i + 1, 'send', c.step));
        sends.forEach((s, i) => assert.equal(s.byteLength, all[i]!.length, `${a.name}: send ${i + 1} reports its posted length`));
        assert.deepEqual(a.wcs.filter((x) => x.opcode === 'send').map((x) => x.wrId), all.map((_, i) => i + 1), `${a.name}: send completions in posting order`);
        for (let i = 0; i < all.length; i++) {
          const rc = await b.ok(1000 + i, 'recv', c.step);
          assert.equal(rc.byteLength, all[i]!.length, `${b.name}: receive ${i} length`);
          assert.deepEqual(b.slotBytes(1000 + i, rc.byteLength), new Uint8Array(all[i]!), `${b.name}: receive ${i} bytes`);
        }
        assert.equal(all.length, n);
        assert.deepEqual(b.wcs.filter((x) => x.opcode === 'recv').map((x) => x.wrId), all.map((_, i) => 1000 + i), `${b.name}: receives in posting order`);
      }
      // a long message (many FPDUs / MTUs) into a receive in the bulk area
      const long = pattern(200_000, 60);
      server.recv(1100, { mr: server.mr, offset: 0, length: 256 * 1024 });
      client.sendBytes(100, long);
      const sc = await client.ok(100, 'send', c.step);
      assert.equal(sc.byteLength, long.length);
      const rc = await server.ok(1100, 'recv', c.step);
      assert.equal(rc.byteLength, long.length);
      assert.ok(Buffer.from(server.slotBytes(1100, long.length)).equals(long), 'long message bytes');
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('rdma-write-read', '1 MiB RDMA Write (gathered) and Read with content checks, both ways; completions report the posted length', async (c) => {
      const { client, server } = await c.pair();
      // initiator writes 1 MiB from two SGEs into the responder's region at an offset
      const data = pattern(MiB, 21);
      client.mr.buffer.set(data, 0);
      const half = MiB / 2;
      client.write(2000, [{ mr: client.mr, offset: 0, length: half }, { mr: client.mr, offset: half, length: half }], server.mr.addr, server.mr.rkey);
      // the message that tells the peer goes after the write, on the same queue
      client.sendBytes(1, enc('written'));
      const wc = await client.ok(2000, 'write', c.step);
      assert.equal(wc.byteLength, MiB);
      await client.ok(1, 'send', c.step);
      await server.ok(1000, 'recv', c.step);
      assert.ok(Buffer.from(server.mr.buffer.subarray(0, MiB)).equals(data), 'written bytes in place when the message after the write arrived');
      // initiator reads 1 MiB back from the responder
      const other = pattern(MiB, 22);
      server.mr.buffer.set(other, 0);
      client.read(2001, [{ mr: client.mr, offset: 0, length: MiB }], server.mr.addr, server.mr.rkey);
      const rc = await client.ok(2001, 'read', c.step);
      assert.equal(rc.byteLength, MiB);
      assert.ok(Buffer.from(client.mr.buffer.subarray(0, MiB)).equals(other), 'read bytes');
      // the responder reads and writes the initiator's memory at offsets
      const small = pattern(64 * 1024, 23);
      client.mr.buffer.set(small, 4096);
      server.read(2002, [{ mr: server.mr, offset: 8192, length: small.length }], client.mr.addr + 4096n, client.mr.rkey);
      const src = await server.ok(2002, 'read', c.step);
      assert.equal(src.byteLength, small.length);
      assert.ok(Buffer.from(server.mr.buffer.subarray(8192, 8192 + small.length)).equals(small), 'responder read');
      server.mr.buffer.set(pattern(5000, 24), 100_000);
      server.write(2003, [{ mr: server.mr, offset: 100_000, length: 5000 }], client.mr.addr + 300_000n, client.mr.rkey);
      server.sendBytes(1, enc('w'));
      await server.ok(2003, 'write', c.step);
      await client.ok(1000, 'recv', c.step);
      assert.ok(Buffer.from(client.mr.buffer.subarray(300_000, 305_000)).equals(pattern(5000, 24)), 'responder write');
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('sge-reuse', 'a post reads its SGE objects during the call only: they may be changed as soon as it returns', async (c) => {
      const { client, server } = await c.pair({ serverRecvs: 0 });
      // receives through one SGE object, changed after each post
      const r: Sge = { mr: server.mr, offset: server.slot(0), length: RECV };
      server.recv(1000, r);
      r.offset = server.slot(1);
      server.recv(1001, r);
      r.offset = server.slot(5);
      r.length = 1;
      server.recv(1002, { mr: server.mr, offset: server.slot(2), length: RECV });
      // sends through one SGE in one array, both changed after each post
      const a = pattern(10, 31), b = pattern(20, 32);
      client.mr.buffer.set(a, client.layout.sendAt);
      client.mr.buffer.set(b, client.layout.sendAt + 100);
      const s: Sge = { mr: client.mr, offset: client.layout.sendAt, length: a.length };
      const list = [s];
      client.send(1, list);
      s.offset = client.layout.sendAt + 100;
      s.length = b.length;
      client.send(2, list);
      s.offset = 0;
      s.length = 1;
      list.push({ mr: client.mr, offset: 0, length: 7 });
      // a write's list too
      client.mr.buffer.set(pattern(3000, 33), 0);
      const w: Sge[] = [{ mr: client.mr, offset: 0, length: 3000 }];
      client.write(2000, w, server.mr.addr + 50_000n, server.mr.rkey);
      w[0]!.offset = 1;
      w[0]!.length = 1;
      w.length = 0;
      client.sendBytes(3, enc('after the write'), undefined, 4096);
      const r0 = await server.ok(1000, 'recv', c.step), r1 = await server.ok(1001, 'recv', c.step);
      assert.equal(r0.byteLength, a.length);
      assert.deepEqual(server.slotBytes(1000, a.length), a);
      assert.equal(r1.byteLength, b.length);
      assert.deepEqual(server.slotBytes(1001, b.length), b);
      await client.ok(2000, 'write', c.step);
      await server.ok(1002, 'recv', c.step);
      assert.ok(Buffer.from(server.mr.buffer.subarray(50_000, 53_000)).equals(pattern(3000, 33)), 'the write as posted');
      assert.ok(server.mr.buffer.subarray(server.slot(5), server.slot(5) + 1).every((x) => x === 0), 'nothing landed where the changed SGE pointed');
    });

    contractCase('unsignaled', "a signaled send's completion retires the unsignaled sends before it: they are never reported, nor the provider's own work", async (c) => {
      const k = Math.min(opts.maxSendWr, opts.maxRecvWr) - 4; // over half the send queue: verbs forces a signal of its own
      const { client, server } = await c.pair({ serverRecvs: k + 1, clientRecvs: 2 });
      for (let i = 1; i <= k; i++) client.sendBytes(i, pattern(8, 100 + i), { signaled: false }, i * 8);
      client.sendBytes(k + 1, pattern(8, 100 + k + 1), {}, (k + 1) * 8);
      await client.ok(k + 1, 'send', c.step);
      for (let i = 0; i <= k; i++) {
        const rc = await server.ok(1000 + i, 'recv', c.step);
        assert.equal(rc.byteLength, 8);
        assert.deepEqual(server.slotBytes(1000 + i, 8), pattern(8, 100 + i + 1), `message ${i + 1}`);
      }
      assert.deepEqual(client.wcs.map((x) => `${x.opcode}#${x.wrId}`), [`send#${k + 1}`], 'only the signaled send is reported');
      // to the end: a graceful close reports the client's receives (flushed) and nothing else
      await within(client.ep.disconnect(), c.step, 'disconnect()');
      await c.closed(server);
      client.checkEnd(['disconnected', 'close'], ['flushed']);
      assert.deepEqual(client.wcs.filter((x) => x.opcode !== 'recv').map((x) => `${x.opcode}#${x.wrId}=${x.status}`), [`send#${k + 1}=success`],
        'the retired unsignaled sends are not reported at the end either');
    });

    contractCase('queue-full', 'ERR_QUEUE_FULL past the queue sizes, and the endpoint carries on', async (c) => {
      const { client, server } = await c.pair({ serverRecvs: 0, clientRecvs: 0 });
      // receive queue
      client.recvs(opts.maxRecvWr);
      throwsCode(() => client.post(() => client.ep.postRecv(9999, { mr: client.mr, offset: client.slot(0), length: RECV })), 'ERR_QUEUE_FULL', 'postRecv past maxRecvWr');
      server.sendBytes(1, pattern(50, 41));
      await server.ok(1, 'send', c.step);
      await client.ok(1000, 'recv', c.step);
      client.recv(1000 + opts.maxRecvWr, { mr: client.mr, offset: client.slot(0), length: RECV }); // a slot is free again
      // send queue: writes (no receive needed at the peer), all in one task
      for (let i = 0; i < opts.maxSendWr; i++) client.write(3000 + i, [{ mr: client.mr, offset: i * 16, length: 16 }], server.mr.addr + BigInt(i * 16), server.mr.rkey);
      const sge = { mr: client.mr, offset: client.layout.sendAt, length: 4 };
      throwsCode(() => client.post(() => client.ep.postWrite(1, [sge], server.mr.addr, server.mr.rkey)), 'ERR_QUEUE_FULL', 'postWrite past maxSendWr');
      throwsCode(() => client.post(() => client.ep.postSend(1, [sge])), 'ERR_QUEUE_FULL', 'postSend past maxSendWr');
      throwsCode(() => client.post(() => client.ep.postSend(1, [sge], { signaled: false })), 'ERR_QUEUE_FULL', 'unsignaled postSend past maxSendWr');
      throwsCode(() => client.post(() => client.ep.postRead(1, [sge], server.mr.addr, server.mr.rkey)), 'ERR_QUEUE_FULL', 'postRead past maxSendWr');
      for (let i = 0; i < opts.maxSendWr; i++) await client.ok(3000 + i, 'write', c.step);
      // carries on
      server.recv(1000);
      client.sendBytes(2, pattern(60, 42));
      await client.ok(2, 'send', c.step);
      const rc = await server.ok(1000, 'recv', c.step);
      assert.deepEqual(server.slotBytes(1000, rc.byteLength), pattern(60, 42));
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('misuse', 'misuse throws synchronously with the documented codes (ERR_OUT_OF_RANGE, ERR_INVALID_ARG_TYPE, ERR_INVALID_STAG, ERR_DEVICE_LIMIT), and the endpoint carries on', async (c) => {
      const { client, server } = await c.pair();
      const ep = client.ep, mr = client.mr, size = c.layout.slab;
      const bad = (what: string, fn: () => void, code: string) => throwsCode(() => client.post(fn), code, what);
      // an SGE outside its region
      bad('postSend, one SGE past the end', () => ep.postSend(1, [{ mr, offset: size - 10, length: 11 }]), 'ERR_OUT_OF_RANGE');
      bad('postSend, a gather list with one SGE past the end', () => ep.postSend(1, [{ mr, offset: 0, length: 10 }, { mr, offset: size, length: 1 }]), 'ERR_OUT_OF_RANGE');
      bad('postSend, negative offset', () => ep.postSend(1, [{ mr, offset: -1, length: 1 }]), 'ERR_OUT_OF_RANGE');
      bad('postRecv past the end', () => ep.postRecv(1, { mr, offset: size - 100, length: RECV }), 'ERR_OUT_OF_RANGE');
      bad('postWrite, source past the end', () => ep.postWrite(1, [{ mr, offset: size, length: 16 }], server.mr.addr, server.mr.rkey), 'ERR_OUT_OF_RANGE');
      bad('postRead, sink past the end', () => ep.postRead(1, [{ mr, offset: size - 8, length: 16 }], server.mr.addr, server.mr.rkey), 'ERR_OUT_OF_RANGE');
      // a remote range past 2^64
      const top = (1n << 64n) - 8n;
      bad('postWrite, remote range past 2^64', () => ep.postWrite(1, [{ mr, offset: 0, length: 16 }], top, server.mr.rkey), 'ERR_OUT_OF_RANGE');
      bad('postRead, remote range past 2^64', () => ep.postRead(1, [{ mr, offset: 0, length: 16 }], top, server.mr.rkey), 'ERR_OUT_OF_RANGE');
      // another endpoint's region
      const theirs = server.mr;
      bad("postSend, another endpoint's region", () => ep.postSend(1, [{ mr: theirs, offset: 0, length: 1 }]), 'ERR_INVALID_ARG_TYPE');
      bad("postSend, another endpoint's region in a gather list", () => ep.postSend(1, [{ mr, offset: 0, length: 1 }, { mr: theirs, offset: 0, length: 1 }]), 'ERR_INVALID_ARG_TYPE');
      bad("postRecv, another endpoint's region", () => ep.postRecv(1, { mr: theirs, offset: 0, length: 1 }), 'ERR_INVALID_ARG_TYPE');
      bad("postWrite, another endpoint's region", () => ep.postWrite(1, [{ mr: theirs, offset: 0, length: 1 }], server.mr.addr, server.mr.rkey), 'ERR_INVALID_ARG_TYPE');
      bad("postRead, another endpoint's region", () => ep.postRead(1, [{ mr: theirs, offset: 0, length: 1 }], server.mr.addr, server.mr.rkey), 'ERR_INVALID_ARG_TYPE');
      // registration and invalidation
      throwsCode(() => ep.registerMemory(64, { remoteWrite: true }), 'ERR_OUT_OF_RANGE', 'registerMemory: remoteWrite without localWrite');
      const gone = ep.registerMemory(64, { localWrite: true });
      const goneKey = gone.rkey;
      gone.close();
      throwsCode(() => ep.invalidate(goneKey), 'ERR_INVALID_STAG', 'invalidate() of a key not registered here');
      // sink SGEs of a read
      if (opts.oneReadSge) {
        bad('postRead with two sink SGEs', () => ep.postRead(1, [{ mr, offset: 0, length: 8 }, { mr, offset: 8, length: 8 }], server.mr.addr, server.mr.rkey), 'ERR_DEVICE_LIMIT');
      }
      // nothing of it happened: no completion, no event; the endpoint carries on both ways
      await sleep(c.quiet);
      assert.deepEqual(client.wcs, []);
      assert.deepEqual(server.wcs, []);
      client.sendBytes(1, pattern(77, 51));
      server.sendBytes(1, pattern(78, 52));
      server.mr.buffer.set(pattern(512, 53), 0);
      client.read(2000, [{ mr, offset: 0, length: 512 }], server.mr.addr, server.mr.rkey);
      await client.ok(1, 'send', c.step);
      await server.ok(1, 'send', c.step);
      await client.ok(2000, 'read', c.step);
      assert.deepEqual(mr.buffer.subarray(0, 512), pattern(512, 53));
      assert.deepEqual(server.slotBytes(1000, (await server.ok(1000, 'recv', c.step)).byteLength), pattern(77, 51));
      assert.deepEqual(client.slotBytes(1000, (await client.ok(1000, 'recv', c.step)).byteLength), pattern(78, 52));
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('misuse-then-disconnect', 'a refused post leaves no trace: a graceful disconnect right after it ends both sides with \'disconnected\'', async (c) => {
      const { client, server } = await c.pair();
      const ep = client.ep, mr = client.mr, size = c.layout.slab;
      // one good signaled send, then refused posts of each send-queue kind as the last posts
      client.sendBytes(1, pattern(10, 61));
      await client.ok(1, 'send', c.step);
      throwsCode(() => client.post(() => ep.postWrite(2, [{ mr, offset: size, length: 16 }], server.mr.addr, server.mr.rkey)), 'ERR_OUT_OF_RANGE', 'postWrite, source past the end');
      throwsCode(() => client.post(() => ep.postRead(3, [{ mr, offset: size - 8, length: 16 }], server.mr.addr, server.mr.rkey)), 'ERR_OUT_OF_RANGE', 'postRead, sink past the end');
      throwsCode(() => client.post(() => ep.postSend(4, [{ mr, offset: 0, length: 1 }, { mr, offset: size, length: 1 }])), 'ERR_OUT_OF_RANGE', 'postSend, gather list past the end');
      const t0 = Date.now();
      // well within the providers' own disconnect timeout (10 s): a graceful end takes milliseconds
      await within(ep.disconnect(), 5000 * (opts.slow ?? 1), 'disconnect() after refused posts');
      await c.closed(server);
      client.checkEnd(['disconnected', 'close'], ['flushed']);
      server.checkEnd(['disconnected', 'close']);
      assert.ok(Date.now() - t0 < 5000 * (opts.slow ?? 1));
    });

    contractCase('access-at-post', 'iwarp-tcp checks access at the post: a receive or read sink without localWrite (ERR_ACCESS), an invalidated region (ERR_INVALID_STAG)', async (c) => {
      const { client, server } = await c.pair();
      const ro = client.ep.registerMemory(4096, { remoteRead: true });
      throwsCode(() => client.post(() => client.ep.postRecv(1, { mr: ro, offset: 0, length: 64 })), 'ERR_ACCESS', 'postRecv into a region without localWrite');
      throwsCode(() => client.post(() => client.ep.postRead(1, [{ mr: ro, offset: 0, length: 64 }], server.mr.addr, server.mr.rkey)), 'ERR_ACCESS', 'postRead into a region without localWrite');
      const inv = client.ep.registerMemory(4096, { localWrite: true });
      client.ep.invalidate(inv.rkey);
      throwsCode(() => client.post(() => client.ep.postSend(1, [{ mr: inv, offset: 0, length: 8 }])), 'ERR_INVALID_STAG', 'postSend from an invalidated region');
      inv.close();
      ro.close();
      client.sendBytes(1, pattern(9, 71));
      await client.ok(1, 'send', c.step);
      await server.ok(1000, 'recv', c.step);
      assert.deepEqual(client.events, []);
    });

    const depthCase = async (c: Ctx, ask: { initiatorDepth: number; responderResources: number }) => {
      const { client, server } = await c.pair({ connect: ask });
      const want = {
        client: {
          initiatorDepth: Math.min(ask.initiatorDepth, D),
          responderResources: opts.responderResourcesLowered ? Math.min(ask.responderResources, D) : ask.responderResources,
        },
        server: {
          initiatorDepth: Math.min(D, ask.responderResources),
          responderResources: opts.responderResourcesLowered ? Math.min(D, ask.initiatorDepth) : D,
        },
      };
      const got = {
        client: { initiatorDepth: client.ep.initiatorDepth, responderResources: client.ep.responderResources },
        server: { initiatorDepth: server.ep.initiatorDepth, responderResources: server.ep.responderResources },
      };
      assert.deepEqual(got, want, `asked ${JSON.stringify(ask)} of a peer with ${D}/${D}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)} (initiator when connect() resolved, responder when accept() resolved)`);
      // each side keeps twice its ORD in flight: the excess is queued, not refused, and every read completes
      for (const [a, b] of [[client, server], [server, client]] as const) {
        const n = 2 * a.ep.initiatorDepth;
        for (let i = 0; i < n; i++) b.mr.buffer.set(pattern(4096, 80 + i), i * 4096);
        for (let i = 0; i < n; i++) a.read(4000 + i, [{ mr: a.mr, offset: 512 * 1024 + i * 4096, length: 4096 }], b.mr.addr + BigInt(i * 4096), b.mr.rkey);
        for (let i = 0; i < n; i++) await a.ok(4000 + i, 'read', c.step);
        for (let i = 0; i < n; i++) assert.deepEqual(a.mr.buffer.subarray(512 * 1024 + i * 4096, 512 * 1024 + (i + 1) * 4096), pattern(4096, 80 + i), `${a.name}: read ${i}`);
      }
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    };

    contractCase('read-depths', 'initiatorDepth / responderResources are the negotiated values on both sides (asked below the peer\'s)', async (c) => {
      await depthCase(c, { initiatorDepth: 3, responderResources: 5 });
    });

    contractCase('read-depths-lowered', "an initiatorDepth asked above the peer's IRD is lowered to it", async (c) => {
      await depthCase(c, { initiatorDepth: D + 8, responderResources: D + 4 });
    });

    for (const who of ['initiator', 'responder'] as const) {
      contractCase(`disconnect-${who}`, `disconnect() by the ${who}: outstanding send work finishes, posts are refused, receives flush before 'disconnected', then 'close' once on both sides, nothing after`, async (c) => {
        const { client, server } = await c.pair({ serverRecvs: 4, clientRecvs: 4 });
        const [a, b] = who === 'initiator' ? [client, server] : [server, client];
        a.sendBytes(1, pattern(64, 90));
        await a.ok(1, 'send', c.step);
        await b.ok(1000, 'recv', c.step);
        // a signaled send, then disconnect() in the same task: the send finishes, the peer has it
        a.sendBytes(2, pattern(65, 91));
        let resolvedAfterClose: boolean | undefined;
        const d = a.ep.disconnect().then(() => { resolvedAfterClose = a.closed; });
        const sge = { mr: a.mr, offset: 0, length: 8 };
        throwsCode(() => a.post(() => a.ep.postSend(3, [sge])), 'ERR_INVALID_STATE', 'postSend after disconnect()');
        throwsCode(() => a.post(() => a.ep.postRecv(3, sge)), 'ERR_INVALID_STATE', 'postRecv after disconnect()');
        await within(d, c.step, 'disconnect()');
        assert.equal(resolvedAfterClose, true, "disconnect() resolves after 'close'");
        await c.closed(b);
        const sc = a.completionsOf(2, 'send');
        assert.deepEqual(sc.map((x) => x.status), ['success'], `${a.name}: the send posted before disconnect() finished`);
        const rc = b.completionsOf(1001, 'recv');
        assert.equal(rc[0]?.status, 'success', `${b.name}: the peer received it: ${b.log.join(' ')}`);
        assert.deepEqual(b.slotBytes(1001, 65), pattern(65, 91));
        a.checkEnd(['disconnected', 'close'], ['flushed']);
        b.checkEnd(['disconnected', 'close'], ['success', 'flushed']);
        assert.equal(a.wcs.filter((x) => x.opcode === 'recv').length, 4);
        // closed: every post refused, disconnect() resolves at once, destroy() is a no-op
        for (const e of [a, b]) {
          throwsCode(() => e.post(() => e.ep.postSend(5, [{ mr: e.mr, offset: 0, length: 1 }])), 'ERR_INVALID_STATE', `${e.name}: postSend after close`);
          throwsCode(() => e.post(() => e.ep.postRecv(5, { mr: e.mr, offset: 0, length: 1 })), 'ERR_INVALID_STATE', `${e.name}: postRecv after close`);
          throwsCode(() => e.post(() => e.ep.postWrite(5, [{ mr: e.mr, offset: 0, length: 1 }], 0n, 0)), 'ERR_INVALID_STATE', `${e.name}: postWrite after close`);
          throwsCode(() => e.post(() => e.ep.postRead(5, [{ mr: e.mr, offset: 0, length: 1 }], 0n, 0)), 'ERR_INVALID_STATE', `${e.name}: postRead after close`);
          await within(e.ep.disconnect(), 1000 * (opts.slow ?? 1), `${e.name}: disconnect() once closed`);
          e.ep.destroy(new Error('after close'));
        }
        await c.quietly();
      });
    }

    contractCase('destroy-error', "destroy(err): outstanding work completes (flushed) before 'error' (err), then 'close'; the peer's connection ends", async (c) => {
      const { client, server } = await c.pair({ serverRecvs: 3, clientRecvs: 3 });
      server.mr.buffer.set(pattern(MiB, 95), 0);
      client.read(2000, [{ mr: client.mr, offset: 0, length: MiB }], server.mr.addr, server.mr.rkey);
      const err = Object.assign(new Error('test abort'), { code: 'ERR_TEST_ABORT' });
      client.ep.destroy(err);
      throwsCode(() => client.post(() => client.ep.postSend(1, [{ mr: client.mr, offset: 0, length: 1 }])), 'ERR_INVALID_STATE', 'postSend after destroy()');
      client.ep.destroy(); // idempotent
      await c.closed(client);
      await c.closed(server);
      client.checkEnd(['error(ERR_TEST_ABORT)', 'close'], ['flushed']);
      const rd = client.completionsOf(2000, 'read');
      assert.equal(rd.length, 1, `the read completes once: ${client.log.join(' ')}`);
      assert.ok(['success', 'flushed'].includes(rd[0]!.status), `the read: ${rd[0]!.status}`);
      server.checkEnd((evs) => evs.length === 2 && evs[1] === 'close' && (opts.peerOfDestroy === 'error' ? evs[0]!.startsWith('error(') : evs[0] === 'disconnected'), ['flushed']);
      await c.quietly();
    });

    contractCase('destroy-plain', "destroy() without an error: 'disconnected' then 'close'; 'error' is emitted only to a listener (none: no crash)", async (c) => {
      const listener = await c.listen();
      const conn = c.nextConnection(listener);
      const clientP = c.connect({ port: listener.port });
      clientP.catch(() => {});
      const server = c.end(await conn, 'server', false); // no 'error' listener
      server.recvs(2);
      await within(server.ep.accept(), c.step, 'accept()');
      const client = c.end(await within(clientP, c.step, 'connect()'), 'client', false);
      client.recvs(2);
      client.ep.destroy();
      await c.closed(client);
      await c.closed(server);
      client.checkEnd(['disconnected', 'close'], ['flushed']);
      // the peer's end: 'error' unheard (iwarp-tcp), or 'disconnected' (verbs)
      server.checkEnd(opts.peerOfDestroy === 'error' ? ['close'] : ['disconnected', 'close'], ['flushed']);
      // destroy(err) on an endpoint without an 'error' listener: 'close' only, nothing thrown
      const p2 = await c.pair({ serverRecvs: 1, clientRecvs: 1, clientListenErrors: false });
      p2.client.ep.destroy(new Error('nobody listens'));
      await c.closed(p2.client);
      await c.closed(p2.server);
      p2.client.checkEnd(['close'], ['flushed']);
      await c.quietly();
    });

    contractCase('reject', "reject(): the initiator's connect() rejects with the reply's private data; accept() after it refused; the endpoint ends as documented", async (c) => {
      const listener = await c.listen();
      const conn = c.nextConnection(listener);
      const clientP = c.connect({ port: listener.port, privateData: enc('may I') });
      clientP.catch(() => {});
      const server = c.end(await conn, 'server');
      server.recvs(2);
      const rpd = enc('no, thanks');
      await within(server.ep.reject(rpd), c.step, 'reject()');
      server.rejected = true;
      const err = await within(clientP.then(() => undefined, (e: unknown) => e), c.step, 'connect() after reject()');
      assert.ok(err instanceof RdmaError, `connect() rejects with an RdmaError: ${String(err)}`);
      assert.ok(['ERR_MPA_REJECTED', 'ERR_VERBS_REJECTED'].includes(codeOf(err)!), `code ${codeOf(err)}`);
      const pd = (err as unknown as { privateData?: Uint8Array }).privateData;
      assert.ok(pd instanceof Uint8Array, 'the error carries the reply\'s private data');
      sameBytes(pd.subarray(0, rpd.length), rpd, "the reject's private data");
      if (!opts.privateDataPadded) assert.equal(pd.length, rpd.length);
      await assert.rejects(server.ep.accept(), (e: Error) => codeOf(e) === 'ERR_INVALID_STATE', 'accept() after reject()');
      await assert.rejects(server.ep.reject(), (e: Error) => codeOf(e) === 'ERR_INVALID_STATE', 'reject() twice');
      if (opts.rejectEnds === 'close') {
        await c.closed(server);
        server.checkEnd(['close'], ['flushed']);
      } else {
        await sleep(c.quiet * 2);
        assert.deepEqual(server.log, [], 'no event and no completion after reject()');
      }
      await c.quietly();
    });

    contractCase('listener-close', "a listener's close() resolves at once and stops accepting; endpoints already delivered (accepted or not) live on", async (c) => {
      const listener = await c.listen();
      const port = listener.port;
      const conn1 = c.nextConnection(listener);
      const client1P = c.connect({ port });
      client1P.catch(() => {});
      const s1 = c.end(await conn1, 'server1');
      s1.recvs(2);
      await within(s1.ep.accept(), c.step, 'accept() 1');
      const c1 = c.end(await within(client1P, c.step, 'connect() 1'), 'client1');
      c1.recvs(2);
      const conn2 = c.nextConnection(listener);
      const client2P = c.connect({ port });
      client2P.catch(() => {});
      const s2 = c.end(await conn2, 'server2');
      s2.recvs(2);
      await within(listener.close(), 1000 * (opts.slow ?? 1), 'listener.close()');
      // the delivered, unaccepted request is still answerable
      await within(s2.ep.accept(), c.step, 'accept() after the listener closed');
      const c2 = c.end(await within(client2P, c.step, 'connect() 2'), 'client2');
      c2.recvs(2);
      for (const [a, b] of [[c1, s1], [s1, c1], [c2, s2], [s2, c2]] as const) {
        a.sendBytes(1, pattern(30, a.name.length));
        await a.ok(1, 'send', c.step);
        const rc = await b.ok(1000, 'recv', c.step);
        assert.deepEqual(b.slotBytes(1000, rc.byteLength), pattern(30, a.name.length), `${a.name} -> ${b.name}`);
      }
      // nothing listens there any more (what it rejects with: case connect-refused)
      const e = await within(c.connect({ port }).then((ep) => { ep.destroy(); return undefined; }, (x: unknown) => x), 3 * c.step, 'connect() to the closed listener');
      assert.ok(e instanceof Error && codeOf(e), `connect() to a closed listener rejects with a coded error: ${String(e)}`);
      for (const x of [c1, s1, c2, s2]) assert.deepEqual(x.events, [], `${x.name}: alive`);
    });

    contractCase('responder-first', "the initiator's receives posted in prepare() take a Send the responder posts right after accept() resolves", async (c) => {
      const listener = await c.listen();
      const conn = c.nextConnection(listener);
      let client: End | undefined;
      let prepared: string | undefined;
      const clientP = c.connect({
        port: listener.port,
        prepare: (ep) => {
          prepared = (ep as { state?: string }).state;
          client = c.end(ep, 'client');
          client.recvs(2);
        },
      });
      clientP.catch(() => {});
      const server = c.end(await conn, 'server');
      server.recvs(2);
      const greeting = pattern(777, 23);
      await within(server.ep.accept(), c.step, 'accept()');
      server.sendBytes(1, greeting); // at once: the initiator may not have seen its connect() resolve yet
      const ep = await within(clientP, c.step, 'connect()');
      assert.ok(client && client.ep === ep, 'prepare() was called with the endpoint connect() resolves with');
      assert.notEqual(prepared, 'RTS', 'prepare() ran before the connection was established');
      const rc = await client.ok(1000, 'recv', c.step);
      assert.equal(rc.byteLength, greeting.length);
      assert.deepEqual(client.slotBytes(1000, greeting.length), greeting);
      await server.ok(1, 'send', c.step);
      // and the connection carries on
      client.sendBytes(1, pattern(10, 24));
      await server.ok(1000, 'recv', c.step);
      assert.deepEqual(client.events, []);
      assert.deepEqual(server.events, []);
    });

    contractCase('prepare-throws', 'a prepare() that throws rejects connect() with that error and leaves nothing behind; the provider connects again', async (c) => {
      const listener = await c.listen();
      listener.on('connection', (ep: RdmaEndpoint) => {
        // whatever gets this far is answered and then dropped by cleanup()
        ep.on('error', () => {});
        ep.accept().catch(() => {});
      });
      const boom = Object.assign(new Error('prepare failed'), { code: 'ETEST' });
      let registered: MemoryRegion | undefined;
      const e = await within(c.connect({
        port: listener.port,
        prepare: (ep) => {
          registered = ep.registerMemory(4096, { localWrite: true });
          throw boom;
        },
      }).then(() => undefined, (x: unknown) => x), c.step, 'connect() with a throwing prepare()');
      assert.equal(e, boom, 'rejects with the error prepare() threw');
      assert.ok(registered, 'prepare() ran');
      listener.removeAllListeners('connection');
      // nothing of it is left in the way of the next connection
      const { client, server } = await c.pair();
      client.sendBytes(1, pattern(5, 25));
      await server.ok(1000, 'recv', c.step);
    });

    contractCase('connect-refused', 'connect() that fails rejects with an RdmaError (a code), leaving nothing behind', async (c) => {
      // a port that was listened on and is no more
      const listener = await c.listen();
      const port = listener.port;
      await listener.close();
      const e = await within(c.connect({ port }).then((ep) => { ep.destroy(); return undefined; }, (x: unknown) => x), 3 * c.step, 'connect() to a closed port');
      assert.ok(e instanceof RdmaError, `rejects with an RdmaError: ${String(e)} (${(e as Error | undefined)?.constructor.name})`);
      assert.ok(codeOf(e), 'with a code');
    });

    contractCase('memory', 'registerMemory: a size gives provider memory of that size, a view is registered in place; rkeys fresh; close() idempotent, the region refused after it', async (c) => {
      const { client, server } = await c.pair();
      const ep = client.ep;
      // the rkey of a registration the peer may access (rxe gives one without remote rights rkey 0)
      const a = ep.registerMemory(8192, { localWrite: true, remoteRead: true }), b = ep.registerMemory(8192, { localWrite: true, remoteWrite: true });
      assert.equal(a.buffer.byteLength, 8192);
      assert.ok(a.buffer instanceof Uint8Array);
      assert.notEqual(a.rkey, b.rkey, 'fresh rkey per registration');
      assert.equal(typeof a.addr, 'bigint');
      const view = new Uint8Array(new ArrayBuffer(4096));
      const v = ep.registerMemory(view, { localWrite: true });
      assert.equal(v.buffer, view, 'registered in place');
      view.set(pattern(100, 96), 0);
      client.send(1, [{ mr: v, offset: 0, length: 100 }]);
      await client.ok(1, 'send', c.step);
      assert.deepEqual(server.slotBytes(1000, (await server.ok(1000, 'recv', c.step)).byteLength), pattern(100, 96));
      assert.equal(a.closed, false);
      a.close();
      assert.equal(a.closed, true);
      a.close(); // idempotent
      throwsCode(() => client.post(() => ep.postSend(2, [{ mr: a, offset: 0, length: 1 }])), 'ERR_INVALID_ARG_TYPE', 'postSend from a closed region');
      throwsCode(() => client.post(() => ep.postRecv(2, { mr: a, offset: 0, length: 1 })), 'ERR_INVALID_ARG_TYPE', 'postRecv into a closed region');
      b.close();
      v.close();
      // carries on
      client.sendBytes(3, pattern(10, 97));
      await client.ok(3, 'send', c.step);
      await server.ok(1001, 'recv', c.step);
      assert.deepEqual(client.events, []);
    });

    contractCase('local-invalidate', "invalidate(rkey) makes the key unusable to the peer: its RDMA Read through it fails and ends the connection", async (c) => {
      const { client, server } = await c.pair();
      const target = server.ep.registerMemory(8192, { localWrite: true, remoteRead: true });
      target.buffer.set(pattern(8192, 98));
      client.read(2000, [{ mr: client.mr, offset: 0, length: 8192 }], target.addr, target.rkey);
      await client.ok(2000, 'read', c.step);
      assert.deepEqual(client.mr.buffer.subarray(0, 8192), pattern(8192, 98));
      server.ep.invalidate(target.rkey);
      // the message after it on the same queue: the invalidation is done when it arrives
      server.sendBytes(1, enc('invalidated'));
      await client.ok(1000, 'recv', c.step);
      const sink = sinkAtCompletion(client, 2001, 8192, 8192);
      client.read(2001, [{ mr: client.mr, offset: 8192, length: 8192 }], target.addr, target.rkey);
      const rc = await client.take(2001, 'read', c.step);
      assert.notEqual(rc.status, 'success', 'a read through an invalidated key fails');
      assert.equal(rc.byteLength, 0);
      await c.closed(client);
      await c.closed(server);
      // (siw completes the failed read as flushed and reports the QP error as an async event only:
      // its end is a disconnect there)
      client.checkEnd((evs) => evs.length === 2 && (evs[0]!.startsWith('error(') || evs[0] === 'disconnected') && evs[1] === 'close');
      assert.ok(sink().every((x) => x === 0), 'no byte placed');
      target.close();
    });

    contractCase('remote-invalidate', 'a Send-with-Invalidate kills the key at the peer and is reported as invalidatedRkey where the provider reports it', async (c) => {
      const { client, server } = await c.pair();
      const view = new Uint8Array(new ArrayBuffer(8192));
      view.set(pattern(8192, 99));
      const target = server.ep.registerMemory(view, { localWrite: true, remoteRead: true });
      server.sendBytes(1, enc('ready')); // after the registration (verbs: a window bind) on the same queue
      await client.ok(1000, 'recv', c.step);
      client.read(2000, [{ mr: client.mr, offset: 0, length: 8192 }], target.addr, target.rkey);
      await client.ok(2000, 'read', c.step);
      assert.deepEqual(client.mr.buffer.subarray(0, 8192), pattern(8192, 99));
      client.sendBytes(1, pattern(16, 100), { invalidateRkey: target.rkey });
      await client.ok(1, 'send', c.step);
      const rc = await server.ok(1000, 'recv', c.step);
      assert.equal(rc.byteLength, 16);
      if (opts.remoteInvalidation === 'reported') assert.equal(rc.invalidatedRkey, target.rkey, 'invalidatedRkey');
      else assert.equal(rc.invalidatedRkey, undefined, 'not reported');
      const sink = sinkAtCompletion(client, 2001, 8192, 8192);
      client.read(2001, [{ mr: client.mr, offset: 8192, length: 8192 }], target.addr, target.rkey);
      const ec = await client.take(2001, 'read', c.step);
      assert.notEqual(ec.status, 'success', 'the key is dead');
      await c.closed(client);
      await c.closed(server);
      assert.ok(sink().every((x) => x === 0), 'no byte placed');
      target.close();
    });

    contractCase('check-capacity', 'checkCapacity (where the provider has it) refuses needs beyond its queues, accepts needs within them, ignores readDepth', async (c) => {
      const check = c.provider.checkCapacity?.bind(c.provider);
      if (!check) return; // optional: nothing to check
      const codes = ['ERR_OUT_OF_RANGE', 'ERR_DEVICE_LIMIT'];
      throwsCode(() => check({ receives: opts.maxRecvWr + 1, sends: 1, readDepth: 1 }), codes, 'receives beyond maxRecvWr');
      throwsCode(() => check({ receives: 1, sends: opts.maxSendWr + 1, readDepth: 1 }), codes, 'sends beyond maxSendWr');
      check({ receives: 1, sends: 1, readDepth: 1 });
      check({ receives: 1, sends: 1, readDepth: 10_000 });
    });
  });
}
