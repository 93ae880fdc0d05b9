// The credit ledger on its own (src/smbdirect/credits.ts): the [MS-SMBD] 3.1.5 rules with no
// provider, no connection, no I/O.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CreditLedger, MIN_CREDIT_TARGET } from '../../src/smbdirect/credits.js';

describe('credit ledger', () => {
  it('before the peer has asked for any, one credit may be granted', () => {
    const l = new CreditLedger(255);
    l.posted = 255;
    assert.equal(l.target, 1);
    assert.equal(l.grantable(), 1);
  });

  it('the target follows the peer, clamped to [3, max]', () => {
    const l = new CreditLedger(100);
    l.peerRequested(0);
    assert.equal(l.target, MIN_CREDIT_TARGET);
    l.peerRequested(2);
    assert.equal(l.target, 3);
    l.peerRequested(50);
    assert.equal(l.target, 50);
    l.peerRequested(65535);
    assert.equal(l.target, 100);
  });

  it('grantable: min(posted - granted, target - granted), never negative', () => {
    const l = new CreditLedger(255);
    l.peerRequested(255);
    l.posted = 10;
    assert.equal(l.grantable(), 10, 'bounded by what is posted');
    l.posted = 255;
    l.granted = 250;
    assert.equal(l.grantable(), 5, 'bounded by the target');
    l.peerRequested(100); // the peer asks for fewer than it holds
    assert.equal(l.grantable(), 0);
  });

  it('the last send credit only goes with a grant (3.1.5.1)', () => {
    const l = new CreditLedger(16);
    assert.equal(l.canSend(5), false, 'no credit');
    l.peerGranted(1);
    assert.equal(l.canSend(0), false, 'the last credit, nothing granted back');
    assert.equal(l.canSend(1), true);
    l.peerGranted(1);
    assert.equal(l.canSend(0), true, 'two credits: one may go without a grant');
  });

  it('spend uses a send credit and hands the peer the grant; a message arriving uses one of those', () => {
    const l = new CreditLedger(16);
    l.peerRequested(16);
    l.posted = 16;
    l.peerGranted(4);
    const g = l.grantable();
    assert.equal(g, 16);
    l.spend(g);
    assert.deepEqual([l.send, l.granted, l.grantable()], [3, 16, 0]);
    l.received();
    l.posted--; // its receive completed (the connection reposts it)
    assert.equal(l.granted, 15);
    l.posted++;
    assert.equal(l.grantable(), 1);
  });

  it('a message without a credit is a violation (ERR_SMBD_CREDIT_VIOLATION), the count unchanged', () => {
    const l = new CreditLedger(16);
    assert.throws(() => l.received(), { code: 'ERR_SMBD_CREDIT_VIOLATION' });
    assert.equal(l.granted, 0);
  });

  it('send credits saturate at 0xffff', () => {
    const l = new CreditLedger(16);
    l.peerGranted(0xffff);
    l.peerGranted(0xffff);
    assert.equal(l.send, 0xffff);
  });

  it('low on credits: a quarter of the target or one left, and only with credits to give', () => {
    const l = new CreditLedger(255);
    l.peerRequested(255);
    l.granted = 64;
    assert.equal(l.lowOnCredits(10), false, 'above a quarter (63)');
    l.granted = 63;
    assert.equal(l.lowOnCredits(10), true);
    assert.equal(l.lowOnCredits(0), false, 'nothing to give: no refill');
    l.peerRequested(3);
    l.granted = 1;
    assert.equal(l.lowOnCredits(2), true, 'the floor is one credit');
    l.granted = 2;
    assert.equal(l.lowOnCredits(1), false);
  });
});
