/**
 * Integrations that target an agent group. A group's run is queued for the group and handed to
 * the first member that asks for work (agents pull, so a member that asks is alive and, having
 * passed authentication, not revoked). The group's own grants must cover the job, at save and
 * again at dispatch. A run stays queued while no member is healthy, like a single agent's run
 * while that agent is offline; `run now` says so.
 */
import { AGENT_HEALTHY_WITHIN_MS, type IntegrationSpec } from '@airlock/protocol';
import { decideWithGrants, GRANT_COLUMNS, type GrantRow, grantFromRow, type IntegrationDecision } from './grants.ts';
import type { Queryable } from '@airlock/storage';

/** Whether the group's own grants cover every scope the integration needs. */
export async function decideForGroup(
  q: Queryable,
  tenantId: string,
  groupId: string,
  spec: Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>,
  now: Date,
): Promise<IntegrationDecision> {
  const rows = await q.query<GrantRow>(
    `SELECT ${GRANT_COLUMNS} FROM grants WHERE tenant_id = $1 AND subject_type = 'group' AND subject_id = $2 ORDER BY created_at, id`,
    [tenantId, groupId],
  );
  // No agent: only grants to the group itself can apply.
  return decideWithGrants(rows.map((row) => grantFromRow(tenantId, row)), { tenantId, agentId: '', groups: [groupId] }, spec, now);
}

/** Active members of the group, and which of them are healthy now. */
export async function groupMembers(q: Queryable, tenantId: string, groupId: string, now: Date): Promise<{ active: string[]; healthy: string[] }> {
  const rows = await q.query<{ id: string; last_seen_at: Date | null }>(
    `SELECT a.id, a.last_seen_at FROM agents a JOIN agent_group_members m ON m.agent_id = a.id
     WHERE m.group_id = $1 AND a.tenant_id = $2 AND a.status = 'active' ORDER BY a.id`,
    [groupId, tenantId],
  );
  const since = now.getTime() - AGENT_HEALTHY_WITHIN_MS;
  return {
    active: rows.map((row) => row.id),
    healthy: rows.filter((row) => row.last_seen_at !== null && row.last_seen_at.getTime() >= since).map((row) => row.id),
  };
}
