import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { type AuditEventInput, chainProofHolds, GENESIS_HASH, signCheckpoint, verifyChain } from '@airlock/audit';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { chainCheckpoints, legacyHead } from './checkpoints.ts';
import { signerFromSecretKey, verifierFor } from './signer.ts';
import { splitStatements } from './migrate.ts';
import { appendAudit, type BinaryCopy, connectPostgres, createCheckpoint, type Database, migrate, type Queryable, readChain, recordAudit, transactionQueryable, verifyStoredAudit } from './index.ts';

const signer = signerFromSecretKey(generateKeyPair().secretKey);
const MIGRATIONS = path.join(path.dirname(createRequire(import.meta.url).resolve('@airlock/storage/package.json')), 'migrations');
const LAST_GLOBAL_CHAIN_MIGRATION = 14;

/** The schema as it was before per-tenant chains: every migration up to 0014, as `migrate` applies them. */
async function migrateUpTo(db: Database, last: number): Promise<void> {
  await db.execScript('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
  const files = (await readdir(MIGRATIONS)).filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name)).sort();
  for (const file of files.filter((name) => Number(name.slice(0, 4)) <= last)) {
    const sql = await readFile(path.join(MIGRATIONS, file), 'utf8');
    await db.transaction(async (tx) => {
      await tx.query("SELECT set_config('airlock.system', 'on', true)");
      for (const statement of splitStatements(sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [Number(file.slice(0, 4)), file]);
    });
  }
}

function event(i: number, tenantId: string | null): AuditEventInput {
  return { tenantId, actor: { type: 'system', id: 'test' }, action: 'test-event', target: `thing:${i}`, outcome: 'success', sourceIp: null, meta: { i } };
}

/** A client in one transaction that is always rolled back, as the superuser with triggers off. */
async function tampered<T>(client: pg.Client, tamper: (tx: Queryable) => Promise<void>, check: (tx: Queryable & BinaryCopy) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query('SET LOCAL session_replication_role = replica');
    const tx = transactionQueryable(client);
    await tamper(tx);
    return await check(tx);
  } finally {
    await client.query('ROLLBACK');
  }
}

describe('moving an existing audit trail to per-tenant chains', () => {
  it('keeps the checkpointed global chain verifiable, starts every chain from its frozen head, and catches tampering on either side', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const db = connectPostgres(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrateUpTo(db, LAST_GLOBAL_CHAIN_MIGRATION);
      const [a, b] = [randomUUID(), randomUUID()];
      // The old schema: one chain for everyone, checkpointed at 9 by the v1 format, then 3 records more.
      for (let i = 0; i < 12; i++) await recordAudit(db, event(i, [a, b, null][i % 3] ?? null));
      const [head9] = await db.query<{ hash: string }>('SELECT hash FROM audit_events WHERE seq = 9');
      if (!head9) throw new Error('no record 9');
      const v1 = signCheckpoint({ seq: 9, hash: head9.hash }, new Date(), signer.publicKey, (message) => signer.sign(message));
      await db.query('INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5)', [v1.seq, v1.hash, v1.at, v1.keyId, v1.signature]);

      expect((await migrate(db)).applied[0]).toBe('0015_per_tenant_audit_chains.sql');
      const legacy = await legacyHead(db);
      expect(legacy.seq).toBe(12);
      // Each chain starts from the frozen head: seq 13, linked to the legacy chain's last hash.
      const firstA = await recordAudit(db, event(100, a));
      const firstSystem = await recordAudit(db, event(101, null));
      expect(firstA).toMatchObject({ seq: 13, prevHash: legacy.hash });
      expect(firstSystem).toMatchObject({ seq: 13, prevHash: legacy.hash });
      for (let i = 0; i < 4; i++) await recordAudit(db, event(102 + i, a));
      await recordAudit(db, event(110, b));
      const tree = await createCheckpoint(db, signer);
      if (!tree) throw new Error('no checkpoint');
      expect(tree.checkpoint).toMatchObject({ size: 3, legacy });
      for (let i = 0; i < 2; i++) await recordAudit(db, event(120 + i, a));

      const verify = (tx: Queryable & BinaryCopy) => verifyStoredAudit(tx, signer.publicKey, { pageSize: 4 });
      expect(await verify(db)).toMatchObject({ ok: true, count: 12 + 9, chains: 3, checkpoints: 2, legacy });

      // A tenant's own view: its leaf at 17 under the signed root, and its chain from the frozen head.
      const [proven] = await chainCheckpoints(db, a, [tree.checkpoint]);
      if (!proven?.proof) throw new Error('no proof');
      expect(proven.proof.leaf).toMatchObject({ tenantId: a, seq: 17 });
      expect(chainProofHolds(tree.checkpoint, proven.proof, signer.publicKey, verifierFor(signer.publicKey))).toBe(true);
      expect(verifyChain(await readChain(db, a, legacy.seq, 100, 17), { after: legacy })).toMatchObject({ ok: true, head: { seq: 17, hash: proven.proof.leaf.hash } });

      const cases: Record<string, (tx: Queryable) => Promise<void>> = {
        'edit a legacy record under the v1 checkpoint': async (tx) => void (await tx.query("UPDATE audit_events SET target = 'forged' WHERE seq = 4")),
        'edit a legacy record after the v1 checkpoint': async (tx) => void (await tx.query("UPDATE audit_events SET target = 'forged' WHERE seq = 11")),
        'delete the last legacy record': async (tx) => void (await tx.query('DELETE FROM audit_events WHERE seq = 12')),
        'move the frozen head back to the v1 checkpoint': async (tx) => {
          await tx.query('DELETE FROM audit_events WHERE seq > 9 AND seq <= 12');
          await tx.query('UPDATE audit_head SET seq = 9, hash = $1', [head9.hash]);
        },
        "edit a tenant's new record": async (tx) => void (await tx.query("UPDATE audit_events SET target = 'forged' WHERE tenant_id = $1 AND seq = 14", [a])),
        "delete a tenant's checkpointed records and move its head back": async (tx) => {
          await tx.query('DELETE FROM audit_events WHERE tenant_id = $1 AND seq > 15', [a]);
          await tx.query('UPDATE audit_chain_heads SET seq = 15, hash = (SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = 15) WHERE tenant_id = $1', [a]);
        },
        'reorder two records of the system chain': async (tx) => {
          await appendAudit(tx, event(130, null));
          await tx.query('UPDATE audit_events SET seq = -1 WHERE tenant_id IS NULL AND seq = 13');
          await tx.query('UPDATE audit_events SET seq = 13 WHERE tenant_id IS NULL AND seq = 14');
          await tx.query('UPDATE audit_events SET seq = 14 WHERE tenant_id IS NULL AND seq = -1');
        },
        "give one tenant's record to another": async (tx) => void (await tx.query('UPDATE audit_events SET tenant_id = $2, seq = 99 WHERE tenant_id = $1 AND seq = 16', [a, b])),
      };
      for (const [name, tamper] of Object.entries(cases)) {
        expect({ name, result: await tampered(client, tamper, verify) }).toMatchObject({ name, result: { ok: false } });
      }
      // All rolled back: the trail is whole again, and the frozen head refuses to move.
      expect(await verify(db)).toMatchObject({ ok: true });
      await expect(db.query('UPDATE audit_head SET seq = 0, hash = $1', [GENESIS_HASH])).rejects.toThrow(/append-only/);
    } finally {
      await client.end();
      await db.close();
    }
  });
});
