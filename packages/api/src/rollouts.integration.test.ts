import { createHash } from 'node:crypto';
import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeKey, generateKeyPair } from '@airlock/identity';
import { UPDATE_OFFER_TIMEOUT_MS } from '@airlock/protocol';
import { createTestDatabase } from '@airlock/testing';
import type { AgentPrincipal, RequestFacts } from '@airlock/auth';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, listAuditEvents, migrate, signerFromSecretKey } from './index.ts';
import { dueUpdate, recordUpdateReport } from './rollouts.ts';
import { data, listenOnLoopback, send } from './trpc-http.fixture.ts';

/** The control plane stores a release's signature without checking it (the agent does), so any well-formed one serves. */
const SIGNATURE = `${'A'.repeat(86)}==`;
const RUNNING = '1.0.0';
const request: RequestFacts = { method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', headers: new Headers(), body: new Uint8Array(), sourceIp: '127.0.0.1' };
const MINUTE = 60_000;

describe('rollout rules on PostgreSQL: the window, the offer timeout and the halt [operations:update]', () => {
  let db: Database;
  let tenantId: string;
  let releaseCount = 0;
  let server: Server;
  let base: string;
  let admin: Record<string, string>;

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 4 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'rollouts', keyName: 'first', expiresInDays: 30 });
    tenantId = boot.tenantId;
    admin = { authorization: `Bearer ${boot.key}` };
    const silent = { warn: () => undefined, error: () => undefined };
    const signer = signerFromSecretKey(generateKeyPair().secretKey);
    ({ server, base } = await listenOnLoopback(createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer }, { maxBodyBytes: 256 * 1024 })));
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  async function agent(hostname: string): Promise<AgentPrincipal> {
    const publicKey = encodeKey(generateKeyPair().publicKey);
    const [row] = await db.forSystem().query<{ id: string }>('INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, $3, $4) RETURNING id', [
      tenantId,
      publicKey,
      hostname,
      RUNNING,
    ]);
    if (!row) throw new Error('agent insert returned nothing');
    return { kind: 'agent', agentId: row.id, tenantId, publicKey };
  }

  /** A published release and an active rollout of it over `rings`, open from `startsAt` to `endsAt`. */
  async function rollout(input: { startsAt: Date; endsAt: Date; haltFailureRate: number; rings: Array<[AgentPrincipal, 'canary' | 'rest']> }) {
    releaseCount += 1;
    const version = `2.${releaseCount}.0`;
    const artifact = Buffer.from(`release ${version}`);
    const sha256 = createHash('sha256').update(artifact).digest('hex');
    const manifest = JSON.stringify({ v: 1, product: 'airlock-agent', platform: 'linux-x64', version, artifact: { sha256, size: artifact.length }, downgradeAllowed: false, issuedAt: new Date().toISOString() });
    return db.forSystem().transaction(async (tx) => {
      const [release] = await tx.query<{ id: string }>(
        `INSERT INTO releases (tenant_id, version, platform, manifest, signature, size, sha256, downgrade_allowed, state, published_at)
         VALUES ($1, $2, 'linux-x64', $3, $4, $5, $6, false, 'published', now()) RETURNING id`,
        [tenantId, version, manifest, SIGNATURE, artifact.length, sha256],
      );
      if (!release) throw new Error('release insert returned nothing');
      // One active rollout per tenant: the previous test's is closed first.
      await tx.query("UPDATE rollouts SET state = 'completed', finished_at = now() WHERE tenant_id = $1 AND state = 'active'", [tenantId]);
      const [row] = await tx.query<{ id: string }>(
        'INSERT INTO rollouts (tenant_id, release_id, starts_at, ends_at, halt_failure_rate, downgrade) VALUES ($1, $2, $3, $4, $5, false) RETURNING id',
        [tenantId, release.id, input.startsAt, input.endsAt, input.haltFailureRate],
      );
      if (!row) throw new Error('rollout insert returned nothing');
      for (const [member, ring] of input.rings) {
        await tx.query('INSERT INTO rollout_agents (rollout_id, agent_id, tenant_id, ring) VALUES ($1, $2, $3, $4)', [row.id, member.agentId, tenantId, ring]);
      }
      return { id: row.id, releaseId: release.id, version };
    });
  }

  const heartbeat = (member: AgentPrincipal, now: Date) => db.forSystem().transaction((tx) => dueUpdate(tx, member, request, RUNNING, now));

  async function stateOf(rolloutId: string, member: AgentPrincipal) {
    const [row] = await db.forSystem().query<{ state: string; reason: string | null; offered_at: Date | null }>(
      'SELECT state, reason, offered_at FROM rollout_agents WHERE rollout_id = $1 AND agent_id = $2',
      [rolloutId, member.agentId],
    );
    return row;
  }

  async function rolloutRow(rolloutId: string) {
    const [row] = await db.forSystem().query<{ state: string; halted_reason: string | null }>('SELECT state, halted_reason FROM rollouts WHERE id = $1', [rolloutId]);
    return row;
  }

  async function audit(action: string, rolloutId: string) {
    return (await listAuditEvents(db.forSystem(), { tenantId, action, limit: 1000 }))
      .filter((event) => event.target === rolloutId)
      .map((event) => ({ ...event, meta: event.meta as Record<string, unknown> }));
  }

  it('offers nothing before the window opens nor after it closes, and offers inside it', async () => {
    const opens = new Date(Date.now() + 60 * MINUTE);
    const closes = new Date(opens.getTime() + 60 * MINUTE);
    const early = await agent('window-early');
    const late = await agent('window-late');
    const { id, releaseId, version } = await rollout({ startsAt: opens, endsAt: closes, haltFailureRate: 0.5, rings: [[early, 'rest'], [late, 'rest']] });

    expect(await heartbeat(early, new Date(opens.getTime() - 1))).toBeNull();
    expect(await stateOf(id, early)).toMatchObject({ state: 'waiting', offered_at: null });
    expect(await audit('update-offer', id)).toEqual([]);

    // The window opens at starts_at itself.
    const offer = await heartbeat(early, opens);
    expect(offer).toMatchObject({ rolloutId: id, releaseId, downgrade: false });
    expect(JSON.parse(offer?.release.payload ?? '{}')).toMatchObject({ version });
    expect(await stateOf(id, early)).toMatchObject({ state: 'offered', offered_at: opens });
    expect((await audit('update-offer', id)).map((event) => event.meta)).toEqual([expect.objectContaining({ version, from: RUNNING })]);

    // ends_at is already outside: an agent never offered gets nothing, and an offer made inside is not repeated.
    expect(await heartbeat(late, closes)).toBeNull();
    expect(await heartbeat(late, new Date(closes.getTime() + 5 * MINUTE))).toBeNull();
    expect(await stateOf(id, late)).toMatchObject({ state: 'waiting', offered_at: null });
    expect(await heartbeat(early, closes)).toBeNull();
    expect(await audit('update-offer', id)).toHaveLength(1);
    expect(await rolloutRow(id)).toMatchObject({ state: 'active' });
  });

  it('marks an offer unanswered past the timeout failed, audits it, and halts the ring once its failures pass the threshold', async () => {
    const start = new Date(Date.now() - MINUTE);
    const first = await agent('canary-1');
    const second = await agent('canary-2');
    const rest = await agent('rest-1');
    const { id } = await rollout({
      startsAt: start,
      endsAt: new Date(start.getTime() + 24 * 60 * MINUTE),
      haltFailureRate: 0.5,
      rings: [[first, 'canary'], [second, 'canary'], [rest, 'rest']],
    });
    const offeredAt = new Date();
    expect(await heartbeat(first, offeredAt)).toMatchObject({ rolloutId: id });
    // The second canary is offered ten minutes later, so its offer is not yet due to time out below.
    expect(await heartbeat(second, new Date(offeredAt.getTime() + 10 * MINUTE))).toMatchObject({ rolloutId: id });
    // The rest ring waits while a canary is still under way.
    expect(await heartbeat(rest, offeredAt)).toBeNull();

    // At the timeout itself the offer still stands, and is handed out again without a second offer record.
    const atTimeout = new Date(offeredAt.getTime() + UPDATE_OFFER_TIMEOUT_MS);
    expect(await heartbeat(first, atTimeout)).toMatchObject({ rolloutId: id });
    expect(await stateOf(id, first)).toMatchObject({ state: 'offered' });
    expect(await audit('update-offer', id)).toHaveLength(2);

    // Past it, the offer counts as failed: one of two canaries is 0.5, not above the threshold.
    const pastTimeout = new Date(atTimeout.getTime() + 1);
    expect(await heartbeat(first, pastTimeout)).toBeNull();
    expect(await stateOf(id, first)).toMatchObject({ state: 'failed', reason: `no report within ${UPDATE_OFFER_TIMEOUT_MS / MINUTE} minutes of the offer` });
    const failures = await audit('agent-update', id);
    expect(failures).toEqual([expect.objectContaining({ actor: { type: 'agent', id: first.agentId }, outcome: 'failure', meta: expect.objectContaining({ status: 'failed', ring: 'canary' }) })]);
    expect(await rolloutRow(id)).toMatchObject({ state: 'active', halted_reason: null });
    expect(await audit('rollout-halt', id)).toEqual([]);

    // The second canary's offer is aged in the database and its heartbeat comes at the real time.
    await db.forSystem().query('UPDATE rollout_agents SET offered_at = $3 WHERE rollout_id = $1 AND agent_id = $2', [
      id,
      second.agentId,
      new Date(Date.now() - UPDATE_OFFER_TIMEOUT_MS - MINUTE),
    ]);
    expect(await heartbeat(second, new Date())).toBeNull();
    expect(await stateOf(id, second)).toMatchObject({ state: 'failed' });
    expect(await rolloutRow(id)).toMatchObject({ state: 'halted', halted_reason: '2 of 2 agents in the canary ring failed, above the threshold 0.5' });
    const halts = await audit('rollout-halt', id);
    expect(halts).toEqual([expect.objectContaining({ outcome: 'failure', meta: { ring: 'canary', failed: 2, total: 2 } })]);
    expect((await audit('agent-update', id)).filter((event) => event.meta['status'] === 'failed')).toHaveLength(2);

    // A halted rollout offers nothing more, not even to the ring that never started.
    expect(await heartbeat(rest, new Date())).toBeNull();
    expect(await stateOf(id, rest)).toMatchObject({ state: 'waiting', offered_at: null });
  });

  it('halts on the first failure when the threshold is zero, and a late report does not reopen a failed offer', async () => {
    const start = new Date(Date.now() - MINUTE);
    const canary = await agent('strict-canary');
    const other = await agent('strict-other');
    const { id, releaseId } = await rollout({ startsAt: start, endsAt: new Date(start.getTime() + 60 * MINUTE), haltFailureRate: 0, rings: [[canary, 'canary'], [other, 'canary']] });
    const offeredAt = new Date();
    expect(await heartbeat(canary, offeredAt)).toMatchObject({ rolloutId: id });
    expect(await heartbeat(canary, new Date(offeredAt.getTime() + UPDATE_OFFER_TIMEOUT_MS + MINUTE))).toBeNull();
    expect(await rolloutRow(id)).toMatchObject({ state: 'halted', halted_reason: '1 of 2 agents in the canary ring failed, above the threshold 0' });

    // The agent answers after all: the trail records it, the outcome stays failed.
    const known = await db.forSystem().transaction((tx) =>
      recordUpdateReport(tx, canary, request, { rolloutId: id, releaseId, status: 'installed', runningVersion: '2.0.0' }, new Date(offeredAt.getTime() + UPDATE_OFFER_TIMEOUT_MS + 2 * MINUTE)),
    );
    expect(known).toBe(true);
    expect(await stateOf(id, canary)).toMatchObject({ state: 'failed' });
    expect((await audit('agent-update', id)).map((event) => event.meta['status'])).toEqual(expect.arrayContaining(['failed', 'installed']));
    // An agent that was never offered this release is not taken at its word.
    const stranger = await agent('strict-stranger');
    expect(await db.forSystem().transaction((tx) => recordUpdateReport(tx, stranger, request, { rolloutId: id, releaseId, status: 'installed', runningVersion: '2.0.0' }, new Date()))).toBe(false);
  });

  it('shows an agent that said it is installing as installing in the rollout progress, until its outcome', async () => {
    const start = new Date(Date.now() - MINUTE);
    const member = await agent('installing-1');
    const waiting = await agent('installing-2');
    const { id, releaseId, version } = await rollout({ startsAt: start, endsAt: new Date(start.getTime() + 60 * MINUTE), haltFailureRate: 0.5, rings: [[member, 'rest'], [waiting, 'rest']] });
    expect(await heartbeat(member, new Date())).toMatchObject({ rolloutId: id });
    type Listed = Array<{ id: string; progress: Record<string, number>; agents: Array<{ agentId: string; state: string }> }>;
    const listed = async () => data<Listed>(await send(base, 'rollouts.list', undefined, admin, 'GET')).find((entry) => entry.id === id);
    const report = (status: 'installing' | 'installed', runningVersion: string) =>
      db.forSystem().transaction((tx) => recordUpdateReport(tx, member, request, { rolloutId: id, releaseId, status, runningVersion }, new Date()));

    expect((await listed())?.progress).toMatchObject({ total: 2, waiting: 1, offered: 1, installing: 0, installed: 0 });
    expect(await report('installing', RUNNING)).toBe(true);
    const during = await listed();
    expect(during?.progress).toMatchObject({ total: 2, waiting: 1, offered: 0, installing: 1, installed: 0, failed: 0 });
    expect(during?.agents.find((entry) => entry.agentId === member.agentId)?.state).toBe('installing');
    expect(await stateOf(id, member)).toMatchObject({ state: 'offered' });
    expect((await audit('agent-update', id)).map((event) => [event.outcome, event.meta['status']])).toEqual([['success', 'installing']]);

    expect(await report('installed', version)).toBe(true);
    expect((await listed())?.progress).toMatchObject({ waiting: 1, offered: 0, installing: 0, installed: 1 });
  });

  it('times out a canary that went silent after its offer when another agent of the rollout heartbeats, so the rest ring is not held forever', async () => {
    const start = new Date(Date.now() - MINUTE);
    const end = new Date(start.getTime() + 24 * 60 * MINUTE);
    const offeredAt = new Date();
    const past = new Date(offeredAt.getTime() + UPDATE_OFFER_TIMEOUT_MS + MINUTE);

    // A threshold of 1 tolerates the failure: the rest ring is offered in the same heartbeat.
    const silent = await agent('silent-canary');
    const rest = await agent('patient-rest');
    const tolerant = await rollout({ startsAt: start, endsAt: end, haltFailureRate: 1, rings: [[silent, 'canary'], [rest, 'rest']] });
    expect(await heartbeat(silent, offeredAt)).toMatchObject({ rolloutId: tolerant.id });
    expect(await heartbeat(rest, new Date(offeredAt.getTime() + UPDATE_OFFER_TIMEOUT_MS))).toBeNull();
    expect(await stateOf(tolerant.id, silent)).toMatchObject({ state: 'offered' });
    expect(await heartbeat(rest, past)).toMatchObject({ rolloutId: tolerant.id });
    expect(await stateOf(tolerant.id, silent)).toMatchObject({ state: 'failed', reason: `no report within ${UPDATE_OFFER_TIMEOUT_MS / MINUTE} minutes of the offer` });
    expect(await audit('agent-update', tolerant.id)).toEqual([
      expect.objectContaining({ actor: { type: 'system', id: 'rollout' }, outcome: 'failure', meta: expect.objectContaining({ status: 'failed', agentId: silent.agentId, ring: 'canary' }) }),
    ]);
    expect(await rolloutRow(tolerant.id)).toMatchObject({ state: 'active' });

    // Under a threshold of 0.5 the same silence halts the rollout, and the rest ring gets nothing.
    const quiet = await agent('quiet-canary');
    const waiting = await agent('waiting-rest');
    const strict = await rollout({ startsAt: start, endsAt: end, haltFailureRate: 0.5, rings: [[quiet, 'canary'], [waiting, 'rest']] });
    expect(await heartbeat(quiet, offeredAt)).toMatchObject({ rolloutId: strict.id });
    expect(await heartbeat(waiting, past)).toBeNull();
    expect(await rolloutRow(strict.id)).toMatchObject({ state: 'halted', halted_reason: '1 of 1 agents in the canary ring failed, above the threshold 0.5' });
    expect(await audit('rollout-halt', strict.id)).toEqual([expect.objectContaining({ actor: { type: 'system', id: 'rollout' }, outcome: 'failure' })]);
    expect(await stateOf(strict.id, waiting)).toMatchObject({ state: 'waiting', offered_at: null });
  });
});
