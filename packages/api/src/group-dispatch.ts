/**
 * Integrations that target an agent group. A group's run is queued for the group and handed to
 * the first member that asks for work (agents pull, so a member that asks is alive and, having
 * passed authentication, not revoked). The group's own grants must cover the job, at save and
 * again at dispatch. A run stays queued while no member is healthy, like a single agent's run
 * while that agent is offline; `run now` says so.
 */
import { isAirlockError, NotAllowedError } from '@airlock/errors';
import type { IntegrationSpec } from '@airlock/protocol';
import { explain, formatScope, type Scope } from '@airlock/scopes';
import { GRANT_COLUMNS, type GrantRow, grantFromRow, type IntegrationDecision } from './grants.ts';
import { requiredScopes } from './required-scopes.ts';
import type { Queryable } from './storage/database.ts';

/** A member that made a signed request within this long is healthy: agents long-poll every 25 s. */
export const HEALTHY_WITHIN_MS = 90_000;

/** Whether the group's own grants cover every scope the integration needs. */
export async function decideForGroup(
  q: Queryable,
  tenantId: string,
  groupId: string,
  spec: Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>,
  now: Date,
): Promise<IntegrationDecision> {
  let needed: Scope[];
  try {
    needed = requiredScopes(spec);
  } catch (error) {
    if (!isAirlockError(error)) throw error;
    return { allowed: false, scopes: [], reason: error.message, error };
  }
  const scopes = needed.map(formatScope);
  const rows = await q.query<GrantRow>(
    `SELECT ${GRANT_COLUMNS} FROM grants WHERE tenant_id = $1 AND subject_type = 'group' AND subject_id = $2 ORDER BY created_at, id`,
    [tenantId, groupId],
  );
  const grants = rows.map((row) => grantFromRow(tenantId, row));
  for (const scope of needed) {
    // No agent: only grants to the group itself can apply.
    const verdict = explain(grants, { ...scope, tenantId, agentId: '', groups: [groupId] }, now);
    if (!verdict.allowed) return { allowed: false, scopes, reason: verdict.reason, error: new NotAllowedError(`not allowed: ${verdict.reason}`) };
  }
  return { allowed: true, scopes };
}

/** Active members of the group, and which of them are healthy now. */
export async function groupMembers(q: Queryable, tenantId: string, groupId: string, now: Date): Promise<{ active: string[]; healthy: string[] }> {
  const rows = await q.query<{ id: string; last_seen_at: Date | null }>(
    `SELECT a.id, a.last_seen_at FROM agents a JOIN agent_group_members m ON m.agent_id = a.id
     WHERE m.group_id = $1 AND a.tenant_id = $2 AND a.status = 'active' ORDER BY a.id`,
    [groupId, tenantId],
  );
  const since = now.getTime() - HEALTHY_WITHIN_MS;
  return {
    active: rows.map((row) => row.id),
    healthy: rows.filter((row) => row.last_seen_at !== null && row.last_seen_at.getTime() >= since).map((row) => row.id),
  };
}
