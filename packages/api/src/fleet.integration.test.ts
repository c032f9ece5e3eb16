import { type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, openStatement, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, type RateLimitSettings, signerFromSecretKey } from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
/** Far longer than any wait below: within these tests only a notification can wake an agent. */
const NO_SWEEP_MS = 600_000;
const WAKE_WITHIN_MS = 5_000;

interface Reply {
  status: number;
  headers: Headers;
  body: { result?: { data: Record<string, unknown> }; error?: { message: string; data?: { errorClass?: string } } };
}

describe('a fleet across replicas on one PostgreSQL', () => {
  let url: string;
  let admin: string;
  let tenantId: string;
  let recipient: string;
  const closers: (() => Promise<void>)[] = [];

  /** A replica: its own pool, its own dispatcher listening on its own connection, its own HTTP server. */
  async function replica(options: { sweepMs?: number; pool?: Parameters<typeof connectPostgres>[1]; rateLimits?: Partial<RateLimitSettings> } = {}) {
    const db = connectPostgres(url, options.pool ?? { maxConnections: 4 });
    const dispatcher = new Dispatcher({ db, sweepMs: options.sweepMs ?? NO_SWEEP_MS });
    await dispatcher.start();
    const handler = createHttpHandler({ db, dispatcher, now: () => new Date(), logger: silent, signer }, { maxBodyBytes: 256 * 1024, ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}) });
    const { server, base } = await listenOnLoopback(handler);
    closers.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => (server as Server).close(() => resolve()));
      await dispatcher.close();
      await db.close();
    });
    return { base, db };
  }

  async function post(base: string, path: string, input: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Reply> {
    const response = await fetch(`${base}/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(input), signal });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Reply['body'] };
  }
  const asAdmin = (base: string, path: string, input: unknown) => post(base, path, input, { authorization: `Bearer ${admin}` });
  function asAgent(base: string, path: string, input: unknown, agent: { id: string; keys: AgentKeyPair }) {
    const body = JSON.stringify(input);
    return post(base, path, input, signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: `/trpc/${path}`, body }));
  }

  /** An agent's wake-up stream, read as text: `until` waits for what the server has sent so far to match. */
  async function openWakeups(base: string, agent: { id: string; keys: AgentKeyPair }) {
    const closer = new AbortController();
    const headers = { accept: 'text/event-stream', ...signRequest(agent.keys, { agentId: agent.id, method: 'GET', pathAndQuery: '/trpc/agent.wakeups', body: '' }) };
    const response = await fetch(`${base}/trpc/agent.wakeups`, { headers, signal: closer.signal });
    let text = '';
    const reading = (async () => {
      const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
      for (let next = await reader?.read(); next && !next.done; next = await reader?.read()) text += next.value;
    })().catch(() => undefined);
    closers.push(async () => {
      closer.abort();
      await reading;
    });
    return {
      response,
      get text() {
        return text;
      },
      async until(pattern: RegExp, withinMs = WAKE_WITHIN_MS): Promise<void> {
        const deadline = Date.now() + withinMs;
        while (!pattern.test(text)) {
          if (Date.now() > deadline) throw new Error(`stream did not say ${String(pattern)} within ${withinMs} ms; it said: ${text}`);
          await sleep(20);
        }
      },
      ended: reading,
    };
  }
  /** The run id of the job a stream brought, its envelope verified with the control plane's key; null before one came. */
  const streamedRunId = (text: string) => {
    const line = /^data: (\{"envelope".*)$/m.exec(text)?.[1];
    if (line === undefined) return null;
    const opened = openStatement('job', (JSON.parse(line) as { envelope: unknown }).envelope, signer.publicKey);
    return typeof opened === 'object' && opened !== null && 'runId' in opened ? String(opened.runId) : null;
  };
  const JOB = /^data: \{"envelope":\{/m;

  let setup: Database;
  async function addAgent(): Promise<{ id: string; keys: AgentKeyPair }> {
    const keys = generateKeyPair();
    const [row] = await setup.query<{ id: string }>("INSERT INTO agents (tenant_id, public_key, hostname, version, last_seen_at) VALUES ($1, $2, 'h', '0', now()) RETURNING id", [
      tenantId,
      encodeKey(keys.publicKey),
    ]);
    return { id: row?.id ?? '', keys };
  }

  /** An integration of `agent`'s, granted what it needs, saved through `base`. */
  async function integrationOf(base: string, agent: { id: string }): Promise<string> {
    await asAdmin(base, 'grants.add', { agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/**' });
    await asAdmin(base, 'grants.add', { agentId: agent.id, scope: 'write file:///srv/out/**' });
    const saved = await asAdmin(base, 'integrations.save', {
      name: `exports-${agent.id.slice(0, 8)}`,
      agentId: agent.id,
      source: { connector: 'sftp@1', config: { host: 'files.example.com', port: 2222, hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp', path: '/exports/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [recipient],
    });
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    return String(saved.body.result?.data['id']);
  }

  const runIdOf = (reply: Reply) => {
    const opened = openStatement('job', reply.body.result?.data['envelope'], signer.publicKey);
    return typeof opened === 'object' && opened !== null && 'runId' in opened ? String(opened.runId) : null;
  };

  beforeAll(async () => {
    url = await createTestDatabase(inject('postgresUrl'));
    setup = connectPostgres(url, { maxConnections: 2 });
    await migrate(setup);
    const boot = await bootstrapTenant(setup, { tenant: 'fleet', keyName: 'first', expiresInDays: 30 });
    admin = boot.key;
    tenantId = boot.tenantId;
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
  });

  afterAll(async () => {
    for (const close of closers) await close();
    await setup?.close();
  });

  it('wakes an agent waiting on one replica when a run is requested on another, through NOTIFY', async () => {
    const a = await replica();
    const b = await replica();
    const agent = await addAgent();
    const integration = await integrationOf(a.base, agent);
    const started = Date.now();
    const waiting = asAgent(b.base, 'agent.nextJob', { waitMs: 25_000, idle: false }, agent);
    await sleep(300);
    const requested = await asAdmin(a.base, 'integrations.runNow', { id: integration });
    expect(requested.status).toBe(200);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(runIdOf(answer)).toBe(requested.body.result?.data['runId']);
    expect(Date.now() - started).toBeLessThan(WAKE_WITHIN_MS);
  });

  it('ends a long-poll on another replica at once when the agent is revoked there, and that replica forgets its key', async () => {
    const a = await replica();
    const b = await replica();
    const agent = await addAgent();
    expect((await asAgent(b.base, 'agent.heartbeat', { version: '0', hostname: 'h' }, agent)).status).toBe(200);
    const started = Date.now();
    const waiting = asAgent(b.base, 'agent.nextJob', { waitMs: 25_000, idle: false }, agent);
    await sleep(300);
    expect((await asAdmin(a.base, 'agents.revoke', { id: agent.id })).status).toBe(200);
    expect((await waiting).status).toBe(401);
    expect(Date.now() - started).toBeLessThan(WAKE_WITHIN_MS);
    const [refused] = await setup.query<{ reason: string }>(
      "SELECT meta->>'reason' AS reason FROM audit_events WHERE action = 'agent-request-refused' AND actor_id = $1 ORDER BY id DESC LIMIT 1",
      [agent.id],
    );
    expect(refused?.reason).toBe('agent revoked');
  });

  it("brings a run requested on one replica to the agent's wake-up stream on another, and ends the stream", async () => {
    const a = await replica();
    const b = await replica();
    const agent = await addAgent();
    const integration = await integrationOf(a.base, agent);
    const stream = await openWakeups(b.base, agent);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await stream.until(/^event: connected$/m);
    expect(stream.text).not.toMatch(JOB);
    const started = Date.now();
    const requested = await asAdmin(a.base, 'integrations.runNow', { id: integration });
    expect(requested.status).toBe(200);
    await stream.until(JOB);
    expect(Date.now() - started).toBeLessThan(WAKE_WITHIN_MS);
    expect(streamedRunId(stream.text)).toBe(requested.body.result?.data['runId']);
    // One job a stream: it ends with it, and the run is the agent's.
    await stream.ended;
    expect(stream.text).toMatch(/^event: return$/m);
    const [run] = await setup.query<{ status: string; agent_id: string }>('SELECT status, agent_id FROM runs WHERE id = $1', [streamedRunId(stream.text)]);
    expect(run).toEqual({ status: 'running', agent_id: agent.id });
    // A stream opened while a run waits brings it at once.
    const other = await addAgent();
    const queued = await asAdmin(a.base, 'integrations.runNow', { id: await integrationOf(a.base, other) });
    const late = await openWakeups(b.base, other);
    await late.until(JOB);
    expect(streamedRunId(late.text)).toBe(queued.body.result?.data['runId']);
  });

  it("ends an agent's wake-up stream refused when the agent is revoked on another replica", async () => {
    const a = await replica();
    const b = await replica();
    const agent = await addAgent();
    const stream = await openWakeups(b.base, agent);
    await stream.until(/^event: connected$/m);
    expect((await asAdmin(a.base, 'agents.revoke', { id: agent.id })).status).toBe(200);
    await stream.until(/^event: serialized-error\ndata: .*"code":"UNAUTHORIZED"/m);
    await stream.ended;
    const [refused] = await setup.query<{ reason: string; target: string }>(
      "SELECT meta->>'reason' AS reason, target FROM audit_events WHERE action = 'agent-request-refused' AND actor_id = $1 ORDER BY id DESC LIMIT 1",
      [agent.id],
    );
    expect(refused).toEqual({ reason: 'agent revoked', target: 'agent.wakeups' });
    // And a new one is refused, and brings no job.
    const again = await openWakeups(b.base, agent);
    await again.until(/^event: serialized-error\ndata: .*"code":"UNAUTHORIZED"/m);
    await again.ended;
    expect(again.text).not.toMatch(JOB);
  });

  it("asks the agent on its wake-up stream to heartbeat when an admin asks it to rotate its key, and only then", async () => {
    const a = await replica();
    const b = await replica();
    const agent = await addAgent();
    const stream = await openWakeups(b.base, agent);
    await stream.until(/^event: connected$/m);
    expect((await asAdmin(a.base, 'agents.requestKeyRotation', { id: agent.id })).status).toBe(200);
    await stream.until(/^data: \{"heartbeat":true\}$/m);
    await stream.ended;
    // Opened again before the agent has rotated: it is not asked again until something new happens.
    const again = await openWakeups(b.base, agent);
    await again.until(/^event: connected$/m);
    await sleep(500);
    expect(again.text).not.toMatch(/heartbeat/);
  });

  it('asks the canary ring on its wake-up streams to heartbeat when a rollout starts, and not the rest ring', async () => {
    const a = await replica();
    const b = await replica();
    const canary = await addAgent();
    const rest = await addAgent();
    const [group] = await setup.query<{ id: string }>("INSERT INTO agent_groups (tenant_id, name) VALUES ($1, 'canaries') RETURNING id", [tenantId]);
    await setup.query('INSERT INTO agent_group_members (group_id, agent_id, tenant_id) VALUES ($1, $2, $3)', [group?.id, canary.id, tenantId]);
    // The control plane stores a release's signature without checking it (the agent does), so any well-formed one serves.
    const manifest = JSON.stringify({ v: 1, product: 'airlock-agent', platform: 'linux-x64', version: '9.0.0', artifact: { sha256: 'a'.repeat(64), size: 1 }, downgradeAllowed: false, issuedAt: new Date().toISOString() });
    const [release] = await setup.query<{ id: string }>(
      `INSERT INTO releases (tenant_id, version, platform, manifest, signature, size, sha256, downgrade_allowed, state, published_at)
       VALUES ($1, '9.0.0', 'linux-x64', $2, $3, 1, $4, false, 'published', now()) RETURNING id`,
      [tenantId, manifest, `${'A'.repeat(86)}==`, 'a'.repeat(64)],
    );
    const canaryStream = await openWakeups(b.base, canary);
    const restStream = await openWakeups(b.base, rest);
    await canaryStream.until(/^event: connected$/m);
    await restStream.until(/^event: connected$/m);
    const created = await asAdmin(a.base, 'rollouts.create', { releaseId: release?.id, canaryGroupId: group?.id, haltFailureRate: 0.5 });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    await canaryStream.until(/^data: \{"heartbeat":true\}$/m);
    await canaryStream.ended;
    // The heartbeat it asked for is where the offer is made.
    const beat = await asAgent(b.base, 'agent.heartbeat', { version: '1.0.0', hostname: 'h' }, canary);
    expect((beat.body.result?.data['update'] as { releaseId?: string } | null)?.releaseId).toBe(release?.id);
    await sleep(500);
    expect(restStream.text).not.toMatch(/heartbeat/);
    await setup.query("UPDATE rollouts SET state = 'halted', finished_at = now() WHERE tenant_id = $1 AND state = 'active'", [tenantId]);
  });

  it("keeps the last-seen time of an agent on its wake-up stream fresh, in the sweep", async () => {
    const c = await replica({ sweepMs: 200 });
    const agent = await addAgent();
    const stream = await openWakeups(c.base, agent);
    await stream.until(/^event: connected$/m);
    // As if the stream had been open for minutes with no request since.
    await setup.query("UPDATE agents SET last_seen_at = now() - interval '10 minutes' WHERE id = $1", [agent.id]);
    const deadline = Date.now() + WAKE_WITHIN_MS;
    let age = Infinity;
    while (age > 5 && Date.now() < deadline) {
      await sleep(100);
      const [row] = await setup.query<{ age: number }>('SELECT extract(epoch FROM now() - last_seen_at)::float8 AS age FROM agents WHERE id = $1', [agent.id]);
      age = row?.age ?? Infinity;
    }
    expect(age).toBeLessThan(5);
  });

  it('finds work whose notification was lost with one sweep over every waiting agent', async () => {
    const c = await replica({ sweepMs: 200 });
    const agents = await Promise.all([addAgent(), addAgent(), addAgent()]);
    const integration = await integrationOf(c.base, agents[1] ?? { id: '' });
    const waits = agents.map((agent) => asAgent(c.base, 'agent.nextJob', { waitMs: 6_000, idle: false }, agent));
    await sleep(300);
    // Queued behind the control plane's back: no notification is sent.
    const [run] = await setup.query<{ id: string }>(
      `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, group_id, spec, requested_by, created_at)
       SELECT tenant_id, id, version, agent_id, group_id, spec, 'test', now() FROM integrations WHERE id = $1 RETURNING id`,
      [integration],
    );
    const started = Date.now();
    const found = await waits[1];
    // Found by the sweep, well before the long-poll would have ended on its own.
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(found?.status).toBe(200);
    expect(runIdOf(found as Reply)).toBe(run?.id);
    // The others had nothing: their long-polls end empty, on time.
    const others = await Promise.all([waits[0], waits[2]]);
    expect(others.map((answer) => [answer?.status, runIdOf(answer as Reply)])).toEqual([
      [200, null],
      [200, null],
    ]);
  });

  it('answers an empty long-poll in the last fifth of its wait, at a different point for each agent', async () => {
    const d = await replica();
    const agents = await Promise.all(Array.from({ length: 8 }, () => addAgent()));
    const ended = await Promise.all(
      agents.map(async (agent) => {
        const started = Date.now();
        const answer = await asAgent(d.base, 'agent.nextJob', { waitMs: 2_000, idle: false }, agent);
        expect([answer.status, runIdOf(answer)]).toEqual([200, null]);
        return Date.now() - started;
      }),
    );
    for (const ms of ended) expect(ms).toBeGreaterThanOrEqual(1_550);
    for (const ms of ended) expect(ms).toBeLessThan(3_000);
    // Eight draws from 400 ms: all within 20 ms of each other would be a one-in-a-million chance.
    expect(Math.max(...ended) - Math.min(...ended)).toBeGreaterThan(20);
  });

  it('sheds load past the pool queue with 503 and Retry-After, and recovers', async () => {
    const d = await replica({ pool: { maxConnections: 1, maxQueue: 1, queueTimeoutMs: 5_000 } });
    const enroll = { token: `aet_${'x'.repeat(32)}`, publicKey: encodeKey(generateKeyPair().publicKey), hostname: 'h', version: '0' };
    // Every request first counts against its address's rate limit; a lock on the counters makes
    // the replica's one connection, and the one request queued for it, wait as a slow burst would.
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const blocker = connectPostgres(url, { maxConnections: 1 });
    closers.push(() => blocker.close());
    const locked = blocker.transaction(async (tx) => {
      await tx.query('LOCK TABLE rate_limit_counters IN ACCESS EXCLUSIVE MODE');
      await held;
    });
    await sleep(200);
    const sent = Array.from({ length: 6 }, () => post(d.base, 'enrollment.enroll', enroll));
    await sleep(1_000);
    release();
    await locked;
    const replies = await Promise.all(sent);
    const shed = replies.filter((reply) => reply.status === 503);
    expect(shed.length).toBe(4);
    for (const reply of shed) {
      expect(reply.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
      expect(reply.body.error?.data?.errorClass).toBe('operational');
    }
    // Once the burst is over the same replica answers again.
    expect((await post(d.base, 'enrollment.enroll', enroll)).status).not.toBe(503);
  });

  it('counts a rate limit once across replicas', async () => {
    const limits = { ip: { points: 4, durationSeconds: 60 } };
    const e = await replica({ rateLimits: limits });
    const f = await replica({ rateLimits: limits });
    // A distinct limit definition from every other test's, so these counters start at zero.
    const enroll = { token: `aet_${'y'.repeat(32)}`, publicKey: encodeKey(generateKeyPair().publicKey), hostname: 'h', version: '0' };
    const statuses: number[] = [];
    for (const base of [e.base, f.base, e.base, f.base]) statuses.push((await post(base, 'enrollment.enroll', enroll)).status);
    expect(statuses.every((status) => status !== 429)).toBe(true);
    const over = await post(f.base, 'enrollment.enroll', enroll);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await post(e.base, 'enrollment.enroll', enroll)).status).toBe(429);
  });
});
