/**
 * Queues a run of an integration, for run-now and the scheduler alike. Two runs of one integration
 * never overlap: the partial unique index `runs_one_active` admits one queued or running run per
 * integration, so concurrent requests on any replica cannot both win.
 */
import { notifyAgents, WAKE_CHANNEL } from './dispatcher.ts';
import { groupMembers } from './group-dispatch.ts';
import type { Queryable } from '@airlock/storage';

export type EnqueueResult =
  /** `wake`: the agents to wake now: the integration's agent, or its group's healthy members. */
  | { kind: 'queued'; runId: string; agentId: string | null; groupId: string | null; wake: string[] }
  | { kind: 'active'; activeRunId: string | null }
  /** Disabled by an admin: kept, never dispatched or scheduled until enabled again. */
  | { kind: 'disabled' }
  /** No such integration, or a deleted one. */
  | { kind: 'not-found' };

/** Why a run was not queued while another is active; shown to admins and written to the audit trail. */
export const PREVIOUS_RUN_ACTIVE = 'previous run still active';

export async function enqueueRun(
  tx: Queryable,
  request: { integrationId: string; tenantId: string; requestedBy: string; now: Date },
): Promise<EnqueueResult> {
  const [row] = await tx.query<{ id: string; agent_id: string | null; group_id: string | null }>(
    `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, group_id, spec, requested_by, created_at)
     SELECT tenant_id, id, version, agent_id, group_id, spec, $3, $4 FROM integrations
     WHERE id = $1 AND tenant_id = $2 AND disabled_at IS NULL AND deleted_at IS NULL
     ON CONFLICT (integration_id) WHERE status IN ('queued', 'running') DO NOTHING
     RETURNING id, agent_id, group_id`,
    [request.integrationId, request.tenantId, request.requestedBy, request.now],
  );
  if (row) {
    const wake = row.group_id === null ? [row.agent_id ?? ''] : (await groupMembers(tx, request.tenantId, row.group_id, request.now)).healthy;
    // Heard on commit by every replica, where these agents may be waiting.
    await notifyAgents(tx, WAKE_CHANNEL, wake);
    return { kind: 'queued', runId: row.id, agentId: row.agent_id, groupId: row.group_id, wake };
  }
  const [integration] = await tx.query<{ active_run_id: string | null; disabled: boolean }>(
    `SELECT (SELECT r.id FROM runs r WHERE r.integration_id = i.id AND r.status IN ('queued', 'running')) AS active_run_id,
            i.disabled_at IS NOT NULL AS disabled
     FROM integrations i WHERE i.id = $1 AND i.tenant_id = $2 AND i.deleted_at IS NULL`,
    [request.integrationId, request.tenantId],
  );
  if (!integration) return { kind: 'not-found' };
  if (integration.disabled) return { kind: 'disabled' };
  // Null when the active run finished between the insert and this read; still a refusal.
  return { kind: 'active', activeRunId: integration.active_run_id };
}

/** Why a claimed run was closed without a report. */
export type AbandonReason =
  /** The agent asked for work saying it runs nothing and has no unsent report: it stopped mid-run. */
  | 'agent-restarted'
  /** Neither the agent nor the run was heard of for `AGENT_LOST_AFTER_MS`; a live agent is heard of every minute while it runs a job. */
  | 'agent-silent';


export interface AbandonedRun {
  id: string;
  tenantId: string;
  integrationId: string;
  agentId: string;
  groupId: string | null;
}

/**
 * Closes claimed runs that will never be reported: those of one agent (`agent-restarted`), or of
 * every agent silent since `silentSince` (`agent-silent`). They end `failed`, class `operational`
 * (a later run may succeed); the integration can run again at once. Files the lost run delivered
 * are in the agent's ledger, so the next run does not send them again. The caller audits each with
 * `abandonedEvent`.
 */
export async function abandonRuns(
  tx: Queryable,
  which: { agentId: string } | { silentSince: Date },
  now: Date,
): Promise<AbandonedRun[]> {
  type Row = { id: string; tenant_id: string; integration_id: string; agent_id: string; group_id: string | null };
  const rows =
    'agentId' in which
      ? await tx.query<Row>(
          `UPDATE runs SET status = 'failed', finished_at = $2, error_class = 'operational'
           WHERE agent_id = $1 AND status = 'running'
           RETURNING id, tenant_id, integration_id, agent_id, group_id`,
          [which.agentId, now],
        )
      : await tx.query<Row>(
          `UPDATE runs r SET status = 'failed', finished_at = $2, error_class = 'operational'
           FROM agents a
           WHERE a.id = r.agent_id AND r.status = 'running'
             AND greatest(r.claimed_at, r.progress_at, a.last_seen_at) < $1
           RETURNING r.id, r.tenant_id, r.integration_id, r.agent_id, r.group_id`,
          [which.silentSince, now],
        );
  return rows.map((row) => ({ id: row.id, tenantId: row.tenant_id, integrationId: row.integration_id, agentId: row.agent_id, groupId: row.group_id }));
}

/** The audit event for one abandoned run; the caller supplies the actor. */
export function abandonedEvent(run: AbandonedRun, reason: AbandonReason) {
  return {
    action: 'run-abandoned',
    target: run.id,
    outcome: 'failure' as const,
    meta: { integrationId: run.integrationId, agentId: run.agentId, groupId: run.groupId, reason },
  };
}
