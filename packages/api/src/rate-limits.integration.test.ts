import { randomBytes } from 'node:crypto';
import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { createApiKey } from '@airlock/auth';
import {
  bootstrapTenant,
  connectPostgres,
  createAdminUserInTenant,
  createHttpHandler,
  type Database,
  DEFAULT_RATE_LIMITS,
  Dispatcher,
  type HttpOptions,
  migrate,
  signerFromSecretKey,
} from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
const FLOOD = 1_000;
const FLOOD_CONCURRENCY = 25;
const FLOOD_DEADLINE_MS = 90_000;
/** Short summary periods, so the refusals after each subject's first are audited within the test. */
const SUMMARY_MS = 300;

describe('rate limits over HTTP', () => {
  let db: Database;
  let tenantId: string;
  const servers: Server[] = [];

  /** A fresh server: its own limit counters. */
  async function listen(options: Omit<HttpOptions, 'maxBodyBytes'>): Promise<string> {
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer, auth: { scrypt: { N: 2 ** 10, r: 8, p: 1 } } },
      { maxBodyBytes: 64 * 1024, refusalSummaryMs: SUMMARY_MS, ...options },
    );
    const { server, base } = await listenOnLoopback(handler);
    servers.push(server);
    return base;
  }

  async function newKey(): Promise<string> {
    return (await createApiKey(db, { tenantId, name: `k-${randomBytes(4).toString('hex')}`, role: 'admin', expiresInDays: 1 }, new Date())).key;
  }

  async function auditCount(actions: readonly string[]): Promise<number> {
    const [row] = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_events WHERE action = ANY($1)', [actions]);
    return Number(row?.n ?? '0');
  }

  /** Where the trail is now, across every chain: events written later have a greater id. */
  async function auditHead(): Promise<number> {
    const [row] = await db.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM audit_events');
    return Number(row?.id ?? '0');
  }

  /**
   * The `rate-limited` rows written after `seq`, and the refusals they stand for, once `expected`
   * refusals are accounted for or five seconds have passed.
   */
  async function refusalsSince(seq: number, expected: number): Promise<{ rows: number; refusals: number }> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const [row] = await db.query<{ rows: string; refusals: string }>(
        "SELECT count(*)::text AS rows, coalesce(sum((meta->>'refusals')::int), 0)::text AS refusals FROM audit_events WHERE action = 'rate-limited' AND id > $1",
        [seq],
      );
      const found = { rows: Number(row?.rows ?? '0'), refusals: Number(row?.refusals ?? '0') };
      if (found.refusals >= expected || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A batched GET of `agents.list` `count` times. */
  function batch(base: string, count: number, key: string) {
    const paths = Array.from({ length: count }, () => 'agents.list').join(',');
    return fetch(`${base}/trpc/${paths}?batch=1`, { headers: { authorization: `Bearer ${key}` } });
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 30 });
    await migrate(db);
    tenantId = (await bootstrapTenant(db, { tenant: 'limits', keyName: 'first', expiresInDays: 30 })).tenantId;
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await db?.close();
  });

  it(`answers ${FLOOD} requests with random API keys from one IP with 401 or 429 only, and accounts for every one in the audit`, async () => {
    const base = await listen({ rateLimits: { 'api-key': { points: 100, durationSeconds: 60 }, agent: { points: 100, durationSeconds: 60 }, ip: { points: 30, durationSeconds: 60 } } });
    const before = await auditCount(['admin-auth-failed']);
    const seqBefore = await auditHead();
    const statuses = new Map<number, number>();
    let missingRetryAfter = 0;
    const started = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < FLOOD && Date.now() - started < FLOOD_DEADLINE_MS) {
        const i = next++;
        // Half well-formed keys (a database lookup), half garbage (refused on sight).
        const key = i % 2 === 0 ? `alk_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url').slice(0, 43)}` : randomBytes(24).toString('base64url');
        const response = await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${key}` } });
        await response.arrayBuffer();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 429 && !/^\d+$/.test(response.headers.get('retry-after') ?? '')) missingRetryAfter += 1;
      }
    };
    await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, worker));
    const elapsedMs = Date.now() - started;
    expect(elapsedMs).toBeLessThan(FLOOD_DEADLINE_MS);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(FLOOD);
    expect([...statuses.keys()].sort()).toEqual([401, 429]);
    expect(statuses.get(401)).toBe(30);
    expect(statuses.get(429)).toBe(FLOOD - 30);
    expect(missingRetryAfter).toBe(0);
    // Every failed authentication has its row; the refusals are all counted, in a few rows: the
    // first of each summary period, and one row with the number of the rest.
    expect((await auditCount(['admin-auth-failed'])) - before).toBe(30);
    const limitedRows = await refusalsSince(seqBefore, FLOOD - 30);
    expect(limitedRows.refusals).toBe(FLOOD - 30);
    expect(limitedRows.rows).toBeLessThanOrEqual(2 * (Math.ceil(elapsedMs / SUMMARY_MS) + 1));
    const [limited] = await db.query<{ meta: Record<string, unknown>; actor_type: string }>(
      "SELECT meta, actor_type FROM audit_events WHERE action = 'rate-limited' ORDER BY id DESC LIMIT 1",
    );
    expect(limited).toMatchObject({ actor_type: 'anonymous', meta: { limit: 'ip', subject: '127.0.0.1', points: 30, windowSeconds: 60, summary: true } });
    // Refusals name the limit and the address, never the key that was tried.
    const [leaked] = await db.query("SELECT 1 FROM audit_events WHERE meta::text LIKE '%alk\\_%'");
    expect(leaked).toBeUndefined();

    // A valid key from the same address still works: the IP budget only counts unauthenticated calls.
    const ok = await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${await newKey()}` } });
    expect(ok.status).toBe(200);
  });

  it('counts each operation of a batch against the key, and answers the refused ones with 429 and Retry-After', async () => {
    const base = await listen({ rateLimits: { 'api-key': { points: 5, durationSeconds: 60 }, agent: { points: 5, durationSeconds: 60 }, ip: { points: 5, durationSeconds: 60 } } });
    const key = await newKey();
    const seqBefore = await auditHead();
    const first = await batch(base, 4, key);
    expect(first.status).toBe(200);
    expect(first.headers.get('retry-after')).toBeNull();
    // One operation left in the window: the second batch of four gets one result and three refusals.
    const second = await batch(base, 4, key);
    expect(second.status).toBe(207);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
    const items = (await second.json()) as { result?: unknown; error?: { data?: { httpStatus?: number } } }[];
    // The calls of a batch run concurrently, so which one got the last point is not fixed.
    expect(items.map((item) => (item.result ? 200 : item.error?.data?.httpStatus)).sort()).toEqual([200, 429, 429, 429]);
    const third = await batch(base, 2, key);
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    // Five refusals: the first audited at once, the other four in one summary row.
    expect(await refusalsSince(seqBefore, 5)).toEqual({ rows: 2, refusals: 5 });
    const rows = await db.query<{ actor_type: string; tenant_id: string; meta: { limit: string } }>(
      "SELECT actor_type, tenant_id, meta FROM audit_events WHERE action = 'rate-limited' AND id > $1",
      [seqBefore],
    );
    for (const row of rows) expect(row).toMatchObject({ actor_type: 'api-key', tenant_id: tenantId, meta: { limit: 'api-key' } });
    // Another key has its own budget.
    expect((await batch(base, 4, await newKey())).status).toBe(200);
  });

  it('refuses a batch over the cap with 400 before any call runs or counts', async () => {
    const base = await listen({ maxBatchSize: 4, rateLimits: { 'api-key': { points: 4, durationSeconds: 60 }, agent: { points: 4, durationSeconds: 60 }, ip: { points: 4, durationSeconds: 60 } } });
    const key = await newKey();
    const auditBefore = await auditHead();
    const refused = await batch(base, 5, key);
    expect(refused.status).toBe(400);
    expect(JSON.stringify(await refused.json())).toMatch(/Batch call exceeds maximum size/);
    // Nothing ran: no audit row, and the key was not even looked up.
    expect(await auditHead()).toBe(auditBefore);
    const [used] = await db.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE prefix = $1', [key.split('_')[1]]);
    expect(used?.last_used_at).toBeNull();
    // The whole budget is still there.
    expect((await batch(base, 4, key)).status).toBe(200);
  });

  it('limits a signed agent per operation, and counts its bad signatures against the IP', async () => {
    const base = await listen({ rateLimits: { 'api-key': { points: 50, durationSeconds: 60 }, agent: { points: 3, durationSeconds: 60 }, ip: { points: 2, durationSeconds: 60 } } });
    const keys: AgentKeyPair = generateKeyPair();
    const [agent] = await db.query<{ id: string }>(
      "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, 'limited', '0') RETURNING id",
      [tenantId, encodeKey(keys.publicKey)],
    );
    const agentId = agent?.id ?? '';
    const heartbeat = (signWith: AgentKeyPair) => {
      const body = JSON.stringify({ version: '0', hostname: 'limited' });
      const headers = signRequest(signWith, { agentId, method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', body });
      return fetch(`${base}/trpc/agent.heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    };
    const statuses: number[] = [];
    const seqBefore = await auditHead();
    for (let i = 0; i < 5; i++) statuses.push((await heartbeat(keys)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect((await refusalsSince(seqBefore, 2)).refusals).toBe(2);
    const limited = await db.query<{ actor_id: string; meta: { limit: string } }>(
      "SELECT actor_id, meta FROM audit_events WHERE action = 'rate-limited' AND actor_type = 'agent' AND actor_id = $1",
      [agentId],
    );
    expect(limited.map((row) => row.meta.limit)).toEqual(['agent', 'agent']);
    // Forged signatures for the same agent id count against the address, not the agent.
    const forged = generateKeyPair();
    const forgedStatuses: number[] = [];
    for (let i = 0; i < 4; i++) forgedStatuses.push((await heartbeat(forged)).status);
    expect(forgedStatuses).toEqual([401, 401, 429, 429]);
  });
  it('[integrity #17] limits console sessions per user like API keys: 429 with Retry-After, audited, shared by the user\'s sessions', async () => {
    const PASSWORD = 'a console password long enough';
    const [alice, bob] = await Promise.all(
      ['alice', 'bob'].map((name) =>
        createAdminUserInTenant(db, { tenant: 'limits', email: `${name}-${randomBytes(3).toString('hex')}@limits.test`, role: 'admin', password: PASSWORD }, { scrypt: { N: 2 ** 10, r: 8, p: 1 } }),
      ),
    );
    const base = await listen({ rateLimits: { ...DEFAULT_RATE_LIMITS, session: { points: 5, durationSeconds: 60 } } });
    const signIn = async (email: string) => {
      const response = await fetch(`${base}/trpc/session.login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tenant: 'limits', email, password: PASSWORD }),
      });
      expect(response.status).toBe(200);
      return response.headers.getSetCookie()[0]?.split(';')[0] ?? '';
    };
    const list = (cookie: string) => fetch(`${base}/trpc/agents.list`, { headers: { cookie } });
    const [aliceOne, aliceTwo, bobOne] = [await signIn(alice?.email ?? ''), await signIn(alice?.email ?? ''), await signIn(bob?.email ?? '')];
    const seq = await auditHead();
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    // Alternating between two sessions of one user: they share one counter.
    for (let i = 0; i < 8; i++) {
      const response = await list(i % 2 === 0 ? aliceOne : aliceTwo);
      await response.arrayBuffer();
      statuses.push(response.status);
      if (response.status === 429) retryAfter ??= response.headers.get('retry-after');
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Another user is counted on their own.
    expect((await list(bobOne)).status).toBe(200);
    // The session limit's first refusal; an earlier test's summary of its IP refusals may land in between.
    const [row] = await db.query<{ actor_type: string; actor_id: string; meta: Record<string, unknown> }>(
      "SELECT actor_type, actor_id, meta FROM audit_events WHERE action = 'rate-limited' AND id > $1 AND meta->>'limit' = 'session' ORDER BY id LIMIT 1",
      [seq],
    );
    expect(row).toMatchObject({ actor_type: 'admin', actor_id: alice?.id, meta: { limit: 'session', subject: alice?.id, points: 5 } });
  });
});
