// The addon throws the providers' RdmaError itself once they have loaded (native.useErrorClass):
// a failed verbs/rdma_cm call reaches a provider's caller with its errno name as `code`, `errno`
// and `syscall`, and `instanceof RdmaError`, with no wrap at each call site. Before that (the
// addon used on its own, `smbdirect/native`), it throws Error with the same fields. This machine has
// the addon but no RDMA device, so opening one and creating an rdma_cm channel fail for real.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as native from '../native/index.js';

function thrown(f: () => unknown): Error & { code?: string; errno?: number; syscall?: string } {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a throw');
}

test('a failed addon call is an Error with code, errno and syscall, then an RdmaError once the providers load', async (t) => {
  if (!native.available) {
    // the stub: the same promise, for the one error it has
    const before = thrown(() => native.openDevice('nope'));
    assert.equal(before.code, 'ERR_NATIVE_UNAVAILABLE');
    const { RdmaError } = await import('../src/providers/index.js');
    const after = thrown(() => native.openDevice('nope'));
    assert.ok(after instanceof RdmaError, `${after.constructor.name}: ${after.message}`);
    assert.equal(after.code, 'ERR_NATIVE_UNAVAILABLE');
    t.diagnostic('stub addon: checked ERR_NATIVE_UNAVAILABLE only');
    return;
  }
  assert.equal(native.status().devices.length, 0, 'this test expects a machine without RDMA devices (the VM suite has them)');
  const before = thrown(() => native.createEventChannel(() => {}));
  assert.equal(before.constructor, Error);
  assert.match(before.code ?? '', /^E[A-Z]+$/);
  assert.equal(before.syscall, 'rdma_create_event_channel');

  const { RdmaError } = await import('../src/providers/index.js');
  const channel = thrown(() => native.createEventChannel(() => {}));
  assert.ok(channel instanceof RdmaError, `${channel.constructor.name}: ${channel.message}`);
  assert.equal(channel.name, 'RdmaError');
  assert.equal(channel.code, before.code);
  assert.equal(channel.errno, before.errno);
  assert.ok(typeof channel.errno === 'number' && channel.errno < 0);
  assert.equal(channel.syscall, 'rdma_create_event_channel');
  assert.match(channel.message, /^rdma_create_event_channel failed: E[A-Z]+ \(/);

  const device = thrown(() => native.openDevice('no-such-device'));
  assert.ok(device instanceof RdmaError);
  assert.match(device.code ?? '', /^E[A-Z]+$|^ERR_NO_DEVICE$/);

  // argument misuse too: the addon's TypeErrors become RdmaErrors with the same code
  const misuse = thrown(() => native.destroyDetachedId('x' as unknown as bigint));
  assert.ok(misuse instanceof RdmaError, `${misuse.constructor.name}: ${misuse.message}`);
  assert.equal(misuse.code, 'ERR_INVALID_ARG_TYPE');
});
