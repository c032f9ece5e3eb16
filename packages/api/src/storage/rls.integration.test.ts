import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeKey, generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant } from '../bootstrap.ts';
import { connectPostgres, createCheckpoint, type Database, migrate, openPglite, type Queryable, signerFromSecretKey } from '@airlock/storage';
import { connectAsAppRole } from './app-role.fixture.ts';

/** Tables with a tenant_id column, and `tenants` itself (keyed by id). Names come from the catalog. */
async function tenantTables(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'
     UNION SELECT 'tenants' ORDER BY 1`,
  );
  return rows.map((row) => row.table_name);
}

/** The tenant column of a table: `id` for tenants, else tenant_id. Quoted as identifiers, since DDL-like names take no parameters. */
function tenantColumn(table: string): string {
  return table === 'tenants' ? 'id' : 'tenant_id';
}

/** One row of every tenant table for the tenant, written in the system scope. */
async function seedTenant(db: Database, name: string): Promise<string> {
  const { tenantId } = await bootstrapTenant(db, { tenant: name, keyName: 'owner', expiresInDays: 1 });
  await db.forSystem().transaction(async (tx) => {
    const [agent] = await tx.query<{ id: string }>('INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, $3, $4) RETURNING id', [
      tenantId,
      encodeKey(generateKeyPair().publicKey),
      `${name}-host`,
      '0.1.0',
    ]);
    const [group] = await tx.query<{ id: string }>('INSERT INTO agent_groups (tenant_id, name) VALUES ($1, $2) RETURNING id', [tenantId, `${name}-group`]);
    await tx.query('INSERT INTO agent_group_members (group_id, agent_id, tenant_id) VALUES ($1, $2, $3)', [group?.id, agent?.id, tenantId]);
    await tx.query(`INSERT INTO grants (tenant_id, subject_type, subject_id, action, resource, created_by) VALUES ($1, 'agent', $2, 'read', 'file:///srv/**', 'test')`, [
      tenantId,
      agent?.id,
    ]);
    const [integration] = await tx.query<{ id: string }>(`INSERT INTO integrations (tenant_id, agent_id, name, spec) VALUES ($1, $2, $3, '{}') RETURNING id`, [
      tenantId,
      agent?.id,
      `${name}-integration`,
    ]);
    await tx.query(`INSERT INTO integration_schedules (integration_id, tenant_id, cron, timezone, missed, next_run_at) VALUES ($1, $2, '0 * * * *', 'UTC', 'skip', now())`, [
      integration?.id,
      tenantId,
    ]);
    await tx.query(`INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, spec, requested_by) VALUES ($1, $2, 1, $3, '{}', 'test')`, [
      tenantId,
      integration?.id,
      agent?.id,
    ]);
    await tx.query(`INSERT INTO integration_versions (integration_id, tenant_id, version, spec) VALUES ($1, $2, 1, '{}')`, [integration?.id, tenantId]);
    await tx.query(`INSERT INTO enrollment_tokens (tenant_id, token_sha256, created_by, expires_at) VALUES ($1, $2, 'test', now() + interval '5 minutes')`, [
      tenantId,
      `${name}-token-hash`,
    ]);
    await tx.query(`INSERT INTO request_nonces (agent_id, tenant_id, nonce, expires_at) VALUES ($1, $2, $3, now() + interval '5 minutes')`, [agent?.id, tenantId, `${name}-nonce`]);
    const [user] = await tx.query<{ id: string }>(
      `INSERT INTO admin_users (tenant_id, email, password_hash, role) VALUES ($1, $2, 'scrypt$unusable', 'auditor') RETURNING id`,
      [tenantId, `${name}@example.com`],
    );
    await tx.query(
      `INSERT INTO admin_sessions (user_id, tenant_id, token_sha256, created_at, last_seen_at, idle_expires_at, expires_at)
       VALUES ($1, $2, $3, now(), now(), now() + interval '5 minutes', now() + interval '1 hour')`,
      [user?.id, tenantId, `${name}-session-hash`],
    );
    await tx.query('INSERT INTO agent_retired_keys (agent_id, tenant_id, public_key, retired_at) VALUES ($1, $2, $3, now())', [
      agent?.id,
      tenantId,
      encodeKey(generateKeyPair().publicKey),
    ]);
    const [destination] = await tx.query<{ id: string }>(
      `INSERT INTO alert_destinations (id, tenant_id, name, origin, url_sealed, secret_sealed, min_severity) VALUES (gen_random_uuid(), $1, $2, 'https://hooks.example.com', 'sealed', 'sealed', 'info') RETURNING id`,
      [tenantId, `${name}-hook`],
    );
    const [alert] = await tx.query<{ id: string }>(
      `INSERT INTO alerts (tenant_id, kind, severity, dedupe_key, summary, details, first_seen_at, last_seen_at) VALUES ($1, 'scope-denied', 'warning', $2, 'test', '{}', now(), now()) RETURNING id`,
      [tenantId, `${name}-dedupe`],
    );
    await tx.query('INSERT INTO alert_deliveries (tenant_id, alert_id, destination_id, next_attempt_at, created_at) VALUES ($1, $2, $3, now(), now())', [
      tenantId,
      alert?.id,
      destination?.id,
    ]);
    await tx.query(`INSERT INTO agent_security_events (id, tenant_id, agent_id, kind, at, reason) VALUES (gen_random_uuid(), $1, $2, 'envelope-replayed', now(), 'test')`, [
      tenantId,
      agent?.id,
    ]);
    const [provider] = await tx.query<{ id: string }>(
      `INSERT INTO oidc_providers (tenant_id, name, issuer, client_id, client_secret_sealed, created_at, updated_at)
       VALUES ($1, $2, 'https://idp.example.com', 'airlock', 'sealed', now(), now()) RETURNING id`,
      [tenantId, `${name}-idp`],
    );
    await tx.query(`INSERT INTO oidc_role_mappings (tenant_id, provider_id, claim_value, role) VALUES ($1, $2, 'admins', 'admin')`, [tenantId, provider?.id]);
    await tx.query(
      `INSERT INTO oidc_login_states (state_sha256, tenant_id, provider_id, browser_sha256, nonce, code_verifier, redirect_uri, expires_at)
       VALUES ($1, $2, $3, 'browser', 'nonce', 'verifier', 'https://airlock.example.com/auth/oidc/callback', now() + interval '5 minutes')`,
      [`${name}-state-hash`, tenantId, provider?.id],
    );
    await tx.query(`INSERT INTO tenant_identity_settings (tenant_id, updated_at) VALUES ($1, now())`, [tenantId]);
    await tx.query(`INSERT INTO recovery_codes (tenant_id, user_id, code_sha256) VALUES ($1, $2, $3)`, [tenantId, user?.id, `${name}-code-hash`]);
    await tx.query(`INSERT INTO webauthn_credentials (id, tenant_id, user_id, public_key, counter, created_at) VALUES ($1, $2, $3, 'key', 0, now())`, [
      `${name}-credential`,
      tenantId,
      user?.id,
    ]);
    await tx.query(`INSERT INTO pending_logins (token_sha256, tenant_id, user_id, stage, expires_at) VALUES ($1, $2, $3, 'second-factor', now() + interval '5 minutes')`, [
      `${name}-pending-hash`,
      tenantId,
      user?.id,
    ]);
    const [client] = await tx.query<{ id: string }>(
      `INSERT INTO oauth_clients (tenant_id, client_id, name, auth_method, secret_sha256, role) VALUES ($1, $2, $3, 'client_secret_basic', 'hash', 'auditor') RETURNING id`,
      [tenantId, `alc_${name}`, `${name}-client`],
    );
    await tx.query(`INSERT INTO oauth_assertion_jtis (client_id, tenant_id, jti, expires_at) VALUES ($1, $2, $3, now() + interval '5 minutes')`, [client?.id, tenantId, `${name}-jti`]);
    await tx.query(
      `INSERT INTO request_log (at, tenant_id, caller_type, caller_id, procedure, method, status, outcome, latency_ms, request_id) VALUES (now(), $1, 'user', $2, 'agents.list', 'GET', 200, 'OK', 1, gen_random_uuid())`,
      [tenantId, user?.id],
    );
    await tx.query('INSERT INTO request_log_settings (tenant_id, retention_days) VALUES ($1, 7)', [tenantId]);
    await tx.query(`INSERT INTO agent_summaries (agent_id, tenant_id, summary, reported_at) VALUES ($1, $2, '{}', now())`, [agent?.id, tenantId]);
    const [release] = await tx.query<{ id: string }>(
      `INSERT INTO releases (tenant_id, version, platform, manifest, signature, size, sha256, downgrade_allowed) VALUES ($1, '0.2.0', 'linux-x64', '{}', 'sig', 1, 'hash', false) RETURNING id`,
      [tenantId],
    );
    await tx.query(`INSERT INTO release_chunks (release_id, tenant_id, chunk_index, data) VALUES ($1, $2, 0, decode('00', 'hex'))`, [release?.id, tenantId]);
    const [rollout] = await tx.query<{ id: string }>(
      `INSERT INTO rollouts (tenant_id, release_id, starts_at, ends_at, halt_failure_rate, downgrade) VALUES ($1, $2, now(), now() + interval '1 day', 0, false) RETURNING id`,
      [tenantId, release?.id],
    );
    await tx.query(`INSERT INTO rollout_agents (rollout_id, agent_id, tenant_id, ring) VALUES ($1, $2, $3, 'rest')`, [rollout?.id, agent?.id, tenantId]);
  });
  return tenantId;
}

function suite(name: string, open: () => Promise<{ db: Database; cleanup: () => Promise<void> }>) {
  describe(`row-level security on ${name}`, () => {
    let db: Database;
    let cleanup: () => Promise<void> = () => Promise.resolve();
    let a = '';
    let b = '';
    let tables: string[] = [];

    beforeAll(async () => {
      ({ db, cleanup } = await open());
      await migrate(db);
      a = await seedTenant(db, 'alpha');
      b = await seedTenant(db, 'beta');
      // A checkpoint, so its leaves (one per tenant's chain) are rows of both tenants too.
      await createCheckpoint(db.forSystem(), signerFromSecretKey(generateKeyPair().secretKey));
      tables = await tenantTables(db);
    });

    afterAll(async () => {
      await cleanup();
    });

    it('is enabled, forced and has a policy on every table with a tenant_id column, including tables added later', async () => {
      const rows = await db.query<{ table_name: string; enabled: boolean; forced: boolean; policies: number }>(
        `SELECT c.relname AS table_name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
                (SELECT count(*)::int FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname) AS policies
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY($1::text[]) ORDER BY c.relname`,
        [tables],
      );
      expect(rows.map((row) => row.table_name)).toEqual(tables);
      expect(tables.length).toBeGreaterThanOrEqual(12);
      const unprotected = rows.filter((row) => !row.enabled || !row.forced || row.policies < 1).map((row) => row.table_name);
      expect(unprotected).toEqual([]);
    });

    it("shows tenant A none of tenant B's rows in any table, even with no WHERE clause", async () => {
      for (const table of tables) {
        const column = pg.escapeIdentifier(tenantColumn(table));
        const from = pg.escapeIdentifier(table);
        // Both tenants have rows here, so an empty result below is the policy's doing.
        const [all] = await db.forSystem().query<{ a: number; b: number }>(
          `SELECT count(*) FILTER (WHERE ${column} = $1)::int AS a, count(*) FILTER (WHERE ${column} = $2)::int AS b FROM ${from}`,
          [a, b],
        );
        expect({ table, a: (all?.a ?? 0) > 0, b: (all?.b ?? 0) > 0 }).toEqual({ table, a: true, b: true });
        const seen = await db.forTenant(a).query<{ tenant: string }>(`SELECT ${column}::text AS tenant FROM ${from}`);
        expect({ table, tenants: [...new Set(seen.map((row) => row.tenant))] }).toEqual({ table, tenants: [a] });
        expect(seen).toHaveLength(all?.a ?? -1);
      }
    });

    it("updates and deletes none of tenant B's rows from tenant A's scope, even with no WHERE clause", async () => {
      // The audit trail and its checkpoint leaves are append-only: the app role may not update them at all.
      for (const table of tables.filter((t) => t !== 'audit_events' && t !== 'audit_checkpoint_leaves')) {
        const column = pg.escapeIdentifier(tenantColumn(table));
        const updated = await db
          .forTenant(a)
          .query<{ tenant: string }>(`UPDATE ${pg.escapeIdentifier(table)} SET ${column} = ${column} RETURNING ${column}::text AS tenant`);
        expect({ table, tenants: [...new Set(updated.map((row) => row.tenant))] }).toEqual({ table, tenants: [a] });
      }
      const before = await db.forSystem().query<{ n: number }>('SELECT count(*)::int AS n FROM grants WHERE tenant_id = $1', [b]);
      for (const table of ['grants', 'agent_group_members', 'request_nonces', 'integration_schedules']) {
        const deleted = await db.forTenant(a).query<{ tenant: string }>(`DELETE FROM ${pg.escapeIdentifier(table)} RETURNING tenant_id::text AS tenant`);
        expect({ table, tenants: [...new Set(deleted.map((row) => row.tenant))] }).toEqual({ table, tenants: [a] });
        const [left] = await db.forSystem().query<{ n: number }>(`SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(table)} WHERE tenant_id = $1`, [b]);
        expect({ table, left: left?.n }).toEqual({ table, left: 1 });
      }
      expect(before).toEqual([{ n: 1 }]);
      // The audit trail stays append-only for the app role, whatever the tenant.
      await expect(db.forTenant(a).query('DELETE FROM audit_events')).rejects.toThrow(/permission denied/);
    });

    it("refuses to write a row into tenant B from tenant A's scope, and to move a row to B", async () => {
      await expect(
        db.forTenant(a).query(`INSERT INTO agent_groups (tenant_id, name) VALUES ($1, 'smuggled')`, [b]),
      ).rejects.toThrow(/row-level security/);
      await expect(db.forTenant(a).query('UPDATE agents SET tenant_id = $1', [b])).rejects.toThrow(/row-level security/);
      expect(await db.forSystem().query("SELECT 1 FROM agent_groups WHERE name = 'smuggled'")).toEqual([]);
    });

    it('keeps the scope inside its transaction: the next statement on the connection is unscoped again', async () => {
      await db.forTenant(a).query('SELECT 1');
      const [row] = await db.query<{ tenant: string | null; system: string | null }>(
        "SELECT current_setting('airlock.tenant_id', true) AS tenant, current_setting('airlock.system', true) AS system",
      );
      expect([row?.tenant ?? '', row?.system ?? '']).toEqual(['', '']);
    });
  });
}

suite('PostgreSQL (server connected as a superuser)', async () => {
  const db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 1 });
  return { db, cleanup: () => db.close() };
});

suite('PGlite', async () => {
  const db = await openPglite('memory://');
  return { db, cleanup: () => db.close() };
});

describe('row-level security for the airlock_app login role', () => {
  it('shows an unscoped statement no tenant rows at all, the system scope every row', async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    const owner = connectPostgres(url);
    try {
      await migrate(owner);
      await seedTenant(owner, 'alpha');
      await using app = await connectAsAppRole(owner, url);
      expect(await app.db.query('SELECT id FROM agents')).toEqual([]);
      expect(await app.db.query('SELECT id FROM tenants')).toEqual([]);
      expect(await app.db.forSystem().query('SELECT id FROM agents')).toHaveLength(1);
    } finally {
      await owner.close();
    }
  });
});
