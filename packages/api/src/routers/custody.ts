/**
 * Custody, the agent's side of it: agents report what they refused (security events) and witness
 * the audit chain (the latest signed checkpoint and the records leading to it). The signed rotations
 * of the control plane's key are public, like the key itself.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { z } from 'zod';
import type { ChainLink } from '@airlock/audit';
import { auditSegmentInput, securityEventInput, signedStatement } from '@airlock/protocol';
import { appendAudit, eventBy, latestChainCheckpoint, legacyHead, listLegacy, readChain } from '@airlock/storage';
import { agentProcedure, procedureFor, publicProcedure } from '../trpc.ts';

export const custodyRouter = {
  /** Every signed rotation of the control plane's key, oldest first. */
  rotations: publicProcedure.query(async ({ ctx }) => {
    const rows = await ctx.db.query<{ statement: unknown }>('SELECT statement FROM control_plane_key_rotations ORDER BY seq');
    return rows.map((row) => signedStatement.parse(row.statement));
  }),

  /**
   * Event ids are the agent's own, so they are unique per agent only. A named run is kept only when
   * it is one of this agent's runs: an agent must not attach its reports to another agent's (or
   * tenant's) run. The event is still stored without it, and the audit keeps the claim.
   */
  reportSecurityEvent: agentProcedure.input(securityEventInput).mutation(async ({ ctx, input }) => {
    const agent = ctx.agent;
    await ctx.db.transaction(async (tx) => {
      const own = input.runId === undefined ? [] : await tx.query('SELECT 1 FROM runs WHERE id = $1 AND agent_id = $2', [input.runId, agent.agentId]);
      const runId = own.length > 0 ? (input.runId ?? null) : null;
      const inserted = await tx.query(
        `INSERT INTO agent_security_events (id, tenant_id, agent_id, kind, at, run_id, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (agent_id, id) DO NOTHING RETURNING id`,
        [input.id, agent.tenantId, agent.agentId, input.kind, input.at, runId, input.reason],
      );
      if (inserted.length === 0) return;
      const dropped: Record<string, string> = input.runId !== undefined && runId === null ? { claimedRunId: input.runId, runIdDropped: 'not a run of this agent' } : {};
      await appendAudit(tx, eventBy(agent, ctx.request, {
        action: 'agent-security-event',
        target: runId ?? agent.agentId,
        outcome: 'denied',
        meta: { kind: input.kind, reason: input.reason, eventId: input.id, ...dropped },
      }));
    });
    return { ok: true as const };
  }),

  /** The newest checkpoint signed by the current key, with this agent's tenant's leaf and audit path; null before the first. */
  checkpoint: agentProcedure.query(({ ctx }) => latestChainCheckpoint(ctx.db.forSystem(), ctx.agent.tenantId, ctx.signer.keyId)),

  /**
   * Records after `afterSeq` up to `untilSeq`, a page at a time, so a witness can recompute the
   * chain. Above the frozen legacy head these are this tenant's own chain, whole. Below it (a
   * witness catching up across the split) they are the legacy global chain, where other tenants'
   * records show only their links (seq, prevHash, hash), so witnessing leaks nothing across tenants.
   */
  auditSegment: agentProcedure.input(auditSegmentInput).query(async ({ ctx, input }) => {
    const limit = Math.min(input.limit, Math.max(0, input.untilSeq - input.afterSeq));
    if (limit === 0) return [];
    const system = ctx.db.forSystem();
    const legacy = await legacyHead(system);
    if (input.afterSeq >= legacy.seq) return readChain(ctx.db, ctx.agent.tenantId, input.afterSeq, limit, input.untilSeq);
    const records = await listLegacy(system, input.afterSeq, Math.min(input.untilSeq, legacy.seq), limit);
    return records.map((record): ChainLink =>
      record.tenantId === ctx.agent.tenantId ? record : { seq: record.seq, prevHash: record.prevHash, hash: record.hash, withheld: true },
    );
  }),

  securityEvents: procedureFor('audit:read')
    .input(z.strictObject({ agentId: z.uuid().optional(), limit: z.number().int().min(1).max(1000).default(100) }))
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.query<{ id: string; agent_id: string; kind: string; at: Date; run_id: string | null; reason: string }>(
        `SELECT id, agent_id, kind, at, run_id, reason FROM agent_security_events
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR agent_id = $2) ORDER BY at DESC LIMIT $3`,
        [ctx.admin.tenantId, input.agentId ?? null, input.limit],
      );
      return rows.map((row) => ({ id: row.id, agentId: row.agent_id, kind: row.kind, at: row.at.toISOString(), runId: row.run_id, reason: row.reason }));
    }),
} satisfies TRPCRouterRecord;
