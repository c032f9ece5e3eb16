import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, openStatement, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { createTestDatabase } from '@airlock/testing';
import { AlertEngine, type AlertEngineOptions, sendWebhook } from '@airlock/alerts';
import {
  appendAudit,
  bootstrapTenant,
  connectPostgres,
  createHttpHandler,
  type Database,
  Dispatcher,
  listAuditEvents,
  migrate,
  secretBoxFromKey,
  signerFromSecretKey,
  verifyAlertSignature,
} from './index.ts';
import { data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
const box = secretBoxFromKey(randomBytes(32));

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A loopback webhook receiver answering with the queued statuses, then `fallback`. */
class Receiver {
  readonly received: Received[] = [];
  readonly statuses: number[] = [];
  fallback = 200;
  #server: Server;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const status = this.statuses.shift() ?? this.fallback;
        res.writeHead(status, status >= 300 && status < 400 ? { location: 'http://127.0.0.1:1/elsewhere' } : {}).end(status >= 400 ? 'receiver says no' : 'ok');
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hooks/T000/B000/credential-in-path`;
    return this;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

interface AlertListing {
  id: string;
  kind: string;
  severity: string;
  state: string;
  target: string | null;
  count: number;
  details: Record<string, unknown>;
  resolvedBy: string | null;
}

describe('alerts on PostgreSQL with a loopback webhook receiver', () => {
  let db: Database;
  let dbUrl: string;
  let server: Server;
  let base: string;
  let recipient: string;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);
  const receivers: Receiver[] = [];
  const engines: AlertEngine[] = [];

  function engine(options: Partial<AlertEngineOptions> = {}): AlertEngine {
    const created = new AlertEngine({
      db,
      secretBox: box,
      now: clock,
      checkIntervalMs: 0,
      thresholds: { burst: { count: 3, windowMs: 60_000 } },
      delivery: { backoff: { baseMs: 10, maxMs: 20 }, webhook: { timeoutMs: 2_000, allowLoopback: true } },
      logger: silent,
      ...options,
    });
    engines.push(created);
    return created;
  }

  async function receiver(): Promise<Receiver> {
    const started = await new Receiver().start();
    receivers.push(started);
    return started;
  }

  /** A tenant of its own per test, so destinations and alerts of other tests stay out of the way. */
  async function tenant(name: string) {
    const boot = await bootstrapTenant(db, { tenant: name, keyName: 'owner', expiresInDays: 30 });
    const headers = { authorization: `Bearer ${boot.key}` };
    const mutate = (path: string, input: unknown) => send(base, path, input, headers, 'POST');
    const query = (path: string, input: unknown) => send(base, path, input, headers, 'GET');
    const alerts = async (kind?: string) => data<AlertListing[]>(await query('alerts.list', kind ? { kind } : {}));
    async function destination(url: string, extra: Record<string, unknown> = {}) {
      return data<{ id: string; signingSecret: string; origin: string }>(await mutate('alertDestinations.create', { name: `hook-${randomUUID()}`, url, minSeverity: 'info', ...extra }));
    }
    async function enroll(hostname: string): Promise<{ id: string; keys: AgentKeyPair }> {
      const { token } = data<{ token: string }>(await mutate('enrollment.createToken', { ttlMinutes: 5 }));
      const keys = generateKeyPair();
      const enrolled = data<{ agentId: string }>(await send(base, 'enrollment.enroll', { token, publicKey: encodeKey(keys.publicKey), hostname, version: '0.1.0' }, {}, 'POST'));
      return { id: enrolled.agentId, keys };
    }
    function integration(agentId: string, integrationName: string) {
      return {
        name: integrationName,
        agentId,
        source: { connector: 'sftp@1', config: { host: 'files.example.com', port: 2222, hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp', path: '/exports/*.csv' } },
        destination: { connector: 'local@1', config: { directory: '/srv/out' } },
        recipients: [recipient],
      };
    }
    return { tenantId: boot.tenantId, key: boot.key, mutate, query, alerts, destination, enroll, integration };
  }

  async function agentCall(agent: { id: string; keys: AgentKeyPair }, path: string, input: unknown) {
    const headers = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: `/trpc/${path}`, body: JSON.stringify(input) });
    return send(base, path, input, headers, 'POST');
  }

  async function auditOf(tenantId: string, action: string) {
    return (await listAuditEvents(db, { tenantId, action, limit: 1000 })).map((event) => ({ ...event, meta: event.meta as Record<string, unknown> }));
  }

  async function deliveries(tenantId: string) {
    return db.query<{ id: string; alert_id: string; state: string; attempts: number; last_status: number | null; last_error: string | null }>(
      'SELECT id, alert_id, state, attempts, last_status, last_error FROM alert_deliveries WHERE tenant_id = $1 ORDER BY created_at, id',
      [tenantId],
    );
  }

  /** Ticks until `done` holds, at most 40 times. */
  async function tickUntil(alerts: AlertEngine, done: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 40; i += 1) {
      await alerts.tick();
      if (await done()) return;
      await sleep(25);
    }
    throw new Error('condition not reached within 40 ticks');
  }

  function verified(received: Received, secret: string): boolean {
    return verifyAlertSignature({
      secret,
      body: received.body,
      timestamp: String(received.headers['x-airlock-timestamp']),
      signature: String(received.headers['x-airlock-signature']),
      now: clock(),
    });
  }

  function payloadOf(received: Received) {
    return JSON.parse(received.body) as { text: string; blocks: unknown[]; airlock: { deliveryId: string; test: boolean; alert: { id: string; kind: string; count: number; tenantId: string } } };
  }

  beforeAll(async () => {
    dbUrl = await createTestDatabase(inject('postgresUrl'));
    db = connectPostgres(dbUrl, { maxConnections: 10 });
    await migrate(db);
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: clock, logger: silent, signer, alerts: { secretBox: box, webhook: { timeoutMs: 2_000, allowLoopback: true } } },
      { maxBodyBytes: 256 * 1024 },
    );
    ({ server: server, base: base } = await listenOnLoopback(handler));
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
  });

  afterAll(async () => {
    for (const alerts of engines) await alerts.stop();
    for (const started of receivers) await started.close();
    server.closeAllConnections();
    server.close();
    await db.close();
  });

  it('creates a destination whose secret is shown once and stored sealed, and refuses unsafe URLs and roles', async () => {
    const t = await tenant('destinations');
    const hook = await receiver();
    const created = await t.destination(hook.url, { kinds: ['scope-denied'], minSeverity: 'warning' });
    expect(created.signingSecret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.origin).toBe(new URL(hook.url).origin);

    const listed = data<Record<string, unknown>[]>(await t.query('alertDestinations.list', undefined));
    expect(listed).toEqual([expect.objectContaining({ id: created.id, kinds: ['scope-denied'], minSeverity: 'warning', enabled: true })]);
    expect(JSON.stringify(listed)).not.toContain('credential-in-path');
    expect(JSON.stringify(listed)).not.toContain(created.signingSecret);

    const [row] = await db.query<Record<string, unknown>>('SELECT * FROM alert_destinations WHERE id = $1', [created.id]);
    expect(JSON.stringify(row)).not.toContain(created.signingSecret.slice(6));
    expect(JSON.stringify(row)).not.toContain('credential-in-path');
    const trail = JSON.stringify(await listAuditEvents(db, { tenantId: t.tenantId, limit: 1000 }));
    expect(trail).toContain('alert-destination-create');
    expect(trail).not.toContain(created.signingSecret.slice(6));
    expect(trail).not.toContain('credential-in-path');

    for (const url of ['http://hooks.example.com/x', 'https://169.254.169.254/latest/meta-data/', 'https://[fe80::1]/', 'https://u:p@hooks.example.com/', 'gopher://127.0.0.1/']) {
      const refused = await t.mutate('alertDestinations.create', { name: `bad-${randomUUID()}`, url });
      expect(refused.status, url).toBe(400);
    }
    expect((await t.mutate('alertDestinations.create', { name: listed[0]?.['name'], url: hook.url })).status).toBe(409);

    const { key: auditorKey } = data<{ key: string }>(await t.mutate('apiKeys.create', { name: 'auditor', role: 'auditor', expiresInDays: 30 }));
    const auditor = { authorization: `Bearer ${auditorKey}` };
    expect((await send(base, 'alerts.list', {}, auditor, 'GET')).status).toBe(200);
    expect((await send(base, 'alertDestinations.list', undefined, auditor, 'GET')).status).toBe(200);
    expect((await send(base, 'alertDestinations.create', { name: 'x', url: hook.url }, auditor, 'POST')).status).toBe(403);
    expect((await send(base, 'alertDestinations.delete', { id: created.id }, auditor, 'POST')).status).toBe(403);

    const tested = data<{ ok: boolean; status: number }>(await t.mutate('alertDestinations.test', { id: created.id }));
    expect(tested).toMatchObject({ ok: true, status: 200 });
    const [probe] = hook.received;
    expect(probe && verified(probe, created.signingSecret)).toBe(true);
    expect(probe && payloadOf(probe).airlock).toMatchObject({ test: true, alert: { kind: 'test' } });

    data(await t.mutate('alertDestinations.delete', { id: created.id }));
    expect(data<unknown[]>(await t.query('alertDestinations.list', undefined))).toEqual([]);
    expect((await t.mutate('alertDestinations.delete', { id: created.id })).status).toBe(404);
  });

  it('raises a scope-denied alert, delivers it signed, dedupes repeats, and follows acknowledge and resolve', async () => {
    const t = await tenant('scope-denial');
    const hook = await receiver();
    const { signingSecret } = await t.destination(hook.url);
    const alerts = engine();
    const agent = await t.enroll('denied-host');
    expect((await t.mutate('integrations.save', t.integration(agent.id, 'nightly'))).status).toBe(403);

    const first = await alerts.tick();
    expect(first.raised.filter((c) => c.tenantId === t.tenantId)).toEqual([expect.objectContaining({ kind: 'scope-denied', target: 'nightly' })]);
    expect(hook.received).toHaveLength(1);
    const [delivered] = hook.received;
    if (!delivered) throw new Error('nothing received');
    expect(verified(delivered, signingSecret)).toBe(true);
    expect(verified({ ...delivered, body: delivered.body.replace('nightly', 'nightlx') }, signingSecret)).toBe(false);
    expect(verified(delivered, 'whsec_wrong')).toBe(false);
    const payload = payloadOf(delivered);
    expect(payload.text).toMatch(/^\[warning\] scope-denied: Scope denied for nightly/);
    expect(payload.blocks.length).toBeGreaterThan(0);
    expect(payload.airlock).toMatchObject({ test: false, deliveryId: delivered.headers['x-airlock-delivery'], alert: { kind: 'scope-denied', tenantId: t.tenantId, count: 1 } });
    const [deliveredEvent] = await auditOf(t.tenantId, 'alert-delivered');
    expect(deliveredEvent).toMatchObject({ outcome: 'success', actor: { type: 'system', id: 'alerts' }, meta: { attempt: 1, status: 200, deliveryId: payload.airlock.deliveryId } });
    expect(JSON.stringify(deliveredEvent)).not.toContain(signingSecret.slice(6));

    // The same denial again, within the dedupe window: counted, not sent again.
    expect((await t.mutate('integrations.save', t.integration(agent.id, 'nightly'))).status).toBe(403);
    await alerts.tick();
    expect(hook.received).toHaveLength(1);
    const [alert] = await t.alerts('scope-denied');
    expect(alert).toMatchObject({ state: 'open', count: 2, target: 'nightly' });
    if (!alert) throw new Error('no alert');

    expect(data(await t.mutate('alerts.acknowledge', { id: alert.id }))).toEqual({ id: alert.id, state: 'acknowledged' });
    expect((await t.mutate('alerts.acknowledge', { id: alert.id })).status).toBe(409);
    expect(data(await t.mutate('alerts.resolve', { id: alert.id }))).toEqual({ id: alert.id, state: 'resolved' });
    expect((await t.mutate('alerts.resolve', { id: alert.id })).status).toBe(409);
    expect((await t.mutate('alerts.resolve', { id: randomUUID() })).status).toBe(404);
    expect(await auditOf(t.tenantId, 'alert-acknowledge')).toHaveLength(1);
    expect(await auditOf(t.tenantId, 'alert-resolve')).toHaveLength(1);

    // Once resolved, the next denial is a new alert and is sent.
    expect((await t.mutate('integrations.save', t.integration(agent.id, 'nightly'))).status).toBe(403);
    await alerts.tick();
    expect(hook.received).toHaveLength(2);
    expect((await t.alerts('scope-denied')).map((a) => a.state).sort()).toEqual(['open', 'resolved']);

    // Another tenant sees none of it.
    const other = await tenant('scope-denial-other');
    expect(await other.alerts()).toEqual([]);
  });

  it('passes over an event whose rule fails, logs it, and still raises the alerts after it', async () => {
    const t = await tenant('poison');
    const errors: Record<string, unknown>[] = [];
    const alerts = engine({ logger: { warn: () => undefined, error: (meta) => errors.push(meta) } });
    const denial = (tenantId: string, target: string) =>
      db.transaction((tx) => appendAudit(tx, { tenantId, actor: { type: 'system', id: 'test' }, action: 'scope-denied', target, outcome: 'denied', sourceIp: null, meta: { reason: 'no grant' } }));
    // A tenant id with no tenant row: the alert insert fails its foreign key.
    const poison = await denial(randomUUID(), 'orphan');
    await denial(t.tenantId, 'after-the-poison');
    const result = await alerts.tick();
    expect(result.raised.map((c) => c.target)).toContain('after-the-poison');
    expect(errors).toEqual([expect.objectContaining({ seq: poison.seq, action: 'scope-denied' })]);
    expect(await t.alerts('scope-denied')).toEqual([expect.objectContaining({ target: 'after-the-poison' })]);
    await alerts.tick();
    expect(errors).toHaveLength(1);
  });

  it('raises run-failed and policy-violation alerts from an agent\'s reports', async () => {
    const t = await tenant('agent-reports');
    const hook = await receiver();
    const { signingSecret } = await t.destination(hook.url);
    const alerts = engine();
    const agent = await t.enroll('reporting-host');
    data(await t.mutate('grants.add', { agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/**' }));
    data(await t.mutate('grants.add', { agentId: agent.id, scope: 'write file:///srv/out/**' }));
    const { id: integrationId } = data<{ id: string }>(await t.mutate('integrations.save', t.integration(agent.id, 'reported')));

    async function failRun(extra: Record<string, unknown>): Promise<string> {
      const { runId } = data<{ runId: string }>(await t.mutate('integrations.runNow', { id: integrationId }));
      const { envelope } = data<{ envelope: unknown }>(await agentCall(agent, 'agent.nextJob', { waitMs: 0 }));
      expect(openStatement('job', envelope, signer.publicKey)).toMatchObject({ runId });
      const at = new Date().toISOString();
      data(await agentCall(agent, 'agent.reportRun', { runId, status: 'failed', startedAt: at, finishedAt: at, bytesIn: 0, bytesOut: 0, files: [], recipientFingerprints: [], ...extra }));
      return runId;
    }

    const failedRun = await failRun({ errorClass: 'operational' });
    await alerts.tick();
    const violatingRun = await failRun({ errorClass: 'policy-violation', violation: { kind: 'source' } });
    await alerts.tick();

    const listed = await t.alerts();
    expect(listed.map((a) => a.kind).sort()).toEqual(['policy-violation', 'run-failed']);
    expect(listed.find((a) => a.kind === 'run-failed')).toMatchObject({ target: integrationId, count: 1, details: { runId: failedRun, errorClass: 'operational' } });
    expect(listed.find((a) => a.kind === 'policy-violation')).toMatchObject({ severity: 'critical', details: { runId: violatingRun, violation: 'source' } });
    expect(hook.received.map((r) => payloadOf(r).airlock.alert.kind).sort()).toEqual(['policy-violation', 'run-failed']);
    expect(hook.received.every((r) => verified(r, signingSecret))).toBe(true);
  });

  it('raises burst alerts for bad agent signatures and failed logins at the threshold within the window, not below it', async () => {
    const t = await tenant('bursts');
    const hook = await receiver();
    await t.destination(hook.url, { kinds: ['bad-signature-burst', 'login-failure-burst'] });
    const alerts = engine();
    const agent = await t.enroll('target-host');
    const impostor = { id: agent.id, keys: generateKeyPair() };
    const refuse = async () => expect((await agentCall(impostor, 'agent.nextJob', { waitMs: 0 })).status).toBe(401);

    await refuse();
    await refuse();
    await alerts.tick();
    expect(await t.alerts('bad-signature-burst')).toEqual([]);
    await refuse();
    await refuse();
    await alerts.tick();
    const [burst] = await t.alerts('bad-signature-burst');
    expect(burst).toMatchObject({ severity: 'critical', count: 2, details: { action: 'agent-request-refused', countInWindow: 4, threshold: 3 } });
    expect(hook.received.map((r) => payloadOf(r).airlock.alert.kind)).toEqual(['bad-signature-burst']);

    // `login-failed` is written by admin sign-in; the rule keys on the action name alone.
    const failedLogin = (at: Date) =>
      db.transaction((tx) =>
        appendAudit(tx, { tenantId: t.tenantId, actor: { type: 'anonymous', id: null }, action: 'login-failed', target: 'alice', outcome: 'denied', sourceIp: '192.0.2.7', meta: { reason: 'bad password' } }, at),
      );
    // Three failures spread over ten minutes: never three within the 60 s window.
    const now = clock().getTime();
    for (const ago of [600_000, 300_000, 0]) await failedLogin(new Date(now - ago));
    await alerts.tick();
    expect(await t.alerts('login-failure-burst')).toEqual([]);
    await failedLogin(clock());
    await failedLogin(clock());
    await alerts.tick();
    expect(await t.alerts('login-failure-burst')).toEqual([expect.objectContaining({ count: 1, details: expect.objectContaining({ countInWindow: 3 }) })]);
    expect(hook.received.map((r) => payloadOf(r).airlock.alert.kind)).toEqual(['bad-signature-burst', 'login-failure-burst']);
  });

  it('raises standing alerts for an offline agent, an expiring API key and TLS certificate, once each, and resolves the agent\'s when it returns', async () => {
    const t = await tenant('standing');
    const hook = await receiver();
    await t.destination(hook.url, { kinds: ['agent-offline', 'api-key-expiring', 'tls-certificate-expiring'] });
    const validTo = new Date(Date.now() + 86_400_000);
    const alerts = engine({ thresholds: { agentOfflineMs: 60_000 }, tlsCertificate: { validTo, fingerprint256: 'AB:CD:EF' } });
    const agent = await t.enroll('quiet-host');
    const { id: keyId } = data<{ id: string }>(await t.mutate('apiKeys.create', { name: 'short-lived', role: 'operator', expiresInDays: 1 }));
    try {
      await alerts.tick();
      expect(await t.alerts('agent-offline')).toEqual([]);
      offsetMs = 120_000;
      await alerts.tick();
      await alerts.tick();
      const [offline] = await t.alerts('agent-offline');
      expect(offline).toMatchObject({ target: agent.id, count: 1, state: 'open', severity: 'warning' });
      expect(await t.alerts('api-key-expiring')).toEqual([expect.objectContaining({ target: keyId, count: 1 })]);
      expect(await t.alerts('tls-certificate-expiring')).toEqual([expect.objectContaining({ target: 'AB:CD:EF', count: 1, details: { fingerprint256: 'AB:CD:EF', validTo: validTo.toISOString() } })]);
      expect(hook.received.map((r) => payloadOf(r).airlock.alert.kind).sort()).toEqual(['agent-offline', 'api-key-expiring', 'tls-certificate-expiring']);

      await db.query('UPDATE agents SET last_seen_at = $2 WHERE id = $1', [agent.id, clock()]);
      await alerts.tick();
      expect(await t.alerts('agent-offline')).toEqual([expect.objectContaining({ state: 'resolved', resolvedBy: 'system:alerts' })]);
      expect(hook.received).toHaveLength(3);
    } finally {
      offsetMs = 0;
    }
  });

  it('throttles deliveries per destination per window and records the rest as throttled', async () => {
    const t = await tenant('throttle');
    const hook = await receiver();
    await t.destination(hook.url);
    const alerts = engine({ policy: { throttle: { maxDeliveries: 2, windowMs: 60_000 } } });
    const agent = await t.enroll('throttled-host');
    for (const name of ['one', 'two', 'three']) expect((await t.mutate('integrations.save', t.integration(agent.id, name))).status).toBe(403);
    await alerts.tick();
    expect(await t.alerts('scope-denied')).toHaveLength(3);
    expect(hook.received).toHaveLength(2);
    expect((await deliveries(t.tenantId)).map((d) => d.state).sort()).toEqual(['delivered', 'delivered', 'throttled']);
  });

  it('raises and sends each alert once with two replicas ticking at the same time', async () => {
    const t = await tenant('replicas');
    const hook = await receiver();
    await t.destination(hook.url);
    const [a, b] = [engine(), engine()];
    const agent = await t.enroll('replicated-host');
    const names = ['r1', 'r2', 'r3', 'r4', 'r5'];
    for (const name of names) expect((await t.mutate('integrations.save', t.integration(agent.id, name))).status).toBe(403);
    const results = await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
    await Promise.all([a.tick(), b.tick()]);
    expect(results.flatMap((r) => r.raised).filter((c) => c.tenantId === t.tenantId)).toHaveLength(names.length);
    expect((await t.alerts('scope-denied')).map((alert) => alert.count)).toEqual(names.map(() => 1));
    expect(hook.received.map((r) => payloadOf(r).airlock.alert.id).sort()).toEqual((await t.alerts('scope-denied')).map((alert) => alert.id).sort());
  });

  it('retries after the receiver answers 500, with backoff, until it succeeds, auditing each attempt', async () => {
    const t = await tenant('retry');
    const hook = await receiver();
    hook.statuses.push(500, 500);
    const { signingSecret } = await t.destination(hook.url);
    const alerts = engine();
    const agent = await t.enroll('retry-host');
    expect((await t.mutate('integrations.save', t.integration(agent.id, 'flaky'))).status).toBe(403);

    await alerts.tick();
    expect(await deliveries(t.tenantId)).toEqual([expect.objectContaining({ state: 'pending', attempts: 1, last_status: 500, last_error: 'HTTP 500' })]);
    await tickUntil(alerts, async () => (await deliveries(t.tenantId))[0]?.state === 'delivered');
    expect(await deliveries(t.tenantId)).toEqual([expect.objectContaining({ state: 'delivered', attempts: 3 })]);
    expect(hook.received).toHaveLength(3);
    expect(new Set(hook.received.map((r) => r.headers['x-airlock-delivery'])).size).toBe(1);
    expect(hook.received.every((r) => verified(r, signingSecret))).toBe(true);
    const failures = await auditOf(t.tenantId, 'alert-delivery-failed');
    expect(failures.map((e) => e.meta)).toEqual([
      expect.objectContaining({ attempt: 1, status: 500, final: false }),
      expect.objectContaining({ attempt: 2, status: 500, final: false }),
    ]);
    expect((await auditOf(t.tenantId, 'alert-delivered')).map((e) => e.meta)).toEqual([expect.objectContaining({ attempt: 3, status: 200 })]);
  });

  it('gives a delivery up after the maximum attempts and audits the final failure; redirects are failures', async () => {
    const t = await tenant('give-up');
    const hook = await receiver();
    hook.fallback = 503;
    await t.destination(hook.url);
    const alerts = engine({ delivery: { maxAttempts: 3, backoff: { baseMs: 10, maxMs: 20 }, webhook: { timeoutMs: 2_000, allowLoopback: true } } });
    const agent = await t.enroll('give-up-host');
    expect((await t.mutate('integrations.save', t.integration(agent.id, 'doomed'))).status).toBe(403);

    await tickUntil(alerts, async () => (await deliveries(t.tenantId))[0]?.state === 'failed');
    expect(await deliveries(t.tenantId)).toEqual([expect.objectContaining({ state: 'failed', attempts: 3, last_status: 503 })]);
    const failures = await auditOf(t.tenantId, 'alert-delivery-failed');
    expect(failures.map((e) => [e.meta['attempt'], e.meta['final']])).toEqual([[1, false], [2, false], [3, true]]);
    await sleep(50);
    await alerts.tick();
    expect(hook.received).toHaveLength(3);

    hook.statuses.push(302);
    const redirected = await sendWebhook({ url: hook.url, secret: 'whsec_x', deliveryId: randomUUID() }, '{}', { timeoutMs: 2_000, allowLoopback: true });
    expect(redirected).toMatchObject({ ok: false, status: 302, error: 'HTTP 302: redirects are not followed' });
    expect(hook.received).toHaveLength(4);
  });

  it('bounds a webhook request: a receiver that never answers times out, an endless body is cut at the cap', async () => {
    const sockets = new Set<Socket>();
    const silentServer = createServer(() => undefined);
    const flood = createServer((_req, res) => {
      res.writeHead(500);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      // Writes until the client goes away, bounded in case it never does.
      let left = 1_000;
      const pump = () => {
        while (left > 0 && res.write(chunk)) left -= 1;
        if (left > 0 && !res.destroyed) res.once('drain', pump);
        else res.end();
      };
      pump();
    });
    for (const s of [silentServer, flood]) s.on('connection', (socket) => sockets.add(socket));
    const listen = async (s: Server) => {
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(s.address() as AddressInfo).port}/hook`;
    };
    try {
      const started = Date.now();
      const hung = await sendWebhook({ url: await listen(silentServer), secret: 'whsec_x', deliveryId: randomUUID() }, '{}', { timeoutMs: 300, allowLoopback: true });
      expect(hung).toMatchObject({ ok: false, status: null, error: 'timed out' });
      expect(Date.now() - started).toBeLessThan(5_000);
      const flooded = await sendWebhook({ url: await listen(flood), secret: 'whsec_x', deliveryId: randomUUID() }, '{}', { timeoutMs: 5_000, maxResponseBytes: 1_024, allowLoopback: true });
      expect(flooded).toMatchObject({ ok: false, status: 500 });
      expect(flooded.ok ? '' : flooded.error.length).toBeLessThanOrEqual(140);
    } finally {
      for (const socket of sockets) socket.destroy();
      silentServer.close();
      flood.close();
    }
  });

  it('keeps the outbox across a restart, and resends a delivery whose sender died mid-send once its lease expires', async () => {
    const t = await tenant('restart');
    const hook = await receiver();
    const { signingSecret } = await t.destination(hook.url);
    const agent = await t.enroll('restart-host');
    expect((await t.mutate('integrations.save', t.integration(agent.id, 'survivor'))).status).toBe(403);

    // Before the restart: the alert is raised and its delivery queued, but never sent.
    const before = connectPostgres(dbUrl, { maxConnections: 2 });
    const first = new AlertEngine({ db: before, secretBox: box, now: clock, logger: silent });
    const evaluated = await first.evaluate();
    expect(evaluated.raised.filter((c) => c.tenantId === t.tenantId)).toHaveLength(1);
    await first.stop();
    await before.close();
    expect(await deliveries(t.tenantId)).toEqual([expect.objectContaining({ state: 'pending', attempts: 0 })]);

    // Then a sender claims it and dies mid-send: the attempt is counted and its lease is running.
    const [pending] = await deliveries(t.tenantId);
    if (!pending) throw new Error('no delivery');
    await db.query('UPDATE alert_deliveries SET attempts = 1, next_attempt_at = $2 WHERE id = $1', [pending.id, new Date(Date.now() + 40_000)]);

    const after = connectPostgres(dbUrl, { maxConnections: 2 });
    try {
      const restarted = new AlertEngine({ db: after, secretBox: box, now: clock, logger: silent, delivery: { webhook: { allowLoopback: true } } });
      await restarted.tick();
      expect(hook.received).toHaveLength(0);
      offsetMs = 60_000;
      await restarted.tick();
      expect(await deliveries(t.tenantId)).toEqual([expect.objectContaining({ state: 'delivered', attempts: 2 })]);
      expect(hook.received).toHaveLength(1);
      const [received] = hook.received;
      expect(received && verified(received, signingSecret)).toBe(true);
      await restarted.stop();
    } finally {
      offsetMs = 0;
      await after.close();
    }
  });
});
