import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import type { HeartbeatSummary } from '@airlock/protocol';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, connectPostgres, createHttpHandler, createMetrics, createMetricsHandler, type Database, Dispatcher, migrate, signerFromSecretKey } from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

/** The value of one sample of the text exposition, or null when it is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/i.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/gi)].map((pair) => [pair[1], pair[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return null;
}

describe('[operations:metrics] the control plane metrics', () => {
  let db: Database;
  let dispatcher: Dispatcher;
  let api: { server: Server; base: string };
  let scrape: { server: Server; base: string };
  let admin: string;
  let tenantId: string;

  beforeAll(async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    db = connectPostgres(url, { maxConnections: 4 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'metrics', keyName: 'first', expiresInDays: 30 });
    admin = boot.key;
    tenantId = boot.tenantId;
    dispatcher = new Dispatcher({ db });
    await dispatcher.start();
    api = await listenOnLoopback(
      createHttpHandler({ db, dispatcher, now: () => new Date(), logger: silent, signer }, { maxBodyBytes: 256 * 1024, rateLimits: { agent: { points: 3, durationSeconds: 60 } } }),
    );
    // No reuse of a snapshot: each scrape below must see the database as the test left it.
    scrape = await listenOnLoopback(createMetricsHandler({ db, signer }, createMetrics(db, { refreshMs: 0 })));
  });

  afterAll(async () => {
    for (const { server } of [api, scrape].filter(Boolean)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await dispatcher?.close();
    await db?.close();
  });

  /** An agent last seen `ago` (an interval) before now. */
  async function addAgent(ago: string): Promise<{ id: string; keys: AgentKeyPair }> {
    const keys = generateKeyPair();
    const [row] = await db.query<{ id: string }>(
      "INSERT INTO agents (tenant_id, public_key, hostname, version, last_seen_at) VALUES ($1, $2, 'h', '0', now() - $3::interval) RETURNING id",
      [tenantId, encodeKey(keys.publicKey), ago],
    );
    if (!row) throw new Error('no agent');
    return { id: row.id, keys };
  }

  async function asAgent(path: string, input: unknown, agent: { id: string; keys: AgentKeyPair }): Promise<number> {
    const body = JSON.stringify(input);
    const headers = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: `/trpc/${path}`, body });
    const response = await fetch(`${api.base}/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    await response.arrayBuffer();
    return response.status;
  }

  const metrics = async () => {
    const response = await fetch(`${scrape.base}/metrics`);
    expect(response.status).toBe(200);
    return response.text();
  };

  it('[operations:metrics] re-exports each agent heartbeat summary under its agent id, and counts agents by state', async () => {
    const agent = await addAgent('0 seconds');
    await addAgent('10 minutes');
    await addAgent('1 hour');
    const summary: HeartbeatSummary = {
      version: '1.4.2',
      proxy: true,
      lastError: 'the SFTP server refused the login',
      runs: { succeeded: 7, failed: 2 },
      bytesDelivered: 123_456,
      filesDelivered: 9,
      outboxDepth: 1,
      startedAt: '2026-12-01T00:00:00.000Z',
    };
    expect(await asAgent('agent.heartbeat', { version: '1.4.2', hostname: 'h', summary }, agent)).toBe(200);
    const text = await metrics();
    const who = { tenant_id: tenantId, agent_id: agent.id };
    expect(sample(text, 'airlock_agent_info', { ...who, version: '1.4.2' })).toBe(1);
    expect(sample(text, 'airlock_agent_runs', { ...who, outcome: 'succeeded' })).toBe(7);
    expect(sample(text, 'airlock_agent_runs', { ...who, outcome: 'failed' })).toBe(2);
    expect(sample(text, 'airlock_agent_delivered_bytes', who)).toBe(123_456);
    expect(sample(text, 'airlock_agent_delivered_files', who)).toBe(9);
    expect(sample(text, 'airlock_agent_outbox_depth', who)).toBe(1);
    expect(sample(text, 'airlock_agent_proxy', who)).toBe(1);
    expect(sample(text, 'airlock_agent_error', who)).toBe(1);
    expect(sample(text, 'airlock_agent_start_time_seconds', who)).toBe(Date.parse(summary.startedAt) / 1000);
    expect(sample(text, 'airlock_agents', { tenant_id: tenantId, state: 'online' })).toBe(1);
    expect(sample(text, 'airlock_agents', { tenant_id: tenantId, state: 'offline' })).toBe(1);
    expect(sample(text, 'airlock_agents', { tenant_id: tenantId, state: 'lost' })).toBe(1);
    // The error's wording is for the console: a metric label with free text could carry anything.
    expect(text).not.toContain('refused the login');
    // A summary the protocol does not allow is refused at the door.
    expect(await asAgent('agent.heartbeat', { version: '1', hostname: 'h', summary: { ...summary, path: '/secret/file.csv' } }, agent)).toBe(400);
  });

  it('[operations:metrics] counts tRPC calls by procedure and code, rate-limit refusals by limit, and times audit appends', async () => {
    const before = await metrics();
    const okBefore = sample(before, 'airlock_trpc_requests_total', { procedure: 'agents.list', code: 'OK' }) ?? 0;
    const auditBefore = sample(before, 'airlock_audit_append_duration_seconds_count') ?? 0;
    const listed = await fetch(`${api.base}/trpc/agents.list`, { headers: { authorization: `Bearer ${admin}` } });
    expect(listed.status).toBe(200);
    const denied = await fetch(`${api.base}/trpc/agents.list`, { headers: { authorization: 'Bearer alk_notakey0000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
    expect(denied.status).toBe(401);
    const agent = await addAgent('0 seconds');
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push(await asAgent('agent.heartbeat', { version: '1', hostname: 'h' }, agent));
    expect(statuses).toContain(429);

    const text = await metrics();
    expect(sample(text, 'airlock_trpc_requests_total', { procedure: 'agents.list', code: 'OK' })).toBe(okBefore + 1);
    expect(sample(text, 'airlock_trpc_requests_total', { procedure: 'agents.list', code: 'UNAUTHORIZED' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'airlock_trpc_requests_total', { procedure: 'agent.heartbeat', code: 'TOO_MANY_REQUESTS' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'airlock_trpc_request_duration_seconds_count', { procedure: 'agents.list', code: 'OK' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'airlock_rate_limit_refusals_total', { limit: 'agent' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'airlock_http_requests_total', { route: 'trpc', method: 'GET', code: '200' })).toBeGreaterThanOrEqual(1);
    // The refusal and the failed authentication were audited.
    expect(sample(text, 'airlock_audit_append_duration_seconds_count') ?? 0).toBeGreaterThan(auditBefore);
    // Never a credential, in any label.
    expect(text).not.toContain(admin);
    expect(text).not.toContain('alk_');
    expect(text).not.toContain('Bearer');
  });

  it('[operations:metrics] counts runs by outcome, delivered bytes and the run queue from the database', async () => {
    const agent = await addAgent('0 seconds');
    const [integration] = await db.query<{ id: string }>(
      "INSERT INTO integrations (tenant_id, agent_id, name, spec) VALUES ($1, $2, 'metrics-runs', '{}'::jsonb) RETURNING id",
      [tenantId, agent.id],
    );
    const run = (status: string, report: unknown, age: string) =>
      db.query(
        `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, spec, status, requested_by, report, created_at)
         VALUES ($1, $2, 1, $3, '{}'::jsonb, $4, 'test', $5, now() - $6::interval)`,
        [tenantId, integration?.id, agent.id, status, report === null ? null : JSON.stringify(report), age],
      );
    await run('succeeded', { bytesOut: 1000, files: [{}, {}] }, '1 minute');
    await run('succeeded', { bytesOut: 500, files: [{}] }, '1 minute');
    await run('failed', { bytesOut: 0, files: [] }, '1 minute');
    await run('queued', null, '90 seconds');
    const text = await metrics();
    expect(sample(text, 'airlock_runs', { tenant_id: tenantId, outcome: 'succeeded' })).toBe(2);
    expect(sample(text, 'airlock_runs', { tenant_id: tenantId, outcome: 'failed' })).toBe(1);
    expect(sample(text, 'airlock_runs', { tenant_id: tenantId, outcome: 'queued' })).toBe(1);
    expect(sample(text, 'airlock_delivered_bytes', { tenant_id: tenantId })).toBe(1500);
    expect(sample(text, 'airlock_delivered_files', { tenant_id: tenantId })).toBe(3);
    expect(sample(text, 'airlock_run_queue_depth', { tenant_id: tenantId })).toBe(1);
    expect(sample(text, 'airlock_run_queue_oldest_seconds', { tenant_id: tenantId })).toBeGreaterThanOrEqual(90);
    expect(sample(text, 'airlock_db_pool_max')).toBe(4);
  });
});
