import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { type AuditEventInput, type ChainLeaf, hashEvent, openPageVerifier } from '@airlock/audit';
import { createTestDatabase } from '@airlock/testing';
import { verifyChainsFast } from './audit-verify.ts';
import { legacyHead } from './checkpoints.ts';
import { type BinaryCopy, connectPostgres, migrate, type Queryable, readChain, recordAudit, transactionQueryable } from './index.ts';

const TENANT = randomUUID();

function event(i: number, overrides: Partial<AuditEventInput> = {}): AuditEventInput {
  return { tenantId: TENANT, actor: { type: 'api-key', id: 'k1' }, action: 'test-event', target: `thing:${i}`, outcome: 'success', sourceIp: '192.0.2.1', meta: { i }, ...overrides };
}

/** The block scan alone, without the walk that re-decides a chain it finds broken. */
async function scan(db: Queryable & BinaryCopy, blocksPerPage: number) {
  const legacy = await legacyHead(db);
  const rows = await db.query<{ tenant_id: string | null; seq: string; hash: string }>('SELECT tenant_id, seq::text AS seq, hash FROM audit_chain_heads');
  const heads: ChainLeaf[] = rows.map((row) => ({ tenantId: row.tenant_id, seq: Number(row.seq), hash: row.hash }));
  const pages = openPageVerifier({ threads: 0 });
  try {
    return await verifyChainsFast(db, pages, heads, legacy, new Map(), blocksPerPage);
  } finally {
    await pages.close();
  }
}

describe('binary COPY', () => {
  it('reads rows through a connection that stays usable after a COPY fails, pooled or in a transaction', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const db = connectPostgres(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const settings = { text: "SELECT set_config('airlock.copy_test', $1, true)", params: ['41'] };
    // Header, one row of one int4 column (42), trailer.
    const expected = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8), Buffer.from([0, 1, 0, 0, 0, 4, 0, 0, 0, 42, 0xff, 0xff])]);
    try {
      for (const run of [0, 1, 2]) {
        await expect(db.copyBinary("SELECT 1 / (current_setting('airlock.copy_test')::int - 41)", settings)).rejects.toThrow(/division by zero/);
        const into = new ArrayBuffer(run === 0 ? 4 : 1_024);
        expect(Buffer.from(await db.copyBinary("SELECT current_setting('airlock.copy_test')::int + 1", settings, into))).toEqual(expected);
        expect(await db.forSystem().copyBinary("SELECT current_setting('airlock.copy_test')::int + 1", settings)).toEqual(new Uint8Array(expected));
      }
      await client.query('BEGIN');
      const tx = transactionQueryable(client);
      expect(Buffer.from(await tx.copyBinary("SELECT current_setting('airlock.copy_test')::int + 1", settings))).toEqual(expected);
      await expect(tx.copyBinary('SELECT 1 / 0', settings)).rejects.toThrow(/division by zero/);
      await client.query('ROLLBACK');
      expect((await client.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
      await db.close();
    }
  });
});

