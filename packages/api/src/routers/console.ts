/**
 * What the console needs beyond the plain admin API: the connector forms, recipient key
 * inspection, the overview figures and the agent list with groups. Read-only; every write the
 * console makes goes through the same procedures as the CLI.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { z } from 'zod';
import { isAirlockError, NotFoundError } from '@airlock/errors';
import { inspectRecipientKeys } from '@airlock/pgp';
import { AGENT_ONLINE_WITHIN_MS, armoredPublicKey, byId, connectorRef, heartbeatSummary, type IntegrationSpec, runStatus, type RunStatus } from '@airlock/protocol';
import { effectivePermissions } from '@airlock/auth';
import { verifyStoredAudit } from '@airlock/storage';
import { checkConnectorConfig, connectorCatalog } from '@airlock/dispatch';
import { procedureFor } from '../trpc.ts';

const HOUR_MS = 3_600_000;

/** The walk in progress per server (its dispatcher stands for it), shared by concurrent requests. */
const verifying = new WeakMap<object, ReturnType<typeof verifyStoredAudit>>();

/** What the console shows of an agent's heartbeat summary; a stored summary the schema no longer reads is shown as none. */
function reportOf(summary: unknown, at: Date | null): { proxy: boolean; lastError: string | null; outboxDepth: number; reportedAt: string } | null {
  const parsed = heartbeatSummary.safeParse(summary);
  if (!parsed.success || at === null) return null;
  return { proxy: parsed.data.proxy, lastError: parsed.data.lastError, outboxDepth: parsed.data.outboxDepth, reportedAt: at.toISOString() };
}

