/** The admins' API: agents, integrations, runs and the audit trail, always within the caller's tenant. */
import type { TRPCRouterRecord } from '@trpc/server';
import { ConflictError, NotFoundError, RecipientKeyError, UserError } from '@airlock/errors';
import { AGENT_HEALTHY_WITHIN_MS, byId, integrationSpecToSave, listAuditInput, listRunsInput, type RunProgress, type RunReport, type RunStatus } from '@airlock/protocol';
import { inspectRecipientKeys, MAX_RECIPIENTS } from '@airlock/pgp';
import { appendAudit, eventBy, listAuditEvents, type Queryable, recordAudit } from '@airlock/storage';
import {
  AGENT_KEY_CHANNEL,
  decideForGroup,
  decideIntegration,
  enqueueRun,
  groupByName,
  groupMembers,
  notifyAgents,
  PREVIOUS_RUN_ACTIVE,
  saveSchedule,
  validateSchedule,
  WAKE_CHANNEL,
} from '@airlock/dispatch';
import { checkpointProcedures } from './audit-admin.ts';
import { adminKeyProcedures } from './agent-keys.ts';
import { integrationLimitOf, procedureFor } from '../trpc.ts';
import { principalRef } from '@airlock/auth';

interface RunRow {
  id: string;
  integration_id: string;
  integration_version: number;
  /** Null while a group's run waits for a member. */
  agent_id: string | null;
  status: RunStatus;
  requested_by: string;
  created_at: Date;
  claimed_at: Date | null;
  finished_at: Date | null;
  error_class: string | null;
  failure_reason: string | null;
  report: RunReport | null;
  progress: Omit<RunProgress, 'runId'> | null;
  progress_at: Date | null;
}


interface IntegrationRow {
  id: string;
  name: string;
  agent_id: string | null;
  group_id: string | null;
  version: number;
  spec: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
  disabled_at: Date | null;
  next_run_at: Date | null;
}

type ScheduleInput = Parameters<typeof saveSchedule>[1]['schedule'];

/** Cancels an integration's queued runs (a running one finishes); returns how many. */
async function cancelQueuedRuns(tx: Queryable, integrationId: string, now: Date): Promise<number> {
  const cancelled = await tx.query("UPDATE runs SET status = 'cancelled', finished_at = $2 WHERE integration_id = $1 AND status = 'queued' RETURNING id", [integrationId, now]);
  return cancelled.length;
}

function runView(row: RunRow) {
  return {
    id: row.id,
    integrationId: row.integration_id,
    integrationVersion: row.integration_version,
    agentId: row.agent_id,
    status: row.status,
    requestedBy: row.requested_by,
    createdAt: row.created_at.toISOString(),
    claimedAt: row.claimed_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
    errorClass: row.error_class,
    /** Why a failed run failed, as its agent worded it: metadata only. */
    reason: row.failure_reason,
    report: row.report,
    progress: row.progress ? { ...row.progress, at: row.progress_at?.toISOString() ?? null } : null,
  };
}

export const agentsRouter = {
  list: procedureFor('agents:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<{ id: string; hostname: string; version: string; status: string; enrolled_at: Date; last_seen_at: Date | null }>(
      'SELECT id, hostname, version, status, enrolled_at, last_seen_at FROM agents WHERE tenant_id = $1 ORDER BY enrolled_at',
      [ctx.admin.tenantId],
    );
    return rows.map((row) => ({
      id: row.id,
      hostname: row.hostname,
      version: row.version,
      status: row.status,
      enrolledAt: row.enrolled_at.toISOString(),
      lastSeenAt: row.last_seen_at?.toISOString() ?? null,
    }));
  }),

  /**
   * Revokes an agent: its next signed request is refused, and its queued runs are cancelled so
   * their integrations are free to run elsewhere. There is no un-revoke; enroll a new agent.
   */
  revoke: procedureFor('agents:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      const revoked = await ctx.db.transaction(async (tx) => {
        const [agent] = await tx.query<{ id: string }>(
          "UPDATE agents SET status = 'revoked' WHERE id = $1 AND tenant_id = $2 AND status = 'active' RETURNING id",
          [input.id, ctx.admin.tenantId],
        );
        if (!agent) throw new NotFoundError('no active agent with that id');
        const cancelled = await tx.query<{ id: string }>(
          "UPDATE runs SET status = 'cancelled', finished_at = $2 WHERE agent_id = $1 AND status = 'queued' RETURNING id",
          [agent.id, ctx.now()],
        );
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, { action: 'agent-revoke', target: agent.id, outcome: 'success', meta: { cancelledRuns: cancelled.length } }),
        );
        // On commit, every replica drops the agent's cached key and wakes its long-poll, which then
        // ends refused instead of waiting out its time.
        await notifyAgents(tx, AGENT_KEY_CHANNEL, [agent.id]);
        await notifyAgents(tx, WAKE_CHANNEL, [agent.id]);
        return { agentId: agent.id, cancelledRuns: cancelled.length };
      });
      ctx.agentKeys?.forget(revoked.agentId);
      return revoked;
    }),

  ...adminKeyProcedures,
} satisfies TRPCRouterRecord;

