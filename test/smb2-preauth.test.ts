// SMB 3.1.1 preauth integrity (src/smb2/preauth.ts): the SHA-512 chain from 64 zero bytes, a
// session's chain forked from the connection's, and any change to a hashed message changing it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { it } from 'node:test';

import { PreauthIntegrity } from '../src/smb2/preauth.js';

const sha512 = (...parts: Uint8Array[]) => { const h = createHash('sha512'); for (const p of parts) h.update(p); return new Uint8Array(h.digest()); };

it('H0 = 64 zero bytes; Hi = SHA-512(Hi-1 || message); a session forks from the connection', () => {
  const negReq = new Uint8Array(200).fill(1), negResp = new Uint8Array(300).fill(2), ssReq = new Uint8Array(150).fill(3);
  const conn = new PreauthIntegrity();
  assert.deepEqual(conn.value, new Uint8Array(64));
  conn.update(negReq).update(negResp);
  const h2 = sha512(sha512(new Uint8Array(64), negReq), negResp);
  assert.deepEqual(conn.value, h2);
  const session = conn.fork().update(ssReq);
  assert.deepEqual(session.value, sha512(h2, ssReq));
  assert.deepEqual(conn.value, h2, 'the connection value is untouched by the session');
  const tampered = new PreauthIntegrity().update(negReq).update(Uint8Array.from(negResp, (b, i) => (i === 77 ? b ^ 1 : b)));
  assert.notDeepEqual(tampered.value, h2);
  const v = conn.value;
  v.fill(0);
  assert.deepEqual(conn.value, h2, 'value is a copy');
});
