// The oracle shared by every fuzz target (fuzz/README.md, "The oracle"):
// - a decoder may only throw SmbDirectProtocolError with a code listed in ERROR_CODES;
// - an endpoint or connection never lets an exception escape: not from the call that feeds it,
//   not from a microtask, timer or event listener later (uncaughtException / unhandledRejection
//   are caught here and fail the input that caused them);
// - when it ends, it ends with an Error whose `code` is a string starting with ERR_;
// - everything an input starts settles within the input (timers cleared, endpoint destroyed).
// A violation throws FuzzFinding, which Jazzer.js reports as a crash and saves the input for.
import { ERROR_CODES, SmbDirectProtocolError } from '../../framing/errors.js';

export class FuzzFinding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuzzFinding';
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name} ${(err as { code?: unknown }).code ?? '(no code)'}: ${err.message}\n${err.stack ?? ''}`;
  return `non-Error thrown: ${String(err)}`;
}

/** Runs a decoder: returns its value, or undefined when it refused the input with a documented code. */
export function decode<T>(what: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SmbDirectProtocolError && typeof err.code === 'string' && Object.hasOwn(ERROR_CODES, err.code)) return undefined;
    throw new FuzzFinding(`${what} threw something other than a documented SmbDirectProtocolError: ${describe(err)}`, { cause: err });
  }
}

/** A consistency check on what a decoder accepted. */
export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new FuzzFinding(`invariant broken: ${message}`);
}

/** An error an endpoint, a connection or a promise of theirs ended with must carry an ERR_ code. */
export function checkCoded(what: string, err: unknown): void {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (!(err instanceof Error) || typeof code !== 'string' || !code.startsWith('ERR_')) {
    throw new FuzzFinding(`${what} ended with an error without an ERR_ code: ${describe(err)}`, { cause: err });
  }
}

/** `view` lies inside `outer` (a view, not a copy, and not past its end). */
export function within(view: Uint8Array, outer: Uint8Array): boolean {
  return view.buffer === outer.buffer && view.byteOffset >= outer.byteOffset &&
    view.byteOffset + view.byteLength <= outer.byteOffset + outer.byteLength;
}

// ---- escapes: exceptions thrown where nobody catches them ------------------------------------

const escaped: unknown[] = [];
let installed = false;

/** Catches uncaught exceptions and unhandled rejections for the whole process (once). */
export function installEscapeHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (err) => { escaped.push(err); });
  process.on('unhandledRejection', (reason) => { escaped.push(reason); });
}

/** Throws a finding if anything escaped since the last call. */
export function checkNoEscapes(what: string): void {
  if (escaped.length === 0) return;
  const first = escaped[0];
  escaped.length = 0;
  throw new FuzzFinding(`an exception escaped ${what} (uncaught exception or unhandled rejection): ${describe(first)}`, { cause: first });
}

/** Lets microtasks, nextTicks and immediates run: `rounds` turns of the event loop's check phase. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Throws a finding if `p` does not settle within `rounds` event loop turns. */
export async function settled<T>(what: string, p: Promise<T>, rounds = 20): Promise<void> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  for (let i = 0; i < rounds && !done; i++) await settle(1);
  if (!done) throw new FuzzFinding(`${what} did not settle after the input was processed and the endpoint destroyed`);
}

// ---- timers: every setTimeout/setInterval an input starts must be cleared or have fired by its end

const live = new Set<unknown>();
let tracking = false;

/** Wraps the global setTimeout/setInterval/clear* (once) so the timers the code starts are known. */
export function trackTimers(): void {
  if (tracking) return;
  tracking = true;
  const g = globalThis as unknown as Record<string, (...args: unknown[]) => unknown>;
  const { setTimeout: st, setInterval: si, clearTimeout: ct, clearInterval: ci } = g;
  g.setTimeout = (fn: unknown, ...rest: unknown[]) => {
    const t: unknown = st!((...args: unknown[]) => { live.delete(t); (fn as (...a: unknown[]) => void)(...args); }, ...rest);
    live.add(t);
    return t;
  };
  g.setInterval = (...args: unknown[]) => {
    const t = si!(...args);
    live.add(t);
    return t;
  };
  const clear = (orig: (...a: unknown[]) => unknown) => (t: unknown) => {
    if (t !== undefined && t !== null) {
      live.delete(t);
      // a timer may be cleared by its numeric id
      if (typeof t === 'number') for (const x of live) if (Number(x) === t) live.delete(x);
    }
    return orig(t);
  };
  g.clearTimeout = clear(ct!);
  g.clearInterval = clear(ci!);
}

/** Forgets the timers seen so far (call at the start of an input). */
export function resetTimers(): void {
  live.clear();
}

/** Timers started since resetTimers() that are neither cleared nor fired. */
export function pendingTimers(): number {
  return live.size;
}

/** With FUZZ_DEBUG=1 in the environment: what an input did, one line on stderr. */
export const DEBUG = !!process.env.FUZZ_DEBUG;
export function debug(what: string, o: Record<string, unknown>): void {
  if (DEBUG) console.error(`fuzz-debug ${what}: ${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
}
