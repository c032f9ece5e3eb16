import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { TRPCError } from '@trpc/server';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateDemoKey } from '@airlock/pgp';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { signerFromSecretKey, splitStatements } from '@airlock/storage';
import { createApiKey } from '@airlock/auth';
import { createContext } from './context.ts';
import { appRouter } from './router.ts';
import { bootstrapTenant, connectPostgres, type Database, Dispatcher, migrate, openPglite, Scheduler } from './index.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
const berlinDate = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit' });
const berlinTime = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit' });

const scratch: string[] = [];
const backends = {
  postgres: async () => connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 25 }),
  pglite: async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-pglite-'));
    scratch.push(dir);
    return openPglite(dir);
  },
};

afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

interface ScheduleInput {
  cron: string;
  timezone?: string;
  missed?: 'run-once' | 'skip';
}

/** A tenant with one agent and an owner, over one database; every call takes the instant it happens at. */
async function fixture(db: Database) {
  await migrate(db);
  const { tenantId } = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 1 });
  const [agent] = await db.query<{ id: string }>(
    "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, 'host-a', '1') RETURNING id",
    [tenantId, `key-${crypto.randomUUID()}`],
  );
  if (!agent) throw new Error('no agent');
  const recipient = await generateDemoKey('Partner', 'partner@example.com');
  // Exactly what `save` below needs: deny by default.
  await db.query(
    `INSERT INTO grants (tenant_id, subject_type, subject_id, action, resource, created_by)
     VALUES ($1, 'agent', $2, 'read', 'file:///in/*.csv', 'test'), ($1, 'agent', $2, 'write', 'file:///out/**', 'test')`,
    [tenantId, agent.id],
  );

  async function admin(at: Date) {
    const key = await db.transaction((tx) => createApiKey(tx, { tenantId, name: 'test', role: 'owner', expiresInDays: 1 }, at));
    const request = {
      method: 'POST',
      pathAndQuery: '/trpc',
      headers: new Headers({ authorization: `Bearer ${key.key}` }),
      body: new Uint8Array(),
      sourceIp: '127.0.0.1',
    };
    return appRouter.createCaller(createContext({ db, dispatcher: new Dispatcher(50), now: () => at, logger: silent, signer }, request));
  }

  async function save(name: string, schedule: ScheduleInput | undefined, at: Date) {
    return (await admin(at)).integrations.save({
      name,
      agentId: agent?.id ?? '',
      source: { connector: 'local@1', config: { path: '/in/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/out' } },
      recipients: [recipient.armoredPublicKey],
      ...(schedule ? { schedule } : {}),
    });
  }

  return { tenantId, agentId: agent.id, admin, save };
}

async function runsOf(db: Database, integrationId: string) {
  return db.query<{ id: string; status: string; requested_by: string; created_at: Date }>(
    'SELECT id, status, requested_by, created_at FROM runs WHERE integration_id = $1 ORDER BY created_at',
    [integrationId],
  );
}

/** Stands in for the agent reporting: every active run of the integration finishes. */
async function finishRuns(db: Database, integrationId: string, at: Date) {
  await db.query("UPDATE runs SET status = 'succeeded', finished_at = $2 WHERE integration_id = $1 AND status IN ('queued', 'running')", [integrationId, at]);
}

async function auditOf(db: Database, action: string, target: string) {
  return db.query<{ actor_type: string; actor_id: string; outcome: string; meta: Record<string, string | null> }>(
    'SELECT actor_type, actor_id, outcome, meta FROM audit_events WHERE action = $1 AND target = $2 ORDER BY seq',
    [action, target],
  );
}

async function nextRunAt(db: Database, integrationId: string): Promise<string | null> {
  const [row] = await db.query<{ next_run_at: Date }>('SELECT next_run_at FROM integration_schedules WHERE integration_id = $1', [integrationId]);
  return row?.next_run_at.toISOString() ?? null;
}

function codeOf(error: unknown): string {
  return error instanceof TRPCError ? error.code : 'not a TRPCError';
}

