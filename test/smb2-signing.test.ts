// SMB2/3 signing (src/smb2/signing.ts): AES-CMAC against RFC 4493's vectors, the 3.0 signing key
// against the published example (session key 7CD4...78CC -> signing key 0B7E...EDCE, from
// Microsoft's "anatomy of signing and cryptographic keys" write-up), and for every algorithm: a
// signed message verifies, any flipped bit does not; AES-GMAC's nonce is MessageId plus the role
// bits of 3.1.4.1.
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { smb2 } from '../framing/index.js';
import { aesCmac, computeSignature, signMessage, signingKey, smb3Kdf, verifyKsmbdReadSignature, verifySignature } from '../src/smb2/signing.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

describe('SMB2 signing ([MS-SMB2] 3.1.4.1, 3.1.4.2)', () => {
  it('AES-CMAC: RFC 4493 examples 1-4', () => {
    const k = unhex('2b7e151628aed2a6abf7158809cf4f3c');
    const m = unhex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710');
    assert.equal(hex(aesCmac(k, m.subarray(0, 0))), 'bb1d6929e95937287fa37d129b756746');
    assert.equal(hex(aesCmac(k, m.subarray(0, 16))), '070a16b46b4d4144f79bdd9dd04a287c');
    assert.equal(hex(aesCmac(k, m.subarray(0, 40))), 'dfa66747de9ae63030ca32611497c827');
    assert.equal(hex(aesCmac(k, m)), '51f0bebf7e3b9d92fc49741779363cfe');
    assert.equal(hex(aesCmac(k, m.subarray(0, 7), m.subarray(7, 40))), 'dfa66747de9ae63030ca32611497c827', 'in pieces');
  });

  it('the 3.0 signing key of the published example; 3.1.1 keys depend on the preauth hash', () => {
    assert.equal(hex(signingKey(unhex('7CD451825D0450D235424E44BA6E78CC'), smb2.SMB2_DIALECT.SMB300)), '0b7e9c5cac36c0f6ea9ab275298cedce');
    const sk = unhex('7CD451825D0450D235424E44BA6E78CC');
    const a = signingKey(sk, smb2.SMB2_DIALECT.SMB311, new Uint8Array(64).fill(1));
    const b = signingKey(sk, smb2.SMB2_DIALECT.SMB311, new Uint8Array(64).fill(2));
    assert.notEqual(hex(a), hex(b));
    assert.throws(() => signingKey(sk, smb2.SMB2_DIALECT.SMB311), RangeError);
    assert.equal(smb3Kdf(sk, new Uint8Array(1), new Uint8Array(1), 32).length, 32);
  });

  const message = (response: boolean) => {
    const m = new Uint8Array(64 + 40);
    smb2.writeSmb2Header(m, 0, { command: smb2.SMB2_COMMAND.READ, messageId: 77n, sessionId: 5n, treeId: 1, flags: response ? smb2.SMB2_FLAGS.SERVER_TO_REDIR : 0 });
    m.fill(0x5a, 64);
    return m;
  };

  for (const [name, alg] of [['AES-CMAC', smb2.SMB2_SIGNING.AES_CMAC], ['AES-GMAC', smb2.SMB2_SIGNING.AES_GMAC], ['HMAC-SHA256', smb2.SMB2_SIGNING.HMAC_SHA256]] as const) {
    it(`${name}: a signed message verifies, any single flipped bit does not`, () => {
      const key = unhex('000102030405060708090a0b0c0d0e0f');
      const m = message(false);
      signMessage(key, alg, m);
      assert.ok(m[16]! & smb2.SMB2_FLAGS.SIGNED, 'the SIGNED flag is set');
      assert.ok(verifySignature(key, alg, m));
      fc.assert(fc.property(fc.integer({ min: 0, max: m.length * 8 - 1 }), (bit) => {
        const t = Uint8Array.from(m);
        t[bit >> 3]! ^= 1 << (bit & 7);
        assert.equal(verifySignature(key, alg, t), false, `bit ${bit}`);
      }), { seed: 43, numRuns: 200 });
      assert.equal(verifySignature(unhex('ff0102030405060708090a0b0c0d0e0f'), alg, m), false, 'another key');
    });
  }

  it('AES-GMAC: the tag of AES-128-GCM over the message (signature zeroed) with nonce MessageId || role bits (response 1, CANCEL 2)', () => {
    const key = unhex('000102030405060708090a0b0c0d0e0f');
    for (const [response, cancel, roleBits] of [[false, false, 0], [true, false, 1], [false, true, 2]] as const) {
      const m = message(response);
      if (cancel) m[12] = smb2.SMB2_COMMAND.CANCEL;
      const nonce = Buffer.alloc(12);
      nonce.writeBigUInt64LE(77n, 0);
      nonce[8] = roleBits;
      const g = createCipheriv('aes-128-gcm', key, nonce);
      g.setAAD(m); // its signature field is zero here
      g.final();
      assert.equal(hex(computeSignature(key, smb2.SMB2_SIGNING.AES_GMAC, m)), hex(g.getAuthTag()), `response ${response}, cancel ${cancel}`);
    }
  });

  it("ksmbd's signature of a READ response whose data went by RDMA (over its 4-byte length prefix too) is accepted by that check only", () => {
    const key = new Uint8Array(16).fill(7);
    for (const alg of [smb2.SMB2_SIGNING.AES_CMAC, smb2.SMB2_SIGNING.AES_GMAC]) {
      const rsp = smb2.encodeSmb2ReadResponse({ header: { messageId: 9n, flags: smb2.SMB2_FLAGS.SIGNED }, dataRemaining: 65536 });
      const prefix = Uint8Array.of(0, 0, 0, rsp.length);
      rsp.set(computeSignature(key, alg, rsp, prefix), 48);
      assert.equal(verifySignature(key, alg, rsp), false, 'not a standard signature');
      assert.equal(verifyKsmbdReadSignature(key, alg, rsp), true, "ksmbd's form");
      rsp[64 + 8] ^= 1; // DataRemaining: still covered
      assert.equal(verifyKsmbdReadSignature(key, alg, rsp), false, 'a changed byte fails it');
    }
  });
});
