// defaultProvider(): `verbs` where the native addon loaded and an RDMA device has an active port
// (serving the target address, when one is given), else the software `iwarp-tcp` provider. The
// choice and its reason are visible: `provider.name`, `provider.reason` and a debug log line
// (NODE_DEBUG=smbdirect).
import { debuglog } from 'node:util';

import * as native from '../../native/index.js';
import { type IwarpOptions, createIwarpProvider } from './iwarp/provider.js';
import type { RdmaProvider } from './types.js';
import { type VerbsOptions, createVerbsProvider } from './verbs/provider.js';

const debug = debuglog('smbdirect');

export interface DefaultProviderOptions {
  /** The local address connections will use or listen on: a device must serve it (its netdev
   * has the address; for RoCE a GID of it exists). Without it, any active port will do. */
  host?: string;
  verbs?: VerbsOptions;
  iwarp?: IwarpOptions;
}

export type ChosenProvider = RdmaProvider & { readonly reason: string };

/** Which device (if any) the verbs provider would use, and why not otherwise. */
export function verbsCandidate(host?: string): { device?: string; reason: string } {
  const st = native.status();
  if (!st.addon) return { reason: `native addon unavailable (${st.reason ?? 'not built'})` };
  if (!st.devices.length) return { reason: `no RDMA device (${st.reason ?? 'none listed'})` };
  const why: string[] = [];
  for (const d of st.devices) {
    try {
      const dev = native.openDevice(d.name);
      const ports = dev.query().physPortCnt;
      for (let p = 1; p <= ports; p++) {
        const pa = dev.queryPort(p);
        if (pa.state !== 'active') { why.push(`${d.name} port ${p} ${pa.state}`); continue; }
        if (host && !servesAddress(dev, p, pa.gidTableLength, d.transport, host)) { why.push(`${d.name} port ${p} does not serve ${host}`); continue; }
        return { device: d.name, reason: `${d.name} port ${p} is active${host ? ` and serves ${host}` : ''}` };
      }
    } catch (err) {
      why.push(`${d.name}: ${(err as Error).message}`);
    }
  }
  return { reason: `no active RDMA port${host ? ` for ${host}` : ''} (${why.join('; ')})` };
}

/** RoCE/IB: a GID of the address (IPv4-mapped or IPv6) is in the port's table. iWARP: the
 * device's netdev address is not visible through verbs, so ask rdma_cm: binding a cm_id to the
 * address lands on the device that serves it (and fails, ENODEV, where none does: 127.0.0.1 on
 * a machine with siw on another netdev, say). */
function servesAddress(dev: native.Device, port: number, gids: number, transport: string, host: string): boolean {
  if (transport === 'iwarp') return cmDeviceFor(host) === dev.name;
  const want = host.includes(':') ? host.toLowerCase() : `::ffff:${host}`;
  for (let i = 0; i < Math.min(gids, 256); i++) {
    try {
      if (dev.queryGid(port, i).gid === want) return true;
    } catch { /* empty slot */ }
  }
  return false;
}

/** The device rdma_cm binds `host` to, if any (unspecified addresses bind to none). */
function cmDeviceFor(host: string): string | undefined {
  let channel: native.EventChannel | undefined;
  try {
    channel = native.createEventChannel(() => {});
    const id = channel.createId();
    id.bind(host, 0);
    return id.deviceName;
  } catch {
    return undefined;
  } finally {
    channel?.close();
  }
}

/** The provider for this machine: `verbs` on an active RDMA port, else `iwarp-tcp`. */
export function defaultProvider(options: DefaultProviderOptions = {}): ChosenProvider {
  const c = verbsCandidate(options.host);
  if (c.device) {
    debug('defaultProvider: verbs (%s)', c.reason);
    return Object.assign(createVerbsProvider(options.verbs), { reason: c.reason });
  }
  const reason = `iwarp-tcp: ${c.reason}`;
  debug('defaultProvider: %s', reason);
  return Object.assign(createIwarpProvider(options.iwarp), { reason });
}