describe.each(Object.entries(backends))('schedules on %s', (backend, openDatabase) => {
  let db: Database;
  let f: Awaited<ReturnType<typeof fixture>>;
  let clock = new Date('2027-01-04T12:00:00Z');
  let scheduler: Scheduler;

  beforeAll(async () => {
    db = await openDatabase();
    f = await fixture(db);
    scheduler = new Scheduler({ db, now: () => clock, logger: silent });
  });

  afterEach(async () => {
    // Each test owns the schedules it made; none fires into the next test.
    await db.query('DELETE FROM integration_schedules');
    await db.query("UPDATE runs SET status = 'failed', finished_at = now() WHERE status IN ('queued', 'running')");
  });

  afterAll(async () => {
    await db.close();
  });

  it('validates the cron and the zone on save, with the reason', async () => {
    const at = new Date('2027-01-04T12:00:00Z');
    const cases: [ScheduleInput, RegExp][] = [
      [{ cron: '0 0 30 2 *' }, /schedule\.cron "0 0 30 2 \*": .*day of month/],
      [{ cron: '61 * * * *' }, /schedule\.cron "61 \* \* \* \*": .*0-59/],
      [{ cron: '* * *' }, /expected 5 fields/],
      [{ cron: '0 2 * * *', timezone: 'Mars/Olympus' }, /expected an IANA time zone/],
    ];
    for (const [schedule, reason] of cases) {
      const saving = f.save(`bad-${backend}`, schedule, at);
      await expect(saving).rejects.toThrow(reason);
      expect(codeOf(await saving.catch((error: unknown) => error))).toBe('BAD_REQUEST');
    }
    expect(await (await f.admin(at)).integrations.list()).toEqual([]);
  });

  it('keeps the next fire time in the database, read in the schedule\'s zone, across saves', async () => {
    const at = new Date('2027-01-04T12:00:00Z');
    const saved = await f.save('zoned', { cron: '0 2 * * *', timezone: 'Europe/Berlin' }, at);
    expect(saved.nextRunAt).toBe('2027-01-05T01:00:00.000Z');
    // Re-saving the same schedule later keeps the pending fire; changing it recomputes.
    expect((await f.save('zoned', { cron: '0 2 * * *', timezone: 'Europe/Berlin' }, new Date('2027-01-05T00:59:00Z'))).nextRunAt).toBe(
      '2027-01-05T01:00:00.000Z',
    );
    expect((await f.save('zoned', { cron: '0 2 * * *', timezone: 'America/New_York' }, at)).nextRunAt).toBe('2027-01-05T07:00:00.000Z');
    const [listed] = await (await f.admin(at)).integrations.list();
    expect(listed).toMatchObject({ name: 'zoned', schedule: { cron: '0 2 * * *', timezone: 'America/New_York' }, nextRunAt: '2027-01-05T07:00:00.000Z' });
    expect((await f.save('zoned', undefined, at)).nextRunAt).toBeNull();
    expect(await nextRunAt(db, saved.id)).toBeNull();
  });

  it('queues one run when a schedule is due, as the scheduler, audited', async () => {
    const saved = await f.save('due', { cron: '0 2 * * *' }, new Date('2027-01-04T12:00:00Z'));
    clock = new Date('2027-01-05T01:59:59Z');
    expect(await scheduler.tick()).toEqual([]);
    clock = new Date('2027-01-05T02:00:03Z');
    const [fired, ...more] = await scheduler.tick();
    expect(more).toEqual([]);
    expect(fired).toMatchObject({ integrationId: saved.id, outcome: 'queued', agentId: f.agentId });
    expect(await scheduler.tick()).toEqual([]);
    const runs = await runsOf(db, saved.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'queued', requested_by: 'schedule' });
    const runId = runs[0]?.id ?? '';
    expect(fired?.outcome === 'queued' && fired.runId).toBe(runId);
    expect(await auditOf(db, 'run-request', runId)).toEqual([
      { actor_type: 'system', actor_id: 'scheduler', outcome: 'success', meta: { integrationId: saved.id, scheduledFor: '2027-01-05T02:00:00.000Z' } },
    ]);
    expect(await nextRunAt(db, saved.id)).toBe('2027-01-06T02:00:00.000Z');
  });

  it('never overlaps: a fire or a run-now while a run is queued or running is refused', async () => {
    const saved = await f.save('overlap', { cron: '0 2 * * *' }, new Date('2027-01-04T12:00:00Z'));
    clock = new Date('2027-01-05T02:00:01Z');
    expect(await scheduler.tick()).toMatchObject([{ outcome: 'queued' }]);
    // Its agent is offline: the run stays queued, and the next day's fire is held back.
    clock = new Date('2027-01-06T02:00:01Z');
    expect(await scheduler.tick()).toMatchObject([{ integrationId: saved.id, outcome: 'skipped', reason: 'previous run still active' }]);
    expect(await runsOf(db, saved.id)).toHaveLength(1);
    expect(await auditOf(db, 'run-skipped', saved.id)).toMatchObject([
      { actor_type: 'system', actor_id: 'scheduler', outcome: 'failure', meta: { reason: 'previous run still active', scheduledFor: '2027-01-06T02:00:00.000Z' } },
    ]);
    expect(await nextRunAt(db, saved.id)).toBe('2027-01-07T02:00:00.000Z');

    const admin = await f.admin(clock);
    const refused = await admin.integrations.runNow({ id: saved.id }).catch((error: unknown) => error);
    expect(codeOf(refused)).toBe('CONFLICT');
    const [active] = await runsOf(db, saved.id);
    expect(String(refused)).toContain(`still queued or running (run ${active?.id ?? '?'})`);
    expect(await auditOf(db, 'run-request', saved.id)).toMatchObject([
      { actor_type: 'api-key', outcome: 'failure', meta: { reason: 'previous run still active', activeRunId: active?.id } },
    ]);

    await finishRuns(db, saved.id, clock);
    const { runId } = await admin.integrations.runNow({ id: saved.id });
    expect(codeOf(await admin.integrations.runNow({ id: saved.id }).catch((error: unknown) => error))).toBe('CONFLICT');
    expect((await runsOf(db, saved.id)).map((run) => run.status)).toEqual(['succeeded', 'queued']);
    expect((await runsOf(db, saved.id))[1]?.id).toBe(runId);

    // A stuck run can be cancelled, which frees the integration again.
    expect(await admin.runs.cancel({ id: runId })).toEqual({ runId, previous: 'queued' });
    expect(codeOf(await admin.runs.cancel({ id: runId }).catch((error: unknown) => error))).toBe('NOT_FOUND');
    expect(await auditOf(db, 'run-cancel', runId)).toMatchObject([{ outcome: 'success', meta: { previous: 'queued' } }]);
    await admin.integrations.runNow({ id: saved.id });
    expect((await runsOf(db, saved.id)).map((run) => run.status)).toEqual(['succeeded', 'cancelled', 'queued']);
  });

  it('makes the database refuse a second active run of one integration, whatever the code does', async () => {
    const saved = await f.save('index', undefined, new Date('2027-01-04T12:00:00Z'));
    await (await f.admin(new Date('2027-01-04T12:00:00Z'))).integrations.runNow({ id: saved.id });
    await expect(
      db.query(
        `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, spec, status, requested_by)
         SELECT tenant_id, id, version, agent_id, spec, 'running', 'test' FROM integrations WHERE id = $1`,
        [saved.id],
      ),
    ).rejects.toThrow(/runs_one_active/);
  });

  it('run-once: after downtime, every missed fire time collapses into one run', async () => {
    const saved = await f.save('collapse', { cron: '0 * * * *' }, new Date('2027-02-01T00:30:00Z'));
    // Down from 00:30 for three days: 72 hourly fire times pass unseen.
    clock = new Date('2027-02-04T00:40:00Z');
    const fired = await scheduler.tick();
    expect(fired).toMatchObject([{ integrationId: saved.id, outcome: 'queued', scheduledFor: new Date('2027-02-04T00:00:00Z') }]);
    expect(await scheduler.tick()).toEqual([]);
    expect(await runsOf(db, saved.id)).toHaveLength(1);
    const runId = fired[0]?.outcome === 'queued' ? fired[0].runId : '';
    expect(await auditOf(db, 'run-request', runId)).toMatchObject([
      { meta: { scheduledFor: '2027-02-04T00:00:00.000Z', firstMissedAt: '2027-02-01T01:00:00.000Z' } },
    ]);
    expect(await nextRunAt(db, saved.id)).toBe('2027-02-04T01:00:00.000Z');
    // Back to normal: the next hour fires on time.
    await finishRuns(db, saved.id, clock);
    clock = new Date('2027-02-04T01:00:04Z');
    expect(await scheduler.tick()).toMatchObject([{ outcome: 'queued', scheduledFor: new Date('2027-02-04T01:00:00Z') }]);
    expect(await runsOf(db, saved.id)).toHaveLength(2);
  });

  it('skip: after downtime, missed fire times are dropped and the next future one is scheduled', async () => {
    const saved = await f.save('skipper', { cron: '0 * * * *', missed: 'skip' }, new Date('2027-02-01T00:30:00Z'));
    // On time (within a minute) it runs like any other schedule.
    clock = new Date('2027-02-01T01:00:30Z');
    expect(await scheduler.tick()).toMatchObject([{ outcome: 'queued' }]);
    await finishRuns(db, saved.id, clock);
    clock = new Date('2027-02-04T00:40:00Z');
    expect(await scheduler.tick()).toMatchObject([
      { integrationId: saved.id, outcome: 'skipped', reason: 'missed while the control plane was down' },
    ]);
    expect(await runsOf(db, saved.id)).toHaveLength(1);
    expect(await auditOf(db, 'run-skipped', saved.id)).toMatchObject([
      { outcome: 'failure', meta: { reason: 'missed while the control plane was down', firstMissedAt: '2027-02-01T02:00:00.000Z' } },
    ]);
    expect(await nextRunAt(db, saved.id)).toBe('2027-02-04T01:00:00.000Z');
    clock = new Date('2027-02-04T01:00:02Z');
    expect(await scheduler.tick()).toMatchObject([{ outcome: 'queued' }]);
    expect(await runsOf(db, saved.id)).toHaveLength(2);
  });

  it.each([
    ['spring forward', '2027-03-24T12:00:00Z', '2027-03-31T12:00:00Z'],
    ['fall back', '2027-10-27T12:00:00Z', '2027-11-03T12:00:00Z'],
  ])('fires `0 2 * * *` in Europe/Berlin once per day across %s', async (_label, from, to) => {
    const saved = await f.save(`dst-${from.slice(0, 7)}`, { cron: '0 2 * * *', timezone: 'Europe/Berlin' }, new Date(from));
    const stepMs = 10 * 60_000;
    for (let t = new Date(from).getTime() + stepMs; t <= new Date(to).getTime(); t += stepMs) {
      clock = new Date(t);
      await scheduler.tick();
      await finishRuns(db, saved.id, clock);
    }
    const runs = await runsOf(db, saved.id);
    const days = runs.map((run) => berlinDate.format(run.created_at));
    expect(runs).toHaveLength(7);
    expect(new Set(days).size).toBe(7);
    // Each run within a tick of its fire time: 02:00 local, or 03:00 on the day 02:00 does not exist.
    const times = runs.map((run) => berlinTime.format(run.created_at));
    expect(times.filter((time) => time !== '02:00')).toEqual(from.startsWith('2027-03') ? ['03:00'] : []);
  });

  it('ticks by itself once started, and stops', async () => {
    const saved = await f.save('ticking', { cron: '* * * * *' }, new Date('2027-05-01T00:00:30Z'));
    clock = new Date('2027-05-01T00:01:00Z');
    const running = new Scheduler({ db, now: () => clock, tickMs: 20, logger: silent });
    running.start();
    try {
      for (let i = 0; i < 100 && (await runsOf(db, saved.id)).length === 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      await running.stop();
    }
    expect(await runsOf(db, saved.id)).toHaveLength(1);
  });
});

