// smbdirect devices: what ibv_devinfo shows that matters here (ports, state, link layer, GIDs,
// comp vectors) and which provider `connect` would use, or why there is no RDMA.
import * as native from '../../native/index.js';
import { verbsCandidate } from '../providers/default.js';
import { EXIT, parse } from './args.js';

export const DEVICES_HELP = `Usage: smbdirect devices [--host <address>] [--json]

Lists the RDMA devices (ports, state, link layer, GIDs, comp vectors) and the provider
\`smbdirect connect\`/\`serve\` would use. On a machine without RDMA it says why and that the
software iWARP provider (RDMA over TCP) serves instead.

Options:
  --host <address>  the local address connections would use (default: any active port)
  --json            machine-readable output
  -h, --help        this help

Exit codes: 0 listed (with or without RDMA devices), 2 usage error.`;

interface PortInfo {
  port: number; state: string; linkLayer: string; kind: string; activeMtu: number;
  gids: Array<{ index: number; gid: string; type: string }>;
}
interface DeviceInfo { name: string; transport: string; nodeType: string; fwVer?: string; compVectors?: number; ports: PortInfo[]; error?: string }
export interface DevicesReport {
  addon: boolean;
  devices: DeviceInfo[];
  reason?: string;
  provider: 'verbs' | 'iwarp-tcp';
  providerReason: string;
}

/** Link layer as people name it: InfiniBand, RoCE (Ethernet), iWARP. */
function kindOf(transport: string, linkLayer: string): string {
  if (transport === 'iwarp') return 'iWARP';
  return linkLayer === 'infiniband' ? 'InfiniBand' : linkLayer === 'ethernet' ? 'RoCE (Ethernet)' : linkLayer;
}

export function collectDevices(host?: string): DevicesReport {
  const st = native.status();
  const devices: DeviceInfo[] = [];
  for (const d of st.devices) {
    const info: DeviceInfo = { name: d.name, transport: d.transport, nodeType: d.nodeType, ports: [] };
    try {
      const dev = native.openDevice(d.name);
      const a = dev.query();
      info.fwVer = a.fwVer;
      info.compVectors = a.numCompVectors;
      for (let p = 1; p <= a.physPortCnt; p++) {
        const pa = dev.queryPort(p);
        const gids: PortInfo['gids'] = [];
        for (let i = 0; i < Math.min(pa.gidTableLength, 256); i++) {
          try {
            const g = dev.queryGid(p, i);
            if (!/^[0:]*$/.test(g.gid)) gids.push({ index: g.index, gid: g.gid, type: d.transport === 'iwarp' ? 'iWARP' : g.type });
          } catch { /* an empty slot */ }
        }
        info.ports.push({ port: p, state: pa.state, linkLayer: pa.linkLayer, kind: kindOf(d.transport, pa.linkLayer), activeMtu: pa.activeMtu, gids });
      }
    } catch (err) {
      info.error = (err as Error).message;
    }
    devices.push(info);
  }
  const c = verbsCandidate(host);
  return {
    addon: st.addon, devices, reason: st.reason,
    provider: c.device ? 'verbs' : 'iwarp-tcp',
    providerReason: c.device ? `verbs on ${c.reason}` : `iwarp-tcp (software iWARP over TCP): ${c.reason}`,
  };
}

export function renderDevices(r: DevicesReport): string {
  const out: string[] = [];
  if (!r.devices.length) {
    out.push(`No RDMA devices: ${r.reason ?? 'none listed'}.`);
    if (!r.addon) out.push('(The native addon is the stub: rdma-core was not found when it was built.)');
  }
  for (const d of r.devices) {
    out.push(`${d.name}: ${d.transport === 'iwarp' ? 'iWARP RNIC' : 'InfiniBand/RoCE HCA'}${d.fwVer ? `, firmware ${d.fwVer}` : ''}${d.compVectors !== undefined ? `, ${d.compVectors} comp vector(s)` : ''}`);
    if (d.error) out.push(`  (cannot open: ${d.error})`);
    for (const p of d.ports) {
      out.push(`  port ${p.port}: ${p.state}, ${p.kind}, MTU ${p.activeMtu}`);
      for (const g of p.gids) out.push(`    GID[${g.index}] ${g.gid} (${g.type})`);
    }
  }
  out.push(`Provider for connections: ${r.providerReason}.`);
  return out.join('\n');
}

export function devicesCommand(argv: string[]): number {
  const o = parse(argv, { host: { type: 'string' }, json: { type: 'boolean' } });
  if (o.help) { console.log(DEVICES_HELP); return EXIT.OK; }
  const report = collectDevices(o.host as string | undefined);
  console.log(o.json ? JSON.stringify(report, null, 2) : renderDevices(report));
  return EXIT.OK;
}
