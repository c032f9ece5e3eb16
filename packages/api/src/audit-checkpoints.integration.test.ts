import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { type AuditEventInput, type AuditRecord, chainEvent, chainProofHolds, type ChainHead, hashEvent, treeCheckpointSignedBy, verifyChain } from '@airlock/audit';
import { encodeKey, generateKeyPair, keyFingerprint } from '@airlock/identity';
import { createTestDatabase, seededRandom } from '@airlock/testing';
import { createApiKey } from '@airlock/auth';
import { createContext } from './context.ts';
import { appRouter } from './router.ts';
import { type BinaryCopy, signerFromSecretKey, transactionQueryable, verifierFor } from '@airlock/storage';
import { connectAsAppRole } from './storage/app-role.fixture.ts';
import {
  appendAudit,
  bootstrapTenant,
  chainCheckpoints,
  connectPostgres,
  createCheckpoint,
  Dispatcher,
  migrate,
  openPglite,
  type Queryable,
  recordAudit,
  verifyStoredAudit,
  writeAuditRecords,
} from './index.ts';


const TENANT = '7f0c1a1e-9a4e-4c1b-8d1e-1a2b3c4d5e6f';
const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

const scratch: string[] = [];
afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

const backends = {
  postgres: async () => connectPostgres(await createTestDatabase(inject('postgresUrl'))),
  pglite: async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-pglite-'));
    scratch.push(dir);
    return openPglite(dir);
  },
};

function event(i: number, overrides: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    tenantId: null,
    actor: { type: 'system', id: 'test' },
    action: 'test-event',
    target: `thing:${i}`,
    outcome: 'success',
    sourceIp: null,
    meta: { i, fingerprints: ['ABCDEF0123456789'], nested: { zeta: 1, alpha: 'é"\\' } },
    ...overrides,
  };
}

