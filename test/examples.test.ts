// The examples run as documented (node --import tsx examples/x.ts) and do what they print.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { it } from 'node:test';
import { promisify } from 'node:util';

it('examples/echo.ts: ECHO, an RDMA READ with invalidation and an RDMA WRITE, then a clean close', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/echo.ts'], { timeout: 30_000 });
  assert.match(stdout, /ECHO answered \(command 0xd\)/);
  assert.match(stdout, /READ of 524288 bytes placed by RDMA write .* content matches; token invalidated by the server: true/);
  const [, got] = /WRITE of 1048576 bytes by RDMA read, sha256 ([0-9a-f]+)/.exec(stdout) ?? [];
  const [, want] = /WRITE done, expected sha256 ([0-9a-f]+)/.exec(stdout) ?? [];
  assert.ok(got && got === want, 'the server read what the client registered');
  assert.match(stdout, /\nclosed\n$/);
});
