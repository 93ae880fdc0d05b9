// Reused transfer buffers for READ/WRITE by RDMA: whole ArrayBuffers (a verbs registration covers
// whole ArrayBuffers only), powers of two from 64 KiB, a bounded amount kept idle.
/**
 * Transfer buffers of a connection's RDMA READs and WRITEs (the server's and the client's), reused
 * so that their memory registrations are too (the transport keeps a registration per ArrayBuffer: a fresh buffer per
 * I/O costs a registration and a deregistration each time, the larger part of a 1 MiB I/O on
 * soft-RoCE). Sizes are powers of two from 64 KiB; at most IO_POOL_IDLE_BYTES are kept idle.
 */
export class IoBuffers {
  readonly #idle = new Map<number, Uint8Array[]>();
  #idleBytes = 0;

  take(length: number): Uint8Array {
    const size = Math.max(IO_POOL_MIN, 2 ** Math.ceil(Math.log2(length)));
    const b = this.#idle.get(size)?.pop();
    if (b) this.#idleBytes -= size;
    return (b ?? new Uint8Array(size)).subarray(0, length);
  }

  give(view: Uint8Array): void {
    const b = new Uint8Array(view.buffer, 0, view.buffer.byteLength);
    if (this.#idleBytes + b.length > IO_POOL_IDLE_BYTES) return;
    const list = this.#idle.get(b.length) ?? [];
    list.push(b);
    this.#idle.set(b.length, list);
    this.#idleBytes += b.length;
  }
}
const IO_POOL_MIN = 64 * 1024;
const IO_POOL_IDLE_BYTES = 32 * 1024 * 1024;