describe.each(Object.entries(backends))('audit checkpoints on %s', (_name, open) => {
  it('signs the head, skips an unmoved head, and verifies the chain page by page against every checkpoint', async () => {
    const db = await open();
    try {
      await migrate(db);
      expect(await createCheckpoint(db, signer)).toBeNull();
      for (let i = 0; i < 7; i++) await recordAudit(db, event(i));
      const first = await createCheckpoint(db, signer, new Date('2025-01-01T00:00:00.123Z'));
      expect(first).toMatchObject({ created: true, checkpoint: { version: 2, number: 1, size: 1, keyId: signer.keyId, at: '2025-01-01T00:00:00.123Z' } });
      expect(await createCheckpoint(db, signer)).toEqual({ created: false, checkpoint: first?.checkpoint });
      for (let i = 7; i < 12; i++) await recordAudit(db, event(i));
      await recordAudit(db, event(12, { tenantId: TENANT }));
      const second = await createCheckpoint(db, signer);
      expect(second?.checkpoint).toMatchObject({ number: 2, size: 2 });
      if (!second) throw new Error('no checkpoint');
      expect(treeCheckpointSignedBy(second.checkpoint, signer.publicKey, verifierFor(signer.publicKey))).toBe(true);
      // The system chain has its own sequence: the tenant's event took none of its numbers.
      const [proven] = await chainCheckpoints(db, null, [second.checkpoint]);
      expect(proven?.proof?.leaf).toMatchObject({ tenantId: null, seq: 12 });
      if (!proven?.proof) throw new Error('no proof');
      expect(chainProofHolds(second.checkpoint, proven.proof, signer.publicKey, verifierFor(signer.publicKey))).toBe(true);

      expect(await verifyStoredAudit(db, signer.publicKey, { pageSize: 5 })).toMatchObject({ ok: true, count: 13, chains: 2, checkpoints: 2 });
      // Another key's checkpoints are not claims of this key.
      const other = generateKeyPair();
      expect(await verifyStoredAudit(db, other.publicKey)).toMatchObject({ ok: true, count: 13, checkpoints: 0 });
      await expect(db.query('DELETE FROM audit_tree_checkpoints')).rejects.toThrow(/append-only/);
      await expect(db.query('DELETE FROM audit_checkpoint_leaves')).rejects.toThrow(/append-only/);
    } finally {
      await db.close();
    }
  });

  it('chains in the database exactly as hashEvent does, for odd text, concurrent appends and a failed transaction', async () => {
    const db = await open();
    try {
      await migrate(db);
      const odd = event(0, {
        meta: { z: [1, 2.5, -0, 1e21, null, true], a: { é: 'ü"\\\n\u2028😀\u0001', b: {} }, '': 'empty key' },
        actor: { type: 'system', id: null },
        target: 'ünïcode "target"',
      });
      const appended = [await recordAudit(db, odd)];
      appended.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => recordAudit(db, event(i + 1))))));
      // Fail closed: an append rolled back with its transaction leaves neither a record nor a moved head.
      await expect(
        db.transaction(async (tx) => {
          await appendAudit(tx, event(99));
          throw new Error('the action failed');
        }),
      ).rejects.toThrow('the action failed');
      // Concurrent standalone records: a bad one fails alone, the others are committed.
      const mixed = await Promise.allSettled([
        recordAudit(db, event(100)),
        recordAudit(db, event(101, { tenantId: 'not-a-uuid' })),
        recordAudit(db, event(102)),
      ]);
      expect(mixed.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      for (const result of mixed) if (result.status === 'fulfilled') appended.push(result.value);
      const bySeq = appended.sort((a, b) => a.seq - b.seq);
      expect(bySeq.map((record) => record.seq)).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
      for (const record of bySeq) {
        const { hash: _hash, ...unhashed } = record;
        expect(record.hash).toBe(hashEvent(record.prevHash, unhashed));
      }
      expect(verifyChain(bySeq)).toMatchObject({ ok: true, count: 23 });
      expect(await verifyStoredAudit(db, signer.publicKey, { pageSize: 7 })).toMatchObject({ ok: true, count: 23 });
    } finally {
      await db.close();
    }
  });

  it('serves checkpoints and filtered audit pages to auditors, and its public key to anyone', async () => {
    const db = await open();
    try {
      await migrate(db);
      const { tenantId } = await bootstrapTenant(db, { tenant: 'acme', keyName: 'boot', expiresInDays: 1 });
      const auditor = await db.transaction((tx) => createApiKey(tx, { tenantId, name: 'aud', role: 'auditor', expiresInDays: 1 }, new Date()));
      const operator = await db.transaction((tx) => createApiKey(tx, { tenantId, name: 'op', role: 'operator', expiresInDays: 1 }, new Date()));
      await recordAudit(db, event(1, { tenantId, target: 'agent:a1', actor: { type: 'api-key', id: 'k1' } }));
      await recordAudit(db, event(2, { tenantId, target: 'agent:a2', outcome: 'denied' }));
      await recordAudit(db, event(3, { tenantId: null, target: 'agent:a1' }));
      await createCheckpoint(db, signer);
      const caller = (key: string | null) => {
        const headers = new Headers(key ? { authorization: `Bearer ${key}` } : {});
        const request = { method: 'POST', pathAndQuery: '/trpc', headers, body: new Uint8Array(), sourceIp: '127.0.0.1' };
        return appRouter.createCaller(createContext({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer }, request));
      };

      expect(await caller(null).controlPlane.identity()).toEqual({ publicKey: encodeKey(signer.publicKey), keyId: signer.keyId, fingerprint: keyFingerprint(signer.publicKey) });

      const audit = caller(auditor.key).audit;
      // This tenant's own chain head (bootstrap's record, then two), never the system chain's or anyone else's.
      const latest = await audit.latestCheckpoint();
      expect(latest).toMatchObject({ checkpoint: { number: 1, size: 2, keyId: signer.keyId }, proof: { leaf: { tenantId, seq: 3 } } });
      expect(JSON.stringify(latest)).not.toContain('"tenantId":null');
      if (!latest?.proof) throw new Error('no proof');
      expect(chainProofHolds(latest.checkpoint, latest.proof, signer.publicKey, verifierFor(signer.publicKey))).toBe(true);
      expect(await audit.checkpoints({ limit: 10 })).toHaveLength(1);
      expect(await audit.checkpoints({ beforeNumber: 1, limit: 10 })).toEqual([]);

      const targets = async (input: Parameters<typeof audit.list>[0]) => (await audit.list(input)).map((r) => r.target);
      // The system chain's event with the same target never shows.
      expect(await targets({ target: 'agent:a1' })).toEqual(['agent:a1']);
      expect(await targets({ actor: 'api-key:k1' })).toEqual(['agent:a1']);
      expect(await targets({ actor: 'system:test' })).toEqual(['agent:a2']);
      expect((await audit.list({ actor: 'system' })).length).toBe(2);
      expect(await targets({ outcome: 'denied' })).toEqual(['agent:a2']);
      const all = await audit.list({});
      const firstAt = all[0]?.at ?? '';
      expect(await targets({ since: '2999-01-01T00:00:00Z' })).toEqual([]);
      expect((await audit.list({ until: firstAt })).length).toBe(0);
      expect((await audit.list({ since: firstAt })).length).toBe(all.length);
      const page = await audit.list({ limit: 1 });
      expect((await audit.list({ afterSeq: page[0]?.seq ?? 0 })).map((r) => r.seq)).toEqual(all.slice(1).map((r) => r.seq));

      await expect(caller(operator.key).audit.latestCheckpoint()).rejects.toThrow(/lacks audit:read/);
    } finally {
      await db.close();
    }
  });
});

