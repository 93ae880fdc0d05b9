// SMB Direct servers and clients on the verbs provider for the hardening files: a server that
// records its 'error' and 'connectionError' events, a client with its accepted side, and a round of
// work (messages both ways, a 1 MiB RDMA write) with content checks.
import assert from 'node:assert/strict';
import { once } from 'node:events';

import { type SmbDirectConnection, type SmbDirectOptions, type SmbDirectServer, connect, createServer } from '../../src/index.js';
import { Inbox } from '../smbdirect/helpers.js';
import { pattern, within } from './helpers.js';

export const MiB = 1 << 20;

export interface Served {
  server: SmbDirectServer;
  host: string;
  port: number;
  serverErrors: Error[];
  connectionErrors: Error[];
}

/** createServer({ provider: 'verbs' }) listening on host, port 0. */
export async function serve(host: string, opts: SmbDirectOptions = {}): Promise<Served> {
  const server = createServer({ ...opts, provider: 'verbs' });
  const serverErrors: Error[] = [];
  const connectionErrors: Error[] = [];
  server.on('error', (e: Error) => serverErrors.push(e));
  server.on('connectionError', (e: Error) => connectionErrors.push(e));
  const { port } = await server.listen({ host, port: 0 });
  return { server, host, port, serverErrors, connectionErrors };
}

/** A new client of `s` and the server's side of it. */
export async function client(s: Served, opts: SmbDirectOptions = {}, ms = 30_000): Promise<{ client: SmbDirectConnection; accepted: SmbDirectConnection }> {
  const acceptedP = once(s.server, 'connection') as Promise<[SmbDirectConnection]>;
  const c = await within(connect({ ...opts, host: s.host, port: s.port, provider: 'verbs' }), ms, 'connect()');
  const [accepted] = await within(acceptedP, ms, "the server's 'connection'");
  return { client: c, accepted };
}

/** Messages both ways and a 1 MiB RDMA write with content checks: the pair works. */
export async function exercise(c: SmbDirectConnection, a: SmbDirectConnection, seed: number): Promise<void> {
  const toServer = new Inbox(a);
  const toClient = new Inbox(c);
  await within(Promise.all([c.send(pattern(3000, seed)), a.send(pattern(5000, seed + 1))]), 30_000, 'sends');
  await toServer.count(1, 30_000);
  await toClient.count(1, 30_000);
  assert.ok(Buffer.from(toServer.messages[0]!).equals(pattern(3000, seed)));
  assert.ok(Buffer.from(toClient.messages[0]!).equals(pattern(5000, seed + 1)));
  const buf = new Uint8Array(MiB);
  const reg = c.registerBuffer(buf, 'write');
  await within(a.rdmaWrite(reg.descriptors, pattern(MiB, seed + 2)), 30_000, 'rdmaWrite 1 MiB');
  await within(a.send(new Uint8Array([1])), 30_000, 'the response'); // placed before the response arrives
  await toClient.count(2, 30_000);
  reg.release();
  assert.ok(Buffer.from(buf).equals(pattern(MiB, seed + 2)), 'the 1 MiB written');
}

/** An error's code, if any. */
export function code(e: unknown): string | undefined {
  return (e as { code?: string } | undefined)?.code;
}
