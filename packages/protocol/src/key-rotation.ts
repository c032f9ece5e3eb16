/**
 * Agent key rotation without re-enrollment. The request is signed with the agent's current key,
 * like every agent request; its body carries a proof of possession: a signature by the NEW key over
 * a statement that binds the agent id, the new public key, a time and a nonce, so a new key can be
 * neither someone else's nor replayed from an earlier rotation.
 */
import { z } from 'zod';
import { NONCE_PATTERN } from './signing.ts';

export const KEY_ROTATION_VERSION = 'airlock-key-rotation-v1';

export interface KeyRotationStatement {
  agentId: string;
  /** Base64 of the new 32-byte Ed25519 public key. */
  newPublicKey: string;
  /** Unix seconds. */
  created: number;
  nonce: string;
}

export function keyRotationStatement(parts: KeyRotationStatement): string {
  return [KEY_ROTATION_VERSION, parts.agentId, parts.newPublicKey, String(parts.created), parts.nonce].join('\n');
}

export const rotateKeyInput = z.strictObject({
  newPublicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected a base64 Ed25519 public key'),
  created: z.number().int().positive(),
  nonce: z.string().regex(NONCE_PATTERN, 'expected 16 to 64 base64url characters'),
  /** Base64 Ed25519 signature (64 bytes) by the new key over `keyRotationStatement`. */
  proof: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected a base64 Ed25519 signature'),
});
export type RotateKeyInput = z.infer<typeof rotateKeyInput>;

export const rotateKeyOutput = z.strictObject({ agentId: z.uuid(), rotatedAt: z.iso.datetime() });
