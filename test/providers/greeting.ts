// A responder that sends first (#23): the server posts a Send right after accept() resolves, as a
// protocol whose server greets would. The client gets its receives in place through
// ConnectOptions.prepare (or, to show the failure mode, only after connect() resolves), then answers
// the greeting. Shared by the host suite (iwarp-tcp on loopback) and the VM suite (verbs on rxe0 and
// siw0, the software provider against the kernel's siw).
import { once } from 'node:events';

import type { Completion, RdmaEndpoint, RdmaProvider } from '../../src/providers/index.js';
import { pattern } from '../support.js';

export interface GreetingOptions {
  server: RdmaProvider;
  client: RdmaProvider;
  host: string;
  /** Post the client's receive in prepare() (true) or after connect() resolves (false). */
  prepare: boolean;
  /** A prepare() that throws this instead. */
  prepareThrows?: Error;
  /** How long either side may take (default 8 s). */
  ms?: number;
}

export interface GreetingOutcome {
  /** The greeting as the client received it (undefined when it did not arrive). */
  greeting?: Uint8Array;
  /** The client's answer as the server received it. */
  answer?: Uint8Array;
  /** connect()'s rejection, if it rejected. */
  connectError?: Error & { code?: string };
  /** The endpoints' errors (`endpoint.error`, or their 'error' events). */
  clientError?: Error & { code?: string };
  /** Posting the client's receive after connect() resolved failed with this (prepare: false). */
  armError?: Error & { code?: string };
  serverError?: Error & { code?: string };
  /** The server endpoint ended ('close'). */
  serverClosed: boolean;
  /** The client endpoint's state once settled. */
  clientState?: string;
}

export const GREETING = pattern(300, 23);
export const ANSWER = pattern(200, 32);
const BUF = 4096;

/** Runs one greeting exchange and reports what happened; never hangs past `ms` per step. */
export async function greet(o: GreetingOptions): Promise<GreetingOutcome> {
  const ms = o.ms ?? 8000;
  const out: GreetingOutcome = { serverClosed: false };
  const listener = await o.server.listen({ host: o.host, port: 0 });
  let serverEp: RdmaEndpoint | undefined;
  const serverDone = new Promise<void>((resolve) => {
    listener.once('connection', (ep: RdmaEndpoint) => {
      serverEp = ep;
      ep.on('error', (err: Error) => { out.serverError ??= err; });
      ep.once('close', () => { out.serverClosed = true; resolve(); });
      const mr = ep.registerMemory(2 * BUF, { localWrite: true });
      mr.buffer.set(GREETING, BUF);
      ep.onCompletions((batch: Iterable<Completion>) => {
        for (const c of batch) {
          if (c.status !== 'success') continue;
          if (c.opcode === 'recv') { out.answer = mr.buffer.slice(0, c.byteLength); resolve(); }
        }
      });
      ep.postRecv(1, { mr, offset: 0, length: BUF }); // the responder's receives go before accept()
      ep.accept().then(() => {
        ep.postSend(2, [{ mr, offset: BUF, length: GREETING.length }]); // greets at once
      }, (err: Error) => { out.serverError ??= err; resolve(); });
    });
  });

  let clientEp: RdmaEndpoint | undefined;
  let clientMr: ReturnType<RdmaEndpoint['registerMemory']> | undefined;
  let gotGreeting!: () => void;
  const greeted = new Promise<void>((resolve) => { gotGreeting = resolve; });
  const arm = (ep: RdmaEndpoint): void => {
    clientEp = ep;
    const mr = ep.registerMemory(2 * BUF, { localWrite: true });
    clientMr = mr;
    ep.onCompletions((batch: Iterable<Completion>) => {
      for (const c of batch) {
        if (c.opcode === 'recv' && c.status === 'success') { out.greeting = mr.buffer.slice(0, c.byteLength); gotGreeting(); }
      }
    });
    ep.postRecv(1, { mr, offset: 0, length: BUF });
  };
  try {
    const ep = await o.client.connect({
      host: o.host, port: listener.port,
      prepare: o.prepare || o.prepareThrows ? (e: RdmaEndpoint) => {
        if (o.prepareThrows) throw o.prepareThrows;
        arm(e);
      } : undefined,
    });
    clientEp = ep;
    ep.on('error', (err: Error) => { out.clientError ??= err; gotGreeting(); });
    ep.once('close', () => gotGreeting());
    if (!o.prepare) {
      try {
        arm(ep);
      } catch (err) {
        out.armError = err as Error; // e.g. ERR_INVALID_STATE: the endpoint had already gone
      }
    }
    if (ep.error) out.clientError ??= ep.error;
    if (!out.armError && (ep as { state?: string }).state !== 'CLOSED') await Promise.race([greeted, new Promise((r) => setTimeout(r, ms))]);
    if (out.greeting && clientMr && (ep as { state?: string }).state === 'RTS') {
      clientMr.buffer.set(ANSWER, BUF);
      ep.postSend(2, [{ mr: clientMr, offset: BUF, length: ANSWER.length }]);
    }
  } catch (err) {
    out.connectError = err as Error;
  }
  await Promise.race([serverDone, new Promise((r) => setTimeout(r, ms))]);
  out.clientState = (clientEp as { state?: string } | undefined)?.state;
  if (clientEp?.error) out.clientError ??= clientEp.error;
  if (serverEp?.error) out.serverError ??= serverEp.error;
  // both ends go, whatever happened; then the listener
  const ends: Promise<unknown>[] = [];
  for (const ep of [clientEp, serverEp]) {
    if (!ep) continue;
    const state = (ep as { state?: string }).state;
    if (state !== 'CLOSED') ends.push(Promise.race([once(ep, 'close'), new Promise((r) => setTimeout(r, ms))]));
    ep.destroy();
  }
  await Promise.all(ends);
  await listener.close();
  return out;
}
