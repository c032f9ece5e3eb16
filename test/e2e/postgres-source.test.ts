/**
 * `postgres@1` in the whole system: the control plane on PostgreSQL, an enrolled agent process, a
 * second PostgreSQL database as the source (reached through a counting proxy), gpg to read what
 * arrived. Only the granted fields arrive; the scope refuses an ungranted query at save, and the
 * local policy refuses an unapproved one on the agent before any connection.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type CutProxy, startCutProxy } from '@airlock/testing';
import { type AirlockSystem, startSystem } from '../src/system.ts';

const APPROVED = 'SELECT id, name, ssn, region FROM customers WHERE region = {region} ORDER BY id';

describe('postgres@1 source in the whole system', () => {
  let system: AirlockSystem;
  let proxy: CutProxy;
  let database: string;

  beforeAll(async () => {
    const serverUrl = inject('postgresUrl');
    const url = new URL(await createTestDatabase(serverUrl));
    database = url.pathname.slice(1);
    const admin = new pg.Client({ connectionString: url.toString() });
    await admin.connect();
    try {
      await admin.query(`CREATE TABLE customers (id integer PRIMARY KEY, name text, ssn text, region text);
        INSERT INTO customers VALUES (1, 'Alice', '123-45-6789', 'EU'), (2, 'Bob', '987-65-4321', 'US'), (3, 'Carol', '555-55-5555', 'EU')`);
    } finally {
      await admin.end();
    }
    // It only forwards and counts: whether the agent connected at all shows in its byte counts.
    proxy = await startCutProxy({ targetPort: Number(url.port), direction: 'download' });
    system = await startSystem({ databaseUrl: await createTestDatabase(serverUrl), files: {} });
    await system.editAgentFiles({
      policy: (policy) => {
        const sources = (policy['sources'] ?? {}) as Record<string, unknown>;
        policy['sources'] = {
          ...sources,
          postgres: [
            {
              host: '127.0.0.1',
              port: proxy.port,
              database,
              tls: 'disable',
              queries: [
                {
                  name: 'customers-by-region',
                  sql: APPROVED,
                  sha256: createHash('sha256').update(APPROVED).digest('hex'),
                  params: { region: { pattern: '[A-Z]{2}' } },
                  statementTimeoutMs: 30_000,
                },
              ],
            },
          ],
        };
      },
      secrets: { 'erp-db': { password: 'export-role-password' } },
    });
  });

  afterAll(async () => {
    await system?.stop();
    await proxy?.close();
  });

  const source = (query: string) => ({
    connector: 'postgres@1',
    config: { host: '127.0.0.1', port: proxy.port, database, username: 'postgres', credentialRef: 'erp-db', query, params: { region: 'EU' }, outputName: 'customers.csv' },
    scope: `read postgres://127.0.0.1:${proxy.port}/${database}/${query}`,
  });

  it('delivers the rows of the approved query, encrypted, with exactly the granted fields', async () => {
    const integration = await system.createIntegration({ name: 'erp-customers', source: source('customers-by-region'), fields: { format: 'csv', allow: ['id', 'region'] } });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('succeeded');
    expect((await system.waitForRun(runId)).status).toBe('succeeded');
    const expected = 'id,region\n1,EU\n3,EU\n';
    const delivered = await system.decryptDelivered();
    expect(delivered.map(({ ciphertext, sha256, bytes }) => ({ name: ciphertext.split('/').pop(), sha256, bytes }))).toEqual([
      { name: 'customers.csv.pgp', sha256: createHash('sha256').update(expected).digest('hex'), bytes: expected.length },
    ]);
    expect(proxy.forwarded.download).toBeGreaterThan(0);
  });

  it('refuses to save an integration whose query has no scope', async () => {
    await expect(system.createIntegration({ name: 'erp-unscoped', source: source('all-customers'), grant: false })).rejects.toThrow(/scope|not covered|no read grant/i);
  });

  it('refuses, on the agent and before any connection, a query the local policy does not approve', async () => {
    const before = { ...proxy.forwarded };
    const integration = await system.createIntegration({ name: 'erp-unapproved', source: source('all-customers') });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('failed');
    expect(agent.report?.errorClass).toBe('policy-violation');
    expect(agent.report?.violationKind).toBe('source');
    expect((await system.waitForRun(runId)).errorClass).toBe('policy-violation');
    expect(proxy.forwarded).toEqual(before);
  });
});
