/**
 * Signed checkpoints of the audit chain, kept in `audit_checkpoints`, and whole-chain verification
 * against them. The server signs the head periodically and `airlock audit checkpoint` on demand;
 * `airlock audit verify` reads the chain page by page and checks it against every checkpoint.
 */
import { type AuditVerification, type Checkpoint, keyIdOf, signCheckpoint, verifyAuditPages } from '@airlock/audit';
import { readAuditPages } from './audit-log.ts';
import { type Signer, verifierFor } from './signer.ts';
import type { Queryable } from './storage/database.ts';

interface CheckpointRow {
  seq: string;
  hash: string;
  at: Date;
  key_id: string;
  signature: string;
}

function fromRow(row: CheckpointRow): Checkpoint {
  return { version: 1, seq: Number(row.seq), hash: row.hash, at: row.at.toISOString(), keyId: row.key_id, signature: row.signature };
}

// `seq` comes back as text (a bigint may exceed 2^53 in theory), so ordering names the table column.
const COLUMNS = 'seq::text AS seq, hash, at, key_id, signature';

/**
 * Signs the current head of the chain. Returns null for an empty chain, and the existing
 * checkpoint (`created: false`) when this key already signed this head.
 */
export async function createCheckpoint(
  db: Queryable,
  signer: Signer,
  now: Date = new Date(),
): Promise<{ checkpoint: Checkpoint; created: boolean } | null> {
  // The head row is only written together with its event, so this read sees a committed, whole chain.
  const [head] = await db.query<{ seq: string; hash: string }>('SELECT seq::text AS seq, hash FROM audit_head WHERE singleton');
  if (!head || head.seq === '0') return null;
  const checkpoint = signCheckpoint({ seq: Number(head.seq), hash: head.hash }, now, signer.publicKey, (message) => signer.sign(message));
  const inserted = await db.query(
    `INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (seq, key_id) DO NOTHING RETURNING seq`,
    [checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.keyId, checkpoint.signature],
  );
  if (inserted.length > 0) return { checkpoint, created: true };
  const [existing] = await db.query<CheckpointRow>(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE seq = $1 AND key_id = $2`, [
    checkpoint.seq,
    checkpoint.keyId,
  ]);
  if (!existing) throw new Error('checkpoint vanished after a conflicting insert');
  return { checkpoint: fromRow(existing), created: false };
}

/** Checkpoints, newest first; `beforeSeq` pages backwards. */
export async function listCheckpoints(db: Queryable, options: { beforeSeq?: number; limit: number }): Promise<Checkpoint[]> {
  const rows = await db.query<CheckpointRow>(
    `SELECT ${COLUMNS} FROM audit_checkpoints WHERE ($1::bigint IS NULL OR audit_checkpoints.seq < $1) ORDER BY audit_checkpoints.seq DESC, key_id LIMIT $2`,
    [options.beforeSeq ?? null, options.limit],
  );
  return rows.map(fromRow);
}

/** Every checkpoint signed by `keyId`, oldest first. One per signed head, so a few per hour at most. */
async function checkpointsBy(db: Queryable, keyId: string): Promise<Checkpoint[]> {
  const rows = await db.query<CheckpointRow>(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE key_id = $1 ORDER BY audit_checkpoints.seq`, [keyId]);
  return rows.map(fromRow);
}

/**
 * The whole chain from genesis, read in pages, against every stored checkpoint of `publicKey`.
 * Checkpoints of other keys (a rotated key) are not this key's claims and are left out.
 */
export async function verifyStoredAudit(
  db: Queryable,
  publicKey: Uint8Array,
  options: { pageSize?: number } = {},
): Promise<AuditVerification> {
  const checkpoints = await checkpointsBy(db, keyIdOf(publicKey));
  return verifyAuditPages(readAuditPages(db, options.pageSize), checkpoints, publicKey, verifierFor(publicKey));
}