export const integrationsRouter = {
  /** Creates the integration, or saves a new version of the one with the same name. */
  save: procedureFor('integrations:write')
    .input(integrationSpecToSave)
    .mutation(async ({ ctx, input }) => {
      // Every key of every recipient file: a file with two keys is two recipients, each checked and pinned by the agent.
      const fingerprints: string[] = [];
      const recipientWarnings: string[] = [];
      for (const armored of input.recipients) {
        try {
          for (const key of await inspectRecipientKeys(armored, ctx.now())) {
            fingerprints.push(key.fingerprint);
            recipientWarnings.push(...key.warnings.map((warning) => `recipient key ${key.fingerprint}: ${warning}`));
          }
        } catch (error) {
          if (error instanceof RecipientKeyError) throw error;
          throw new UserError('a recipient is not a usable OpenPGP public key', { cause: error });
        }
      }
      if (new Set(fingerprints).size !== fingerprints.length) throw new UserError('a recipient key is listed twice');
      if (fingerprints.length > MAX_RECIPIENTS) throw new UserError(`${fingerprints.length} recipient keys; at most ${MAX_RECIPIENTS} are allowed`);
      if (input.schedule) validateSchedule(input.schedule, ctx.now());
      const saved = await ctx.db.transaction(async (tx) => {
        const tenantId = ctx.admin.tenantId;
        let groupId: string | null = null;
        if (input.group !== undefined) {
          groupId = (await groupByName(tx, tenantId, input.group)).id;
        } else {
          const [agent] = await tx.query('SELECT 1 FROM agents WHERE id = $1 AND tenant_id = $2 AND status = $3', [input.agentId, tenantId, 'active']);
          if (!agent) throw new NotFoundError('no active agent with that id');
        }
        // Deny by default: every scope the integration needs must be covered by the agent's (or the group's) live grants.
        const decision =
          groupId === null
            ? await decideIntegration(tx, { tenantId, agentId: input.agentId ?? '' }, input, ctx.now())
            : await decideForGroup(tx, tenantId, groupId, input, ctx.now());
        if (!decision.allowed) return { kind: 'denied' as const, decision };
        // A deleted integration's name is free: the upsert matches live rows only.
        const [row] = await tx.query<{ id: string; version: number; disabled: boolean }>(
          `INSERT INTO integrations (tenant_id, agent_id, group_id, name, spec) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (tenant_id, name) WHERE deleted_at IS NULL DO UPDATE
             SET agent_id = EXCLUDED.agent_id, group_id = EXCLUDED.group_id, spec = EXCLUDED.spec,
                 version = integrations.version + 1, updated_at = now()
           RETURNING id, version, disabled_at IS NOT NULL AS disabled`,
          [tenantId, input.agentId ?? null, groupId, input.name, JSON.stringify(input)],
        );
        if (!row) throw new Error('integration upsert returned nothing');
        await tx.query(
          'INSERT INTO integration_versions (integration_id, tenant_id, version, spec, saved_by, saved_at) VALUES ($1, $2, $3, $4, $5, $6)',
          [row.id, tenantId, row.version, JSON.stringify(input), principalRef(ctx.admin), ctx.now()],
        );
        // A disabled integration keeps no live schedule; enabling it schedules from its spec again.
        const nextRunAt = row.disabled ? null : await saveSchedule(tx, { id: row.id, tenantId: ctx.admin.tenantId, schedule: input.schedule }, ctx.now());
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'integration-save',
          target: row.id,
          outcome: 'success',
          meta: {
            name: input.name,
            version: row.version,
            agentId: input.agentId ?? null,
            group: input.group ?? null,
            source: input.source.connector,
            destination: input.destination.connector,
            recipientFingerprints: fingerprints,
            requiredScopes: decision.scopes,
            schedule: input.schedule ? { ...input.schedule } : null,
          },
        }));
        return { kind: 'saved' as const, id: row.id, version: row.version, recipientFingerprints: fingerprints, nextRunAt: nextRunAt?.toISOString() ?? null };
      });
      if (saved.kind === 'denied') {
        // Nothing was written; the refusal is recorded on its own, after the read-only transaction ended.
        const { decision } = saved;
        await recordAudit(ctx.db, eventBy(ctx.admin, ctx.request, {
          action: 'scope-denied',
          target: input.name,
          outcome: 'denied',
          meta: { agentId: input.agentId ?? null, group: input.group ?? null, integration: input.name, requiredScopes: decision.scopes, reason: decision.reason },
        }));
        throw decision.error;
      }
      return { id: saved.id, version: saved.version, recipientFingerprints: saved.recipientFingerprints, recipientWarnings, nextRunAt: saved.nextRunAt };
    }),

  list: procedureFor('integrations:read', { integrationScoped: true }).query(async ({ ctx }) => {
    const rows = await ctx.db.query<{
      id: string;
      name: string;
      agent_id: string | null;
      group_id: string | null;
      version: number;
      updated_at: Date;
      cron: string | null;
      timezone: string | null;
      next_run_at: Date | null;
      last_fired_at: Date | null;
      disabled_at: Date | null;
    }>(
      `SELECT i.id, i.name, i.agent_id, i.group_id, i.version, i.updated_at, s.cron, s.timezone, s.next_run_at, s.last_fired_at, i.disabled_at
       FROM integrations i LEFT JOIN integration_schedules s ON s.integration_id = i.id
       WHERE i.tenant_id = $1 AND i.deleted_at IS NULL AND ($2::uuid[] IS NULL OR i.id = ANY($2)) ORDER BY i.name`,
      [ctx.admin.tenantId, integrationLimitOf(ctx.admin)],
    );
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      agentId: row.agent_id,
      groupId: row.group_id,
      version: row.version,
      updatedAt: row.updated_at.toISOString(),
      schedule: row.cron === null || row.timezone === null ? null : { cron: row.cron, timezone: row.timezone },
      nextRunAt: row.next_run_at?.toISOString() ?? null,
      lastFiredAt: row.last_fired_at?.toISOString() ?? null,
      disabledAt: row.disabled_at?.toISOString() ?? null,
    }));
  }),

  /** One integration with its current spec (recipients as saved), schedule and state. */
  get: procedureFor('integrations:read')
    .input(byId)
    .query(async ({ ctx, input }) => {
      const [row] = await ctx.db.query<IntegrationRow>(
        `SELECT i.id, i.name, i.agent_id, i.group_id, i.version, i.spec, i.created_at, i.updated_at, i.disabled_at, s.next_run_at
         FROM integrations i LEFT JOIN integration_schedules s ON s.integration_id = i.id
         WHERE i.id = $1 AND i.tenant_id = $2 AND i.deleted_at IS NULL`,
        [input.id, ctx.admin.tenantId],
      );
      if (!row) throw new NotFoundError('no integration with that id');
      return {
        id: row.id,
        name: row.name,
        agentId: row.agent_id,
        groupId: row.group_id,
        version: row.version,
        spec: row.spec,
        createdAt: row.created_at.toISOString(),
        updatedAt: row.updated_at.toISOString(),
        disabledAt: row.disabled_at?.toISOString() ?? null,
        nextRunAt: row.next_run_at?.toISOString() ?? null,
      };
    }),

  /** Every saved version, newest first: who saved it, when, and the spec it saved. */
  history: procedureFor('integrations:read')
    .input(byId)
    .query(async ({ ctx, input }) => {
      const [integration] = await ctx.db.query('SELECT 1 FROM integrations WHERE id = $1 AND tenant_id = $2', [input.id, ctx.admin.tenantId]);
      if (!integration) throw new NotFoundError('no integration with that id');
      const rows = await ctx.db.query<{ version: number; spec: Record<string, unknown>; saved_by: string | null; saved_at: Date }>(
        'SELECT version, spec, saved_by, saved_at FROM integration_versions WHERE integration_id = $1 AND tenant_id = $2 ORDER BY version DESC',
        [input.id, ctx.admin.tenantId],
      );
      return rows.map((row) => ({ version: row.version, savedBy: row.saved_by, savedAt: row.saved_at.toISOString(), spec: row.spec }));
    }),

  /** Stops dispatching and scheduling it; queued runs are cancelled, a running one finishes. */
  disable: procedureFor('integrations:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; name: string }>(
          'UPDATE integrations SET disabled_at = $3 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL AND disabled_at IS NULL RETURNING id, name',
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!row) throw new NotFoundError('no enabled integration with that id');
        const cancelled = await cancelQueuedRuns(tx, row.id, ctx.now());
        await tx.query('DELETE FROM integration_schedules WHERE integration_id = $1', [row.id]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'integration-disable', target: row.id, outcome: 'success', meta: { name: row.name, cancelledRuns: cancelled } }));
        return { id: row.id, name: row.name, disabled: true as const, cancelledRuns: cancelled };
      });
    }),

  /** Dispatches and schedules it again; the schedule restarts from now (missed times are not made up). */
  enable: procedureFor('integrations:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; name: string; spec: { schedule?: ScheduleInput } }>(
          'UPDATE integrations SET disabled_at = NULL WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL AND disabled_at IS NOT NULL RETURNING id, name, spec',
          [input.id, ctx.admin.tenantId],
        );
        if (!row) throw new NotFoundError('no disabled integration with that id');
        const nextRunAt = await saveSchedule(tx, { id: row.id, tenantId: ctx.admin.tenantId, schedule: row.spec.schedule }, ctx.now());
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'integration-enable', target: row.id, outcome: 'success', meta: { name: row.name, nextRunAt: nextRunAt?.toISOString() ?? null } }));
        return { id: row.id, name: row.name, disabled: false as const, nextRunAt: nextRunAt?.toISOString() ?? null };
      });
    }),

  /**
   * Deletes it softly: its runs, versions and audit trail stay and keep naming it; it is no longer
   * listed, run or scheduled, and its name is free for a new integration.
   */
  delete: procedureFor('integrations:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; name: string; version: number }>(
          'UPDATE integrations SET deleted_at = $3 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id, name, version',
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!row) throw new NotFoundError('no integration with that id');
        const cancelled = await cancelQueuedRuns(tx, row.id, ctx.now());
        await tx.query('DELETE FROM integration_schedules WHERE integration_id = $1', [row.id]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'integration-delete', target: row.id, outcome: 'success', meta: { name: row.name, version: row.version, cancelledRuns: cancelled } }));
        return { id: row.id, name: row.name, deleted: true as const, cancelledRuns: cancelled };
      });
    }),

  /** Queues a run; refused with ConflictError while a run of the integration is queued or running. */
  runNow: procedureFor('runs:create', { integrationScoped: true })
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      // Outside a client's integrations looks the same as absent.
      if (integrationLimitOf(ctx.admin)?.includes(input.id) === false) throw new NotFoundError('no integration with that id');
      const result = await ctx.db.transaction(async (tx) => {
        const queued = await enqueueRun(tx, {
          integrationId: input.id,
          tenantId: ctx.admin.tenantId,
          requestedBy: principalRef(ctx.admin),
          now: ctx.now(),
        });
        if (queued.kind === 'not-found') throw new NotFoundError('no integration with that id');
        if (queued.kind === 'disabled') throw new ConflictError('the integration is disabled: enable it first (`airlock integration enable`)');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, queued.kind === 'queued'
          ? { action: 'run-request', target: queued.runId, outcome: 'success', meta: { integrationId: input.id } }
          : { action: 'run-request', target: input.id, outcome: 'failure', meta: { integrationId: input.id, reason: PREVIOUS_RUN_ACTIVE, activeRunId: queued.activeRunId } }));
        return queued;
      });
      if (result.kind !== 'queued') {
        const which = result.activeRunId ? ` (run ${result.activeRunId})` : '';
        throw new ConflictError(`not queued: a run of this integration is still queued or running${which}`);
      }
      if (result.groupId === null) return { runId: result.runId, waiting: null };
      // Queued either way; the caller learns now when no member can take it yet.
      const members = await groupMembers(ctx.db, ctx.admin.tenantId, result.groupId, ctx.now());
      return {
        runId: result.runId,
        waiting: members.healthy.length > 0 ? null : `no healthy member of the group (${members.active.length} active, none seen in the last ${AGENT_HEALTHY_WITHIN_MS / 1000} s): the run stays queued until one asks for work`,
      };
    }),
} satisfies TRPCRouterRecord;

