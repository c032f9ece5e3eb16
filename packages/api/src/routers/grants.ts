/**
 * Control-plane scopes for admins: grants to agents and agent groups, explain, groups, and the
 * least-privilege report. Every change to a subject's grants is audited with its scopes before
 * and after, in the same transaction as the change.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { ConflictError, NotFoundError, UserError } from '@airlock/errors';
import {
  addGrantInput,
  AGENT_HEALTHY_WITHIN_MS,
  AGENT_ONLINE_WITHIN_MS,
  addGroupMemberInput,
  byId,
  createGroupInput,
  explainScopeInput,
  type IntegrationSpec,
  leastPrivilegeInput,
  listGrantsInput,
  removeGroupMemberInput,
} from '@airlock/protocol';
import { covers, formatResource, formatScope, type Grant, parseScope, type Scope, type Subject } from '@airlock/scopes';
import { appendAudit, eventBy } from '@airlock/storage';
import {
  agentGrants,
  connectorSchemes,
  explainFor,
  GRANT_COLUMNS,
  type GrantRow,
  groupByName,
  requireAgent,
  requiredScopes,
  subjectScopes,
} from '@airlock/dispatch';
import { procedureFor } from '../trpc.ts';
import { principalRef } from '@airlock/auth';

function grantView(row: GrantRow & { group_name: string | null }, now: Date) {
  return {
    id: row.id,
    subject: { type: row.subject_type, id: row.subject_id, name: row.group_name },
    scope: `${row.action} ${row.resource}`,
    expiresAt: row.expires_at?.toISOString() ?? null,
    expired: row.expires_at !== null && row.expires_at.getTime() <= now.getTime(),
    createdAt: row.created_at.toISOString(),
    createdBy: row.created_by,
  };
}

const GRANT_SELECT = `SELECT ${GRANT_COLUMNS.split(', ').map((column) => `gr.${column}`).join(', ')}, g.name AS group_name
  FROM grants gr LEFT JOIN agent_groups g ON gr.subject_type = 'group' AND g.id = gr.subject_id AND g.tenant_id = gr.tenant_id`;

function subjectText(subject: Subject): string {
  return `${subject.type}:${subject.id}`;
}

export const grantsRouter = {
  /** Every grant of the tenant, or those that apply to one agent (its own and its groups'). */
  list: procedureFor('scopes:read')
    .input(listGrantsInput)
    .query(async ({ ctx, input }) => {
      const tenantId = ctx.admin.tenantId;
      const rows = await ctx.db.query<GrantRow & { group_name: string | null }>(
        `${GRANT_SELECT}
         WHERE gr.tenant_id = $1 AND ($2::uuid IS NULL
           OR (gr.subject_type = 'agent' AND gr.subject_id = $2)
           OR (gr.subject_type = 'group' AND gr.subject_id IN (SELECT group_id FROM agent_group_members WHERE agent_id = $2)))
         ORDER BY gr.created_at, gr.id`,
        [tenantId, input.agentId ?? null],
      );
      return rows.map((row) => grantView(row, ctx.now()));
    }),

  add: procedureFor('scopes:write')
    .input(addGrantInput)
    .mutation(async ({ ctx, input }) => {
      const scope = parseScope(input.scope, connectorSchemes);
      const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
      if (expiresAt && expiresAt.getTime() <= ctx.now().getTime()) throw new UserError(`expiry ${input.expiresAt ?? ''} is in the past`);
      const tenantId = ctx.admin.tenantId;
      return ctx.db.transaction(async (tx) => {
        let subject: Subject;
        if (input.agentId !== undefined) {
          await requireAgent(tx, tenantId, input.agentId);
          subject = { type: 'agent', id: input.agentId };
        } else {
          subject = { type: 'group', id: (await groupByName(tx, tenantId, input.group ?? '')).id };
        }
        const resource = formatResource(scope.resource);
        const [existing] = await tx.query<{ id: string }>(
          'SELECT id FROM grants WHERE tenant_id = $1 AND subject_type = $2 AND subject_id = $3 AND action = $4 AND resource = $5',
          [tenantId, subject.type, subject.id, scope.action, resource],
        );
        if (existing) throw new ConflictError(`already granted as ${existing.id}; revoke it first to change its expiry`);
        const before = await subjectScopes(tx, tenantId, subject);
        const [row] = await tx.query<GrantRow>(
          `INSERT INTO grants (tenant_id, subject_type, subject_id, action, resource, expires_at, created_at, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${GRANT_COLUMNS}`,
          [tenantId, subject.type, subject.id, scope.action, resource, expiresAt, ctx.now(), principalRef(ctx.admin)],
        );
        if (!row) throw new Error('grant insert returned nothing');
        const after = await subjectScopes(tx, tenantId, subject);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'grant-add',
          target: row.id,
          outcome: 'success',
          meta: { subject: subjectText(subject), scope: formatScope(scope), expiresAt: expiresAt?.toISOString() ?? null, before, after },
        }));
        return grantView({ ...row, group_name: input.group ?? null }, ctx.now());
      });
    }),

  revoke: procedureFor('scopes:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      const tenantId = ctx.admin.tenantId;
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<GrantRow>(`SELECT ${GRANT_COLUMNS} FROM grants WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, [input.id, tenantId]);
        if (!row) throw new NotFoundError('no grant with that id');
        const subject: Subject = { type: row.subject_type, id: row.subject_id };
        const before = await subjectScopes(tx, tenantId, subject);
        await tx.query('DELETE FROM grants WHERE id = $1 AND tenant_id = $2', [row.id, tenantId]);
        const after = await subjectScopes(tx, tenantId, subject);
        const scope = `${row.action} ${row.resource}`;
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'grant-revoke',
          target: row.id,
          outcome: 'success',
          meta: { subject: subjectText(subject), scope, before, after },
        }));
        return { id: row.id, scope };
      });
    }),

  /** Would this agent be allowed this scope now, and by which grant (or why not)? */
  explain: procedureFor('scopes:read')
    .input(explainScopeInput)
    .query(async ({ ctx, input }) => {
      const scope = parseScope(input.scope, connectorSchemes);
      await requireAgent(ctx.db, ctx.admin.tenantId, input.agentId);
      const verdict = await explainFor(ctx.db, ctx.admin.tenantId, input.agentId, scope, ctx.now());
      return { scope: formatScope(scope), allowed: verdict.allowed, grantId: verdict.grant?.id ?? null, reason: verdict.reason };
    }),
} satisfies TRPCRouterRecord;

export const groupsRouter = {
  /**
   * The tenant's agent groups with each member's health: `healthy` is what group dispatch goes by
   * (seen within AGENT_HEALTHY_WITHIN_MS), `online` what the console shows for an agent.
   */
  list: procedureFor('scopes:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<{ id: string; name: string; created_at: Date; agent_id: string | null; hostname: string | null; status: string | null; last_seen_at: Date | null }>(
      `SELECT g.id, g.name, g.created_at, a.id AS agent_id, a.hostname, a.status, a.last_seen_at
       FROM agent_groups g
       LEFT JOIN agent_group_members m ON m.group_id = g.id
       LEFT JOIN agents a ON a.id = m.agent_id AND a.tenant_id = g.tenant_id
       WHERE g.tenant_id = $1
       ORDER BY g.name, a.hostname, a.id`,
      [ctx.admin.tenantId],
    );
    const now = ctx.now().getTime();
    const seenWithin = (at: Date | null, ms: number) => at !== null && now - at.getTime() <= ms;
    const groups = new Map<string, { id: string; name: string; createdAt: string; members: Array<{ agentId: string; hostname: string; status: string; healthy: boolean; online: boolean; lastSeenAt: string | null }> }>();
    for (const row of rows) {
      const group = groups.get(row.id) ?? { id: row.id, name: row.name, createdAt: row.created_at.toISOString(), members: [] };
      groups.set(row.id, group);
      if (row.agent_id === null || row.hostname === null || row.status === null) continue;
      const active = row.status === 'active';
      group.members.push({
        agentId: row.agent_id,
        hostname: row.hostname,
        status: row.status,
        healthy: active && seenWithin(row.last_seen_at, AGENT_HEALTHY_WITHIN_MS),
        online: active && seenWithin(row.last_seen_at, AGENT_ONLINE_WITHIN_MS),
        lastSeenAt: row.last_seen_at?.toISOString() ?? null,
      });
    }
    return [...groups.values()];
  }),

  create: procedureFor('scopes:write')
    .input(createGroupInput)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string }>(
          'INSERT INTO agent_groups (tenant_id, name) VALUES ($1, $2) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id',
          [ctx.admin.tenantId, input.name],
        );
        if (!row) throw new ConflictError(`an agent group named ${input.name} exists`);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'group-create', target: row.id, outcome: 'success', meta: { name: input.name } }));
        return { id: row.id, name: input.name };
      });
    }),

  /** Adds an agent to a group; the group's grants then apply to it. */
  addAgent: procedureFor('scopes:write')
    .input(addGroupMemberInput)
    .mutation(async ({ ctx, input }) => {
      const tenantId = ctx.admin.tenantId;
      return ctx.db.transaction(async (tx) => {
        const group = await groupByName(tx, tenantId, input.group);
        await requireAgent(tx, tenantId, input.agentId);
        const added = await tx.query(
          'INSERT INTO agent_group_members (group_id, agent_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1',
          [group.id, input.agentId, tenantId],
        );
        if (added.length === 0) throw new ConflictError(`agent ${input.agentId} is already in ${input.group}`);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'group-add-agent',
          target: group.id,
          outcome: 'success',
          meta: { group: group.name, agentId: input.agentId, groupScopes: await subjectScopes(tx, tenantId, { type: 'group', id: group.id }) },
        }));
        return { groupId: group.id, agentId: input.agentId };
      });
    }),

  /**
   * Takes an agent out of a group: the group's grants stop applying to it and group runs stop
   * going to it. The audit record keeps the group's scopes the agent loses.
   */
  removeAgent: procedureFor('scopes:write')
    .input(removeGroupMemberInput)
    .mutation(async ({ ctx, input }) => {
      const tenantId = ctx.admin.tenantId;
      return ctx.db.transaction(async (tx) => {
        const group = await groupByName(tx, tenantId, input.group);
        await requireAgent(tx, tenantId, input.agentId);
        const removed = await tx.query(
          'DELETE FROM agent_group_members WHERE group_id = $1 AND agent_id = $2 AND tenant_id = $3 RETURNING 1',
          [group.id, input.agentId, tenantId],
        );
        if (removed.length === 0) throw new NotFoundError(`agent ${input.agentId} is not in ${input.group}`);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'group-remove-agent',
          target: group.id,
          outcome: 'success',
          meta: { group: group.name, agentId: input.agentId, groupScopes: await subjectScopes(tx, tenantId, { type: 'group', id: group.id }) },
        }));
        return { groupId: group.id, agentId: input.agentId };
      });
    }),
} satisfies TRPCRouterRecord;

function grantSummary(grant: Grant) {
  return { grantId: grant.id, subject: subjectText(grant.subject), scope: formatScope(grant) };
}

function scopesOfRun(spec: IntegrationSpec): Scope[] {
  try {
    return requiredScopes(spec);
  } catch {
    // A spec that no longer maps (its connector lost its mapping) names nothing to attribute.
    return [];
  }
}

export const reportsRouter = {
  /**
   * Per agent: grants no run used in the last `days` days, and for used grants the narrowest
   * scopes that would have covered what the runs did (the used scopes themselves).
   */
  leastPrivilege: procedureFor('scopes:read')
    .input(leastPrivilegeInput)
    .query(async ({ ctx, input }) => {
      const tenantId = ctx.admin.tenantId;
      const since = new Date(ctx.now().getTime() - input.days * 86_400_000);
      const agents = await ctx.db.query<{ id: string; hostname: string }>('SELECT id, hostname FROM agents WHERE tenant_id = $1 ORDER BY enrolled_at, id', [tenantId]);
      // Runs refused at dispatch never touched anything, so they use no grant.
      const runs = await ctx.db.query<{ agent_id: string; spec: IntegrationSpec }>(
        `SELECT agent_id, spec FROM runs
         WHERE tenant_id = $1 AND status IN ('succeeded', 'failed') AND error_class IS DISTINCT FROM 'not-allowed' AND created_at >= $2`,
        [tenantId, since],
      );
      const report = [];
      for (const agent of agents) {
        const used = new Map<string, Scope>();
        let runCount = 0;
        for (const run of runs) {
          if (run.agent_id !== agent.id) continue;
          runCount += 1;
          for (const scope of scopesOfRun(run.spec)) used.set(formatScope(scope), scope);
        }
        const { grants } = await agentGrants(ctx.db, tenantId, agent.id);
        const usedGrants = [];
        const unused = [];
        for (const grant of grants) {
          const coveredHere = [...used.entries()].filter(([, scope]) => covers(grant, scope)).map(([text]) => text).sort();
          if (coveredHere.length === 0) unused.push(grantSummary(grant));
          else usedGrants.push({ ...grantSummary(grant), suggested: coveredHere });
        }
        const uncovered = [...used.entries()].filter(([, scope]) => !grants.some((grant) => covers(grant, scope))).map(([text]) => text).sort();
        report.push({ agentId: agent.id, hostname: agent.hostname, runs: runCount, unused, used: usedGrants, uncovered });
      }
      return { days: input.days, since: since.toISOString(), agents: report };
    }),
} satisfies TRPCRouterRecord;

/** Mounted at the top level of the app router: `grants.*`, `groups.*`, `reports.*`. */
export const scopeRouters = { grants: grantsRouter, groups: groupsRouter, reports: reportsRouter };
