// NODE_DEBUG sections (docs/architecture.md "Debug output"): `smbdirect` for the connection,
// `smbdirect_iwarp` for the software iWARP endpoint; each on alone shows its own lines only, and
// `smbdirect*` shows both. A real loopback connection in a child process (NODE_DEBUG is read at
// startup), one message each way, then a clean close.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

const SCRIPT = `
import { once } from 'node:events';
import { connect, createServer } from './src/index.js';
const server = createServer({ provider: 'iwarp-tcp' });
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
const accepted = once(server, 'connection');
const client = await connect({ host: '127.0.0.1', port, provider: 'iwarp-tcp' });
const [conn] = await accepted;
conn.on('message', (m) => conn.send(m));
const echo = once(client, 'message');
await client.send(Buffer.from('ping'));
await echo;
await client.close();
await server.close();
`;

function run(nodeDebug: string): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: root, env: { ...process.env, NODE_DEBUG: nodeDebug }, encoding: 'utf8', timeout: 30_000,
  });
  assert.equal(r.status, 0, `child failed (${r.signal ?? r.status}): ${r.stderr}`);
  return r.stderr;
}

test('NODE_DEBUG=smbdirect shows the connection\'s negotiation and end, not the iWARP endpoint\'s lines', () => {
  const out = run('smbdirect');
  assert.match(out, /^SMBDIRECT \d+: smbd: .*negotiated/m);
  assert.match(out, /^SMBDIRECT \d+: smbd: .*closed in state/m);
  assert.doesNotMatch(out, /SMBDIRECT_IWARP/);
});

test('NODE_DEBUG=smbdirect_iwarp shows the endpoint entering RTS and ending, nothing of the connection', () => {
  const out = run('smbdirect_iwarp');
  assert.match(out, /^SMBDIRECT_IWARP \d+: iWARP 127\.0\.0\.1:\d+: RTS \(CRC on, ORD \d+, IRD \d+/m);
  assert.match(out, /^SMBDIRECT_IWARP \d+: iWARP 127\.0\.0\.1:\d+: (RTS|CLOSING) -> CLOSED/m);
  assert.doesNotMatch(out, /^SMBDIRECT \d+:/m);
});

test('NODE_DEBUG=smbdirect* shows every section', () => {
  const out = run('smbdirect*');
  assert.match(out, /^SMBDIRECT \d+: /m);
  assert.match(out, /^SMBDIRECT_IWARP \d+: /m);
});
