// An in-memory stand-in for the net.Socket an IwarpEndpoint reads and writes: a real loopback
// socket per fuzz input costs milliseconds, this costs microseconds. It implements the members the
// endpoint and upgradeToRdma() use, with net.Socket's observable behaviour where it matters:
// - each chunk fed is one read: one 'data' event in a macrotask of its own (setImmediate), so the
//   microtasks of one read (completion batches, reposted receives) run before the next, as on a
//   real socket; only while flowing (pause()/resume(); resume() starts the flow on the next tick);
//   bytes fed while paused are held in order, and the peer's FIN ('end') comes after them;
// - write() after end() fails with ERR_STREAM_WRITE_AFTER_END (callback, then the socket is
//   destroyed with it: 'error', 'close'), after destroy() with ERR_STREAM_DESTROYED (callback only);
// - the peer's FIN ends our side too (allowHalfOpen false, net's default), then the socket closes;
// - writableLength counts bytes written and not yet taken by the "kernel"; they are taken one
//   setImmediate later (never while corked), and 'drain' follows when a write had returned false;
// - destroy()/resetAndDestroy() emit 'close' (after 'error' when given one) on the next tick.
// Everything written is kept (up to a cap) so a target can check what the endpoint sent.
import { EventEmitter } from 'node:events';

const HIGH_WATER_MARK = 16 * 1024;

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class MockSocket extends EventEmitter {
  destroyed = false;
  writable = true;
  readable = true;
  writableLength = 0;
  /** Everything written, in order, while the total stays under `keepLimit` bytes. */
  readonly written: Uint8Array[] = [];
  writtenBytes = 0;
  keptAll = true;
  ended = false;

  private flowing = false;
  private explicitlyPaused = false;
  private readonly inbox: Array<Uint8Array | null> = []; // null: the peer's FIN
  private corks = 0;
  private needDrain = false;
  private flushScheduled = false;
  private flowScheduled = false;
  private readScheduled = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly keepLimit = 4 * 1024 * 1024) {
    super();
    // like a stream: attaching a 'data' listener starts the flow unless paused explicitly
    this.on('newListener', (event: string) => {
      if (event === 'data' && !this.explicitlyPaused) this.startFlow();
    });
  }

  // ---- the peer's side: what the fuzz input says arrives on the wire ----------------------

  /** Bytes arrive from the peer. */
  feed(chunk: Uint8Array): void {
    if (this.destroyed || !this.readable) return;
    this.inbox.push(chunk);
    this.pump();
  }

  /** The peer half-closes (TCP FIN). */
  feedEnd(): void {
    if (this.destroyed || !this.readable) return;
    this.readable = false;
    this.inbox.push(null);
    this.pump();
  }

  // ---- net.Socket surface ------------------------------------------------------------------

  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  pause(): this {
    this.explicitlyPaused = true;
    this.flowing = false;
    this.wakeIdle();
    return this;
  }

  resume(): this {
    this.explicitlyPaused = false;
    this.startFlow();
    return this;
  }

  isPaused(): boolean {
    return !this.flowing;
  }

  read(): null {
    return null;
  }

  cork(): void {
    this.corks++;
  }

  uncork(): void {
    if (this.corks > 0) this.corks--;
    if (this.corks === 0) this.scheduleFlush();
  }

  write(chunk: Uint8Array | string, encodingOrCb?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
    const callback = typeof encodingOrCb === 'function' ? encodingOrCb : cb;
    if (this.destroyed) {
      const err = codedError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed');
      if (callback) process.nextTick(callback, err);
      return false;
    }
    if (!this.writable) {
      // Writable.write -> errorOrDestroy: a net.Socket (autoDestroy) is destroyed with the error
      const err = codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
      if (callback) process.nextTick(callback, err);
      this.destroy(err);
      return false;
    }
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.writableLength += bytes.length;
    this.writtenBytes += bytes.length;
    if (this.keptAll && this.writtenBytes <= this.keepLimit) this.written.push(Uint8Array.from(bytes));
    else this.keptAll = false;
    if (callback) this.afterFlush(callback);
    this.scheduleFlush();
    const ok = this.writableLength < HIGH_WATER_MARK;
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(cb?: () => void): this {
    if (this.destroyed) return this;
    if (this.writable) {
      this.writable = false;
      this.ended = true;
      process.nextTick(() => this.emit('finish'));
    }
    if (cb) process.nextTick(cb);
    // both directions done: the socket closes
    if (!this.readable && this.inbox.length === 0) process.nextTick(() => this.destroy());
    return this;
  }

  destroySoon(): void {
    if (this.writable) this.end();
    process.nextTick(() => this.destroy());
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writable = false;
    this.readable = false;
    this.inbox.length = 0;
    this.writableLength = 0;
    this.wakeIdle();
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close', !!err);
    });
    return this;
  }

  resetAndDestroy(): this {
    return this.destroy();
  }

  // ---- internals ---------------------------------------------------------------------------

  private readonly flushCallbacks: Array<(err?: Error | null) => void> = [];

  private afterFlush(cb: (err?: Error | null) => void): void {
    this.flushCallbacks.push(cb);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.corks > 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.destroyed) {
        const err = codedError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed');
        for (const cb of this.flushCallbacks.splice(0)) cb(err);
        return;
      }
      if (this.corks > 0) return;
      this.writableLength = 0;
      for (const cb of this.flushCallbacks.splice(0)) cb(null);
      if (this.needDrain) {
        this.needDrain = false;
        this.emit('drain');
      }
    });
  }

  private startFlow(): void {
    if (this.flowing || this.flowScheduled) return;
    this.flowScheduled = true;
    process.nextTick(() => {
      this.flowScheduled = false;
      if (this.explicitlyPaused || this.destroyed) return;
      this.flowing = true;
      this.pump();
    });
  }

  /** Resolves once every chunk fed so far has been read (or can never be: paused, destroyed). */
  whenRead(): Promise<void> {
    if (!this.inbox.length || !this.flowing || this.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    if (this.inbox.length && this.flowing && !this.destroyed) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private pump(): void {
    if (this.readScheduled) return;
    if (!this.flowing || this.destroyed || !this.inbox.length) { this.wakeIdle(); return; }
    this.readScheduled = true;
    setImmediate(() => {
      this.readScheduled = false;
      this.readOne();
      this.pump();
    });
  }

  private readOne(): void {
    if (this.flowing && !this.destroyed && this.inbox.length) {
      const chunk = this.inbox.shift()!;
      if (chunk === null) {
        this.emit('end');
        // allowHalfOpen is false (net's default for both sides): our side ends too, then closes
        process.nextTick(() => {
          if (this.writable) this.end();
          else this.destroy();
        });
      } else {
        this.emit('data', Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      }
    }
  }
}
