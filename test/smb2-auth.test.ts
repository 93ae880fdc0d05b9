// NTLM for the SMB2 layer: MD4 and RC4 (RFC 1320's and the usual vectors; MD4 against hash-wasm
// on random input), NTLMv2 against [MS-NLMP] 4.2.4's worked example, both sides of a full
// NEGOTIATE / CHALLENGE / AUTHENTICATE exchange through the NTLMSSP codecs, a wrong password and a
// wrong user refused, key exchange and the MIC.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';
import { md4 as md4Wasm } from 'hash-wasm';

import { smb2 } from '../framing/index.js';
import { md4, rc4 } from '../src/smb2/auth/legacy-crypto.js';
import { mutationsDecodeOrFail } from './support.js';
import { exportedSessionKey, ntHash, ntlmMic, ntlmv2Response, ntowfv2, verifyNtlmv2 } from '../src/smb2/auth/ntlm.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

describe('MD4 and RC4 (NTLM needs both; OpenSSL 3 keeps them in its legacy provider)', () => {
  it('RFC 1320 test suite', () => {
    const v: Array<[string, string]> = [
      ['', '31d6cfe0d16ae931b73c59d7e0c089c0'], ['a', 'bde52cb31de33e46245e05fbdbd6fb24'], ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
      ['message digest', 'd9130a8164549fe818874806e1c7014b'], ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
      ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', 'e33b4ddc9c38f2199c3e7b164fcc0536'],
    ];
    for (const [m, d] of v) assert.equal(hex(md4(Buffer.from(m))), d, JSON.stringify(m));
  });

  it('MD4 agrees with hash-wasm on random input of every length around the block edges', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (data) => {
      assert.equal(hex(md4(data)), await md4Wasm(data));
    }), { seed: 41, numRuns: 300 });
  });

  it('RC4: known vectors, and applying it twice gives the plaintext back', () => {
    assert.equal(hex(rc4(Buffer.from('Key'), Buffer.from('Plaintext'))), 'bbf316e8d940af0ad3');
    assert.equal(hex(rc4(Buffer.from('Wiki'), Buffer.from('pedia'))), '1021bf0420');
    const k = unhex('0123456789abcdef0123456789abcdef'), m = Uint8Array.from({ length: 100 }, (_, i) => i);
    assert.deepEqual(rc4(k, rc4(k, m)), m);
  });
});

