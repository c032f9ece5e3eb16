/**
 * Rotations of the control plane's signing key. The current key signs a statement naming its
 * successor; agents that pinned the current key follow that statement and no other, so a key the
 * control plane merely starts presenting is never trusted.
 */
import { encodeKey, keyFingerprint, signStatement } from '@airlock/identity';
import type { SignedStatement } from '@airlock/protocol';
import { appendAudit } from './audit-log.ts';
import type { Signer } from './signer.ts';
import type { Database } from './database.ts';

export async function recordKeyRotation(db: Database, current: Signer, nextPublicKey: Uint8Array, now: Date = new Date()): Promise<SignedStatement> {
  const statement = signStatement(
    'rotation',
    { v: 1, previousKey: encodeKey(current.publicKey), nextKey: encodeKey(nextPublicKey), at: now.toISOString() },
    (message) => current.sign(message),
  );
  await db.transaction(async (tx) => {
    await tx.query('INSERT INTO control_plane_key_rotations (previous_key, next_key, statement) VALUES ($1, $2, $3)', [
      encodeKey(current.publicKey),
      encodeKey(nextPublicKey),
      JSON.stringify(statement),
    ]);
    await appendAudit(tx, {
      tenantId: null,
      actor: { type: 'system', id: null },
      action: 'control-plane-key-rotate',
      target: keyFingerprint(nextPublicKey),
      outcome: 'success',
      sourceIp: null,
      meta: { previous: keyFingerprint(current.publicKey), next: keyFingerprint(nextPublicKey) },
    }, now);
  });
  return statement;
}
