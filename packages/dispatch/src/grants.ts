/**
 * Control-plane scopes in storage: loading an agent's grants (its own and its groups'), and the
 * decision whether an integration's required scopes are all covered. Deny by default: no grant,
 * no access. Every query names the tenant.
 */
import { type AirlockError, isAirlockError, NotAllowedError, NotFoundError } from '@airlock/errors';
import type { IntegrationSpec } from '@airlock/protocol';
import { explain, formatScope, type Grant, parseAction, parseResource, type Scope, type Subject, type Verdict } from '@airlock/scopes';
import { connectorSchemes } from './connector-definitions.ts';
import { requiredScopes } from './required-scopes.ts';
import type { Queryable } from '@airlock/storage';

export interface GrantRow {
  id: string;
  subject_type: Subject['type'];
  subject_id: string;
  action: string;
  resource: string;
  expires_at: Date | null;
  created_at: Date;
  created_by: string;
}

export const GRANT_COLUMNS = 'id, subject_type, subject_id, action, resource, expires_at, created_at, created_by';

export function grantFromRow(tenantId: string, row: GrantRow): Grant {
  return {
    id: row.id,
    tenantId,
    subject: { type: row.subject_type, id: row.subject_id },
    action: parseAction(row.action),
    resource: parseResource(row.resource, connectorSchemes),
    expiresAt: row.expires_at,
  };
}

/** The grants that apply to an agent, directly or through its groups, expired ones included (explain tells them apart). */
export async function agentGrants(q: Queryable, tenantId: string, agentId: string): Promise<{ grants: Grant[]; groups: string[] }> {
  const groups = await q.query<{ id: string }>(
    `SELECT g.id FROM agent_groups g JOIN agent_group_members m ON m.group_id = g.id
     WHERE g.tenant_id = $1 AND m.agent_id = $2`,
    [tenantId, agentId],
  );
  const rows = await q.query<GrantRow>(
    `SELECT ${GRANT_COLUMNS} FROM grants
     WHERE tenant_id = $1 AND ((subject_type = 'agent' AND subject_id = $2) OR (subject_type = 'group' AND subject_id IN (
       SELECT g.id FROM agent_groups g JOIN agent_group_members m ON m.group_id = g.id WHERE g.tenant_id = $1 AND m.agent_id = $2)))
     ORDER BY created_at, id`,
    [tenantId, agentId],
  );
  return { grants: rows.map((row) => grantFromRow(tenantId, row)), groups: groups.map((group) => group.id) };
}

/** The verdict for one scope requested by one agent, from its live grants. */
export async function explainFor(q: Queryable, tenantId: string, agentId: string, scope: Scope, now: Date): Promise<Verdict> {
  const { grants, groups } = await agentGrants(q, tenantId, agentId);
  return explain(grants, { ...scope, tenantId, agentId, groups }, now);
}

export type IntegrationDecision =
  | { allowed: true; scopes: string[] }
  | { allowed: false; scopes: string[]; reason: string; error: AirlockError };

/**
 * Whether `grants` cover every scope the integration needs, for a requester with this agent id and
 * these groups. A spec whose scopes cannot be worked out (unknown connector, a config its
 * connector's schema refuses) is denied with that error.
 */
export function decideWithGrants(
  grants: readonly Grant[],
  requester: { tenantId: string; agentId: string; groups: string[] },
  spec: Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>,
  now: Date,
): IntegrationDecision {
  let needed: Scope[];
  try {
    needed = requiredScopes(spec);
  } catch (error) {
    if (!isAirlockError(error)) throw error;
    return { allowed: false, scopes: [], reason: error.message, error };
  }
  const scopes = needed.map(formatScope);
  for (const scope of needed) {
    const verdict = explain(grants, { ...scope, ...requester }, now);
    if (!verdict.allowed) return { allowed: false, scopes, reason: verdict.reason, error: new NotAllowedError(`not allowed: ${verdict.reason}`) };
  }
  return { allowed: true, scopes };
}

/** Whether the agent's live grants (its own and its groups') cover every scope the integration needs. */
export async function decideIntegration(
  q: Queryable,
  who: { tenantId: string; agentId: string },
  spec: Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>,
  now: Date,
): Promise<IntegrationDecision> {
  const { grants, groups } = await agentGrants(q, who.tenantId, who.agentId);
  return decideWithGrants(grants, { tenantId: who.tenantId, agentId: who.agentId, groups }, spec, now);
}

/** The canonical scopes granted to one subject, sorted: the before and after of an audited change. */
export async function subjectScopes(q: Queryable, tenantId: string, subject: Subject): Promise<string[]> {
  const rows = await q.query<{ action: string; resource: string }>(
    'SELECT action, resource FROM grants WHERE tenant_id = $1 AND subject_type = $2 AND subject_id = $3',
    [tenantId, subject.type, subject.id],
  );
  return rows.map((row) => `${row.action} ${row.resource}`).sort();
}

export async function requireAgent(q: Queryable, tenantId: string, agentId: string): Promise<void> {
  const [agent] = await q.query('SELECT 1 FROM agents WHERE id = $1 AND tenant_id = $2', [agentId, tenantId]);
  if (!agent) throw new NotFoundError('no agent with that id');
}

export async function groupByName(q: Queryable, tenantId: string, name: string): Promise<{ id: string; name: string }> {
  const [group] = await q.query<{ id: string; name: string }>('SELECT id, name FROM agent_groups WHERE tenant_id = $1 AND name = $2', [tenantId, name]);
  if (!group) throw new NotFoundError(`no agent group named ${name}`);
  return group;
}