export const consoleRouter = {
  /** What the caller may do, so the console shows only the controls that would work. The server checks each call anyway. */
  permissions: procedureFor('agents:read').query(({ ctx }) => ({
    role: ctx.admin.role,
    permissions: effectivePermissions(ctx.admin),
  })),

  connectors: procedureFor('integrations:read').query(() => connectorCatalog()),

  checkConfig: procedureFor('integrations:read')
    .input(z.strictObject({ kind: z.enum(['source', 'destination']), connector: connectorRef, config: z.record(z.string(), z.unknown()) }))
    .query(({ input }) => ({ issues: checkConnectorConfig(input.kind, input.connector, input.config) })),

  /**
   * The recipient policy of packages/pgp applied to a pasted key file: the facts to show for every
   * key in it, or why it is refused. A file may hold several keys; each comes back with its own
   * armored text, so the console lists (and can remove) each one as the recipient it is.
   */
  inspectRecipient: procedureFor('integrations:read')
    .input(z.strictObject({ armored: armoredPublicKey }))
    .mutation(async ({ ctx, input }) => {
      try {
        const keys = await inspectRecipientKeys(input.armored, ctx.now());
        return {
          ok: true as const,
          keys: keys.map((key) => ({
            armored: key.key.armor(),
            fingerprint: key.fingerprint,
            algorithm: key.algorithm,
            bits: key.bits ?? null,
            created: key.created.toISOString(),
            expires: key.expires?.toISOString() ?? null,
            userIds: key.userIds,
            warnings: [...key.warnings],
          })),
        };
      } catch (error) {
        if (isAirlockError(error) && error.errorClass === 'recipient-key') return { ok: false as const, problem: error.message };
        return { ok: false as const, problem: 'not a usable OpenPGP public key' };
      }
    }),

  /** The saved spec of one integration, for the edit form. Recipient keys are public keys. */
  integration: procedureFor('integrations:read')
    .input(byId)
    .query(async ({ ctx, input }) => {
      const [row] = await ctx.db.query<{ id: string; version: number; spec: IntegrationSpec }>(
        'SELECT id, version, spec FROM integrations WHERE id = $1 AND tenant_id = $2',
        [input.id, ctx.admin.tenantId],
      );
      if (!row) throw new NotFoundError('no integration with that id');
      return { id: row.id, version: row.version, spec: row.spec };
    }),

  /**
   * Walks the whole audit chain and checks it against the signed checkpoints, as `airlock audit
   * verify` does. The chain is shared by all tenants, so the walk reads it in the system scope and
   * answers only whether it holds: counts and the place of a break stay with the server-side
   * command. Concurrent requests to one server share one walk, so clicks cannot pile up full reads.
   */
  verifyAudit: procedureFor('audit:read').query(async ({ ctx }) => {
    let walk = verifying.get(ctx.dispatcher);
    if (!walk) {
      walk = verifyStoredAudit(ctx.db.forSystem(), ctx.signer.publicKey).finally(() => verifying.delete(ctx.dispatcher));
      verifying.set(ctx.dispatcher, walk);
    }
    const result = await walk;
    return result.ok
      ? { ok: true as const, checkpoints: result.checkpoints, checkedAt: ctx.now().toISOString() }
      : { ok: false as const, checkedAt: ctx.now().toISOString() };
  }),

  /** Agents with status, last heartbeat, version, host and groups. */
  agents: procedureFor('agents:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<{
      id: string;
      hostname: string;
      version: string;
      status: string;
      enrolled_at: Date;
      last_seen_at: Date | null;
      groups: string[] | null;
      summary: unknown;
      summary_at: Date | null;
    }>(
      `SELECT a.id, a.hostname, a.version, a.status, a.enrolled_at, a.last_seen_at,
              array_remove(array_agg(g.name ORDER BY g.name), NULL) AS groups,
              s.summary, s.reported_at AS summary_at
       FROM agents a
       LEFT JOIN agent_group_members m ON m.agent_id = a.id
       LEFT JOIN agent_groups g ON g.id = m.group_id AND g.tenant_id = a.tenant_id
       LEFT JOIN agent_summaries s ON s.agent_id = a.id
       WHERE a.tenant_id = $1
       GROUP BY a.id, s.agent_id ORDER BY a.enrolled_at`,
      [ctx.admin.tenantId],
    );
    const now = ctx.now().getTime();
    return rows.map((row) => ({
      id: row.id,
      hostname: row.hostname,
      version: row.version,
      status: row.status,
      online: row.status === 'active' && row.last_seen_at !== null && now - row.last_seen_at.getTime() <= AGENT_ONLINE_WITHIN_MS,
      enrolledAt: row.enrolled_at.toISOString(),
      lastSeenAt: row.last_seen_at?.toISOString() ?? null,
      groups: row.groups ?? [],
      // The agent's own account of itself from its latest heartbeat; null from agents that send none.
      report: reportOf(row.summary, row.summary_at),
    }));
  }),

  /** Agents online and offline, runs of the last 24 h by outcome, and ciphertext bytes delivered per hour. */
  overview: procedureFor('runs:read').query(async ({ ctx }) => {
    const now = ctx.now();
    const since = new Date(Math.floor(now.getTime() / HOUR_MS) * HOUR_MS - 23 * HOUR_MS);
    const [agents] = await ctx.db.query<{ online: number; offline: number; revoked: number }>(
      `SELECT count(*) FILTER (WHERE status = 'active' AND last_seen_at > $2)::int AS online,
              count(*) FILTER (WHERE status = 'active' AND (last_seen_at IS NULL OR last_seen_at <= $2))::int AS offline,
              count(*) FILTER (WHERE status <> 'active')::int AS revoked
       FROM agents WHERE tenant_id = $1`,
      [ctx.admin.tenantId, new Date(now.getTime() - AGENT_ONLINE_WITHIN_MS)],
    );
    const byStatus = await ctx.db.query<{ status: string; count: number }>(
      'SELECT status, count(*)::int AS count FROM runs WHERE tenant_id = $1 AND created_at >= $2 GROUP BY status',
      [ctx.admin.tenantId, new Date(now.getTime() - 24 * HOUR_MS)],
    );
    const hourly = await ctx.db.query<{ hour: Date; bytes: string }>(
      `SELECT date_trunc('hour', finished_at) AS hour, coalesce(sum((report->>'bytesOut')::bigint), 0)::text AS bytes
       FROM runs WHERE tenant_id = $1 AND finished_at >= $2 AND report IS NOT NULL
       GROUP BY 1 ORDER BY 1`,
      [ctx.admin.tenantId, since],
    );
    const bytesByHour = new Map(hourly.map((row) => [row.hour.getTime(), Number(row.bytes)]));
    const series = Array.from({ length: 24 }, (_, i) => {
      const hour = since.getTime() + i * HOUR_MS;
      return { hour: new Date(hour).toISOString(), bytes: bytesByHour.get(hour) ?? 0 };
    });
    const runs: Record<RunStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const row of byStatus) {
      const status = runStatus.safeParse(row.status);
      if (status.success) runs[status.data] = row.count;
    }
    return { agents: agents ?? { online: 0, offline: 0, revoked: 0 }, runs, bytesByHour: series };
  }),
} satisfies TRPCRouterRecord;
