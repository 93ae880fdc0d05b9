// The VM suite's rdma_cm driver over the raw binding (no node:test here: the
// cross-process peer uses it too): devices under test, awaitable CM events and
// completions, connected pairs, kernel resource counts (`rdma resource show`).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import * as native from '../../native/index.js';
import type {
  CmEvent, CmEventType, CmId, CompletionChannel, CompletionQueue, ConnParams, Device, EventChannel,
  MemoryRegion, ProtectionDomain, QpCaps, QueuePair,
} from '../../native/index.js';

export const inVm = process.env['SMBDIRECT_SOFTROCE'] === '1';

export interface TestDevice {
  name: string;
  ip: string;
  kind: 'RoCE' | 'iWARP';
}

export const DEVICES: TestDevice[] = [
  { name: process.env['SMBDIRECT_RXE_DEV'] ?? 'rxe0', ip: process.env['SMBDIRECT_RXE_IP'] ?? '10.99.0.1', kind: 'RoCE' },
  { name: process.env['SMBDIRECT_SIW_DEV'] ?? 'siw0', ip: process.env['SMBDIRECT_SIW_IP'] ?? '10.99.1.1', kind: 'iWARP' },
];


// ---- kernel resources --------------------------------------------------------

export type Counts = Record<'pd' | 'cq' | 'qp' | 'cm_id' | 'mr', number>;

/** Kernel object counts over all RDMA devices (`rdma -j resource show`). */
export function resourceCounts(): Counts {
  const rows = JSON.parse(execFileSync('rdma', ['-j', 'resource', 'show'], { encoding: 'utf8' })) as Array<Record<string, unknown>>;
  const c: Counts = { pd: 0, cq: 0, qp: 0, cm_id: 0, mr: 0 };
  for (const r of rows) for (const k of Object.keys(c) as (keyof Counts)[]) c[k] += Number(r[k] ?? 0);
  // rdma_cm keeps listening ids per device for wildcard binds; none here
  return c;
}

/** The objects of one process only (`rdma -j resource show <type>`, rows with its pid): kernel
 * consumers (cifs, ksmbd: comm in brackets, no pid) are not counted. */
export function processCounts(pid = process.pid): Counts {
  const c: Counts = { pd: 0, cq: 0, qp: 0, cm_id: 0, mr: 0 };
  for (const k of Object.keys(c) as (keyof Counts)[]) {
    const rows = JSON.parse(execFileSync('rdma', ['-j', 'resource', 'show', k], { encoding: 'utf8' }) || '[]') as Array<{ pid?: number }>;
    c[k] = rows.filter((r) => r.pid === pid).length;
  }
  return c;
}

/** Polls `count` (the kernel frees asynchronously) until it equals `base` or `timeoutMs` passed; the last count. */
async function countsWhenBack(count: () => Counts, base: Counts, timeoutMs: number): Promise<Counts> {
  const end = Date.now() + timeoutMs;
  let now = count();
  while (JSON.stringify(now) !== JSON.stringify(base) && Date.now() < end) {
    await sleep(50);
    now = count();
  }
  return now;
}

/** Waits until this process's own objects equal `base` (see processCounts). */
export async function expectProcessCountsBack(base: Counts, what: string, timeoutMs = 10_000): Promise<void> {
  const now = await countsWhenBack(processCounts, base, timeoutMs);
  assert.deepEqual(now, base, `this process's RDMA objects leaked after ${what} (waited ${timeoutMs} ms)`);
}

/** Kernel counts once this process has used every test device through
 * rdma_cm: librdmacm opens each device and allocates one PD per device on
 * first use, for the life of the process. That is the baseline, not a leak. */
export async function baselineCounts(): Promise<Counts> {
  const events = new Events();
  for (const d of DEVICES) {
    native.openDevice(d.name);
    const id = await resolve(events, d.ip, 9);
    id.close();
  }
  events.close();
  return resourceCounts();
}

