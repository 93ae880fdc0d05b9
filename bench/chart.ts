// npm run bench:chart: bench/results/*.json -> bench/results/chart.svg, the chart the README embeds.
// One bar per measured row: our figure as a percentage of the reference measured in the same run
// (the raw provider, perftest in the same VM boot, or raw TCP), higher is better (latencies are
// inverted: reference / ours). A tick marks the row's target where the issue set one. Rows whose
// results file is missing are left out; the chart says when each source was measured.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const dir = new URL('./results/', import.meta.url);
const read = <T>(name: string): T | undefined =>
  existsSync(new URL(name, dir)) ? (JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as T) : undefined;

interface Bar { label: string; pct: number; target?: number }
interface Group { title: string; when?: string; bars: Bar[] }
const groups: Group[] = [];

// smbdirect.json / smbdirect-<dev>.json (bench/smbdirect.ts)
interface SmbdRow { name: string; unit: string; ratio: number; target: string }
for (const [file, where] of [['smbdirect.json', 'host, iwarp-tcp'], ['smbdirect-rxe0.json', 'VM, rxe0'], ['smbdirect-siw0.json', 'VM, siw0']] as const) {
  const j = read<{ date: string; rows: SmbdRow[] }>(file);
  if (!j) continue;
  const bars = j.rows.filter((r) => !/p99/.test(r.name)).map((r): Bar => {
    const latency = r.unit === 'µs';
    const m = /(\d+) %/.exec(r.target) ?? /([\d.]+)x/.exec(r.target);
    const target = m ? (latency ? 100 / Number(m[1]) : Number(m[1])) : undefined;
    return { label: r.name.replace(' (RTT/2), median', ''), pct: latency ? 100 / r.ratio : 100 * r.ratio, target };
  });
  groups.push({ title: `SMB Direct vs the same provider driven raw (${where})`, when: j.date, bars });
}

// completion.json (bench/completion.ts): one connection, one CQ set, vs ib_send_bw -s 64
const comp = read<{ date: string; rows: Array<{ device: string; connections: number; cqSets: number; ratio?: number }> }>('completion.json');
// verbs.json (bench/verbs.ts): the raw addon vs perftest
const verbs = read<{ date: string; rows: Array<{ device: string; test: string; ratio: number; target: string }> }>('verbs.json');
if (comp || verbs) {
  const bars: Bar[] = [];
  for (const r of verbs?.rows ?? []) {
    if (!/1 MiB/.test(r.test)) continue;
    bars.push({ label: `${r.device}: addon ${r.test} vs perftest`, pct: 100 * r.ratio, target: r.target ? 100 * Number(/[\d.]+/.exec(r.target)![0]) : undefined });
  }
  for (const r of comp?.rows ?? []) {
    if (r.connections !== 1 || r.cqSets !== 1 || r.ratio === undefined) continue;
    bars.push({ label: `${r.device}: provider 64 B sends vs ib_send_bw`, pct: 100 * r.ratio, target: 70 });
  }
  groups.push({ title: 'verbs vs perftest in the same VM boot', when: comp?.date ?? verbs?.date, bars });
}

// iwarp.json (bench/iwarp.ts): software iWARP vs raw net.Socket ('data' events) on loopback
const iw = read<{ date: string; rows: Array<{ test: string; size: number; unit: string; ratioData?: number; ratio: number }> }>('iwarp.json');
if (iw) {
  const bars = iw.rows.filter((r) => r.size === 1048576 && !/FPDU/.test(r.test)).map((r): Bar => ({
    label: `1 MiB ${r.test}`, pct: 100 * (r.ratioData ?? r.ratio),
  }));
  for (const r of iw.rows) if (/latency \(one-way, median\)/.test(r.test)) bars.push({ label: `64 B ${r.test}`, pct: 100 / r.ratio, target: 100 / 1.5 });
  groups.push({ title: 'software iWARP vs raw TCP (host loopback)', when: iw.date, bars });
}

// ---- SVG ------------------------------------------------------------------------------------------
const W = 980, LABEL = 430, BAR = W - LABEL - 70, ROW = 20, HEAD = 26, MAX = 200;
const x = (pct: number) => LABEL + (Math.min(pct, MAX) / MAX) * BAR;
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const parts: string[] = [];
let y = 40;
for (const g of groups) {
  parts.push(`<text x="8" y="${y + 16}" class="h">${esc(g.title)}${g.when ? ` <tspan class="d">(${esc(g.when.slice(0, 10))})</tspan>` : ''}</text>`);
  y += HEAD;
  for (const b of g.bars) {
    const met = b.target === undefined ? undefined : b.pct >= b.target;
    const cls = met === undefined ? 'n' : met ? 'ok' : 'miss';
    parts.push(`<text x="${LABEL - 8}" y="${y + 14}" class="l">${esc(b.label)}</text>`);
    parts.push(`<rect x="${LABEL}" y="${y + 3}" width="${(x(b.pct) - LABEL).toFixed(1)}" height="${ROW - 6}" class="${cls}"/>`);
    parts.push(`<text x="${(x(b.pct) + 4).toFixed(1)}" y="${y + 14}" class="v">${b.pct.toFixed(0)} %${b.pct > MAX ? ' ▸' : ''}</text>`);
    if (b.target !== undefined) parts.push(`<line x1="${x(b.target).toFixed(1)}" x2="${x(b.target).toFixed(1)}" y1="${y + 1}" y2="${y + ROW - 1}" class="t"/>`);
    y += ROW;
  }
  y += 8;
}
const H = y + 30;
const grid = [0, 50, 100, 150, 200].map((p) =>
  `<line x1="${x(p)}" x2="${x(p)}" y1="34" y2="${H - 24}" class="${p === 100 ? 'g100' : 'g'}"/><text x="${x(p)}" y="${H - 10}" class="a">${p} %</text>`).join('');
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<style>.h{font-weight:bold;font-size:13px}.d{font-weight:normal;fill:#666}.l{text-anchor:end}.v{fill:#333}.a{text-anchor:middle;fill:#666}
.ok{fill:#2e8b57}.miss{fill:#d2691e}.n{fill:#7a8ca3}.t{stroke:#000;stroke-width:2}.g{stroke:#ddd}.g100{stroke:#999;stroke-dasharray:4 3}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="20" class="h">smbdirect: ours as % of the reference measured in the same run (higher is better; | = target; green met, orange missed, blue no target)</text>
${grid}
${parts.join('\n')}
</svg>
`;
writeFileSync(new URL('chart.svg', dir), svg);
console.log(`bench/results/chart.svg: ${groups.reduce((n, g) => n + g.bars.length, 0)} bars in ${groups.length} groups`);
