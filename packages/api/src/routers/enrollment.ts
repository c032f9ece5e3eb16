import type { TRPCRouterRecord } from '@trpc/server';
import { AuthenticationError, ConflictError, NotFoundError } from '@airlock/errors';
import { keyFingerprint } from '@airlock/identity';
import { byId, createEnrollmentTokenInput, enrollCommand, enrollInput, enrollOutput } from '@airlock/protocol';
import { appendAudit, eventBy, recordAudit } from '@airlock/storage';
import { principalRef, randomToken, sha256Hex } from '@airlock/auth';
import { procedureFor, publicProcedure } from '../trpc.ts';

export const enrollmentRouter = {
  /** A one-time token for `airlock-agent enroll`, shown once, stored hashed, valid at most 30 minutes. */
  createToken: procedureFor('agents:enroll')
    .input(createEnrollmentTokenInput)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      const token = `aet_${randomToken(32)}`;
      const expiresAt = new Date(now.getTime() + input.ttlMinutes * 60_000);
      const id = await ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string }>(
          `INSERT INTO enrollment_tokens (tenant_id, token_sha256, created_by, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5) RETURNING id`,
          [ctx.admin.tenantId, sha256Hex(token), principalRef(ctx.admin), now, expiresAt],
        );
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'enrollment-token-create',
          target: row?.id ?? null,
          outcome: 'success',
          meta: { ttlMinutes: input.ttlMinutes },
        }));
        return row?.id ?? '';
      });
      // The agent checks this pin against the key the server presents before it redeems the token.
      const controlPlaneKey = keyFingerprint(ctx.signer.publicKey);
      const url = ctx.publicUrl ?? new URL(ctx.request.pathAndQuery, `http://${ctx.request.headers.get('host') ?? '127.0.0.1'}`).origin;
      return { id, token, expiresAt: expiresAt.toISOString(), controlPlaneKey, command: enrollCommand({ url, token, controlPlaneKey }) };
    }),

  /** The tenant's enrollment tokens, newest first: never the token, which is stored hashed. */
  listTokens: procedureFor('agents:enroll').query(async ({ ctx }) => {
    const rows = await ctx.db.query<{ id: string; created_by: string; created_at: Date; expires_at: Date; used_at: Date | null; revoked_at: Date | null; agent_id: string | null }>(
      `SELECT id, created_by, created_at, expires_at, used_at, revoked_at, agent_id FROM enrollment_tokens
       WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 200`,
      [ctx.admin.tenantId],
    );
    const now = ctx.now();
    return rows.map((row) => ({
      id: row.id,
      createdBy: row.created_by,
      createdAt: row.created_at.toISOString(),
      expiresAt: row.expires_at.toISOString(),
      usedAt: row.used_at?.toISOString() ?? null,
      revokedAt: row.revoked_at?.toISOString() ?? null,
      agentId: row.agent_id,
      state: row.used_at ? ('used' as const) : row.revoked_at ? ('revoked' as const) : row.expires_at <= now ? ('expired' as const) : ('usable' as const),
    }));
  }),

  /** Revokes a token that has not been used; it can never enroll an agent afterwards. */
  revokeToken: procedureFor('agents:enroll')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; expired: boolean }>(
          `UPDATE enrollment_tokens SET revoked_at = $3
           WHERE id = $1 AND tenant_id = $2 AND used_at IS NULL AND revoked_at IS NULL
           RETURNING id, expires_at <= $3 AS expired`,
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!row) throw new NotFoundError('no unused, unrevoked enrollment token with that id');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'enrollment-token-revoke', target: row.id, outcome: 'success', meta: { expired: row.expired } }));
        return { id: row.id, revoked: true as const };
      });
    }),

  /** Redeems a token for a new agent identity. One conditional UPDATE makes exactly one racer win. */
  enroll: publicProcedure
    .input(enrollInput)
    .output(enrollOutput)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      // System scope: the token is looked up by its hash before its tenant is known.
      const result = await ctx.db.forSystem().transaction(async (tx) => {
        const [token] = await tx.query<{ id: string; tenant_id: string }>(
          `UPDATE enrollment_tokens SET used_at = $2
           WHERE token_sha256 = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
           RETURNING id, tenant_id`,
          [sha256Hex(input.token), now],
        );
        if (!token) return null;
        const [agent] = await tx.query<{ id: string }>(
          `INSERT INTO agents (tenant_id, public_key, hostname, version, enrolled_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (public_key) DO NOTHING RETURNING id`,
          [token.tenant_id, input.publicKey, input.hostname, input.version, now],
        );
        if (!agent) throw new ConflictError('this public key is already enrolled');
        await tx.query('UPDATE enrollment_tokens SET agent_id = $1 WHERE id = $2', [agent.id, token.id]);
        await appendAudit(tx, {
          tenantId: token.tenant_id,
          actor: { type: 'agent', id: agent.id },
          action: 'agent-enroll',
          target: agent.id,
          outcome: 'success',
          sourceIp: ctx.request.sourceIp,
          meta: { hostname: input.hostname, version: input.version, enrolledWith: token.id },
        });
        return { agentId: agent.id, tenantId: token.tenant_id };
      });
      if (!result) {
        await recordAudit(ctx.db.forSystem(), {
          tenantId: null,
          actor: { type: 'anonymous', id: null },
          action: 'agent-enroll',
          target: null,
          outcome: 'denied',
          sourceIp: ctx.request.sourceIp,
          meta: { reason: 'invalid, used, revoked or expired token' },
        });
        throw new AuthenticationError('enrollment token is invalid, used, revoked or expired');
      }
      return result;
    }),
} satisfies TRPCRouterRecord;
