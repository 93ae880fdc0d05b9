// Device removal (#18) on real verbs: `rdma link delete rxe0` (and siw0) while an SMB Direct
// connection on it is open and an 8 MiB rdmaWrite loop runs. The provider sees rdma_cm's
// DEVICE_REMOVAL: both connections end with ERR_VERBS_DEVICE_REMOVED, every promise settles, the
// server reports its listener's end ('error', ERR_VERBS_DEVICE_REMOVED), and this process gives
// back everything it held on the device, which the kernel waits for: `rdma link delete` returns in
// bounded time and no descriptor on the device's uverbs node is left. The device is then created
// again as ci/guest/lib.sh does it (in a `finally`, checked ACTIVE, for rxe0 the RoCE v2 GID index
// the harness exported checked the same) and a new connection works on it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';

import { closed } from '../smbdirect/helpers.js';
import {
  DEVICES, type TestDevice, baselineCounts, closeAll, expectCountsBack, openFds, outcome, pattern, portState, rdmaFds, requireVm,
  roceV2GidIndex, runCommand, settleAll, sleep, stacksLater, trace, uverbsOf, waitActive, within,
} from './helpers.js';
import { MiB, client, code, exercise, serve } from './smbd.js';

/** How ci/guest/lib.sh creates each device. */
const LINK: Record<TestDevice['kind'], { type: string; netdev: string }> = { RoCE: { type: 'rxe', netdev: 'd0' }, iWARP: { type: 'siw', netdev: 'd1' } };
const DELETE_MS = 30_000;

/** Creates the device again if it is gone, waits for its port (and, on RoCE, the GID of its address). */
async function restore(dev: TestDevice): Promise<string[]> {
  const notes: string[] = [];
  if (portState(dev.name) === undefined) {
    const { type, netdev } = LINK[dev.kind];
    const r = await runCommand('rdma', ['link', 'add', dev.name, 'type', type, 'netdev', netdev], 30_000);
    notes.push(`rdma link add ${dev.name}: exit ${r.code} in ${r.ms} ms ${r.stderr.trim()}`);
  }
  assert.ok(await waitActive(dev.name, 20_000), `${dev.name} is ACTIVE again (${portState(dev.name) ?? 'absent'}; ${notes.join('; ')})`);
  if (dev.kind === 'RoCE') {
    const end = Date.now() + 20_000;
    while (roceV2GidIndex(dev.name, dev.ip) === undefined && Date.now() < end) await sleep(50);
    const index = roceV2GidIndex(dev.name, dev.ip);
    const want = process.env['SMBDIRECT_RXE_GID_INDEX'];
    notes.push(`RoCE v2 GID of ${dev.ip} at index ${index}`);
    // the later files (and perftest) get the index the harness computed at boot
    assert.equal(String(index), want, `${dev.name}: the RoCE v2 GID of ${dev.ip} is at index ${index} after re-creation, the harness exported ${want}`);
  }
  return notes;
}

