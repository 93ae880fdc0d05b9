// The provider contract suite (test/providers/contract.ts) against the verbs provider on rxe0
// (soft-RoCE) and siw0 (soft-iWARP): the same cases test/provider-contract.test.ts runs against
// iwarp-tcp on the host. Kernel RDMA objects are back to the baseline after every case.
import { after, before } from 'node:test';

import { WINDOW_SLOTS, createVerbsProvider } from '../../src/providers/index.js';
import { contractSuite } from '../providers/contract.js';
import { DEVICES, type Counts, baselineCounts, expectCountsBack, requireVm } from './helpers.js';

// small queues (ERR_QUEUE_FULL and the unsignaled run cost little); window slots as the SMB Direct
// server sizes them (verbsOptionsForNeeds), so that on rxe a remotely accessible view is a memory
// window, which rxe invalidates remotely and reports
const maxRecvWr = 64, maxSendWr = 64 + WINDOW_SLOTS;

if (requireVm()) {
  let base: Counts;
  before(async () => { base = await baselineCounts(); });
  after(async () => { await expectCountsBack(base, 'provider-contract.test'); });

  for (const dev of DEVICES) {
    const iwarp = dev.kind === 'iWARP';
    contractSuite(`verbs on ${dev.name} (${dev.kind})`, () => ({
      provider: createVerbsProvider({ maxSendWr, maxRecvWr, windowSlots: WINDOW_SLOTS }), host: dev.ip,
    }), {
      maxSendWr, maxRecvWr,
      readDepth: 16, // VerbsOptions initiatorDepth / responderResources defaults
      privateDataPadded: !iwarp, // IB CM's fixed sizes; iWARP carries it exactly
      responderResourcesLowered: true,
      peerOfDestroy: 'disconnected', // rdma_cm DISCONNECTED
      remoteInvalidation: iwarp ? 'not-reported' : 'reported', // siw never reports it; rxe does for windows
      rejectEnds: 'close',
      oneReadSge: iwarp, // siw's max_sge_rd is 1
      slow: 3,
      skip: {
        'access-at-post': 'verbs: a device fails such a work request instead of refusing the post (docs/providers.md "Posting work")',
        ...(iwarp ? {
          'read-depths-lowered': 'verbs on siw: rdma_cm ESTABLISHED carries the kernel\'s own ORD/IRD, not the peer\'s IRD (MPA v2\'s IRD/ORD '
            + 'exchange happens in the kernel and is not passed up), so an ORD asked above the peer\'s IRD cannot be seen to be lowered from user space',
        } : {}),
      },
      afterEach: () => expectCountsBack(base, `a contract case on ${dev.name}`),
    });
  }
}
