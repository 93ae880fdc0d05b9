// The verbs provider's options, as settings checked once, and the check of queue sizes and read
// depths against a device's attributes.
import type { CompletionPoolOptions } from '../../../completion/pool.js';
import type * as native from '../../../native/index.js';
import type { DeviceAttributes } from '../../../native/index.js';
import { RdmaError } from '../errors.js';

export interface VerbsOptions {
  /** Send / receive queue depths (default 128 / 128), checked against max_qp_wr. */
  maxSendWr?: number;
  maxRecvWr?: number;
  /** SGEs per send / receive work request (default 4 / 1), checked against max_sge. */
  maxSendSge?: number;
  maxRecvSge?: number;
  maxInlineData?: number;
  /** Outbound RDMA Reads in flight (ORD, default 16; checked against max_qp_init_rd_atom) and
   * inbound ones served (IRD, default 16; checked against max_qp_rd_atom). */
  initiatorDepth?: number;
  responderResources?: number;
  /** The completion pool of each device (CQ count, entries, placement). */
  completion?: CompletionPoolOptions;
  /** Placement key of the next connections (with a hash placement), e.g. a client id. */
  placementKey?: (peer: native.SocketAddress | undefined) => number | undefined;
  /** Graceful disconnect: outstanding work, the DISCONNECTED event and the flush, each (default 10 s). */
  disconnectTimeoutMs?: number;
  /** Address / route resolution and connection establishment (default 5 s / 20 s). */
  resolveTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** RoCE/IB: the RNR NAK delay this side asks a sender to wait when no receive is posted (IB
   * code, default 12 = 0.64 ms; the CM's own is 655 ms). */
  minRnrTimer?: number;
  /** Send-queue slots reserved for memory-window binds (default 0: none). With some, and a
   * device with type-2 windows, `registerMemory(buffer, remote access)` gives a window bound in a
   * kept registration of the whole ArrayBuffer instead of a registration per call: a per-I/O key
   * the peer can invalidate remotely. maxSendWr must include these slots. */
  windowSlots?: number;
}

export interface Settings {
  maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number; maxInlineData: number;
  initiatorDepth: number; responderResources: number; disconnectTimeoutMs: number; resolveTimeoutMs: number;
  connectTimeoutMs: number; minRnrTimer: number; windowSlots: number;
}

export function settingsOf(o: VerbsOptions): Settings {
  const s: Settings = {
    maxSendWr: o.maxSendWr ?? 128, maxRecvWr: o.maxRecvWr ?? 128, maxSendSge: o.maxSendSge ?? 4, maxRecvSge: o.maxRecvSge ?? 1,
    maxInlineData: o.maxInlineData ?? 0, initiatorDepth: o.initiatorDepth ?? 16, responderResources: o.responderResources ?? 16,
    disconnectTimeoutMs: o.disconnectTimeoutMs ?? 10_000, resolveTimeoutMs: o.resolveTimeoutMs ?? 5000,
    connectTimeoutMs: o.connectTimeoutMs ?? 20_000, minRnrTimer: o.minRnrTimer ?? 12, windowSlots: o.windowSlots ?? 0,
  };
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 0) throw new RdmaError('ERR_OUT_OF_RANGE', `${k} must be a non-negative integer, got ${v}`);
  }
  if (s.maxSendWr < 1 || s.maxRecvWr < 1) throw new RdmaError('ERR_OUT_OF_RANGE', 'maxSendWr and maxRecvWr must be at least 1');
  if (s.initiatorDepth > 255 || s.responderResources > 255) throw new RdmaError('ERR_OUT_OF_RANGE', 'initiatorDepth and responderResources must be <= 255');
  return s;
}

/** Checks queue sizes and read depths against the device; the error names the limit. */
export function checkDeviceLimits(a: DeviceAttributes, s: Pick<Settings, 'maxSendWr' | 'maxRecvWr' | 'maxSendSge' | 'maxRecvSge' | 'initiatorDepth' | 'responderResources'>): void {
  const check = (want: number, max: number, what: string, limit: string) => {
    if (want > max) throw new RdmaError('ERR_DEVICE_LIMIT', `${what} ${want} exceeds the device's ${limit} (${max}) on ${a.name}`);
  };
  check(s.maxSendWr, a.maxQpWr, 'maxSendWr', 'max_qp_wr');
  check(s.maxRecvWr, a.maxQpWr, 'maxRecvWr', 'max_qp_wr');
  check(s.maxSendSge, a.maxSge, 'maxSendSge', 'max_sge');
  check(s.maxRecvSge, a.maxSge, 'maxRecvSge', 'max_sge');
  check(s.initiatorDepth, a.maxQpInitRdAtom, 'initiatorDepth', 'max_qp_init_rd_atom');
  check(s.responderResources, a.maxQpRdAtom, 'responderResources', 'max_qp_rd_atom');
}
