/** The agent's side of key rotation: a proof that it holds the new key, and its check on the control plane. */
import { keyRotationStatement, type RotateKeyInput } from '@airlock/protocol';
import { type AgentKeyPair, decodePublicKey, encodeKey, newNonce, signDetached, verifyDetached } from './keys.ts';

/** The body of `agent.rotateKey`: the new public key and its signature over the rotation statement. */
export function keyRotationProof(newKeyPair: AgentKeyPair, agentId: string, now: Date = new Date()): RotateKeyInput {
  const parts = { agentId, newPublicKey: encodeKey(newKeyPair.publicKey), created: Math.floor(now.getTime() / 1000), nonce: newNonce() };
  const proof = signDetached(Buffer.from(keyRotationStatement(parts)), newKeyPair.secretKey);
  return { newPublicKey: parts.newPublicKey, created: parts.created, nonce: parts.nonce, proof: Buffer.from(proof).toString('base64') };
}

/** Whether `input.proof` is the new key's signature over the statement for `agentId`. */
export function verifyKeyRotationProof(input: RotateKeyInput, agentId: string): boolean {
  let publicKey: Uint8Array;
  try {
    publicKey = decodePublicKey(input.newPublicKey);
  } catch {
    return false;
  }
  const statement = keyRotationStatement({ agentId, newPublicKey: input.newPublicKey, created: input.created, nonce: input.nonce });
  return verifyDetached(Buffer.from(statement), Buffer.from(input.proof, 'base64'), publicKey);
}
