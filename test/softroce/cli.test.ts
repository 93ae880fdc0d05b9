// The `smbdirect` command on real RDMA: `devices` lists rxe0 (RoCE) and siw0 (iWARP) with their
// ports and GIDs and picks verbs for their addresses; `serve` + `bench --json` run every mode over
// the verbs provider on each device, as separate processes.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import { runCli, startServe } from '../support.js';
import { DEVICES, requireVm } from './helpers.js';

const run = (args: string[]) => runCli(args, { ms: 90_000 });

if (requireVm()) {
  it('devices: rxe0 as RoCE and siw0 as iWARP, active, with GIDs; verbs for their addresses', async () => {
    const r = await run(['devices']);
    assert.equal(r.code, 0, r.stderr);
    for (const d of DEVICES) {
      assert.match(r.stdout, new RegExp(`^${d.name}: ${d.kind === 'iWARP' ? 'iWARP RNIC' : 'InfiniBand/RoCE HCA'}.*comp vector`, 'm'));
    }
    assert.match(r.stdout, /port 1: active, RoCE \(Ethernet\)/);
    assert.match(r.stdout, /port 1: active, iWARP/);
    assert.match(r.stdout, new RegExp(`GID\\[\\d+\\] ::ffff:${DEVICES[0]!.ip.replace(/\./g, '\\.')} \\(RoCEv2\\)`));
    for (const d of DEVICES) {
      const j = JSON.parse((await run(['devices', '--host', d.ip, '--json'])).stdout) as { provider: string; providerReason: string };
      assert.equal(j.provider, 'verbs', `${d.ip}: ${j.providerReason}`);
    }
  });

  for (const dev of DEVICES) {
    describe(`${dev.name}: serve + bench on the verbs provider`, () => {
      let server: ChildProcess;
      let port = 0;
      let output: () => string;
      before(async () => {
        ({ child: server, port, output } = await startServe(['--host', dev.ip], 'verbs'));
      });
      after(async () => {
        server.kill('SIGINT');
        const [code] = (await once(server, 'exit')) as [number | null];
        assert.equal(code, 0, output());
      });

      for (const [mode, size] of [['send', '4k'], ['read', '256k'], ['write', '256k'], ['latency', '64']] as const) {
        it(`${dev.name}: bench --mode ${mode} --json`, async () => {
          const r = await run(['bench', '--host', dev.ip, '--port', String(port), '--provider', 'verbs', '--mode', mode, '--size', size, '--duration', '1500ms', '--json']);
          assert.equal(r.code, 0, `${r.stderr}\nserver: ${output()}`);
          const j = JSON.parse(r.stdout) as { provider: string; operations: number; bytes: number; latency: { count: number; p50Us: number }; error?: string };
          assert.equal(j.provider, 'verbs');
          assert.equal(j.error, undefined);
          assert.ok(j.operations > 0 && j.bytes > 0 && j.latency.count === j.operations && j.latency.p50Us > 0, JSON.stringify(j));
          console.log(`# ${dev.name} ${mode} ${size}: ${(j.bytes / 1e6).toFixed(1)} MB, ${j.operations} ops, p50 ${j.latency.p50Us.toFixed(0)} µs`);
        });
      }
    });
  }

  it(`serve --workers 2 on ${DEVICES[0]!.name}: connections are served on both worker threads`, async () => {
    const dev = DEVICES[0]!;
    const { child, port, output } = await startServe(['--host', dev.ip, '--workers', '2'], 'verbs');
    try {
      assert.match(output(), /\(verbs, 2 workers\)/);
      const r = await run(['bench', '--host', dev.ip, '--port', String(port), '--provider', 'verbs', '--mode', 'write', '--size', '64k', '--connections', '4', '--duration', '1500ms', '--json']);
      assert.equal(r.code, 0, `${r.stderr}\nserver: ${output()}`);
      const j = JSON.parse(r.stdout) as { operations: number; error?: string };
      assert.ok(j.operations > 0 && j.error === undefined, r.stdout);
      for (const w of [0, 1]) assert.match(output(), new RegExp(`connection ${w}\\.\\d+ \\(verbs, worker ${w}\\): MaxSendSize`), `worker ${w} served a connection:\n${output()}`);
    } finally {
      child.kill('SIGINT');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, output());
    }
  });
}
