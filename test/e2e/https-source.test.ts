/**
 * `https@1` in the whole system: the control plane on PostgreSQL, an enrolled agent process, a REST
 * endpoint over TLS with its own CA as the source, gpg to read what arrived. The records arrive
 * encrypted with exactly the fields the integration grants; the scope and the local policy each
 * refuse an endpoint they do not cover, and the endpoint sees no connection then.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ApiServer, startApiServer } from '@airlock/connector-https/fixture';
import { createTestDatabase } from '@airlock/testing';
import { type AirlockSystem, startSystem } from '../src/system.ts';

const TOKEN = 'erp-token-7f3a9c2e';
const RECORDS = [
  { id: 1, name: 'Alice', ssn: '123-45-6789', region: 'EU' },
  { id: 2, name: 'Bob', ssn: '987-65-4321', region: 'US' },
  { id: 3, name: 'Carol', ssn: '555-12-0000', region: 'EU' },
  { id: 4, name: 'Dan', ssn: '555-12-0001', region: 'APAC' },
  { id: 5, name: 'Eve', ssn: '555-12-0002', region: 'EU' },
];

describe('https@1 source in the whole system', () => {
  let system: AirlockSystem;
  let server: ApiServer;

  beforeAll(async () => {
    // Two records a page: the agent follows Link headers across three pages.
    server = await startApiServer({ pageSize: 2, authorization: `Bearer ${TOKEN}` });
    server.putRecords('customers', RECORDS.map((record) => JSON.stringify(record)));
    system = await startSystem({ databaseUrl: await createTestDatabase(inject('postgresUrl')), files: {} });
    await system.editAgentFiles({
      policy: (policy) => {
        const sources = (policy['sources'] ?? {}) as Record<string, unknown>;
        policy['sources'] = { ...sources, https: [{ origin: server.origin, paths: ['/api/**'], ca: server.certificates.caPem }] };
      },
      secrets: { erp: { token: TOKEN } },
    });
  });

  afterAll(async () => {
    await system?.stop();
    await server?.stop();
  });

  const source = (path: string) => ({
    connector: 'https@1',
    config: { endpoint: `${server.origin}${path}`, records: 'items', credentialRef: 'erp', outputName: 'customers.jsonl' },
    scope: `read https://127.0.0.1:${server.port}${path}`,
  });

  it('delivers the records as JSON Lines, encrypted, with exactly the granted fields', async () => {
    const integration = await system.createIntegration({
      name: 'erp-customers',
      source: source('/api/records'),
      fields: { format: 'jsonl', allow: ['id', 'region'], required: ['id'], rules: { id: { type: 'integer' } } },
    });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('succeeded');
    expect((await system.waitForRun(runId)).status).toBe('succeeded');
    expect(server.requests.filter((request) => request.startsWith('GET /api/records'))).toEqual([
      'GET /api/records',
      'GET /api/records',
      'GET /api/records?page=2',
      'GET /api/records?page=3',
    ]);

    const granted = RECORDS.map(({ id, region }) => `${JSON.stringify({ id, region })}\n`).join('');
    const delivered = await system.decryptDelivered();
    expect(delivered.map((file) => file.ciphertext.split('/').at(-1))).toEqual(['customers.jsonl.pgp']);
    expect({ sha256: delivered[0]?.sha256, bytes: delivered[0]?.bytes }).toEqual({
      sha256: createHash('sha256').update(granted).digest('hex'),
      bytes: Buffer.byteLength(granted),
    });
  });

  it('refuses to save an integration whose endpoint has no scope', async () => {
    await expect(system.createIntegration({ name: 'erp-unscoped', source: source('/api/salaries'), grant: false })).rejects.toThrow(/scope|not covered|no read grant/i);
  });

  it('refuses, on the agent and before any connection, an endpoint the local policy does not pin', async () => {
    const connections = server.connections.count;
    const requests = server.requests.length;
    const integration = await system.createIntegration({ name: 'erp-unpinned', source: source('/admin/users') });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('failed');
    expect(agent.report?.errorClass).toBe('policy-violation');
    expect(agent.report?.violationKind).toBe('source');
    expect((await system.waitForRun(runId)).errorClass).toBe('policy-violation');
    expect(server.connections.count).toBe(connections);
    expect(server.requests.length).toBe(requests);
  });
});
