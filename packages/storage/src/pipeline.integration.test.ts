import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@airlock/testing';
import { connectPostgres, type Database, prepared } from './database.ts';
import { migrate } from './migrate.ts';

/**
 * The pool pipelines: a scoped statement's BEGIN, scope, statement and COMMIT go out together, and
 * a transaction's BEGIN and scope travel with its first statement. One connection per pool here,
 * so every case reuses the connection the case before it left behind.
 */
describe('pipelined statements and transactions', () => {
  let db: Database;
  let tenantId: string;

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 1 });
    await migrate(db);
    const [tenant] = await db.query<{ id: string }>("INSERT INTO tenants (name) VALUES ('pipeline') RETURNING id");
    if (!tenant) throw new Error('no tenant');
    tenantId = tenant.id;
  });

  afterAll(async () => {
    await db?.close();
  });

  const scope = async (view: Database) => (await view.query<{ tenant: string | null; role: string; system: string | null }>(
    "SELECT current_setting('airlock.tenant_id', true) AS tenant, current_user AS role, current_setting('airlock.system', true) AS system",
  ))[0];

  it('runs a tenant statement in the tenant scope and leaves nothing of it on the connection', async () => {
    const tenant = await scope(db.forTenant(tenantId));
    expect(tenant).toMatchObject({ tenant: tenantId, role: 'airlock_app' });
    expect(tenant?.system ?? '').toBe('');
    const after = await scope(db);
    expect(after?.tenant ?? '').toBe('');
    expect(after?.role).not.toBe('airlock_app');
    expect(await scope(db.forSystem())).toMatchObject({ system: 'on' });
  });

  it('answers a failed statement with its own error, and rolls back its transaction', async () => {
    const tenant = db.forTenant(tenantId);
    const insert = () => tenant.query("INSERT INTO agent_groups (tenant_id, name) VALUES ($1, 'twice') RETURNING id", [tenantId]);
    await insert();
    await expect(insert()).rejects.toMatchObject({ code: '23505' });
    // The connection is out of the aborted transaction: the next statement on it works.
    expect(await tenant.query("SELECT name FROM agent_groups WHERE name = 'twice'")).toHaveLength(1);
  });

  it('rolls back every statement of a transaction that throws, and a statement that fails mid-way', async () => {
    const tenant = db.forTenant(tenantId);
    await expect(
      tenant.transaction(async (tx) => {
        await tx.query("INSERT INTO agent_groups (tenant_id, name) VALUES ($1, 'thrown')", [tenantId]);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await expect(
      tenant.transaction(async (tx) => {
        await tx.query("INSERT INTO agent_groups (tenant_id, name) VALUES ($1, 'failed')", [tenantId]);
        await tx.query('SELECT 1 / 0');
      }),
    ).rejects.toMatchObject({ code: '22012' });
    expect(await tenant.query("SELECT name FROM agent_groups WHERE name IN ('thrown', 'failed')")).toEqual([]);
    // Statements sent together without waiting are answered in order.
    const names = await tenant.transaction((tx) => Promise.all(['a', 'b', 'c'].map((name) => tx.query<{ name: string }>('SELECT $1::text AS name', [name]))));
    expect(names.flat().map((row) => row.name)).toEqual(['a', 'b', 'c']);
  });

  it('refuses a malformed tenant id before anything is sent', async () => {
    await expect(db.forTenant('not-a-uuid').query('SELECT 1')).rejects.toThrow('tenant scope needs a tenant uuid');
  });

  it('prepares a prepared statement once per connection, through failures and pipelined repeats', async () => {
    const half = prepared('SELECT 10 / $1::int AS n');
    const tenant = db.forTenant(tenantId);
    expect(await tenant.query(half, [2])).toEqual([{ n: 5 }]);
    await expect(tenant.query(half, [0])).rejects.toMatchObject({ code: '22012' });
    // The same statement several times in one pipeline: parsed once, each bound with its own value.
    const many = await tenant.transaction((tx) => Promise.all([1, 2, 5].map((by) => tx.query<{ n: number }>(half, [by]))));
    expect(many.flat().map((row) => row.n)).toEqual([10, 5, 2]);
    // One connection per pool here: the statement was prepared on it once, under its name.
    expect(await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1', [half.name])).toEqual([{ n: 1 }]);
    // The scope's own statement is prepared too.
    expect(await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE 'SELECT set_config%'")).toEqual([{ n: 1 }]);
  });
});
