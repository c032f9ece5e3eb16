import { randomUUID } from 'node:crypto';
import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { signerFromSecretKey } from '@airlock/storage';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, DEFAULT_RATE_LIMITS, Dispatcher, migrate } from './index.ts';
import { type Call, data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

interface Tenant {
  admin: Record<string, string>;
  tenantId: string;
  agent: { id: string; keys: AgentKeyPair };
}

interface ListedEvent {
  id: string;
  agentId: string;
  runId: string | null;
  reason: string;
}

describe('agent security events across tenants, over HTTP on PostgreSQL', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let a: Tenant;
  let b: Tenant;

  const post = (path: string, input: unknown, headers: Record<string, string> = {}): Promise<Call> => send(base, path, input, headers, 'POST');

  function report(tenant: Tenant, input: unknown): Promise<Call> {
    const headers = signRequest(tenant.agent.keys, { agentId: tenant.agent.id, method: 'POST', pathAndQuery: '/trpc/custody.reportSecurityEvent', body: JSON.stringify(input) }, new Date());
    return post('custody.reportSecurityEvent', input, headers);
  }

  async function listed(tenant: Tenant): Promise<ListedEvent[]> {
    return data<ListedEvent[]>(await send(base, 'custody.securityEvents', {}, tenant.admin, 'GET'));
  }

  async function tenant(name: string): Promise<Tenant> {
    const boot = await bootstrapTenant(db, { tenant: name, keyName: 'first', expiresInDays: 30 });
    const admin = { authorization: `Bearer ${boot.key}` };
    const { token } = data<{ token: string }>(await post('enrollment.createToken', { ttlMinutes: 5 }, admin));
    const keys = generateKeyPair();
    const enrolled = data<{ agentId: string }>(await post('enrollment.enroll', { token, publicKey: encodeKey(keys.publicKey), hostname: `${name}-host`, version: '0.1.0' }));
    return { admin, tenantId: boot.tenantId, agent: { id: enrolled.agentId, keys } };
  }

  /** A run of `owner`'s agent, as the dispatcher would have created it. */
  async function runOf(owner: Tenant): Promise<string> {
    const [integration] = await db.query<{ id: string }>(
      `INSERT INTO integrations (tenant_id, name, agent_id, version, spec) VALUES ($1, $2, $3, 1, '{}'::jsonb) RETURNING id`,
      [owner.tenantId, `int-${randomUUID().slice(0, 8)}`, owner.agent.id],
    );
    const [run] = await db.query<{ id: string }>(
      "INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, spec, requested_by) VALUES ($1, $2, 1, $3, '{}'::jsonb, 'test') RETURNING id",
      [owner.tenantId, integration?.id, owner.agent.id],
    );
    return run?.id ?? '';
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer },
      { maxBodyBytes: 256 * 1024, rateLimits: { ...DEFAULT_RATE_LIMITS, ip: { points: 100_000, durationSeconds: 60 } } },
    );
    ({ server, base } = await listenOnLoopback(handler));
    a = await tenant('acme');
    b = await tenant('globex');
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  it("[integrity #22] tenant B's agent reporting an event with the id of tenant A's event stores its own and leaves A's alone", async () => {
    const id = randomUUID();
    const at = new Date().toISOString();
    data(await report(a, { id, kind: 'envelope-bad-signature', at, reason: 'from acme' }));
    data(await report(b, { id, kind: 'policy-violation', at, reason: 'from globex' }));
    // The same agent reporting the same event again is still one event.
    data(await report(b, { id, kind: 'policy-violation', at, reason: 'from globex' }));

    // And the other way round: B reporting first cannot pre-empt A's event either.
    const preempted = randomUUID();
    data(await report(b, { id: preempted, kind: 'policy-violation', at, reason: 'globex first' }));
    data(await report(a, { id: preempted, kind: 'envelope-replayed', at, reason: 'acme second' }));

    expect((await listed(a)).filter((event) => event.id === id)).toEqual([expect.objectContaining({ agentId: a.agent.id, reason: 'from acme' })]);
    expect((await listed(a)).filter((event) => event.id === preempted)).toEqual([expect.objectContaining({ agentId: a.agent.id, reason: 'acme second' })]);
    expect((await listed(b)).filter((event) => event.id === id)).toEqual([expect.objectContaining({ agentId: b.agent.id, reason: 'from globex' })]);
    const audited = await db.query<{ tenant_id: string }>(
      "SELECT tenant_id FROM audit_events WHERE action = 'agent-security-event' AND meta->>'eventId' = $1 ORDER BY seq",
      [id],
    );
    expect(audited.map((row) => row.tenant_id)).toEqual([a.tenantId, b.tenantId]);
  });

  it("[integrity #22] a runId that is not the reporting agent's own run is dropped from the event, and the claim is audited", async () => {
    const theirs = await runOf(a);
    const ours = await runOf(b);
    const foreign = randomUUID();
    data(await report(b, { id: foreign, kind: 'envelope-other-agent', at: new Date().toISOString(), runId: theirs, reason: 'names acme run' }));
    const own = randomUUID();
    data(await report(b, { id: own, kind: 'policy-violation', at: new Date().toISOString(), runId: ours, reason: 'names own run' }));

    const events = await listed(b);
    expect(events.find((event) => event.id === foreign)).toMatchObject({ runId: null, reason: 'names acme run' });
    expect(events.find((event) => event.id === own)).toMatchObject({ runId: ours });
    // Tenant A sees nothing of it.
    expect((await listed(a)).some((event) => event.id === foreign)).toBe(false);

    const [audit] = await db.query<{ tenant_id: string; target: string; meta: Record<string, unknown> }>(
      "SELECT tenant_id, target, meta FROM audit_events WHERE action = 'agent-security-event' AND meta->>'eventId' = $1",
      [foreign],
    );
    expect(audit).toMatchObject({ tenant_id: b.tenantId, target: b.agent.id, meta: { claimedRunId: theirs, runIdDropped: 'not a run of this agent' } });
    const [ownAudit] = await db.query<{ target: string; meta: Record<string, unknown> }>(
      "SELECT target, meta FROM audit_events WHERE action = 'agent-security-event' AND meta->>'eventId' = $1",
      [own],
    );
    expect(ownAudit?.target).toBe(ours);
    expect(ownAudit?.meta).not.toHaveProperty('runIdDropped');
  });
});