describe('NTLMv2 ([MS-NLMP] 3.3.2)', () => {
  // [MS-NLMP] 4.2.4: User "User", UserDom "Domain", Passwd "Password", ServerChallenge
  // 0123456789abcdef, ClientChallenge aa * 8, Time 0, TargetInfo: NbDomainName "Domain",
  // NbComputerName "Server"
  const targetInfo = smb2.encodeAvPairs([
    { id: smb2.MSV_AV.NB_DOMAIN_NAME, value: smb2.utf16le('Domain') }, { id: smb2.MSV_AV.NB_COMPUTER_NAME, value: smb2.utf16le('Server') },
  ]);
  const serverChallenge = unhex('0123456789abcdef');

  it('the worked example of [MS-NLMP] 4.2.4: NT hash, NTOWFv2, NTProofStr, SessionBaseKey', () => {
    const hash = ntHash('Password');
    assert.equal(hex(hash), 'a4f49c406510bdcab6824ee7c30fd852');
    assert.equal(hex(ntowfv2(hash, 'User', 'Domain')), '0c868a403bfd7a93a3001ef22ef02e3f');
    const r = ntlmv2Response({ hash, user: 'User', domain: 'Domain', serverChallenge, targetInfo, clientChallenge: unhex('aaaaaaaaaaaaaaaa'), time: 0n });
    assert.equal(hex(r.ntChallengeResponse.subarray(0, 16)), '68cd0ab851e51c96aabc927bebef6a1c');
    assert.equal(hex(r.sessionBaseKey), '8de40ccadbc14a82f15cb0ad0de95ca3');
    // and the server, holding the same hash, accepts it with the same key
    const key = verifyNtlmv2({ hash, user: 'User', domain: 'Domain', serverChallenge, ntChallengeResponse: r.ntChallengeResponse });
    assert.equal(key && hex(key), '8de40ccadbc14a82f15cb0ad0de95ca3');
  });

  it('a full exchange through the NTLMSSP codecs; a wrong password, a wrong user and a replayed challenge are refused', () => {
    const negotiate = smb2.encodeNtlmNegotiate(smb2.NTLMSSP.NEGOTIATE_UNICODE | smb2.NTLMSSP.NEGOTIATE_NTLM | smb2.NTLMSSP.NEGOTIATE_KEY_EXCH | smb2.NTLMSSP.NEGOTIATE_128);
    const n = smb2.decodeNtlmNegotiate(negotiate);
    assert.ok(n.flags & smb2.NTLMSSP.NEGOTIATE_KEY_EXCH);
    const challengeBytes = smb2.encodeNtlmChallenge({
      flags: n.flags | smb2.NTLMSSP.NEGOTIATE_TARGET_INFO, targetName: 'SMBDIRECT', serverChallenge: unhex('1122334455667788'),
      targetInfo: [{ id: smb2.MSV_AV.NB_COMPUTER_NAME, value: smb2.utf16le('SMBDIRECT') }, { id: smb2.MSV_AV.TIMESTAMP, value: new Uint8Array(8) }],
    });
    const c = smb2.decodeNtlmChallenge(challengeBytes);
    assert.equal(c.targetName, 'SMBDIRECT');
    assert.deepEqual(c.targetInfo.map((p) => p.id), [smb2.MSV_AV.NB_COMPUTER_NAME, smb2.MSV_AV.TIMESTAMP]);
    // client
    const r = ntlmv2Response({ hash: ntHash('secret'), user: 'alice', domain: 'WORKGROUP', serverChallenge: c.serverChallenge, targetInfo: c.targetInfoBytes });
    const randomKey = unhex('00112233445566778899aabbccddeeff');
    const auth = smb2.encodeNtlmAuthenticate({
      flags: c.flags, lmChallengeResponse: r.lmChallengeResponse, ntChallengeResponse: r.ntChallengeResponse, domain: 'WORKGROUP', user: 'alice',
      workstation: 'NODE', encryptedRandomSessionKey: rc4(r.sessionBaseKey, randomKey),
    });
    const mic = ntlmMic(randomKey, negotiate, challengeBytes, auth);
    auth.set(mic, 72);
    // server
    const a = smb2.decodeNtlmAuthenticate(auth);
    assert.equal(a.user, 'alice');
    assert.equal(a.domain, 'WORKGROUP');
    assert.equal(a.workstation, 'NODE');
    const base = verifyNtlmv2({ hash: ntHash('secret'), user: a.user, domain: a.domain, serverChallenge: c.serverChallenge, ntChallengeResponse: a.ntChallengeResponse });
    assert.ok(base, 'the right password');
    const exported = exportedSessionKey(base, (a.flags & smb2.NTLMSSP.NEGOTIATE_KEY_EXCH) !== 0, a.encryptedRandomSessionKey);
    assert.deepEqual(exported, randomKey, 'both sides hold the client\'s random session key');
    assert.deepEqual(Uint8Array.from(a.mic!), Uint8Array.from(ntlmMic(exported, negotiate, challengeBytes, auth)), 'the MIC checks');
    assert.equal(verifyNtlmv2({ hash: ntHash('Secret'), user: a.user, domain: a.domain, serverChallenge: c.serverChallenge, ntChallengeResponse: a.ntChallengeResponse }), undefined, 'wrong password');
    assert.equal(verifyNtlmv2({ hash: ntHash('secret'), user: 'bob', domain: a.domain, serverChallenge: c.serverChallenge, ntChallengeResponse: a.ntChallengeResponse }), undefined, 'another user');
    assert.equal(verifyNtlmv2({ hash: ntHash('secret'), user: a.user, domain: a.domain, serverChallenge: unhex('0000000000000000'), ntChallengeResponse: a.ntChallengeResponse }), undefined, 'another challenge');
    assert.equal(verifyNtlmv2({ hash: ntHash('secret'), user: a.user, domain: a.domain, serverChallenge: c.serverChallenge, ntChallengeResponse: new Uint8Array(24) }), undefined, 'NTLMv1-sized');
    // the user name is case-insensitive, as Windows has it (NTOWFv2 upper-cases it)
    assert.ok(verifyNtlmv2({ hash: ntHash('secret'), user: 'ALICE', domain: a.domain, serverChallenge: c.serverChallenge, ntChallengeResponse: a.ntChallengeResponse }));
  });

  it('property: any mutation or truncation of an AUTHENTICATE message decodes or fails with ERR_NTLM_BAD_MESSAGE', () => {
    const auth = smb2.encodeNtlmAuthenticate({
      flags: 0x628a8215, lmChallengeResponse: new Uint8Array(24), ntChallengeResponse: new Uint8Array(60).fill(7), domain: 'D', user: 'u',
      workstation: 'W', encryptedRandomSessionKey: new Uint8Array(16),
    });
    mutationsDecodeOrFail(auth, (b) => smb2.decodeNtlmAuthenticate(b), (err) => assert.equal((err as { code?: string }).code, 'ERR_NTLM_BAD_MESSAGE', (err as Error).message), 42);
  });
});
