/**
 * The API request log over real HTTP on PostgreSQL: one row per request with its caller, outcome
 * and request id (and nothing of its body or query), searched through `requests.list`, pruned per
 * tenant's retention, and written off the request path from a bounded queue that drops and counts
 * when the database cannot keep up.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import type { RequestLogRow } from '@airlock/protocol';
import { createClient } from '@airlock/auth';
import {
  bootstrapTenant,
  connectPostgres,
  createAdminUserInTenant,
  createHttpHandler,
  type Database,
  Dispatcher,
  generateTokenKeyPem,
  migrate,
  pruneRequestLog,
  type Queryable,
  type RequestLogEntry,
  RequestLogWriter,
  signerFromSecretKey,
  tokenKeysFromPems,
} from './index.ts';
import { type Call, data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const signer = signerFromSecretKey(generateKeyPair().secretKey);
const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };

function entry(overrides: Partial<RequestLogEntry> = {}): RequestLogEntry {
  return {
    at: new Date(),
    tenantId: null,
    callerType: 'anonymous',
    callerId: null,
    procedure: 'agents.list',
    method: 'GET',
    status: 401,
    outcome: 'UNAUTHORIZED',
    latencyMs: 1,
    sourceIp: '127.0.0.1',
    userAgent: 'probe',
    requestId: randomUUID(),
    ...overrides,
  };
}

describe('the API request log', () => {
  let db: Database;
  let tenantId: string;
  let otherTenantId: string;
  let ownerKey: string;
  let base: string;
  let server: Server;
  let writer: RequestLogWriter;
  const warnings: { meta: Record<string, unknown>; message: string }[] = [];
  const logger = { warn: (meta: Record<string, unknown>, message: string) => warnings.push({ meta, message }), error: () => undefined };
  let client: { id: string; clientId: string; clientSecret: string | null };

  beforeAll(async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    db = connectPostgres(url);
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'requests', keyName: 'owner', expiresInDays: 30 });
    tenantId = boot.tenantId;
    ownerKey = boot.key;
    otherTenantId = (await bootstrapTenant(db, { tenant: 'requests-other', keyName: 'owner', expiresInDays: 30 })).tenantId;
    await createAdminUserInTenant(db, { tenant: 'requests', email: 'ada@example.com', role: 'auditor', password: 'a long enough password 1' }, { scrypt: fastScrypt });
    client = await db.forSystem().transaction((tx) =>
      createClient(tx, { tenantId, name: 'reporting', role: 'auditor', permissions: null, readOnly: false, integrations: null, authMethod: 'client_secret_basic', jwks: null }, new Date(), 'seed'),
    );
    writer = new RequestLogWriter(db, logger, { flushMs: 50 });
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger, signer, auth: { scrypt: fastScrypt }, oauth: { issuer: 'https://airlock.test', keys: await tokenKeysFromPems(generateTokenKeyPem()) } },
      { maxBodyBytes: 64 * 1024, requestLog: writer },
    );
    ({ server, base } = await listenOnLoopback(handler));
  });

  afterAll(async () => {
    server.close();
    await writer.close();
    await db.close();
  });

  async function logged(requestId: string): Promise<Record<string, unknown>> {
    await writer.flush();
    const [row] = await db.query<Record<string, unknown>>('SELECT * FROM request_log WHERE request_id = $1', [requestId]);
    if (!row) throw new Error(`no request_log row for ${requestId}`);
    return row;
  }

  it('logs each caller kind with its procedure, outcome, latency, source and request id, and never the input', async () => {
    const secretInput = `input-${randomUUID()}`;
    const byKey = await fetch(`${base}/trpc/runs.list?input=${encodeURIComponent(JSON.stringify({ integrationId: randomUUID(), limit: 5, x: secretInput }))}`, {
      headers: { authorization: `Bearer ${ownerKey}`, 'user-agent': 'reporting-bot/1.0' },
    });
    const keyRow = await logged(byKey.headers.get('x-request-id') ?? '');
    const [key] = await db.query<{ id: string }>('SELECT id FROM api_keys WHERE tenant_id = $1', [tenantId]);
    expect(keyRow).toMatchObject({ tenant_id: tenantId, caller_type: 'api-key', caller_id: key?.id, procedure: 'runs.list', method: 'GET', status: 400, outcome: 'BAD_REQUEST', user_agent: 'reporting-bot/1.0' });
    expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(keyRow['source_ip']);
    expect(typeof keyRow['latency_ms']).toBe('number');
    expect(JSON.stringify(keyRow)).not.toContain(secretInput);

    const form = new URLSearchParams({ grant_type: 'client_credentials' }).toString();
    const tokenReply = await fetch(`${base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret ?? ''}`).toString('base64')}` },
      body: form,
    });
    expect(await logged(tokenReply.headers.get('x-request-id') ?? '')).toMatchObject({ tenant_id: tenantId, caller_type: 'oauth-client', caller_id: client.id, procedure: 'oauth.token', status: 200, outcome: 'OK' });
    const token = String(((await tokenReply.json()) as { access_token: string }).access_token);
    const byClient = await fetch(`${base}/trpc/agents.list,integrations.list?batch=1`, { headers: { authorization: `Bearer ${token}` } });
    expect(await logged(byClient.headers.get('x-request-id') ?? '')).toMatchObject({ caller_type: 'oauth-client', procedure: 'agents.list,integrations.list', status: 200, outcome: 'OK' });

    const login = await fetch(`${base}/trpc/session.login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: base },
      body: JSON.stringify({ tenant: 'requests', email: 'ada@example.com', password: 'a long enough password 1' }),
    });
    expect(await logged(login.headers.get('x-request-id') ?? '')).toMatchObject({ caller_type: 'anonymous', tenant_id: null, procedure: 'session.login', status: 200 });
    const cookie = login.headers.getSetCookie()[0]?.split(';')[0] ?? '';
    const byUser = await fetch(`${base}/trpc/agents.list`, { headers: { cookie } });
    const [user] = await db.query<{ id: string }>("SELECT id FROM admin_users WHERE email = 'ada@example.com'");
    expect(await logged(byUser.headers.get('x-request-id') ?? '')).toMatchObject({ caller_type: 'user', caller_id: user?.id, tenant_id: tenantId, outcome: 'OK' });

    const anonymous = await fetch(`${base}/trpc/agents.list`, { headers: { authorization: 'Bearer alk_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' } });
    expect(await logged(anonymous.headers.get('x-request-id') ?? '')).toMatchObject({ caller_type: 'anonymous', tenant_id: null, status: 401, outcome: 'UNAUTHORIZED' });
    const unknown = await fetch(`${base}/trpc/no.such${encodeURIComponent('<script>')}`);
    expect(await logged(unknown.headers.get('x-request-id') ?? '')).toMatchObject({ procedure: '(unknown)', status: 404, outcome: 'NOT_FOUND' });
  });

  it('searches a tenant\'s requests by caller, outcome, procedure and time, pages, and shows no other tenant\'s', async () => {
    const asOwner = { authorization: `Bearer ${ownerKey}` };
    for (let i = 0; i < 3; i += 1) await send(base, 'agents.list', undefined, asOwner, 'GET');
    await writer.flush();
    const list = async (input: Record<string, unknown>) => data<{ rows: RequestLogRow[]; nextBefore: string | null }>(await send(base, 'requests.list', input, asOwner, 'GET'));
    const all = await list({ limit: 1000 });
    expect(all.rows.length).toBeGreaterThanOrEqual(7);
    expect(new Set(all.rows.map((row) => row.callerType))).toEqual(new Set(['api-key', 'oauth-client', 'user']));
    expect((await list({ callerType: 'oauth-client' })).rows.every((row) => row.callerType === 'oauth-client')).toBe(true);
    const errors = await list({ outcome: 'error' });
    expect(errors.rows.length).toBeGreaterThan(0);
    expect(errors.rows.every((row) => row.outcome !== 'OK')).toBe(true);
    expect((await list({ procedure: 'integrations.list' })).rows.map((row) => row.procedure)).toContain('agents.list,integrations.list');
    expect((await list({ from: new Date(Date.now() + 60_000).toISOString() })).rows).toEqual([]);
    const first = await list({ limit: 2 });
    expect(first.rows).toHaveLength(2);
    const second = await list({ limit: 2, before: first.nextBefore ?? undefined });
    expect(second.rows.map((row) => row.id).some((id) => first.rows.some((row) => row.id === id))).toBe(false);
    expect(Number(second.rows[0]?.id)).toBeLessThan(Number(first.rows[1]?.id));
    // Anonymous rows (no tenant) are the system's, never a tenant's.
    expect(all.rows.some((row) => row.callerType === 'anonymous')).toBe(false);
    const [other] = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM request_log WHERE tenant_id = $1', [otherTenantId]);
    expect(other?.n).toBe('0');
  });

  it('keeps each tenant\'s requests for its own retention, and audits the setting', async () => {
    const asOwner = { authorization: `Bearer ${ownerKey}` };
    const set: Call = await send(base, 'requests.setRetention', { retentionDays: 1 }, asOwner, 'POST');
    expect(data(set)).toEqual({ retentionDays: 1 });
    expect(data(await send(base, 'requests.retention', undefined, asOwner, 'GET'))).toEqual({ retentionDays: 1, isDefault: false });
    const day = 86_400_000;
    const now = Date.now();
    const old = [
      entry({ tenantId, at: new Date(now - 2 * day), requestId: randomUUID() }),
      entry({ tenantId, at: new Date(now - 12 * 3_600_000), requestId: randomUUID() }),
      entry({ tenantId: otherTenantId, at: new Date(now - 2 * day), requestId: randomUUID() }),
      entry({ tenantId: otherTenantId, at: new Date(now - 31 * day), requestId: randomUUID() }),
      entry({ tenantId: null, at: new Date(now - 31 * day), requestId: randomUUID() }),
    ];
    for (const item of old) writer.record(item);
    await writer.flush();
    expect(await pruneRequestLog(db.forSystem(), new Date(now))).toBe(3);
    const kept = await db.query<{ request_id: string }>('SELECT request_id FROM request_log WHERE request_id = ANY($1::uuid[])', [old.map((item) => item.requestId)]);
    expect(kept.map((row) => row.request_id).sort()).toEqual([old[1]?.requestId, old[2]?.requestId].sort());
    const [audit] = await db.query<{ meta: Record<string, unknown> }>("SELECT meta FROM audit_events WHERE action = 'request-log-retention-set' AND tenant_id = $1", [tenantId]);
    expect(audit?.meta).toMatchObject({ retentionDays: 1, previousDays: 30 });
  });

  it('never holds a request up: with the database stalled, requests finish, the queue stays bounded and drops are counted and logged', async () => {
    let release: () => void = () => undefined;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    const writes: number[] = [];
    // The system view's queries wait on `stalled`: the database as seen from a hung connection.
    const slowSystem: Queryable = {
      query: async <T,>(text: string, params?: unknown[]) => {
        await stalled;
        writes.push(Array.isArray(params?.[0]) ? params[0].length : 0);
        return db.forSystem().query<T>(text, params);
      },
    } as Queryable;
    const slowDb = { ...db, forSystem: () => slowSystem } as Database;
    const local: typeof warnings = [];
    const bounded = new RequestLogWriter(slowDb, { warn: (meta, message) => local.push({ meta, message }) }, { maxQueue: 20, batchSize: 5, flushMs: 60_000 });
    const handler = createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger, signer }, { maxBodyBytes: 64 * 1024, requestLog: bounded });
    const { server: stalledServer, base: stalledBase } = await listenOnLoopback(handler);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i += 1) statuses.push((await fetch(`${stalledBase}/trpc/agents.list`, { headers: { authorization: `Bearer ${ownerKey}` } })).status);
      expect(statuses.every((status) => status === 200)).toBe(true);
      // The fifth entry started a batch of 5, held by the stalled write; 20 wait behind it; the other 15 were dropped.
      expect(bounded.stats()).toEqual({ queued: 20, written: 0, dropped: 15 });
      release();
      await bounded.close();
      expect(bounded.stats()).toEqual({ queued: 0, written: 25, dropped: 15 });
      expect(writes.every((size) => size <= 5)).toBe(true);
      expect(local.some((warning) => warning.message === 'request log entries dropped' && warning.meta['droppedTotal'] === 15)).toBe(true);
    } finally {
      release();
      stalledServer.close();
    }
  });
});