if (requireVm()) {
  after(() => closeAll());

  for (const dev of DEVICES) {
    describe(`${dev.name} (${dev.kind}): device removal`, () => {
      it(`${dev.name}: rdma link delete during a transfer: ERR_VERBS_DEVICE_REMOVED on both ends, every promise settles, the delete returns; the re-created device serves again`, { timeout: 240_000 }, async () => {
        trace(`${dev.name}: removal test`);
        await baselineCounts();
        const fds0 = openFds();
        const uverbs = uverbsOf(dev.name);
        assert.ok(uverbs, `${dev.name} has a uverbs node`);
        let deleted = false;
        try {
          const s = await serve(dev.ip);
          const p = await client(s);
          trace(`${dev.name}: connected`);
          const buf = new Uint8Array(8 * MiB);
          const reg = p.client.registerBuffer(buf, 'write');
          const data = pattern(8 * MiB, 5);
          let writes = 0;
          let first!: () => void;
          const firstDone = new Promise<void>((resolve) => { first = resolve; });
          const loop = (async () => {
            for (;;) {
              await p.accepted.rdmaWrite(reg.descriptors, data);
              if (++writes === 1) first();
            }
          })();
          loop.catch(() => first());
          await within(firstDone, 60_000, 'the first 8 MiB rdmaWrite');
          assert.equal(writes, 1, 'the transfer is under way');
          trace(`${dev.name}: first write done, deleting`);
          // messages in flight both ways as well
          const sends = { 'client send': p.client.send(pattern(100_000, 6)), 'server send': p.accepted.send(pattern(100_000, 7)) };
          const t0 = Date.now();
          const cancelStacks = stacksLater(DELETE_MS / 2);
          const del = runCommand('rdma', ['link', 'delete', dev.name], DELETE_MS);
          const r = await settleAll({
            'rdma link delete': del, 'rdmaWrite loop': loop, 'client close': closed(p.client), 'server connection close': closed(p.accepted), ...sends,
          }, DELETE_MS + 10_000);
          cancelStacks();
          const d = (r['rdma link delete'] as PromiseFulfilledResult<Awaited<typeof del>>).value;
          const clientErr = (r['client close'] as PromiseFulfilledResult<Error | undefined>).value;
          const serverErr = (r['server connection close'] as PromiseFulfilledResult<Error | undefined>).value;
          const summary = `rdma link delete: ${d.timedOut ? 'still running' : `exit ${d.code}`} after ${d.ms} ms; ${writes} writes of 8 MiB; ` +
            `client ${code(clientErr)}, server connection ${code(serverErr)}, loop ${outcome(r['rdmaWrite loop'])}, ` +
            `sends ${outcome(r['client send'])}/${outcome(r['server send'])}; ${Date.now() - t0} ms` +
            `${clientErr ? `; client: ${clientErr.message}` : ''}${serverErr ? `; server connection: ${serverErr.message}` : ''}`;
          console.log(`# ${dev.name}: ${summary}`);
          trace(summary);
          assert.ok(!d.timedOut, `rdma link delete ${dev.name} did not return within ${DELETE_MS} ms: it waits in ${d.stack}\n` +
            `this process still has ${JSON.stringify(rdmaFds())} open (${dev.name} is ${uverbs})`);
          assert.equal(d.code, 0, d.stderr);
          deleted = true;
          assert.equal(code(clientErr), 'ERR_VERBS_DEVICE_REMOVED', summary);
          assert.equal(code(serverErr), 'ERR_VERBS_DEVICE_REMOVED', summary);
          // also a write the loop started once the endpoint had begun to go down (the connection
          // keeps it for the endpoint's error, as a flushed one)
          assert.equal(outcome(r['rdmaWrite loop']), 'ERR_VERBS_DEVICE_REMOVED', summary);
          for (const k of Object.keys(sends)) assert.ok(['fulfilled', 'ERR_VERBS_DEVICE_REMOVED'].includes(outcome(r[k])), `${k}: ${outcome(r[k])}`);
          await within((async () => { while (!s.serverErrors.length) await sleep(10); })(), 10_000, "the server's 'error' for its listener");
          assert.equal(code(s.serverErrors[0]), 'ERR_VERBS_DEVICE_REMOVED', s.serverErrors[0]?.message);
          assert.equal(portState(dev.name), undefined, `${dev.name} is gone`);
          assert.deepEqual(rdmaFds().filter((f) => f.endsWith(`->${uverbs}`)), [], `nothing of ${dev.name} (${uverbs}) left open`);
          reg.release(); // a no-op now: everything was given back with the connection
          await within(s.server.close(), 30_000, 'server.close() after the removal');
        } finally {
          if (!deleted && portState(dev.name) !== undefined) {
            // a delete that never returned holds the device in the kernel until this process lets go
            // of it (at its exit at the latest): nothing to restore yet
            console.log(`# ${dev.name}: the delete did not finish (port ${portState(dev.name)})`);
          } else {
            const notes = await restore(dev);
            console.log(`# ${dev.name}: ${notes.join('; ')}`);
          }
        }
        trace(`${dev.name}: re-created`);
        // the re-created device: a new server and client, kernel objects back at their new baseline
        const base = await baselineCounts();
        const s = await serve(dev.ip);
        try {
          const q = await client(s);
          await exercise(q.client, q.accepted, 20);
          await within(q.client.close(), 30_000, 'close()');
          assert.equal(await closed(q.accepted), undefined);
        } finally {
          await within(s.server.close(), 30_000, 'server.close()');
        }
        await expectCountsBack(base, `${dev.name} re-created`);
        const fds = openFds();
        console.log(`# ${dev.name}: file descriptors ${fds0} before, ${fds} after (${JSON.stringify(rdmaFds())})`);
        assert.equal(fds, fds0, 'file descriptors back where they were (one context per device)');
        console.log(`# ${dev.name}: RSS ${readFileSync('/proc/self/status', 'utf8').match(/VmRSS:\s+(\d+)/)?.[1]} kB`);
      });
    });
  }
}
