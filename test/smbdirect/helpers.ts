// Shared pieces of the SMB Direct suites: a connected pair on the software iWARP provider over
// loopback, and a raw provider endpoint (an adversarial peer) that sends exactly the bytes a test
// crafts and shows exactly the bytes our side sends.
import { AsyncLocalStorage } from 'node:async_hooks';
import { once } from 'node:events';

import { encodeDataTransfer, encodeNegotiateRequest, encodeNegotiateResponse } from '../../framing/index.js';
import { type ProviderChoice, connect, createServer, type SmbDirectConnection, type SmbDirectOptions, type SmbDirectServer } from '../../src/index.js';
import { createIwarpProvider, type Completion, type MemoryRegion, type RdmaEndpoint } from '../../src/providers/index.js';

export const HOST = '127.0.0.1';

export interface Pair {
  server: SmbDirectServer;
  client: SmbDirectConnection;
  accepted: SmbDirectConnection;
  close(): Promise<void>;
}

/** A server and a client connection on loopback; `accepted` is the server side of `client`. */
export async function pair(serverOpts: SmbDirectOptions = {}, clientOpts: SmbDirectOptions = serverOpts): Promise<Pair> {
  const server = createServer(serverOpts);
  const { port } = await server.listen({ host: HOST, port: 0 });
  const acceptedP = once(server, 'connection') as Promise<[SmbDirectConnection]>;
  const client = await connect({ host: HOST, port, ...clientOpts });
  const [accepted] = await acceptedP;
  return {
    server, client, accepted,
    async close() {
      client.destroy();
      await server.close();
    },
  };
}

/** Resolves with the connection's 'close' argument (the latched error, or undefined). */
export function closed(conn: SmbDirectConnection): Promise<Error | undefined> {
  if (conn.state === 'closed') return Promise.resolve(conn.error);
  return new Promise((resolve) => conn.once('close', (err?: Error) => resolve(err)));
}

/** Collects 'message' events; next() awaits the next one. */
export class Inbox {
  readonly messages: Uint8Array[] = [];
  private waiters: Array<() => void> = [];
  constructor(conn: SmbDirectConnection) {
    conn.on('message', (m: Uint8Array) => {
      this.messages.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  async count(n: number, ms = 10_000): Promise<Uint8Array[]> {
    const end = Date.now() + ms;
    while (this.messages.length < n) {
      if (Date.now() > end) throw new Error(`only ${this.messages.length} of ${n} messages arrived in ${ms} ms`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
    return this.messages;
  }
}

const SLOT = 65536;

/** A bare provider endpoint speaking whatever bytes a test gives it. */
export class RawPeer {
  readonly recvMr: MemoryRegion;
  readonly sendMr: MemoryRegion;
  readonly received: Uint8Array[] = [];
  readonly completions: Completion[] = [];
  ended = false;
  error?: Error;
  private sendSlot = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly ep: RdmaEndpoint, receives = 32) {
    this.recvMr = ep.registerMemory(receives * SLOT, { localWrite: true });
    this.sendMr = ep.registerMemory(16 * SLOT, {});
    ep.onCompletions((batch) => {
      for (const c of batch) {
        this.completions.push(c);
        if (c.opcode === 'recv' && c.status === 'success') {
          this.received.push(Buffer.from(this.recvMr.buffer.subarray(c.wrId * SLOT, c.wrId * SLOT + c.byteLength)));
          try { ep.postRecv(c.wrId, { mr: this.recvMr, offset: c.wrId * SLOT, length: SLOT }); } catch { /* closing */ }
        }
      }
      this.wake();
    });
    const end = (err?: Error) => { this.ended = true; this.error ??= err; this.wake(); };
    ep.on('error', end);
    ep.on('disconnected', () => end());
    ep.on('close', () => end());
    for (let i = 0; i < receives; i++) ep.postRecv(i, { mr: this.recvMr, offset: i * SLOT, length: SLOT });
  }

  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await createIwarpProvider().connect({ host: HOST, port }));
  }

  /** Listens; accept() resolves with the next peer (accepted at the transport level). */
  static async listen(): Promise<{ port: number; accept(): Promise<RawPeer>; close(): Promise<void> }> {
    const listener = await createIwarpProvider().listen({ host: HOST, port: 0 });
    return {
      port: listener.port,
      async accept() {
        const [ep] = (await once(listener, 'connection')) as [RdmaEndpoint];
        const peer = new RawPeer(ep);
        await ep.accept();
        return peer;
      },
      close: () => listener.close(),
    };
  }

  send(bytes: Uint8Array, opts?: { invalidateRkey?: number }): void {
    const slot = this.sendSlot++ % 16;
    this.sendMr.buffer.set(bytes, slot * SLOT);
    this.ep.postSend(1000 + slot, [{ mr: this.sendMr, offset: slot * SLOT, length: bytes.length }], opts);
  }

  /** The n-th message our side sent (0-based), awaited. */
  async message(n: number, ms = 5000): Promise<Uint8Array> {
    await this.until(() => this.received.length > n, ms, `message #${n}`);
    return this.received[n]!;
  }

  /** Resolves when the transport ended (peer disconnect, reset or Terminate). */
  async end(ms = 5000): Promise<void> {
    await this.until(() => this.ended, ms, 'the end of the connection');
  }

  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 25); });
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  destroy(): void {
    this.ep.destroy();
  }
}