/** Waits (polling, the kernel frees asynchronously) until counts equal `base`. */
export async function expectCountsBack(base: Counts, what: string, timeoutMs = 10_000): Promise<void> {
  const now = await countsWhenBack(resourceCounts, base, timeoutMs);
  if (JSON.stringify(now) === JSON.stringify(base)) return;
  // whose they are: the QPs left, with the process (or kernel module) that owns each
  let owners = '';
  try {
    owners = execFileSync('rdma', ['resource', 'show', 'qp'], { encoding: 'utf8', timeout: 5000 }).trim();
  } catch (err) {
    owners = `(rdma resource show qp: ${(err as Error).message})`;
  }
  assert.deepEqual(now, base, `kernel RDMA objects leaked after ${what} (waited ${timeoutMs} ms); QPs now:\n${owners}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- cleanup of whatever a failed test left open ---------------------------------

const openObjects = new Set<{ close(): void; readonly closed: boolean }>();
/** Closes everything the helpers opened (after the leak check: a failed test
 * must not keep the file's event loop alive until the runner's timeout). */
export function closeAll(): void {
  for (const o of [...openObjects].reverse()) if (!o.closed) o.close();
  openObjects.clear();
}

// ---- rdma_cm events ------------------------------------------------------------

/** An event channel whose events can be awaited by id and type. */
export class Events {
  readonly channel: EventChannel;
  readonly log: CmEvent[] = [];
  private waiters: Array<{ match: (e: CmEvent) => boolean; resolve: (e: CmEvent) => void }> = [];

  constructor() {
    this.channel = native.createEventChannel((events) => {
      for (const e of events) {
        const i = this.waiters.findIndex((w) => w.match(e));
        if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(e);
        else this.log.push(e);
      }
    });
    openObjects.add(this.channel);
  }

  /** The next event for `id` (any type in `types`), already logged or future. */
  next(id: CmId, types: CmEventType[], timeoutMs = 20_000): Promise<CmEvent> {
    const match = (e: CmEvent) => e.id === id || e.listenId === id;
    const i = this.log.findIndex(match);
    if (i >= 0) return Promise.resolve(this.log.splice(i, 1)[0]!).then((e) => check(e));
    return new Promise<CmEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no rdma_cm event ${types.join('|')} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = { match, resolve: (e: CmEvent) => { clearTimeout(timer); resolve(e); } };
      this.waiters.push(waiter);
    }).then((e) => check(e));
    function check(e: CmEvent): CmEvent {
      if (!types.includes(e.type)) {
        const err = new Error(`expected rdma_cm ${types.join('|')}, got ${e.type} (status ${e.status}${e.code ? ' ' + e.code : ''})`);
        throw Object.assign(err, { event: e });
      }
      return e;
    }
  }

  close(): void {
    this.channel.close();
  }
}

// ---- completions ---------------------------------------------------------------

export interface Wc {
  wrId: number;
  status: string;
  opcode: number;
  byteLength: number;
  qpNum: number;
  immOrInvalidatedRkey: number;
  flags: number;
}

/** Copies each batch out of the CQ's struct-of-arrays and lets tests await them. */
export class Completions {
  readonly all: Wc[] = [];
  private waiters: Array<() => void> = [];
  cq!: CompletionQueue;

  onBatch = (count: number): void => {
    const b = this.cq.batch;
    for (let i = 0; i < count; i++) {
      this.all.push({
        wrId: b.wrId[i]!, status: native.wcStatusName(b.status[i]!), opcode: b.opcode[i]!,
        byteLength: b.byteLength[i]!, qpNum: b.qpNum[i]!, immOrInvalidatedRkey: b.immOrInvalidatedRkey[i]!,
        flags: b.flags[i]!,
      });
    }
    for (const w of this.waiters.splice(0)) w();
  };

  /** Resolves with the completion for `wrId` (and removes it). */
  async take(wrId: number, timeoutMs = 20_000): Promise<Wc> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.all.findIndex((c) => c.wrId === wrId);
      if (i >= 0) return this.all.splice(i, 1)[0]!;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no completion for wrId ${wrId} within ${timeoutMs} ms (have ${JSON.stringify(this.all)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async takeOk(wrId: number, timeoutMs?: number): Promise<Wc> {
    const wc = await this.take(wrId, timeoutMs);
    assert.equal(wc.status, 'success', `completion ${wrId}: ${wc.status}`);
    return wc;
  }
}

// ---- connected endpoints ---------------------------------------------------------

export interface Side {
  id: CmId;
  device: Device;
  pd: ProtectionDomain;
  channel: CompletionChannel;
  cq: CompletionQueue;
  qp: QueuePair;
  wcs: Completions;
  /** SLAB bytes, local write + remote read/write. */
  mr: MemoryRegion;
  bytes: Uint8Array;
  peerPrivateData: Buffer;
}

export const CAPS: QpCaps = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 4, maxRecvSge: 4 };
/** Each side's slab: [0, DATA) for bulk data, the rest for messages and receives. */
export const DATA = 1 << 20;
export const SLAB = 2 << 20;
const RW = native.ACCESS.LOCAL_WRITE | native.ACCESS.REMOTE_READ | native.ACCESS.REMOTE_WRITE;

/** PD, channel, CQ and QP on the id's device. */
export function makeSide(id: CmId, caps: QpCaps = CAPS, access = RW): Omit<Side, 'peerPrivateData'> {
  const device = id.device;
  assert.ok(device, 'cm_id has no device');
  const pd = device.allocPd();
  const channel = device.createCompChannel();
  const wcs = new Completions();
  const cq = device.createCq(256, channel, 0, (n) => wcs.onBatch(n)); // onBatch may be swapped later
  wcs.cq = cq;
  const qp = id.createQp(pd, cq, cq, caps);
  const mr = pd.allocSlab(SLAB, access);
  openObjects.add(pd);
  openObjects.add(channel);
  return { id, device, pd, channel, cq, qp, wcs, mr, bytes: new Uint8Array(mr.buffer) };
}

export interface Pair {
  events: Events;
  listener: CmId;
  server: Side;
  client: Side;
}

export interface PairOptions {
  clientPrivateData?: Uint8Array;
  serverPrivateData?: Uint8Array;
  /** receives posted on each side before the connection is established */
  recvs?: number;
  recvSize?: number;
  connect?: ConnParams;
  accept?: ConnParams;
}

/** Resolves a client id to `ip:port` (address + route) on `events`. */
export async function resolve(events: Events, ip: string, port: number): Promise<CmId> {
  const id = events.channel.createId();
  id.resolveAddr(ip, port, 5000);
  await events.next(id, ['ADDR_RESOLVED']);
  id.resolveRoute(5000);
  await events.next(id, ['ROUTE_RESOLVED']);
  return id;
}

/** Posts `n` receives of `size` bytes from the end of the side's slab (wrIds 1000+i). */
export function postRecvs(side: Omit<Side, 'peerPrivateData'>, n: number, size: number): void {
  for (let i = 0; i < n; i++) side.qp.postRecv(1000 + i, { mr: side.mr, offset: SLAB - (i + 1) * size, length: size });
}

/** Async events of every device a pair was made on (QP errors, port changes). */
export const asyncEvents: native.AsyncEvent[] = [];
function watchAsync(device: Device): void {
  device.onAsyncEvent((events) => { asyncEvents.push(...events); });
}

/** Listener and client in this process, connected through rdma_cm on `dev`. */
export async function connectPair(dev: TestDevice, opts: PairOptions = {}): Promise<Pair> {
  const events = new Events();
  const listener = events.channel.createId();
  listener.bind(dev.ip, 0);
  listener.listen(8);
  const port = listener.localAddress!.port;
  assert.ok(port > 0, 'listener port');

  const cid = await resolve(events, dev.ip, port);
  assert.equal(cid.deviceName, dev.name, 'the route resolves to the device under test');
  const client = makeSide(cid);
  watchAsync(client.device);
  postRecvs(client, opts.recvs ?? 0, opts.recvSize ?? 4096);
  cid.connect({ privateData: opts.clientPrivateData, initiatorDepth: 4, responderResources: 4, ...opts.connect });

  const req = await events.next(listener, ['CONNECT_REQUEST']);
  const sid = req.id!;
  const server = makeSide(sid);
  postRecvs(server, opts.recvs ?? 0, opts.recvSize ?? 4096);
  sid.accept({ privateData: opts.serverPrivateData, initiatorDepth: 4, responderResources: 4, ...opts.accept });

  const [cEst] = await Promise.all([events.next(cid, ['ESTABLISHED']), events.next(sid, ['ESTABLISHED'])]);
  return {
    events,
    listener,
    server: { ...server, peerPrivateData: req.privateData ?? Buffer.alloc(0) },
    client: { ...client, peerPrivateData: cEst.privateData ?? Buffer.alloc(0) },
  };
}

/** The client disconnects; the server answers its DISCONNECTED with its own
 * rdma_disconnect (as rping does: on IB that sends the DREP the client waits
 * for, and it moves the server's QP to error). */
export async function disconnectBoth(p: Pair, timeoutMs = 10_000): Promise<void> {
  p.client.id.disconnect();
  await p.events.next(p.server.id, ['DISCONNECTED'], timeoutMs);
  p.server.id.disconnect();
  await p.events.next(p.client.id, ['DISCONNECTED'], timeoutMs);
}

/** Closes both sides, the listener and the event channel (no handshake). */
export function destroyPair(p: Pair): void {
  for (const s of [p.client, p.server]) {
    s.id.close();
    s.pd.close();
    s.channel.close();
  }
  p.listener.close();
  p.events.close();
}

/** Graceful teardown used by most tests: disconnect both, then close all
 * (everything is closed even when the disconnect handshake fails). */
export async function closePair(p: Pair): Promise<void> {
  if (p.client.id.closed) return;
  try {
    await disconnectBoth(p);
  } finally {
    destroyPair(p);
  }
}

export { pattern } from '../support.js';
