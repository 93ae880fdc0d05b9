// What both providers' endpoints share: the end of a connection as the contract states it (the
// first error latched and kept, then 'error' or 'disconnected' once, then 'close', then whoever
// waits for the close), the async context completions run in, and the checks every post makes
// before a provider looks at it. The providers differ below this line only: how work reaches the
// peer (a TCP socket or a queue pair) and how it completes.
import { AsyncResource } from 'node:async_hooks';
import { EventEmitter } from 'node:events';

import { RdmaError } from './errors.js';
import type { Completion } from './types.js';

/** Why a post was refused because a work queue is full (ERR_QUEUE_FULL). */
export function queueFullError(queue: 'send' | 'receive', capacity: number): RdmaError {
  return new RdmaError('ERR_QUEUE_FULL', `${queue} queue full (${capacity})`);
}

/** An SGE naming a region this endpoint did not register (ERR_INVALID_ARG_TYPE). */
export function foreignRegionError(): RdmaError {
  return new RdmaError('ERR_INVALID_ARG_TYPE', 'sge.mr is not a memory region of this endpoint');
}

/** Checks that [offset, offset + length) are whole numbers inside a region of `size` bytes. */
export function checkSgeRange(offset: number, length: number, size: number): void {
  if (!(offset >= 0 && length >= 0 && offset + length <= size) || !Number.isInteger(offset) || !Number.isInteger(length)) {
    throw new RdmaError('ERR_OUT_OF_RANGE', `sge [${offset}, +${length}) is outside the memory region (${size} bytes)`);
  }
}

export abstract class EndpointBase extends EventEmitter {
  /** The provider's state name ('RTS' is the one state work may be posted in). */
  abstract state: string;

  /** Where completions go (RdmaEndpoint.onCompletions). */
  protected completionHandler: (batch: Iterable<Completion>) => void = () => {};

  #firstError?: Error;
  /** The end is reported (endEvents ran): nothing reports it again. */
  #ending = false;
  /** 'close' was emitted. */
  #closed = false;
  #closeWaiters: Array<() => void> = [];
  #scope?: AsyncResource;

  constructor(private readonly resourceName: string) {
    super();
  }

  onCompletions(handler: (batch: Iterable<Completion>) => void): void {
    this.completionHandler = handler;
    // completions, and what they end (errors, close), run in the caller's async context, as a
    // net.Socket's events run in the one it was made in: a socket callback or the addon calling in
    // from libuv has none of its own
    this.#scope = new AsyncResource(this.resourceName);
  }

  /** Runs `fn` (with this endpoint as `this`) in the async context of onCompletions()' caller. */
  protected inScope(fn: () => void): void {
    if (this.#scope) this.#scope.runInAsyncScope(fn, this);
    else fn.call(this);
  }

  /** Work may be posted in RTS only (ERR_INVALID_STATE: the connection is not up, or going down). */
  protected checkPost(): void {
    if (this.state !== 'RTS') throw new RdmaError('ERR_INVALID_STATE', `cannot post work in state ${this.state}`);
  }

  /**
   * Reports the end, once, after the completions of this tick: 'error' (only when someone listens:
   * network trouble never crashes the process) or 'disconnected', then 'close', then close waiters.
   * `quiet` ends with 'close' alone (a connect or accept that failed: its caller has the error).
   */
  protected endEvents(err: Error | undefined, quiet: boolean): void {
    if (this.#ending) return;
    this.#ending = true;
    if (err && !this.#firstError) this.#firstError = err;
    queueMicrotask(() => this.inScope(() => {
      if (!quiet) {
        if (err) { if (this.listenerCount('error') > 0) this.emit('error', err); } else this.emit('disconnected');
      }
      this.#closed = true;
      this.emit('close');
      for (const w of this.#closeWaiters.splice(0)) w();
    }));
  }

  /** Resolves once 'close' has been emitted. */
  protected waitClosed(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#closeWaiters.push(resolve));
  }

  /** The first error, if the endpoint ended with one. */
  get error(): Error | undefined {
    return this.#firstError;
  }
}
