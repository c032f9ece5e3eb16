import { describe, expect, it } from 'vitest';
import { generateKeyPair, keyRotationProof, verifyKeyRotationProof } from './index.ts';

const AGENT = '3f2c6a1e-0b7d-4c1a-9e55-1d2f3a4b5c6d';
const OTHER = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

describe('key rotation proof', () => {
  it('verifies for the agent and the key it names, and for nothing else', () => {
    const next = generateKeyPair();
    const proof = keyRotationProof(next, AGENT);
    expect(verifyKeyRotationProof(proof, AGENT)).toBe(true);
    expect(verifyKeyRotationProof(proof, OTHER)).toBe(false);
    expect(verifyKeyRotationProof({ ...proof, created: proof.created + 1 }, AGENT)).toBe(false);
    expect(verifyKeyRotationProof({ ...proof, nonce: `${proof.nonce}x` }, AGENT)).toBe(false);
    // A proof signed by one key cannot vouch for another key.
    const stranger = keyRotationProof(generateKeyPair(), AGENT);
    expect(verifyKeyRotationProof({ ...proof, newPublicKey: stranger.newPublicKey }, AGENT)).toBe(false);
    expect(verifyKeyRotationProof({ ...proof, newPublicKey: 'not a key' }, AGENT)).toBe(false);
  });
});
