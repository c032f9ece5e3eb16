import { mkdtemp, rm } from 'node:fs/promises';
import { type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { verifyChain } from '@airlock/audit';
import { type AgentKeyPair, encodeKey, generateKeyPair, openStatement, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { createTestDatabase } from '@airlock/testing';
import { signerFromSecretKey } from '@airlock/storage';
import { createApiKey } from '@airlock/auth';
import { bootstrapTenant, listAuditEvents, connectPostgres, openPglite, createHttpHandler, type Database, Dispatcher, migrate } from './index.ts';
import { type Call, data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

async function listen(db: Database, now: () => Date = () => new Date()): Promise<{ server: Server; base: string }> {
  const handler = createHttpHandler({ db, dispatcher: new Dispatcher(50), now, logger: silent, signer }, { maxBodyBytes: 256 * 1024 });
  return listenOnLoopback(handler);
}

const call = (base: string, path: string, input: unknown, headers: Record<string, string> = {}): Promise<Call> => send(base, path, input, headers, 'POST');

const scratch: string[] = [];
const backends = {
  postgres: async () => connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 25 }),
  // The embedded default: the same migrations and the same code on PGlite.
  pglite: async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-pglite-'));
    scratch.push(dir);
    return openPglite(dir);
  },
};

afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