describe('schedules with several replicas on one PostgreSQL', () => {
  let url: string;
  let db: Database;
  let f: Awaited<ReturnType<typeof fixture>>;

  beforeAll(async () => {
    url = await createTestDatabase(inject('postgresUrl'));
    db = connectPostgres(url, { maxConnections: 25 });
    f = await fixture(db);
  });

  afterAll(async () => {
    await db.close();
  });

  it('queues exactly one run per due fire with two schedulers ticking at once', async () => {
    const replicas = [connectPostgres(url), connectPostgres(url)];
    let clock = new Date('2027-06-01T00:00:00Z');
    const schedulers = replicas.map((replica) => new Scheduler({ db: replica, now: () => clock, logger: silent }));
    try {
      const ids: string[] = [];
      for (let i = 0; i < 20; i += 1) ids.push((await f.save(`replica-${i}`, { cron: '*/5 * * * *' }, clock)).id);
      for (let round = 1; round <= 3; round += 1) {
        clock = new Date(Date.UTC(2027, 5, 1, 0, 5 * round, 1));
        const outcomes = (await Promise.all(schedulers.map((scheduler) => scheduler.tick()))).flat();
        // Twenty outcomes, not forty: no schedule was handled by both, not even as a skip.
        expect(outcomes).toHaveLength(20);
        expect(outcomes.filter((o) => o.outcome === 'queued')).toHaveLength(20);
        expect(new Set(outcomes.map((o) => o.integrationId)).size).toBe(20);
        for (const id of ids) {
          expect(await runsOf(db, id)).toHaveLength(round);
          await finishRuns(db, id, clock);
        }
      }
    } finally {
      for (const replica of replicas) await replica.close();
    }
  });

  it('lets exactly one of 10 concurrent run-now requests win', async () => {
    const at = new Date('2027-06-02T00:00:00Z');
    const saved = await f.save('racy', undefined, at);
    const callers = await Promise.all(Array.from({ length: 10 }, () => f.admin(at)));
    const attempts = await Promise.allSettled(callers.map((caller) => caller.integrations.runNow({ id: saved.id })));
    expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(attempts.filter((a) => a.status === 'rejected').map((a) => codeOf(a.reason))).toEqual(Array<string>(9).fill('CONFLICT'));
    expect(await runsOf(db, saved.id)).toHaveLength(1);
  });

  it('closes runs queued twice before the rule, so the migration that adds it applies', async () => {
    const legacy = connectPostgres(await createTestDatabase(inject('postgresUrl')));
    try {
      await legacy.execScript('CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      const init = await readFile(path.join(path.dirname(createRequire(import.meta.url).resolve('@airlock/storage/package.json')), 'migrations', '0001_init.sql'), 'utf8');
      for (const statement of splitStatements(init)) await legacy.query(statement);
      await legacy.query("INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')");
      const [ids] = await legacy.query<{ tenant: string; agent: string; integration: string }>(
        `WITH t AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id),
              a AS (INSERT INTO agents (tenant_id, public_key, hostname, version) SELECT id, 'k', 'h', '1' FROM t RETURNING id, tenant_id),
              i AS (INSERT INTO integrations (tenant_id, agent_id, name, spec) SELECT tenant_id, id, 'old', '{}' FROM a RETURNING id, tenant_id, agent_id)
         SELECT tenant_id AS tenant, agent_id AS agent, id AS integration FROM i`,
      );
      if (!ids) throw new Error('no legacy rows');
      for (const [status, minute] of [['queued', 1], ['running', 2], ['queued', 3], ['succeeded', 0]] as const) {
        await legacy.query(
          `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, spec, status, requested_by, created_at)
           VALUES ($1, $2, 1, $3, '{}', $4, 'test', $5)`,
          [ids.tenant, ids.integration, ids.agent, status, new Date(Date.UTC(2026, 0, 1, 0, minute))],
        );
      }
      expect((await migrate(legacy)).applied).toContain('0002_schedules.sql');
      const statuses = await legacy.query<{ status: string; error_class: string | null }>('SELECT status, error_class FROM runs ORDER BY created_at');
      expect(statuses).toEqual([
        { status: 'succeeded', error_class: null },
        { status: 'failed', error_class: 'conflict' },
        { status: 'running', error_class: null },
        { status: 'failed', error_class: 'conflict' },
      ]);
    } finally {
      await legacy.close();
    }
  });
});
