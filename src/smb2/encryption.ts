// SMB3 encryption ([MS-SMB2] 3.1.4.3, 3.3.4.1.4, 3.3.5.2.1.1): the session's two keys (3.1.4.2) and
// the AEAD (AES-128/256 in CCM or GCM) over a message in its TRANSFORM_HEADER. Each direction has
// its own key; a sender's nonces never repeat under one key (a 64-bit counter in every nonce).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

import { SMB2_DIALECT, SMB2_CIPHER } from '../../framing/smb2/negotiate.js';
import {
  SMB2_TRANSFORM_AAD_OFFSET, SMB2_TRANSFORM_HEADER_SIZE, type Smb2TransformHeader, encodeSmb2TransformHeader,
} from '../../framing/smb2/transform.js';
import { smb3Kdf } from './signing.js';

/** The ciphers this server offers, in its order of preference (Samba's: GCM is the faster one). */
export const SERVER_CIPHERS: readonly number[] = [SMB2_CIPHER.AES_128_GCM, SMB2_CIPHER.AES_128_CCM, SMB2_CIPHER.AES_256_GCM, SMB2_CIPHER.AES_256_CCM];

const NAMES: Readonly<Record<number, string>> = {
  [SMB2_CIPHER.AES_128_CCM]: 'aes-128-ccm', [SMB2_CIPHER.AES_128_GCM]: 'aes-128-gcm',
  [SMB2_CIPHER.AES_256_CCM]: 'aes-256-ccm', [SMB2_CIPHER.AES_256_GCM]: 'aes-256-gcm',
};

const isCcm = (cipher: number) => cipher === SMB2_CIPHER.AES_128_CCM || cipher === SMB2_CIPHER.AES_256_CCM;
const keyBytes = (cipher: number) => (cipher === SMB2_CIPHER.AES_256_CCM || cipher === SMB2_CIPHER.AES_256_GCM ? 32 : 16);
/** AES-CCM takes an 11-byte nonce, AES-GCM a 12-byte one (2.2.41). */
const nonceBytes = (cipher: number) => (isCcm(cipher) ? 11 : 12);

const nul = (s: string) => Buffer.from(`${s}\0`, 'latin1');

/** A message that fails its tag (forged or damaged: the server ends the connection it came on). */
export class DecryptError extends Error {}

/** One session's encryption state: a key each way and the counter of the nonces it sends. The
 * server's side by default; a client's (`side: 'client'`) swaps the keys. */
export class SessionCipher {
  readonly cipher: number;
  /** What this side sends with (a server: 3.1.1 "SMBS2CCipherKey", 3.0 "ServerOut"). */
  readonly #encryptKey: Uint8Array;
  /** What the peer sends with (a server: 3.1.1 "SMBC2SCipherKey", 3.0 "ServerIn "). */
  readonly #decryptKey: Uint8Array;
  /** The nonce's bytes past the counter: random per session, so two servers' sessions differ too. */
  readonly #salt: Uint8Array;
  #counter = 0n;

  constructor(sessionKey: Uint8Array, dialect: number, cipher: number, preauthHash?: Uint8Array, side: 'server' | 'client' = 'server') {
    if (!NAMES[cipher]) throw new RangeError(`unknown cipher ${cipher}`);
    this.cipher = cipher;
    const bytes = keyBytes(cipher);
    let toClient: Uint8Array, toServer: Uint8Array;
    if (dialect === SMB2_DIALECT.SMB311) {
      if (preauthHash?.length !== 64) throw new RangeError('3.1.1 encryption keys need the 64-byte preauth integrity hash');
      toClient = smb3Kdf(sessionKey, nul('SMBS2CCipherKey'), preauthHash, bytes);
      toServer = smb3Kdf(sessionKey, nul('SMBC2SCipherKey'), preauthHash, bytes);
    } else {
      toClient = smb3Kdf(sessionKey, nul('SMB2AESCCM'), nul('ServerOut'), bytes);
      toServer = smb3Kdf(sessionKey, nul('SMB2AESCCM'), nul('ServerIn '), bytes);
    }
    [this.#encryptKey, this.#decryptKey] = side === 'server' ? [toClient, toServer] : [toServer, toClient];
    this.#salt = randomBytes(nonceBytes(cipher) - 8);
  }

  /** `message` (one message or a compound chain) in a TRANSFORM_HEADER, encrypted. */
  encrypt(message: Uint8Array, sessionId: bigint): Uint8Array {
    const nonce = Buffer.alloc(nonceBytes(this.cipher));
    nonce.writeBigUInt64LE(this.#counter++, 0);
    nonce.set(this.#salt, 8);
    const out = new Uint8Array(SMB2_TRANSFORM_HEADER_SIZE + message.length);
    encodeSmb2TransformHeader(out, { nonce, originalMessageSize: message.length, sessionId });
    const aad = out.subarray(SMB2_TRANSFORM_AAD_OFFSET, SMB2_TRANSFORM_HEADER_SIZE);
    const name = NAMES[this.cipher]!;
    const c = isCcm(this.cipher)
      ? createCipheriv(name as 'aes-128-ccm', this.#encryptKey, nonce, { authTagLength: 16 })
      : createCipheriv(name as 'aes-128-gcm', this.#encryptKey, nonce);
    c.setAAD(aad, { plaintextLength: message.length });
    const body = c.update(message);
    c.final();
    out.set(body, SMB2_TRANSFORM_HEADER_SIZE);
    out.set(c.getAuthTag(), 4);
    return out;
  }

  /** The message the peer sent in `t`; a DecryptError when its tag does not check. */
  decrypt(t: Smb2TransformHeader): Uint8Array {
    const name = NAMES[this.cipher]!;
    const nonce = t.nonce.subarray(0, nonceBytes(this.cipher));
    try {
      const d = isCcm(this.cipher)
        ? createDecipheriv(name as 'aes-128-ccm', this.#decryptKey, nonce, { authTagLength: 16 })
        : createDecipheriv(name as 'aes-128-gcm', this.#decryptKey, nonce);
      d.setAuthTag(t.signature);
      d.setAAD(t.aad, { plaintextLength: t.ciphertext.length });
      const plain = d.update(t.ciphertext);
      d.final();
      return new Uint8Array(plain.buffer, plain.byteOffset, plain.length);
    } catch (err) {
      throw new DecryptError(`an encrypted message failed its check (${(err as Error).message})`);
    }
  }
}

/** The cipher a server picks from a client's list ([MS-SMB2] 3.3.5.4: one both support; its own
 * preference decides), 0 when there is none in common. */
export function chooseCipher(offered: readonly number[], supported: readonly number[] = SERVER_CIPHERS): number {
  return supported.find((c) => offered.includes(c)) ?? 0;
}
