// Async events from a device's async fd: taking the netdev under rxe0 / siw0 down and up again
// must arrive as PORT_ERR and PORT_ACTIVE through Device.onAsyncEvent, and the port state must
// follow. The link is restored (and checked ACTIVE) before the test ends.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';

import * as native from '../../native/index.js';
import { DEVICES, requireVm, sleep } from './helpers.js';

const NETDEV: Record<string, string> = { RoCE: 'd0', iWARP: 'd1' };

async function waitFor(events: native.AsyncEvent[], type: string, timeoutMs = 20_000): Promise<native.AsyncEvent> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const i = events.findIndex((e) => e.type === type);
    if (i >= 0) return events.splice(i, 1)[0]!;
    if (Date.now() > end) throw new Error(`no ${type} async event within ${timeoutMs} ms (have ${JSON.stringify(events)})`);
    await sleep(20);
  }
}

if (requireVm()) {
  describe('device async events', () => {
    for (const dev of DEVICES) {
      it(`${dev.name}: netdev down/up arrives as PORT_ERR / PORT_ACTIVE`, async () => {
        const d = native.openDevice(dev.name);
        const events: native.AsyncEvent[] = [];
        d.onAsyncEvent((batch) => events.push(...batch));
        const link = (state: 'up' | 'down') => execFileSync('ip', ['link', 'set', NETDEV[dev.kind]!, state]);
        try {
          assert.equal(d.queryPort(1).state, 'active');
          link('down');
          const down = await waitFor(events, 'PORT_ERR');
          assert.equal(down.device, dev.name);
          assert.equal(down.port, 1);
          assert.notEqual(d.queryPort(1).state, 'active');
        } finally {
          link('up');
        }
        const up = await waitFor(events, 'PORT_ACTIVE');
        assert.equal(up.port, 1);
        assert.equal(d.queryPort(1).state, 'active');
        d.onAsyncEvent(null);
      });
    }
  });
}
