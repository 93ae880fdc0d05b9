// The native addon on the host, which has no RDMA in its kernel: it must load,
// say what it is, report the kernel's errno as typed errors, refuse misuse,
// and a build without rdma-core must produce the stub that reports why.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { crc32cJs } from '../framing/crc32c.js';
import * as framing from '../framing/crc32c.js';
import * as native from '../native/index.js';

const { useCrc32c } = framing;
const crc32cImplementationOf = () => framing.crc32cImplementation;

const root = fileURLToPath(new URL('..', import.meta.url));
const hasRdmaCore = spawnSync('pkg-config', ['--exists', 'libibverbs', 'librdmacm']).status === 0;
const kernelHasRdma = (() => {
  try {
    return execFileSync('ls', ['/sys/class/infiniband'], { encoding: 'utf8' }).trim().length > 0;
  } catch {
    return false;
  }
})();

describe('smbdirect/native on this host', () => {
  it('is the real addon exactly when rdma-core was found at build time', () => {
    assert.equal(native.available, hasRdmaCore, `available=${native.available} reason=${native.reason}`);
    if (!native.available) assert.match(native.reason ?? '', /rdma-core|failed to load/);
  });

  it('status() never throws and says why no device is usable', () => {
    const s = native.status();
    assert.equal(s.addon, native.available);
    if (!kernelHasRdma) {
      assert.deepEqual(s.devices, []);
      assert.ok(s.reason && s.reason.length > 0, 'a reason');
      if (native.available) assert.match(s.reason!, /ibv_get_device_list failed: (ENOSYS|ENODEV)/);
    }
  });

  it('reports the kernel errno as an Error with code, errno and syscall', { skip: !hasRdmaCore || kernelHasRdma }, () => {
    assert.throws(() => native.listDevices(), (e: native.NativeError) =>
      e instanceof Error && ['ENOSYS', 'ENODEV'].includes(e.code) && e.errno! < 0 && e.syscall === 'ibv_get_device_list');
    assert.throws(() => native.openDevice('rxe0'), (e: native.NativeError) => ['ENODEV', 'ENOSYS'].includes(e.code));
    assert.throws(() => native.createEventChannel(() => {}), (e: native.NativeError) =>
      e.code === 'ENODEV' && e.syscall === 'rdma_create_event_channel');
  });

  it('refuses misuse with typed errors', { skip: !hasRdmaCore }, () => {
    const require = createRequire(import.meta.url);
    const raw = require('node-gyp-build')(root) as Record<string, unknown>;
    for (const cls of ['Device', 'ProtectionDomain', 'MemoryRegion', 'MemoryWindow', 'CompletionChannel',
      'CompletionQueue', 'QueuePair', 'EventChannel', 'CmId']) {
      const C = raw[cls] as new (...a: unknown[]) => unknown;
      assert.throws(() => new C(), (e: native.NativeError) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE', cls);
      assert.throws(() => new C({}), TypeError, cls);
    }
    assert.throws(() => native.openDevice(42 as never), (e: native.NativeError) => e.code === 'ERR_INVALID_ARG_TYPE');
    assert.throws(() => native.createEventChannel('x' as never), (e: native.NativeError) => e.code === 'ERR_INVALID_ARG_TYPE');
  });

  it('exports the verbs constants and status names', () => {
    assert.equal(native.accessFlags({ localWrite: true, remoteRead: true, remoteWrite: true }), 7);
    assert.equal(native.wcStatusName(0), 'success');
    assert.equal(native.wcStatusName(5), 'flushed');
    assert.equal(native.wcStatusName(10), 'remote-access');
    assert.equal(native.wcStatusName(99), 'status-99');
  });
});

describe('a build without rdma-core', () => {
  it('builds the stub, which loads and reports available: false with the reason', { timeout: 180_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'smbdirect-stub-'));
    try {
      cpSync(join(root, 'binding.gyp'), join(dir, 'binding.gyp'));
      cpSync(join(root, 'native'), join(dir, 'native'), { recursive: true });
      symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
      // hide rdma-core's .pc files from pkg-config, as on a machine without it
      const env = { ...process.env, PKG_CONFIG_LIBDIR: join(dir, 'no-pkgconfig'), PKG_CONFIG_PATH: '' };
      const gyp = join(root, 'node_modules', '.bin', 'node-gyp');
      // Node's own headers (as npm is configured here), never a download
      const nodedir = process.env['npm_config_nodedir'] ?? dirname(dirname(process.execPath));
      const r = spawnSync(gyp, ['rebuild', `--nodedir=${nodedir}`], { cwd: dir, env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const stub = createRequire(import.meta.url)(join(dir, 'build', 'Release', 'smbdirect_native.node')) as {
        available: boolean; withRdmaCore: boolean; reason: string; listDevices?: unknown;
      };
      assert.equal(stub.available, false);
      assert.equal(stub.withRdmaCore, false);
      assert.match(stub.reason, /without rdma-core.*libibverbs-dev/);
      assert.equal(stub.listDevices, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the addon's CRC32c", () => {
  it('matches the reference on every length and split, and framing takes it; a wrong one is refused', () => {
    const crc = native.crc32c;
    assert.ok(crc, 'built into the addon and the stub where the CPU has SSE4.2');
    const data = new Uint8Array(3 * 4096 * 3 + 77).map((_, i) => (i * 7919 + 13) & 0xff);
    for (const n of [0, 1, 7, 8, 9, 4095, 12287, 12288, 12289, 24576, data.length]) {
      const d = data.subarray(0, n);
      assert.equal(crc(d), crc32cJs(d), `length ${n}`);
      assert.equal(crc(d.subarray(n >> 1), crc(d.subarray(0, n >> 1))), crc32cJs(d), `split ${n}`);
    }
    assert.equal(useCrc32c(() => 0, 'broken'), false);
    assert.notEqual(crc32cImplementationOf(), 'broken');
    assert.equal(useCrc32c(crc, 'addon'), true);
    assert.equal(crc32cImplementationOf(), 'addon');
  });
});
