import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { ed25519PublicKey, generateKeyPair, signDetached, verifyDetached } from './index.ts';

/** The order of the Ed25519 base point. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return copy;
}

/** The same signature with S + L in place of S: the same point, a different encoding. */
function malleate(signature: Uint8Array): Uint8Array {
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i] ?? 0);
  const bigger = s + L;
  const copy = Uint8Array.from(signature);
  for (let i = 0; i < 32; i++) copy[32 + i] = Number((bigger >> BigInt(8 * i)) & 0xffn);
  return copy;
}

describe('node:crypto verification against tweetnacl', () => {
  it('agrees on tweetnacl signatures and on every alteration of them', () => {
    for (let round = 0; round < 24; round++) {
      const pair = generateKeyPair();
      const other = generateKeyPair();
      const message = randomBytes(round * 7);
      const signature = signDetached(message, pair.secretKey);
      const keyObject = ed25519PublicKey(pair.publicKey);
      expect(keyObject).not.toBeNull();
      const cases: Array<[Uint8Array, Uint8Array, Uint8Array]> = [
        [message, signature, pair.publicKey],
        [message, signature, other.publicKey],
        [message, flipBit(signature, round * 8 + (round % 8)), pair.publicKey],
        [message, flipBit(signature, 511 - round), pair.publicKey],
        [message, signature, flipBit(pair.publicKey, round * 4)],
        [message, signature.slice(1), pair.publicKey],
        [message, Uint8Array.from([...signature, 0]), pair.publicKey],
        [message, signature, pair.publicKey.slice(1)],
        [message, randomBytes(64), pair.publicKey],
        [randomBytes(32), randomBytes(64), randomBytes(32)],
      ];
      if (message.length > 0) cases.push([flipBit(message, round % (message.length * 8)), signature, pair.publicKey]);
      for (const [m, s, k] of cases) {
        const byNacl = s.length === 64 && k.length === 32 && nacl.sign.detached.verify(m, s, k);
        expect(verifyDetached(m, s, k)).toBe(byNacl);
      }
      expect(verifyDetached(message, signature, pair.publicKey)).toBe(true);
      if (keyObject) {
        expect(verifyDetached(message, signature, keyObject)).toBe(true);
        expect(verifyDetached(Buffer.concat([message, Buffer.from('x')]), signature, keyObject)).toBe(false);
      }
    }
  });

  it('refuses keys and signatures of the wrong length, and keys that are not points', () => {
    const pair = generateKeyPair();
    const message = Buffer.from('heartbeat');
    const signature = signDetached(message, pair.secretKey);
    expect(ed25519PublicKey(pair.publicKey.slice(0, 31))).toBeNull();
    expect(ed25519PublicKey(new Uint8Array(33))).toBeNull();
    expect(verifyDetached(message, signature.slice(0, 63), pair.publicKey)).toBe(false);
    expect(verifyDetached(message, new Uint8Array(0), pair.publicKey)).toBe(false);
    expect(verifyDetached(message, signature, new Uint8Array(32).fill(0xff))).toBe(false);
  });

  it('refuses a malleated signature that tweetnacl would accept', () => {
    const pair = generateKeyPair();
    const message = Buffer.from('heartbeat');
    const signature = signDetached(message, pair.secretKey);
    const malleated = malleate(signature);
    // S + L still fits tweetnacl's top-bits check whenever it stays below 2^253.
    if (((malleated[63] ?? 0) & 0xe0) === 0) expect(nacl.sign.detached.verify(message, malleated, pair.publicKey)).toBe(true);
    expect(verifyDetached(message, malleated, pair.publicKey)).toBe(false);
  });
});
