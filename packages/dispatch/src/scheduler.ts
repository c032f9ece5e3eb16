/**
 * The scheduler: starts runs of integrations whose `schedule` says so. Every replica of the
 * control plane runs one; they share the state in `integration_schedules`, and each due schedule is
 * claimed with `FOR UPDATE SKIP LOCKED`, so one fire time yields one run whichever replica ticks.
 *
 * Rules (documented in the README's integration section):
 * - a fire time seen within `lateAfterMs` of when it was due is on time and queues a run;
 * - later than that it was missed (control plane down): `run-once` queues ONE run for all missed
 *   fire times together, `skip` queues none; either way the next future fire time is scheduled;
 * - a run of the integration still queued or running (its agent may be offline) holds the fire
 *   back: no run, a `run-skipped` audit event, and the next future fire time is scheduled.
 */
import { CronExpressionParser } from 'cron-parser';
import { UserError } from '@airlock/errors';
import { AGENT_LOST_AFTER_MS, isTimeZone, type ScheduleSpec } from '@airlock/protocol';
import { appendAudit, type Database, type Queryable, Ticker } from '@airlock/storage';
import type { Dispatcher } from './dispatcher.ts';
import { abandonedEvent, abandonRuns, type AbandonedRun, enqueueRun, PREVIOUS_RUN_ACTIVE } from './run-queue.ts';

type CronSchedule = Pick<ScheduleSpec, 'cron' | 'timezone'>;

