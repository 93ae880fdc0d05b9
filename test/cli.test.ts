// The `smbdirect` command as a user runs it: real processes (bin/smbdirect.js over the built dist/,
// which npm test builds first) on loopback with the software iWARP provider. Output and exit
// codes: help, usage errors, devices on a machine without RDMA, serve + bench in every mode with
// --json, a refused port, an unresolvable host, Ctrl-C during bench, and npm start's demo.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as netServer } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { connect } from '../src/index.js';
import { closed } from './smbdirect/helpers.js';
import { runCli as run, startServe } from './support.js';

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = netServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

describe('smbdirect command line', () => {
  it('--help on every command, exit 0; no command or an unknown one is a usage error, exit 2', async () => {
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    for (const c of ['devices', 'serve', 'bench', 'demo']) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'));
    for (const c of ['devices', 'serve', 'bench', 'demo']) {
      const r = await run([c, '--help']);
      assert.equal(r.code, 0, `${c} --help`);
      assert.match(r.stdout, new RegExp(`^Usage: smbdirect ${c}`), `${c} --help prints its usage`);
      assert.match(r.stdout, /Exit codes/);
    }
    const none = await run([]);
    assert.equal(none.code, 2);
    const unknown = await run(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const badOption = await run(['bench', '--host', '127.0.0.1', '--frob']);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /--frob/);
    assert.match(badOption.stderr, /smbdirect bench --help/);
    for (const [args, what] of [[['bench'], /--host is required/], [['bench', '--host', 'x', '--mode', 'fast'], /--mode/],
      [['bench', '--host', 'x', '--size', 'big'], /--size/], [['serve', '--port', '70000'], /--port/], [['serve', '--provider', 'rdma'], /--provider/],
      [['serve', '--workers', '2', '--provider', 'iwarp-tcp'], /--workers needs the verbs provider/]] as const) {
      const r = await run([...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, what);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('devices: on a machine without RDMA it says why and that the software iWARP provider serves', async () => {
    const r = await run(['devices']);
    assert.equal(r.code, 0);
    const j = JSON.parse((await run(['devices', '--json'])).stdout) as { devices: unknown[]; provider: string; providerReason: string; reason?: string };
    if (j.devices.length === 0) {
      assert.match(r.stdout, /^No RDMA devices: .+/m);
      assert.ok(j.reason, 'the reason (errno from libibverbs, or the stub) is given');
      assert.ok(r.stdout.includes(j.reason!));
      assert.equal(j.provider, 'iwarp-tcp');
      assert.match(r.stdout, /Provider for connections: iwarp-tcp \(software iWARP over TCP\)/);
    } else {
      assert.match(r.stdout, /port 1: /);
    }
  });

  describe('serve + bench over loopback', () => {
    let server: ChildProcess;
    let port = 0;
    let output: () => string;
    before(async () => {
      ({ child: server, port, output } = await startServe(['--host', '127.0.0.1'], 'iwarp-tcp'));
    });
    after(async () => {
      server.kill('SIGINT');
      const [code] = (await once(server, 'exit')) as [number | null];
      assert.equal(code, 0, 'serve exits 0 on SIGINT after closing its connections');
      assert.match(output(), /stopping/);
    });

    for (const [mode, size] of [['send', '4k'], ['read', '256k'], ['write', '256k'], ['latency', '64']] as const) {
      it(`bench --mode ${mode} --json: a summary with throughput, rate, latency percentiles and CPU; exit 0`, async () => {
        const r = await run(['bench', '--host', '127.0.0.1', '--port', String(port), '--provider', 'iwarp-tcp', '--mode', mode, '--size', size,
          '--duration', '700ms', '--connections', mode === 'send' ? '2' : '1', '--json']);
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout) as {
          mode: string; bytes: number; operations: number; bytesPerSecond: number; interrupted: boolean; provider: string; error?: string;
          latency: { count: number; p50Us: number; p99Us: number; p999Us: number }; cpu: { percentOfOneCore: number }; negotiated: { maxSendSize: number };
        };
        assert.equal(j.mode, mode);
        assert.equal(j.provider, 'iwarp-tcp');
        assert.equal(j.error, undefined);
        assert.equal(j.interrupted, false);
        assert.ok(j.operations > 0 && j.bytes > 0 && j.bytesPerSecond > 0, JSON.stringify(j));
        assert.equal(j.latency.count, j.operations);
        assert.ok(j.latency.p50Us > 0 && j.latency.p50Us <= j.latency.p99Us && j.latency.p99Us <= j.latency.p999Us);
        assert.ok(j.cpu.percentOfOneCore > 0);
        assert.equal(j.negotiated.maxSendSize, 1364);
        // not a TTY: plain progress lines on stderr, and the server logged the connection
        assert.match(r.stderr, /^\d+\.\d s: .* ops\/s/m);
        assert.match(output(), /connection \d+ \(iwarp-tcp\): MaxSendSize 1364, MaxReceiveSize \d+, MaxFragmentedSize/);
        if (mode === 'read') assert.match(output(), /closed after .* [1-9]\d* RDMA writes/);
      });
    }

    it('bench without --json prints the table; Ctrl-C prints the partial summary and exits 130', async () => {
      const r = await run(['bench', '--host', '127.0.0.1', '--port', String(port), '--provider', 'iwarp-tcp', '--mode', 'read', '--duration', '60s'], {
        onStderr: (text, child) => { if (/ops\/s/.test(text) && !child.killed) child.kill('SIGINT'); },
      });
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stdout, /^smbdirect bench: read, 1 MiB, 1 connection\(s\), 4 in flight each, iwarp-tcp, .* \(interrupted\)$/m);
      assert.match(r.stdout, /^\| throughput \| [\d.]+ (GB|MB|kB)\/s \|$/m);
      assert.match(r.stdout, /^\| latency p50 \/ p99 \/ p99\.9 \| /m);
      assert.match(r.stdout, /^\| CPU \| /m);
      const secs = Number(/, ([\d.]+) s \(interrupted\)/.exec(r.stdout)![1]);
      assert.ok(secs < 30, `stopped at Ctrl-C, not after --duration (${secs} s)`);
    });

    it('a peer sending garbage requests is disconnected with a typed error; the server keeps serving', async () => {
      const desc = (offset: bigint, length: number) => { const d = Buffer.alloc(16); d.writeBigUInt64LE(offset, 0); d.writeUInt32LE(5, 8); d.writeUInt32LE(length, 12); return d; };
      for (const [bad, code] of [[new Uint8Array([0x99, 1, 2]), /ERR_SMBD_INVALID_ARGUMENT: unknown benchmark request 0x99/],
        [new Uint8Array([0x52, 1, 0, 0, 0, 0, 16, 0, 0, 7, 7, 7]), /ERR_FRAMING_\w+|ERR_SMBD_\w+/],
        // a READ of 4 KiB into 16 bytes: the transfer is refused, and the client must not be left waiting
        [Buffer.concat([Buffer.from([0x52, 2, 0, 0, 0, 0, 16, 0, 0]), desc(0x1000n, 16)]), /ERR_SMBD_BAD_DESCRIPTORS/],
        // a WRITE whose descriptor runs past 2^64 (the read that once crashed serve)
        [Buffer.concat([Buffer.from([0x57, 3, 0, 0, 0, 0, 0, 32, 0]), desc(2n ** 64n - 2n ** 20n, 2 * 2 ** 20)]), /ERR_SMBD_DESCRIPTOR_OVERFLOW/]] as const) {
        const conn = await connect({ host: '127.0.0.1', port, provider: 'iwarp-tcp' });
        const ended = closed(conn);
        conn.send(bad).catch(() => {}); // the server may end the connection before this settles
        await ended;
        for (let i = 0; i < 50 && !code.test(output()); i++) await new Promise((r) => setTimeout(r, 100));
        assert.match(output(), code);
      }
      const r = await run(['bench', '--host', '127.0.0.1', '--port', String(port), '--provider', 'iwarp-tcp', '--mode', 'latency', '--duration', '300ms', '--json']);
      assert.equal(r.code, 0, r.stderr);
    });

    it('a size beyond what was negotiated is a usage error naming the limit', async () => {
      const r = await run(['bench', '--host', '127.0.0.1', '--port', String(port), '--provider', 'iwarp-tcp', '--size', '2m', '--duration', '1s']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /exceeds the negotiated MaxFragmentedSize \(1044480 bytes\)/);
    });
  });

  it('--credits a connection cannot hold is a usage error naming the limit (exit 2), not a server that fails every connection', async () => {
    const r = await run(['serve', '--host', '127.0.0.1', '--port', '0', '--provider', 'iwarp-tcp', '--credits', '65535']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--credits 65535: .*exceed maxRegisteredBytes/);
  });

  it('serve on a port in use: one line naming the address and EADDRINUSE, exit 1', async () => {
    const busy = netServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    try {
      const port = (busy.address() as { port: number }).port;
      const r = await run(['serve', '--host', '127.0.0.1', '--port', String(port), '--provider', 'iwarp-tcp']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      busy.close();
    }
  });

  it('a refused port and an unresolvable host: one line naming the address and the error, exit 1', async () => {
    const port = await closedPort();
    const refused = await run(['bench', '--host', '127.0.0.1', '--port', String(port), '--provider', 'iwarp-tcp', '--duration', '1s']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`cannot run against 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
    const unknown = await run(['bench', '--host', 'nonexistent.invalid', '--port', '5445', '--provider', 'iwarp-tcp', '--duration', '1s']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /cannot run against nonexistent\.invalid:5445: .*(ENOTFOUND|EAI_AGAIN)/);
  });

  it("npm start's demo: server and client in one process, every workload in the table", async () => {
    const r = await run(['demo', '--duration', '300ms']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^smbdirect demo: server and client on 127\.0\.0\.1:\d+, provider (iwarp-tcp|verbs)/);
    for (const w of ['send 64 B messages', 'send 4 KiB messages', 'SMB2 READ 1 MiB (RDMA write)', 'SMB2 WRITE 1 MiB (RDMA read)', '64 B round trip']) {
      assert.match(r.stdout, new RegExp(`^\\| ${w.replace(/[()]/g, '\\$&')} \\| [\\d.]+ (GB|MB)/s \\| \\d+ \\|`, 'm'), w);
    }
  });
});