describe('the block scan of a whole-trail verify', () => {
  it('recomputes, from what PostgreSQL writes, the very text each record was hashed over, and fails every tampering', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const db = connectPostgres(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(db);
      // An empty table is a page of no rows.
      expect(await scan(db, 1_000)).toEqual({ ok: true, count: 0 });
      // Text that JSON escapes, and meta that jsonb stores in another key order and spacing.
      await recordAudit(
        db,
        event(0, {
          meta: { z: [1, 2.5, -0, 1e21, 0.1, null, true], a: { é: 'ü"\\\n\t\u2028😀\u0001\u001f\u001e', b: {} }, '': 'empty key', bb: 'x', c: 'y' },
          actor: { type: 'system', id: null },
          target: 'ünïcode "target"\\ \u001f\u001e\n',
          sourceIp: null,
          action: 'odd-event',
        }),
      );
      await recordAudit(db, event(1, { tenantId: null }));
      for (let i = 2; i < 60; i++) await recordAudit(db, event(i, i % 3 === 0 ? { tenantId: null } : {}));
      for (const blocks of [1, 2, 1_000]) expect(await scan(db, blocks)).toEqual({ ok: true, count: 60 });

      // A record whose hash is recomputed over a prevHash that is not its predecessor's: it holds on its own.
      const [stored] = await readChain(db, TENANT, 19, 1);
      if (!stored) throw new Error('no record 20');
      const relinkedPrev = 'f'.repeat(64);
      const relinkedHash = hashEvent(relinkedPrev, { ...stored, prevHash: relinkedPrev });
      const tamperings: Record<string, [string, unknown[]]> = {
        'a record relinked with its hash recomputed': ['UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE tenant_id = $1 AND seq = $4', [TENANT, relinkedPrev, relinkedHash, stored.seq]],
        'an edited target': [`UPDATE audit_events SET target = 'thing:x' WHERE tenant_id = $1 AND seq = 5`, [TENANT]],
        'an edited odd target': [`UPDATE audit_events SET target = target || ' ' WHERE tenant_id = $1 AND seq = 1`, [TENANT]],
        'an edited meta': [`UPDATE audit_events SET meta = jsonb_set(meta, '{bb}', '"y"') WHERE tenant_id = $1 AND seq = 1`, [TENANT]],
        'an edited unicode meta value': [`UPDATE audit_events SET meta = jsonb_set(meta, '{a,é}', to_jsonb((meta #>> '{a,é}') || 'ü')) WHERE tenant_id = $1 AND seq = 1`, [TENANT]],
        'a meta key renamed to sort otherwise': [`UPDATE audit_events SET meta = (meta - 'bb') || jsonb_build_object('b', meta -> 'bb') WHERE tenant_id = $1 AND seq = 1`, [TENANT]],
        'a column turned NULL': [`UPDATE audit_events SET source_ip = NULL WHERE tenant_id = $1 AND seq = 6`, [TENANT]],
        'a NULL column given a value': [`UPDATE audit_events SET actor_id = '' WHERE tenant_id = $1 AND seq = 1`, [TENANT]],
        'an edited time': [`UPDATE audit_events SET at = at + interval '1 microsecond' WHERE tenant_id IS NULL AND seq = 3`, []],
        'an edited action': [`UPDATE audit_events SET action = 'other-event' WHERE tenant_id = $1 AND seq = 7`, [TENANT]],
        'a relinked prev_hash': [`UPDATE audit_events SET prev_hash = repeat('0', 64) WHERE tenant_id = $1 AND seq = 9`, [TENANT]],
        'a deleted record': [`DELETE FROM audit_events WHERE tenant_id IS NULL AND seq = 4`, []],
        'the last record deleted': [`DELETE FROM audit_events WHERE tenant_id = $1 AND seq = (SELECT max(seq) FROM audit_events WHERE tenant_id = $1)`, [TENANT]],
        'a record moved to the other chain': [`UPDATE audit_events SET tenant_id = NULL, seq = 1000 WHERE tenant_id = $1 AND seq = 12`, [TENANT]],
        'a hash holding a separator': [`UPDATE audit_events SET hash = hash || E'\\x1e' WHERE tenant_id = $1 AND seq = 2`, [TENANT]],
      };
      for (const [name, [sql, params]] of Object.entries(tamperings)) {
        await client.query('BEGIN');
        try {
          // As the superuser with triggers off: the table refuses changes otherwise.
          await client.query('SET LOCAL session_replication_role = replica');
          await client.query(sql, params);
          const tx = transactionQueryable(client);
          // A changed row moves to another block: scanned both in a page of its own and among the rest.
          for (const blocks of [1, 1_000]) expect({ name, blocks, result: await scan(tx, blocks) }).toMatchObject({ name, result: { ok: false } });
        } finally {
          await client.query('ROLLBACK');
        }
      }
    } finally {
      await client.end();
      await db.close();
    }
  });
});
