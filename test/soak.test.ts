// A reduced soak (bench/soak.ts: issue #18, "What else to build" 3) inside npm test: 100
// connect / transfer / close cycles, then 20 connections at once, on the software iWARP provider
// over loopback. The same invariants as the full run, not its timing: every cycle completes,
// every sha256 matches on both ends, no message lost or duplicated, and afterwards open fds,
// active handles, registered memory (provider regions and registeredMemory()) and
// server.connections are back at their baseline.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { formatSoak, runSoak } from '../bench/soak.js';

it('soak: 100 cycles, then 20 concurrent connections; resources back at baseline, every byte checked', async (t) => {
  const r = await runSoak({ cycles: 100, concurrent: 20 });
  for (const line of formatSoak(r).split('\n')) t.diagnostic(line);
  assert.deepEqual(r.failures, []);
  for (const p of r.phases) {
    assert.equal(p.totals.cycles, p.cycles, `${p.phase}: every cycle completed`);
    assert.equal(p.totals.failedCycles, 0);
    // 4 messages each way, 3 requests and 2 responses, 12 sha256 checks (8 messages, 2 per transfer) per cycle
    assert.equal(p.totals.messages, 13 * p.cycles, `${p.phase}: every message arrived`);
    assert.equal(p.totals.checked, 12 * p.cycles, `${p.phase}: every hash was checked`);
    assert.deepEqual([p.totals.mismatches, p.totals.lost, p.totals.duplicated], [0, 0, 0]);
    assert.ok(p.after.fds <= r.baseline.fds, `${p.phase}: fds ${p.after.fds}, baseline ${r.baseline.fds}`);
    assert.deepEqual(p.after.handles, r.baseline.handles, `${p.phase}: active handles`);
    assert.deepEqual([p.after.regions, p.after.regionBytes, p.after.accounted], [r.baseline.regions, r.baseline.regionBytes, r.baseline.accounted],
      `${p.phase}: registered memory`);
    assert.equal(p.after.serverConnections, 0);
  }
  const concurrent = r.phases.find((p) => p.phase === 'concurrent')!;
  // both ends of 20 connections were open at once: a socket each
  assert.ok(concurrent.peakFds >= r.baseline.fds + 2 * 20, `peak fds ${concurrent.peakFds}`);
});