describe.each(Object.entries(backends))('control plane over HTTP on %s', (_name, openDatabase) => {
  let db: Database;
  let base: string;
  let servers: Server[] = [];
  let admin: Record<string, string>;
  let agent: { id: string; keys: AgentKeyPair };

  async function signedCall(path: string, input: unknown, keys = agent.keys, agentId = agent.id, now = new Date()) {
    const body = JSON.stringify(input);
    const headers = signRequest(keys, { agentId, method: 'POST', pathAndQuery: `/trpc/${path}`, body }, now);
    return { headers, body, result: await call(base, path, input, headers) };
  }

  async function auditReasons(action: string): Promise<string[]> {
    const rows = await db.query<{ reason: string }>(
      "SELECT meta->>'reason' AS reason FROM audit_events WHERE action = $1 ORDER BY seq",
      [action],
    );
    return rows.map((row) => row.reason);
  }

  async function enroll(): Promise<{ id: string; keys: AgentKeyPair }> {
    const { token } = data<{ token: string }>(await call(base, 'enrollment.createToken', { ttlMinutes: 5 }, admin));
    const keys = generateKeyPair();
    const enrolled = data<{ agentId: string }>(
      await call(base, 'enrollment.enroll', { token, publicKey: encodeKey(keys.publicKey), hostname: 'host-a', version: '0.1.0' }),
    );
    return { id: enrolled.agentId, keys };
  }

  beforeAll(async () => {
    db = await openDatabase();
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    admin = { authorization: `Bearer ${boot.key}` };
    const listening = await listen(db);
    servers.push(listening.server);
    base = listening.base;
    agent = await enroll();
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    servers = [];
    await db.close();
  });

  it('sends every error with its class, whatever its HTTP status', async () => {
    const invalid = await call(base, 'enrollment.createToken', { ttlMinutes: -1 }, admin);
    expect([invalid.status, invalid.body.error?.data?.errorClass]).toEqual([400, 'user']);
    const anonymous = await call(base, 'enrollment.createToken', { ttlMinutes: 5 });
    expect([anonymous.status, anonymous.body.error?.data?.errorClass]).toEqual([401, 'authentication']);
    const missing = await send(base, 'runs.get', { id: '00000000-0000-4000-8000-000000000000' }, admin, 'GET');
    expect([missing.status, missing.body.error?.data?.errorClass]).toEqual([404, 'not-found']);
    expect(JSON.stringify(missing.body)).not.toContain('stack');
  });

  it('lets exactly one of 20 concurrent redemptions of a token win', async () => {
    const { token } = data<{ token: string }>(await call(base, 'enrollment.createToken', { ttlMinutes: 5 }, admin));
    const attempts = await Promise.all(
      Array.from({ length: 20 }, () =>
        call(base, 'enrollment.enroll', { token, publicKey: encodeKey(generateKeyPair().publicKey), hostname: 'racer', version: '1' }),
      ),
    );
    expect(attempts.filter((a) => a.status === 200)).toHaveLength(1);
    expect(attempts.filter((a) => a.status === 401)).toHaveLength(19);
    const [{ agents } = { agents: '0' }] = await db.query<{ agents: string }>("SELECT count(*)::text AS agents FROM agents WHERE hostname = 'racer'");
    expect(agents).toBe('1');
  });

  it('stores the token hashed and refuses it after expiry', async () => {
    const { token } = data<{ token: string }>(await call(base, 'enrollment.createToken', { ttlMinutes: 1 }, admin));
    const stored = await db.query('SELECT 1 FROM enrollment_tokens WHERE token_sha256 = $1 OR token_sha256 = $2', [token, token.slice(4)]);
    expect(stored).toHaveLength(0);
    const later = await listen(db, () => new Date(Date.now() + 2 * 60_000));
    servers.push(later.server);
    const attempt = await call(later.base, 'enrollment.enroll', { token, publicKey: encodeKey(generateKeyPair().publicKey), hostname: 'late', version: '1' });
    expect(attempt.status).toBe(401);
    expect(await call(base, 'enrollment.createToken', { ttlMinutes: 31 }, admin)).toMatchObject({ status: 400 });
  });

  it('accepts a signed request once and refuses its replay', async () => {
    const first = await signedCall('agent.heartbeat', { version: '0.1.0', hostname: 'host-a' });
    expect(first.result.status).toBe(200);
    const replay = await call(base, 'agent.heartbeat', JSON.parse(first.body), first.headers);
    expect(replay.status).toBe(401);
    expect(await auditReasons('agent-request-refused')).toContain('replayed');
  });

  it('refuses altered, expired, unsigned and unknown-agent requests, and audits each', async () => {
    const signed = await signedCall('agent.heartbeat', { version: '0.1.0', hostname: 'host-a' });
    const altered = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', body: '{"version":"0.1.0","hostname":"host-a"}' });
    expect((await call(base, 'agent.heartbeat', { version: '6.6.6', hostname: 'host-a' }, altered)).status).toBe(401);
    const otherPath = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', body: '{"waitMs":0}' });
    expect((await call(base, 'agent.nextJob', { waitMs: 0 }, otherPath)).status).toBe(401);
    const old = await signedCall('agent.heartbeat', { version: '0.1.0', hostname: 'host-a' }, agent.keys, agent.id, new Date(Date.now() - 301_000));
    expect(old.result.status).toBe(401);
    // A minute past the 5-minute window, so a slow machine cannot bring it back inside before the check.
    const future = await signedCall('agent.heartbeat', { version: '0.1.0', hostname: 'host-a' }, agent.keys, agent.id, new Date(Date.now() + 360_000));
    expect(future.result.status).toBe(401);
    expect((await call(base, 'agent.heartbeat', { version: '0.1.0', hostname: 'host-a' })).status).toBe(401);
    const stranger = await signedCall('agent.heartbeat', { version: '0.1.0', hostname: 'x' }, generateKeyPair(), crypto.randomUUID());
    expect(stranger.result.status).toBe(401);
    const impostor = await signedCall('agent.heartbeat', { version: '0.1.0', hostname: 'x' }, generateKeyPair(), agent.id);
    expect(impostor.result.status).toBe(401);
    expect(signed.result.status).toBe(200);
    expect(await auditReasons('agent-request-refused')).toEqual(
      expect.arrayContaining(['bad signature', 'expired', 'unsigned', 'unknown agent']),
    );
  });

  it('caps the request body', async () => {
    const response = await fetch(`${base}/trpc/agent.heartbeat`, { method: 'POST', body: 'x'.repeat(300 * 1024) });
    expect(response.status).toBe(413);
  });

  it('explains invalid input and refuses a role without the permission', async () => {
    const bad = await call(base, 'enrollment.createToken', { ttlMinutes: 'soon' }, admin);
    expect(bad.status).toBe(400);
    expect(bad.body.error?.message).toMatch(/ttlMinutes/);
    const [tenant] = await db.query<{ id: string }>("SELECT id FROM tenants WHERE name = 'acme'");
    const auditor = await db.transaction((tx) => createApiKey(tx, { tenantId: tenant?.id ?? '', name: 'aud', role: 'auditor', expiresInDays: 1 }, new Date()));
    const denied = await call(base, 'enrollment.createToken', {}, { authorization: `Bearer ${auditor.key}` });
    expect(denied.status).toBe(403);
    expect((await call(base, 'enrollment.createToken', {}, { authorization: 'Bearer alk_nope' })).status).toBe(401);
  });

  it('dispatches a run to its agent and records the metadata-only report', async () => {
    const recipient = await generateDemoKey('Partner', 'partner@example.com');
    const spec = {
      name: 'nightly',
      agentId: agent.id,
      source: { connector: 'sftp@1', config: { host: '127.0.0.1', hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp', path: '/exports/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [recipient.armoredPublicKey],
    };
    for (const scope of ['read sftp://127.0.0.1:22/exports/*.csv', 'write file:///srv/out/**']) {
      expect((await call(base, 'grants.add', { agentId: agent.id, scope }, admin)).status).toBe(200);
    }
    const saved = data<{ id: string; version: number }>(await call(base, 'integrations.save', spec, admin));
    expect(saved.version).toBe(1);
    expect(data<{ version: number }>(await call(base, 'integrations.save', spec, admin)).version).toBe(2);
    const waiting = signedCall('agent.nextJob', { waitMs: 5000 });
    const { runId } = data<{ runId: string }>(await call(base, 'integrations.runNow', { id: saved.id }, admin));
    const { envelope } = data<{ envelope: unknown }>((await waiting).result);
    // The job arrives only as an envelope signed by the control plane's key, naming this agent and tenant.
    const job = openStatement('job', envelope, signer.publicKey);
    expect(job).toMatchObject({ v: 1, runId, integrationVersion: 2, agentId: agent.id, tenantId: expect.any(String) });
    expect(openStatement('job', envelope, generateKeyPair().publicKey)).toBeUndefined();
    const report = {
      runId,
      status: 'failed',
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      bytesIn: 0,
      bytesOut: 0,
      files: [],
      recipientFingerprints: [recipient.fingerprint],
      errorClass: 'policy-violation',
      violation: { kind: 'source' },
    };
    expect((await signedCall('agent.reportRun', report)).result.status).toBe(200);
    expect((await signedCall('agent.reportRun', report)).result.status).toBe(404);
    const run = data<{ status: string; errorClass: string }>(
      await fetch(`${base}/trpc/runs.get?input=${encodeURIComponent(JSON.stringify({ id: runId }))}`, { headers: admin }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Call['body'],
      })),
    );
    expect(run).toMatchObject({ status: 'failed', errorClass: 'policy-violation' });
    expect((await db.query("SELECT 1 FROM audit_events WHERE action = 'policy-violation'")).length).toBe(1);
  });

  it('refuses a revoked agent on its very next request', async () => {
    const other = await enroll();
    const heartbeat = { version: '0.1.0', hostname: 'host-b' };
    expect((await signedCall('agent.heartbeat', heartbeat, other.keys, other.id)).result.status).toBe(200);
    expect(data<{ agentId: string }>(await call(base, 'agents.revoke', { id: other.id }, admin))).toMatchObject({ agentId: other.id });
    expect((await signedCall('agent.heartbeat', heartbeat, other.keys, other.id)).result.status).toBe(401);
    expect(await auditReasons('agent-request-refused')).toContain('agent revoked');
    expect((await call(base, 'agents.revoke', { id: other.id }, admin)).status).toBe(404);
    expect((await db.query("SELECT 1 FROM audit_events WHERE action = 'agent-revoke' AND target = $1", [other.id])).length).toBe(1);
  });

  it('manages API keys: no role above the caller, revocation and rotation on the next request', async () => {
    const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
    const create = (headers: Record<string, string>, role: string, expiresInDays = 30) =>
      call(base, 'apiKeys.create', { name: `${role}-key`, role, expiresInDays }, headers);
    expect((await create(admin, 'admin', 91)).status).toBe(400);
    const adminKey = data<{ id: string; key: string }>(await create(admin, 'admin'));
    expect((await create(bearer(adminKey.key), 'owner')).status).toBe(403);
    const auditorKey = data<{ id: string; key: string }>(await create(bearer(adminKey.key), 'auditor'));
    expect((await create(bearer(auditorKey.key), 'auditor')).status).toBe(403);
    const listed = data<Array<{ id: string; role: string; lastUsedAt: string | null }>>(
      await fetch(`${base}/trpc/apiKeys.list`, { headers: admin }).then(async (r) => ({ status: r.status, body: (await r.json()) as Call['body'] })),
    );
    expect(listed.find((k) => k.id === auditorKey.id)).toMatchObject({ role: 'auditor' });
    expect(JSON.stringify(listed)).not.toContain(auditorKey.key);

    const rotated = data<{ id: string; key: string }>(await call(base, 'apiKeys.rotate', { id: adminKey.id, expiresInDays: 7 }, admin));
    expect((await create(bearer(adminKey.key), 'auditor')).status).toBe(401);
    expect((await create(bearer(rotated.key), 'auditor')).status).toBe(200);
    expect(data<{ id: string }>(await call(base, 'apiKeys.revoke', { id: rotated.id }, admin))).toEqual({ id: rotated.id });
    expect((await create(bearer(rotated.key), 'auditor')).status).toBe(401);
    expect((await call(base, 'apiKeys.revoke', { id: rotated.id }, admin)).status).toBe(404);
    const actions = await db.query<{ action: string }>("SELECT action FROM audit_events WHERE action LIKE 'api-key-%' ORDER BY seq");
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['api-key-create', 'api-key-rotate', 'api-key-revoke']));
  });

  it('keeps the audit trail append-only and its hash chain intact', async () => {
    await expect(db.query("UPDATE audit_events SET action = 'x' WHERE seq = 1")).rejects.toThrow(/append-only/);
    await expect(db.query('DELETE FROM audit_events WHERE seq = 1')).rejects.toThrow(/append-only/);
    const records = await listAuditEvents(db, { tenantId: null, limit: 10_000 });
    expect(records.length).toBeGreaterThan(20);
    // One chain per tenant and one for the system, each whole on its own.
    const chains = new Map<string | null, typeof records>();
    for (const record of records) chains.set(record.tenantId, [...(chains.get(record.tenantId) ?? []), record]);
    expect(chains.size).toBeGreaterThan(1);
    for (const chain of chains.values()) expect(verifyChain(chain)).toMatchObject({ ok: true, count: chain.length });
  });
});
