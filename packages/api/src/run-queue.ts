/**
 * Queues a run of an integration, for run-now and the scheduler alike. Two runs of one integration
 * never overlap: the partial unique index `runs_one_active` admits one queued or running run per
 * integration, so concurrent requests on any replica cannot both win.
 */
import { groupMembers } from './group-dispatch.ts';
import type { Queryable } from './storage/database.ts';

export type EnqueueResult =
  /** `wake`: the agents to wake now: the integration's agent, or its group's healthy members. */
  | { kind: 'queued'; runId: string; agentId: string | null; groupId: string | null; wake: string[] }
  | { kind: 'active'; activeRunId: string | null }
  | { kind: 'not-found' };

/** Why a run was not queued while another is active; shown to admins and written to the audit trail. */
export const PREVIOUS_RUN_ACTIVE = 'previous run still active';

export async function enqueueRun(
  tx: Queryable,
  request: { integrationId: string; tenantId: string; requestedBy: string; now: Date },
): Promise<EnqueueResult> {
  const [row] = await tx.query<{ id: string; agent_id: string | null; group_id: string | null }>(
    `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, group_id, spec, requested_by, created_at)
     SELECT tenant_id, id, version, agent_id, group_id, spec, $3, $4 FROM integrations WHERE id = $1 AND tenant_id = $2
     ON CONFLICT (integration_id) WHERE status IN ('queued', 'running') DO NOTHING
     RETURNING id, agent_id, group_id`,
    [request.integrationId, request.tenantId, request.requestedBy, request.now],
  );
  if (row) {
    const wake = row.group_id === null ? [row.agent_id ?? ''] : (await groupMembers(tx, request.tenantId, row.group_id, request.now)).healthy;
    return { kind: 'queued', runId: row.id, agentId: row.agent_id, groupId: row.group_id, wake };
  }
  const [integration] = await tx.query<{ active_run_id: string | null }>(
    `SELECT (SELECT r.id FROM runs r WHERE r.integration_id = i.id AND r.status IN ('queued', 'running')) AS active_run_id
     FROM integrations i WHERE i.id = $1 AND i.tenant_id = $2`,
    [request.integrationId, request.tenantId],
  );
  if (!integration) return { kind: 'not-found' };
  // Null when the active run finished between the insert and this read; still a refusal.
  return { kind: 'active', activeRunId: integration.active_run_id };
}