// `H` picks a random minute or hour unless seeded; a fire time must not move between evaluations.
const HASHED = /(?:^|,)H(?:$|[(/,])/;

function expression(schedule: CronSchedule, currentDate: Date) {
  return CronExpressionParser.parse(schedule.cron, { tz: schedule.timezone, currentDate });
}

/** Refuses a cron expression or time zone the scheduler could not evaluate, with the reason. */
export function validateSchedule(schedule: CronSchedule, now: Date): void {
  const fields = schedule.cron.split(/\s+/);
  if (fields.length !== 5) throw new UserError(`schedule.cron ${JSON.stringify(schedule.cron)}: expected 5 fields: minute hour day-of-month month day-of-week`);
  if (fields.some((field) => HASHED.test(field))) throw new UserError(`schedule.cron ${JSON.stringify(schedule.cron)}: H (hashed) values are not supported`);
  try {
    expression(schedule, now).next();
  } catch (error) {
    // An unknown zone reaches the parser as an invalid date; name the zone instead.
    if (!isTimeZone(schedule.timezone)) throw new UserError(`schedule.timezone ${JSON.stringify(schedule.timezone)}: unknown time zone`);
    const reason = error instanceof Error ? error.message : String(error);
    throw new UserError(`schedule.cron ${JSON.stringify(schedule.cron)}: ${reason}`, { cause: error });
  }
}

/** The first fire time strictly after `after`. */
export function nextFireTime(schedule: CronSchedule, after: Date): Date {
  return expression(schedule, after).next().toDate();
}

/** The last fire time at or before `at`. */
export function latestFireTime(schedule: CronSchedule, at: Date): Date {
  return expression(schedule, new Date(at.getTime() + 1)).prev().toDate();
}

/**
 * Records the schedule of a saved integration (or removes it), in the save's transaction. The
 * next fire time is recomputed only when the cron or zone changed, so re-saving an integration
 * neither drops nor adds a fire.
 */
export async function saveSchedule(
  tx: Queryable,
  integration: { id: string; tenantId: string; schedule: ScheduleSpec | undefined },
  now: Date,
): Promise<Date | null> {
  const { schedule } = integration;
  if (!schedule) {
    await tx.query('DELETE FROM integration_schedules WHERE integration_id = $1', [integration.id]);
    return null;
  }
  const [row] = await tx.query<{ next_run_at: Date }>(
    `INSERT INTO integration_schedules (integration_id, tenant_id, cron, timezone, missed, next_run_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (integration_id) DO UPDATE SET
       cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, missed = EXCLUDED.missed,
       next_run_at = CASE WHEN integration_schedules.cron = EXCLUDED.cron AND integration_schedules.timezone = EXCLUDED.timezone
                          THEN integration_schedules.next_run_at ELSE EXCLUDED.next_run_at END
     RETURNING next_run_at`,
    [integration.id, integration.tenantId, schedule.cron, schedule.timezone, schedule.missed, nextFireTime(schedule, now)],
  );
  if (!row) throw new Error('schedule upsert returned nothing');
  return row.next_run_at;
}

export type FireOutcome =
  | { integrationId: string; outcome: 'queued'; runId: string; agentId: string | null; wake: string[]; scheduledFor: Date }
  | { integrationId: string; outcome: 'skipped'; reason: string; scheduledFor: Date };

export interface SchedulerOptions {
  db: Database;
  /** Wakes this replica's long-polling agents at once; other replicas' polls find the run themselves. */
  dispatcher?: Dispatcher;
  now?: () => Date;
  /** Time between ticks, in ms. Default 5_000. */
  tickMs?: number;
  /** A fire time seen later than this, in ms, counts as missed. Default 60_000. */
  lateAfterMs?: number;
  /** Most schedules one tick handles; the rest wait for the next tick. Default 100. */
  maxPerTick?: number;
  /** A claimed run whose agent was not heard of for this long, in ms, is closed as abandoned. Default `AGENT_LOST_AFTER_MS`. */
  abandonSilentAfterMs?: number;
  logger: { warn(meta: Record<string, unknown>, message: string): void; error(meta: Record<string, unknown>, message: string): void };
}

interface DueRow {
  integration_id: string;
  tenant_id: string;
  cron: string;
  timezone: string;
  missed: ScheduleSpec['missed'];
  next_run_at: Date;
}

const SCHEDULER_ACTOR = { type: 'system', id: 'scheduler' } as const;
const MISSED = 'missed while the control plane was down';
const INTEGRATION_DISABLED = 'integration disabled';

export class Scheduler {
  readonly #db: Database;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #now: () => Date;
  readonly #ticker: Ticker;
  readonly #lateAfterMs: number;
  readonly #maxPerTick: number;
  readonly #abandonSilentAfterMs: number;
  readonly #logger: SchedulerOptions['logger'];

  constructor(options: SchedulerOptions) {
    // System scope: due schedules of every tenant are claimed in one query.
    this.#db = options.db.forSystem();
    this.#dispatcher = options.dispatcher;
    this.#now = options.now ?? (() => new Date());
    this.#ticker = new Ticker(() => this.tick(), options.tickMs ?? 5_000, (error: unknown) => this.#logger.warn({ error: String(error) }, 'scheduler tick failed'));
    this.#lateAfterMs = options.lateAfterMs ?? 60_000;
    this.#maxPerTick = options.maxPerTick ?? 100;
    this.#abandonSilentAfterMs = options.abandonSilentAfterMs ?? AGENT_LOST_AFTER_MS;
    this.#logger = options.logger;
  }

  /** Ticks now and then every `tickMs` until `stop()`. Ticks never overlap within one scheduler. */
  start(): void {
    this.#ticker.start();
  }

  /** Stops ticking and waits for a tick in progress, so the database can be closed after it. */
  async stop(): Promise<void> {
    await this.#ticker.stop();
  }

  /**
   * Closes the runs of agents gone silent (so their integrations can run again), then handles every
   * schedule due at the clock's now, each in its own transaction.
   */
  async tick(): Promise<FireOutcome[]> {
    const now = this.#now();
    // A failure here must not hold up the schedules; the next tick tries again.
    await this.abandonSilentRuns(now).catch((error: unknown) => this.#logger.error({ error: String(error) }, 'closing abandoned runs failed'));
    const outcomes: FireOutcome[] = [];
    // Schedules that failed this tick are left for the next one, so one bad row cannot stall the rest.
    const failed: string[] = [];
    for (let i = 0; i < this.#maxPerTick; i += 1) {
      let claimed: string | undefined;
      try {
        const outcome = await this.#db.transaction(async (tx) => {
          const [due] = await tx.query<DueRow>(
            `SELECT integration_id, tenant_id, cron, timezone, missed, next_run_at FROM integration_schedules
             WHERE next_run_at <= $1 AND NOT (integration_id = ANY($2::uuid[]))
             ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [now, failed],
          );
          if (!due) return null;
          claimed = due.integration_id;
          return this.#fire(tx, due, now);
        });
        if (!outcome) break;
        outcomes.push(outcome);
        if (outcome.outcome === 'queued') for (const agentId of outcome.wake) this.#dispatcher?.notify(agentId);
      } catch (error) {
        if (claimed === undefined) throw error;
        failed.push(claimed);
        this.#logger.error({ integrationId: claimed, error: String(error) }, 'scheduled fire failed');
      }
    }
    return outcomes;
  }

  /** Closes, and audits, the claimed runs of every agent not heard of for `abandonSilentAfterMs`. */
  async abandonSilentRuns(now: Date = this.#now()): Promise<AbandonedRun[]> {
    return this.#db.transaction(async (tx) => {
      const runs = await abandonRuns(tx, { silentSince: new Date(now.getTime() - this.#abandonSilentAfterMs) }, now);
      for (const run of runs) {
        await appendAudit(tx, { ...abandonedEvent(run, 'agent-silent'), tenantId: run.tenantId, actor: SCHEDULER_ACTOR, sourceIp: null }, now);
      }
      return runs;
    });
  }

  async #fire(tx: Queryable, due: DueRow, now: Date): Promise<FireOutcome> {
    const latest = latestFireTime(due, now);
    const scheduledFor = latest > due.next_run_at ? latest : due.next_run_at;
    const base = { integrationId: due.integration_id, scheduledFor };
    const timing: Record<string, string> = { scheduledFor: scheduledFor.toISOString() };
    // More than one fire time passed unseen: say so, since only one run stands for them.
    if (scheduledFor > due.next_run_at) timing['firstMissedAt'] = due.next_run_at.toISOString();

    let outcome: FireOutcome;
    const late = now.getTime() - scheduledFor.getTime() > this.#lateAfterMs;
    if (late && due.missed === 'skip') {
      outcome = { ...base, outcome: 'skipped', reason: MISSED };
    } else {
      const result = await enqueueRun(tx, { integrationId: due.integration_id, tenantId: due.tenant_id, requestedBy: 'schedule', now });
      switch (result.kind) {
        case 'queued':
          await appendAudit(tx, {
            tenantId: due.tenant_id,
            actor: SCHEDULER_ACTOR,
            action: 'run-request',
            target: result.runId,
            outcome: 'success',
            sourceIp: null,
            meta: { integrationId: due.integration_id, ...timing },
          }, now);
          outcome = { ...base, outcome: 'queued', runId: result.runId, agentId: result.agentId, wake: result.wake };
          break;
        case 'active':
          outcome = { ...base, outcome: 'skipped', reason: PREVIOUS_RUN_ACTIVE };
          break;
        case 'disabled':
          // Disabling deletes the schedule in the same transaction; only a race lands here.
          outcome = { ...base, outcome: 'skipped', reason: INTEGRATION_DISABLED };
          break;
        case 'not-found':
          // Deleting removes the schedule in the same transaction, so this is a bug, not a user's doing.
          throw new Error('scheduled integration is missing');
      }
    }
    if (outcome.outcome === 'skipped') {
      await appendAudit(tx, {
        tenantId: due.tenant_id,
        actor: SCHEDULER_ACTOR,
        action: 'run-skipped',
        target: due.integration_id,
        outcome: 'failure',
        sourceIp: null,
        meta: { reason: outcome.reason, ...timing },
      }, now);
    }
    await tx.query(
      `UPDATE integration_schedules SET next_run_at = $2, last_fired_at = CASE WHEN $3 THEN $4 ELSE last_fired_at END
       WHERE integration_id = $1`,
      [due.integration_id, nextFireTime(due, now), outcome.outcome === 'queued', now],
    );
    return outcome;
  }
}
