// The providers size their own queues from what an upper layer says it needs (receives, sends,
// read depth): a provider made from those sizes holds those needs and refuses more.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { WINDOW_SLOTS, createIwarpProvider, iwarpOptionsForNeeds, verbsOptionsForNeeds } from '../src/providers/index.js';
import { resolveOptions } from '../src/smbdirect/options.js';
import { connectionNeeds } from '../src/smbdirect/server.js';

it("an SMB Direct connection's needs follow its options", () => {
  assert.deepEqual(connectionNeeds(resolveOptions({ credits: 64, sendQueueDepth: 40, rdmaReadDepth: 4 })), { receives: 64, sends: 40, readDepth: 4 });
});

it('iwarp-tcp: queues sized for the needs hold them, and no more', () => {
  const needs = { receives: 300, sends: 100, readDepth: 8 };
  assert.deepEqual(iwarpOptionsForNeeds(needs), { maxRecvWr: 301, maxSendWr: 101, ird: 8, ord: 8 });
  const provider = createIwarpProvider(iwarpOptionsForNeeds(needs));
  provider.checkCapacity!(needs);
  assert.throws(() => provider.checkCapacity!({ ...needs, receives: 302 }), (e: Error & { code?: string }) => /^ERR_/.test(e.code ?? ''));
  assert.throws(() => provider.checkCapacity!({ ...needs, sends: 102 }), (e: Error & { code?: string }) => /^ERR_/.test(e.code ?? ''));
});

it('verbs: a receive and a send WR per need, a spare each for the drain markers, the window binds on top', () => {
  assert.deepEqual(verbsOptionsForNeeds({ receives: 255, sends: 256, readDepth: 16 }), {
    maxRecvWr: 256, maxSendWr: 257 + WINDOW_SLOTS, windowSlots: WINDOW_SLOTS, initiatorDepth: 16, responderResources: 16,
  });
});
