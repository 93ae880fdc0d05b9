// Shared pieces of the VM suite (see rdma.ts), plus the guard that makes a
// soft-RoCE file fail loudly on a host instead of skipping.
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { inVm } from './rdma.js';

export * from './rdma.js';

/** On a host (no VM) a soft-RoCE file fails loudly instead of skipping. */
export function requireVm(): boolean {
  if (inVm) return true;
  it('soft-RoCE tests run only inside the VM', () => {
    assert.fail('test/softroce runs only inside the soft-RoCE/soft-iWARP VM: use `npm run test:softroce`.');
  });
  return false;
}