export const request = (o: Partial<Parameters<typeof encodeNegotiateRequest>[0]> = {}): Uint8Array => encodeNegotiateRequest({
  minVersion: 0x100, maxVersion: 0x100, creditsRequested: 255, preferredSendSize: 1364, maxReceiveSize: 8192,
  maxFragmentedSize: 1048576, ...o,
});

export const response = (o: Partial<Parameters<typeof encodeNegotiateResponse>[0]> = {}): Uint8Array => encodeNegotiateResponse({
  minVersion: 0x100, maxVersion: 0x100, negotiatedVersion: 0x100, creditsRequested: 255, creditsGranted: 16, status: 0,
  maxReadWriteSize: 8388608, preferredSendSize: 1364, maxReceiveSize: 8192, maxFragmentedSize: 1048576, ...o,
});

export const dataTransfer = encodeDataTransfer;

/** What AsyncLocalStorage reads in each side's events when the server was made and listened in a
 * context 'server' and the client connected in 'client' (sends and close from a third context):
 * each event should read its own side's. */
export async function asyncContextsSeen(host: string, opts: SmbDirectOptions & { provider?: ProviderChoice } = {}): Promise<Record<string, string | undefined>> {
  const als = new AsyncLocalStorage<string>();
  const seen: Record<string, string | undefined> = {};
  const server = als.run('server', () => createServer(opts, (conn) => {
    seen['connection'] = als.getStore();
    conn.on('message', (m: Uint8Array) => { seen['server message'] = als.getStore(); void conn.send(m); });
    conn.on('close', () => { seen['server close'] = als.getStore(); });
  }));
  const { port } = await als.run('server', () => server.listen({ host, port: 0 }));
  const client = await als.run('client', () => connect({ ...opts, host, port }));
  const echoed = new Promise<void>((resolve) => client.once('message', () => { seen['client message'] = als.getStore(); resolve(); }));
  const clientClosed = new Promise<void>((resolve) => client.once('close', () => { seen['client close'] = als.getStore(); resolve(); }));
  await als.run('elsewhere', () => client.send(new Uint8Array(100).fill(7)));
  await echoed;
  await als.run('elsewhere', () => client.close());
  await clientClosed;
  for (let i = 0; i < 100 && seen['server close'] === undefined; i++) await new Promise((r) => setTimeout(r, 20));
  await server.close();
  return seen;
}

export const EXPECTED_CONTEXTS = {
  'connection': 'server', 'server message': 'server', 'client message': 'client', 'client close': 'client', 'server close': 'server',
};