export const runsRouter = {
  list: procedureFor('runs:read', { integrationScoped: true })
    .input(listRunsInput)
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.query<RunRow>(
        `SELECT id, integration_id, integration_version, agent_id, status, requested_by, created_at, claimed_at, finished_at, error_class, failure_reason, report, progress, progress_at
         FROM runs WHERE tenant_id = $1 AND ($2::uuid IS NULL OR integration_id = $2) AND ($4::uuid[] IS NULL OR integration_id = ANY($4))
         ORDER BY created_at DESC LIMIT $3`,
        [ctx.admin.tenantId, input.integrationId ?? null, input.limit, integrationLimitOf(ctx.admin)],
      );
      return rows.map(runView);
    }),

  get: procedureFor('runs:read', { integrationScoped: true })
    .input(byId)
    .query(async ({ ctx, input }) => {
      const [row] = await ctx.db.query<RunRow>(
        `SELECT id, integration_id, integration_version, agent_id, status, requested_by, created_at, claimed_at, finished_at, error_class, failure_reason, report, progress, progress_at
         FROM runs WHERE id = $1 AND tenant_id = $2 AND ($3::uuid[] IS NULL OR integration_id = ANY($3))`,
        [input.id, ctx.admin.tenantId, integrationLimitOf(ctx.admin)],
      );
      if (!row) throw new NotFoundError('no run with that id');
      return runView(row);
    }),

  /** Ends a queued or running run. An agent still working on it has its report refused. */
  cancel: procedureFor('runs:create', { integrationScoped: true })
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; previous: string; agent_id: string | null }>(
          'SELECT id, status AS previous, agent_id FROM runs WHERE id = $1 AND tenant_id = $2 AND status IN ($3, $4) AND ($5::uuid[] IS NULL OR integration_id = ANY($5)) FOR UPDATE',
          [input.id, ctx.admin.tenantId, 'queued', 'running', integrationLimitOf(ctx.admin)],
        );
        if (!row) throw new NotFoundError('no queued or running run with that id');
        await tx.query("UPDATE runs SET status = 'cancelled', finished_at = $2 WHERE id = $1", [row.id, ctx.now()]);
        // The agent, if waiting, looks again: whatever it waits behind may have been this run.
        await notifyAgents(tx, WAKE_CHANNEL, [row.agent_id]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'run-cancel', target: row.id, outcome: 'success', meta: { previous: row.previous } }));
        return { runId: row.id, previous: row.previous };
      });
    }),
} satisfies TRPCRouterRecord;

export const auditRouter = {
  list: procedureFor('audit:read')
    .input(listAuditInput)
    .query(async ({ ctx, input }) => {
      return listAuditEvents(ctx.db, { ...input, tenantId: ctx.admin.tenantId });
    }),
  ...checkpointProcedures,
} satisfies TRPCRouterRecord;
