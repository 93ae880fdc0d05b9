// #23 on real RDMA: a responder that sends right after accept(), with the verbs provider at both
// ends on rxe0 and siw0. With ConnectOptions.prepare the greeting arrives on both (the contract
// suite's 'responder-first' case runs it too; iwarp-siw.test.ts crosses iwarp-tcp and siw). Without
// it the outcome is what the transport gives, bounded: RoCE's receiver-not-ready retry holds the
// Send until the receive is posted (arrives); iWARP has no such retry, so it arrives or ends both
// sides with typed errors, never a hang. Kernel objects are back at the baseline afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createVerbsProvider } from '../../src/providers/index.js';
import { ANSWER, GREETING, greet } from '../providers/greeting.js';
import { DEVICES, type Counts, baselineCounts, expectCountsBack, requireVm } from './helpers.js';

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => { await expectCountsBack(base, 'prepare.test'); });

  for (const dev of DEVICES) {
    describe(`a responder that sends first: verbs on ${dev.name} (${dev.kind})`, () => {
      it('with prepare(): the greeting arrives and is answered', async () => {
        const p = createVerbsProvider();
        const o = await greet({ server: p, client: p, host: dev.ip, prepare: true, ms: 15_000 });
        assert.equal(o.connectError, undefined, String(o.connectError?.message));
        assert.deepEqual(o.greeting, GREETING, `client: ${o.clientError?.message ?? 'no error'}`);
        assert.deepEqual(o.answer, ANSWER, `server: ${o.serverError?.message ?? 'no error'}`);
      });

      it('without prepare(): arrives (RoCE holds it by RNR retry) or ends both sides with typed errors; bounded', async () => {
        const p = createVerbsProvider();
        const o = await greet({ server: p, client: p, host: dev.ip, prepare: false, ms: 15_000 });
        assert.equal(o.connectError, undefined, String(o.connectError?.message));
        console.log(`# ${dev.name} without prepare: ${o.greeting ? 'the greeting arrived' : `lost: client ${o.clientError?.code ?? o.armError?.code}, server ${o.serverError?.code}`}`);
        if (dev.kind === 'RoCE') {
          assert.deepEqual(o.greeting, GREETING, 'RNR retry keeps the Send until the receive is there');
          return;
        }
        if (o.greeting) return;
        const codes = [o.clientError?.code ?? o.armError?.code, o.serverError?.code];
        for (const code of codes) assert.match(code ?? '', /^ERR_/, `a typed error on each side: ${codes.join(', ')}`);
      });
    });
  }
}