/** A client in one transaction that is always rolled back, as the superuser with triggers off. */
async function inRolledBackTransaction<T>(client: pg.Client, fn: (tx: Queryable & BinaryCopy) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    // Replica mode skips ordinary triggers: the append-only trigger stands in the way of tampering.
    await client.query('SET LOCAL session_replication_role = replica');
    return await fn(transactionQueryable(client));
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Two chains, the tenant's and the system's, `length` records each, written interleaved. */
function buildChains(length: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  const heads = new Map<string | null, ChainHead>();
  const base = Date.UTC(2025, 0, 1);
  for (let i = 0; i < 2 * length; i++) {
    const tenantId = i % 2 ? TENANT : null;
    const record = chainEvent(heads.get(tenantId) ?? null, event(i, { tenantId }), new Date(base + i * 1_001));
    records.push(record);
    heads.set(tenantId, { seq: record.seq, hash: record.hash });
  }
  return records;
}

describe('the audit trail on real PostgreSQL', () => {
  it('lets the app role append to the trail but never change or remove it', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const owner = connectPostgres(url);
    try {
      await migrate(owner);
      await using appRole = await connectAsAppRole(owner, url);
      const app = appRole.db;
      expect(await migrate(app)).toEqual({ applied: [] });
      await recordAudit(app.forSystem(), event(1));
      expect(await createCheckpoint(app.forSystem(), signer)).toMatchObject({ created: true });
      await expect(app.query("UPDATE audit_events SET action = 'x' WHERE seq = 1")).rejects.toThrow(/permission denied/);
      await expect(app.query('DELETE FROM audit_events WHERE seq = 1')).rejects.toThrow(/permission denied/);
      await expect(app.query('TRUNCATE audit_events')).rejects.toThrow(/permission denied/);
      await expect(app.query('DELETE FROM audit_checkpoints')).rejects.toThrow(/permission denied/);
      await expect(app.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update')).rejects.toThrow(/must be owner/);
      // The privilege, not only the trigger: with the trigger gone the app role is still refused.
      await owner.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
      await expect(app.query('DELETE FROM audit_events WHERE seq = 1')).rejects.toThrow(/permission denied/);
      // Everything else the control plane does still works as the app role.
      await bootstrapTenant(app, { tenant: 'acme', keyName: 'boot', expiresInDays: 1 });
      expect(await verifyStoredAudit(app.forSystem(), signer.publicKey)).toMatchObject({ ok: true, count: 2, checkpoints: 1 });
    } finally {
      await owner.close();
    }
  });

  it('verifies on worker threads page by page, and reports each tampering as the walk on one thread does', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const db = connectPostgres(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(db);
      const length = 300;
      await writeAuditRecords(db, buildChains(length));
      await createCheckpoint(db, signer);
      // Pages of 3 blocks (some 40 records of both chains) are read while the workers hash the last.
      const onWorkers = (tx: Queryable & BinaryCopy) => verifyStoredAudit(tx, signer.publicKey, { pageBlocks: 3, threads: 2 });
      const inThread = (tx: Queryable & BinaryCopy) => verifyStoredAudit(tx, signer.publicKey, { pageSize: 64, pageBlocks: 7, threads: 0 });
      expect(await onWorkers(db)).toMatchObject({ ok: true, count: 2 * length, chains: 2, checkpoints: 1 });
      const where = 'tenant_id IS NOT DISTINCT FROM $2::uuid';
      const tamperings: [string, (tx: Queryable) => Promise<unknown>][] = [
        ['edit meta', (tx) => tx.query(`UPDATE audit_events SET meta = meta || '{"forged": true}'::jsonb WHERE seq = $1 AND ${where}`, [130, TENANT])],
        ['delete a system record', (tx) => tx.query(`DELETE FROM audit_events WHERE seq = $1 AND ${where}`, [129, null])],
        ['delete a tenant record', (tx) => tx.query(`DELETE FROM audit_events WHERE seq = $1 AND ${where}`, [128, TENANT])],
        ['swap two records\' seq', async (tx) => {
          await tx.query(`UPDATE audit_events SET seq = -1 WHERE seq = $1 AND ${where}`, [40, TENANT]);
          await tx.query(`UPDATE audit_events SET seq = $1 WHERE seq = $3 AND ${where}`, [40, TENANT, 90]);
          await tx.query(`UPDATE audit_events SET seq = $1 WHERE seq = -1 AND ${where}`, [90, TENANT]);
        }],
        ['move a record to the other chain', (tx) => tx.query(`UPDATE audit_events SET tenant_id = NULL, seq = seq + 1000 WHERE seq = $1 AND ${where}`, [77, TENANT])],
        ['edit the time by a microsecond', (tx) => tx.query(`UPDATE audit_events SET at = at + interval '1 microsecond' WHERE seq = $1 AND ${where}`, [200, null])],
        [
          'truncate with the head moved back',
          async (tx) => {
            await tx.query(`DELETE FROM audit_events WHERE seq > $1 AND ${where}`, [250, TENANT]);
            await tx.query(`UPDATE audit_chain_heads h SET seq = e.seq, hash = e.hash FROM (SELECT seq, hash FROM audit_events WHERE ${where} ORDER BY seq DESC LIMIT 1) e
               WHERE h.tenant_id IS NOT DISTINCT FROM $2::uuid AND $1::int > 0`, [1, TENANT]);
          },
        ],
      ];
      for (const [name, tamper] of tamperings) {
        const [workers, single] = await inRolledBackTransaction(client, async (tx) => {
          await tamper(tx);
          return [await onWorkers(tx), await inThread(tx)];
        });
        expect({ name, ok: workers?.ok }).toEqual({ name, ok: false });
        expect(workers).toEqual(single);
      }
    } finally {
      await client.end();
      await db.close();
    }
  });

  it('flags every one of 1 000 random tamperings of two 1 500-event chains with a whole-trail verify', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const db = connectPostgres(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(db);
      const length = 1_500;
      const records = buildChains(length);
      await writeAuditRecords(db, records);
      await createCheckpoint(db, signer);
      const verify = (tx: Queryable & BinaryCopy) => verifyStoredAudit(tx, signer.publicKey, { pageSize: 400, pageBlocks: 20 });
      expect(await verify(db)).toMatchObject({ ok: true, count: 2 * length, chains: 2, checkpoints: 1 });

      const seed = Date.now();
      const next = seededRandom(seed);
      const pick = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
      const kinds = ['edit-action', 'edit-meta', 'edit-outcome', 'edit-target', 'delete', 'truncate', 'reorder', 'insert', 'move-chain', 'drop-chain'] as const;
      const missed: string[] = [];
      const counts = new Map<string, number>();
      const started = Date.now();
      for (let n = 0; n < 1_000; n++) {
        const kind = kinds[n % kinds.length] ?? 'delete';
        const chain = next() < 0.5 ? TENANT : null;
        const other = chain === null ? TENANT : null;
        const seq = pick(2, length - 1);
        const description = `${kind} at ${seq} of ${chain ?? 'system'}`;
        // Every statement names the chain: seq alone is no longer unique across the table.
        const where = 'tenant_id IS NOT DISTINCT FROM $2::uuid';
        const result = await inRolledBackTransaction(client, async (tx) => {
          switch (kind) {
            case 'edit-action':
              await tx.query(`UPDATE audit_events SET action = 'forged-action' WHERE seq = $1 AND ${where}`, [seq, chain]);
              break;
            case 'edit-meta':
              await tx.query(`UPDATE audit_events SET meta = meta || '{"forged": true}'::jsonb WHERE seq = $1 AND ${where}`, [seq, chain]);
              break;
            case 'edit-outcome':
              await tx.query(`UPDATE audit_events SET outcome = CASE outcome WHEN 'success' THEN 'denied' ELSE 'success' END WHERE seq = $1 AND ${where}`, [seq, chain]);
              break;
            case 'edit-target':
              await tx.query(`UPDATE audit_events SET target = 'agent:forged' WHERE seq = $1 AND ${where}`, [seq, chain]);
              break;
            case 'delete':
              await tx.query(`DELETE FROM audit_events WHERE seq = $1 AND ${where}`, [seq, chain]);
              break;
            case 'truncate':
              // The head row moved back too, as a careful forger would: only the checkpoint remembers.
              await tx.query(`DELETE FROM audit_events WHERE seq > $1 AND ${where}`, [length - pick(1, 50), chain]);
              await tx.query(
                `UPDATE audit_chain_heads h SET seq = e.seq, hash = e.hash FROM (SELECT seq, hash FROM audit_events WHERE ${where} ORDER BY seq DESC LIMIT 1) e
                 WHERE h.tenant_id IS NOT DISTINCT FROM $2::uuid AND $1::int > 0`,
                [1, chain],
              );
              break;
            case 'reorder': {
              const swap = seq === length - 1 ? seq - 1 : pick(seq + 1, length);
              await tx.query(`UPDATE audit_events SET seq = -1 WHERE seq = $1 AND ${where}`, [seq, chain]);
              await tx.query(`UPDATE audit_events SET seq = $1 WHERE seq = $3 AND ${where}`, [seq, chain, swap]);
              await tx.query(`UPDATE audit_events SET seq = $1 WHERE seq = -1 AND ${where}`, [swap, chain]);
              break;
            }
            case 'insert': {
              const previous = records.find((record) => record.tenantId === chain && record.seq === seq - 1);
              if (!previous) throw new Error(`no record ${seq - 1}`);
              // A forged record chained correctly onto its predecessor, the rest renumbered after it.
              const forged = chainEvent({ seq: previous.seq, hash: previous.hash }, event(-1, { action: 'forged-action', tenantId: chain }), new Date(previous.at));
              await tx.query(`UPDATE audit_events SET seq = -seq WHERE seq >= $1 AND ${where}`, [seq, chain]);
              await tx.query(`UPDATE audit_events SET seq = 1 - seq WHERE seq < 0 AND ${where} AND $1::int > 0`, [1, chain]);
              await tx.query(`INSERT INTO audit_events (seq, tenant_id, at, actor_type, actor_id, action, target, outcome, source_ip, meta, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, [
                forged.seq, forged.tenantId, forged.at, forged.actor.type, forged.actor.id, forged.action, forged.target, forged.outcome, forged.sourceIp,
                JSON.stringify(forged.meta), forged.prevHash, forged.hash,
              ]);
              break;
            }
            case 'move-chain':
              // A record given to the other chain, at a seq that chain does not use.
              await tx.query(`UPDATE audit_events SET tenant_id = $3::uuid, seq = seq + 1000000 WHERE seq = $1 AND ${where}`, [seq, chain, other]);
              break;
            case 'drop-chain':
              await tx.query(`DELETE FROM audit_events WHERE ${where} AND $1::int > 0`, [1, chain]);
              await tx.query('DELETE FROM audit_chain_heads WHERE tenant_id IS NOT DISTINCT FROM $1::uuid', [chain]);
              break;
          }
          return verify(tx);
        });
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        if (result.ok) missed.push(description);
      }
      const seconds = (Date.now() - started) / 1000;
      expect({ missed, seed }).toEqual({ missed: [], seed });
      expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(1_000);
      // Every case was rolled back: the stored trail is whole again.
      expect(await verify(db)).toMatchObject({ ok: true, count: 2 * length });
      process.stderr.write(`tamper test: 1000 cases in ${seconds.toFixed(1)} s\n`);
    } finally {
      await client.end();
      await db.close();
    }
  }, 600_000);
});
