import { randomBytes, randomUUID } from 'node:crypto';
import { type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { signerFromSecretKey } from '@airlock/storage';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, DEFAULT_RATE_LIMITS, Dispatcher, migrate, secretBoxFromKey } from './index.ts';
import { type Call, data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };

/** What PostgreSQL cannot store: NUL in text, and an unpaired surrogate (jsonb refuses its escape). */
const hostile = { nul: 'a\u0000b', 'lone surrogate': 'a\ud800b' } as const;

describe('free-text input over HTTP on PostgreSQL', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let admin: Record<string, string>;
  let agent: { id: string; keys: AgentKeyPair };

  const post = (path: string, input: unknown, headers: Record<string, string> = {}): Promise<Call> => send(base, path, input, headers, 'POST');
  const get = (path: string, input: unknown, headers: Record<string, string> = {}): Promise<Call> => send(base, path, input, headers, 'GET');

  async function signed(path: string, input: unknown): Promise<Call> {
    const headers = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: `/trpc/${path}`, body: JSON.stringify(input) }, new Date());
    return post(path, input, headers);
  }

  async function token(): Promise<string> {
    return data<{ token: string }>(await post('enrollment.createToken', { ttlMinutes: 5 }, admin)).token;
  }

  function expectBadRequest(reply: Call): void {
    expect({ status: reply.status, code: reply.body.error?.data?.code }).toEqual({ status: 400, code: 'BAD_REQUEST' });
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    admin = { authorization: `Bearer ${boot.key}` };
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer, auth: { scrypt: fastScrypt }, alerts: { secretBox: secretBoxFromKey(randomBytes(32)), webhook: { timeoutMs: 2_000, allowLoopback: true } } },
      { maxBodyBytes: 256 * 1024, rateLimits: { ...DEFAULT_RATE_LIMITS, ip: { points: 100_000, durationSeconds: 60 } } },
    );
    ({ server, base } = await listenOnLoopback(handler));
    const keys = generateKeyPair();
    const enrolled = data<{ agentId: string }>(await post('enrollment.enroll', { token: await token(), publicKey: encodeKey(keys.publicKey), hostname: 'host-a', version: '0.1.0' }));
    agent = { id: enrolled.agentId, keys };
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  beforeEach(async () => {
    await db.query('DELETE FROM login_throttle');
  });

  for (const [label, bad] of Object.entries(hostile)) {
    it(`[integrity #19] session.login refuses a ${label} in the email with 400, and counts and audits the attempt`, async () => {
      const [before] = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM audit_events WHERE action = 'login-failed'");
      const reply = await post('session.login', { tenant: 'acme', email: `admin${bad}@acme.test`, password: 'whatever it is' });
      expectBadRequest(reply);
      const rows = await db.query<{ target: string; outcome: string; meta: { reason: string } }>(
        "SELECT target, outcome, meta FROM audit_events WHERE action = 'login-failed' ORDER BY id DESC LIMIT 1",
      );
      const [after] = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM audit_events WHERE action = 'login-failed'");
      expect(Number(after?.n) - Number(before?.n)).toBe(1);
      expect(rows[0]).toMatchObject({ outcome: 'denied', meta: { reason: 'malformed-input' } });
      const throttle = await db.query<{ failures: number }>("SELECT failures FROM login_throttle WHERE key LIKE 'ip:%'");
      expect(throttle.map((row) => row.failures)).toEqual([1]);
    });

    it(`[integrity #19] audit.list refuses a ${label} in its filters with 400`, async () => {
      expectBadRequest(await get('audit.list', { action: bad }, admin));
      expectBadRequest(await get('audit.list', { target: bad }, admin));
      expectBadRequest(await get('audit.list', { actor: `admin:${bad}` }, admin));
    });

    it(`[integrity #19] apiKeys.create refuses a ${label} in the key name with 400`, async () => {
      expectBadRequest(await post('apiKeys.create', { name: `key${bad}`, role: 'auditor', expiresInDays: 1 }, admin));
    });

    it(`[integrity #19] alertDestinations.create refuses a ${label} in the destination name with 400`, async () => {
      expectBadRequest(await post('alertDestinations.create', { name: `hook${bad}`, url: 'http://127.0.0.1:9/hook' }, admin));
    });

    it(`[integrity #19] enrollment.enroll refuses a ${label} in the hostname with 400`, async () => {
      const keys = generateKeyPair();
      expectBadRequest(await post('enrollment.enroll', { token: await token(), publicKey: encodeKey(keys.publicKey), hostname: `host${bad}`, version: '0.1.0' }));
    });

    it(`[integrity #19] agent.heartbeat refuses a ${label} in the hostname with 400`, async () => {
      expectBadRequest(await signed('agent.heartbeat', { version: '0.1.0', hostname: `host${bad}` }));
    });

    it(`[integrity #19] custody.reportSecurityEvent refuses a ${label} in the reason with 400`, async () => {
      expectBadRequest(await signed('custody.reportSecurityEvent', { id: randomUUID(), kind: 'policy-violation', at: new Date().toISOString(), reason: `refused${bad}` }));
    });
  }

  it('[integrity #19] a 500-character reason of astral characters is accepted whole: lengths count code points', async () => {
    const reason = '😀'.repeat(500);
    data(await signed('custody.reportSecurityEvent', { id: randomUUID(), kind: 'policy-violation', at: new Date().toISOString(), reason }));
    const [row] = await db.query<{ reason: string }>('SELECT reason FROM agent_security_events WHERE agent_id = $1 ORDER BY received_at DESC LIMIT 1', [agent.id]);
    expect(row?.reason).toBe(reason);
  });
});
