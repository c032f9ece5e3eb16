/**
 * Agent key rotation, without re-enrollment. The request is signed with the current key (checked
 * by `agentProcedure`); the body proves possession of the new one. The swap is one transaction:
 * the old key is retired, the new one takes its place, and the audit record is written with it, so
 * from the next request on only the new key is accepted.
 */
import { createHash } from 'node:crypto';
import type { TRPCRouterRecord } from '@trpc/server';
import { AuthenticationError, ConflictError, NotFoundError, UserError } from '@airlock/errors';
import { verifyKeyRotationProof } from '@airlock/identity';
import { byId, MAX_CLOCK_SKEW_SECONDS, rotateKeyInput, rotateKeyOutput } from '@airlock/protocol';
import { appendAudit, eventBy, recordAudit } from '@airlock/storage';
import { AGENT_KEY_CHANNEL, notifyAgents, WAKE_CHANNEL } from '@airlock/dispatch';
import { agentProcedure, procedureFor } from '../trpc.ts';

/** Public keys are not secret, but the trail names them by digest to keep rows short. */
function keyDigest(publicKey: string): string {
  return createHash('sha256').update(Buffer.from(publicKey, 'base64')).digest('hex');
}

export const agentKeyProcedures = {
  rotateKey: agentProcedure
    .input(rotateKeyInput)
    .output(rotateKeyOutput)
    .mutation(async ({ ctx, input }) => {
      const agent = ctx.agent;
      const now = ctx.now();
      const refuse = async (reason: string, error: Error): Promise<never> => {
        await recordAudit(ctx.db, eventBy(agent, ctx.request, { action: 'agent-key-rotate', target: agent.agentId, outcome: 'denied', meta: { reason } }));
        throw error;
      };
      if (!(Math.abs(now.getTime() / 1000 - input.created) <= MAX_CLOCK_SKEW_SECONDS)) {
        return refuse('proof expired', new AuthenticationError('key rotation refused: the proof is outside the time window'));
      }
      if (input.newPublicKey === agent.publicKey) return refuse('same key', new UserError('key rotation refused: the new key is the current key'));
      if (!verifyKeyRotationProof(input, agent.agentId)) {
        return refuse('bad proof', new AuthenticationError('key rotation refused: the proof is not signed by the new key'));
      }
      // Keys are unique across tenants (the UNIQUE constraints are the final word), so the check spans them all.
      const [taken] = await ctx.db.forSystem().query(
        'SELECT 1 FROM agents WHERE public_key = $1 UNION ALL SELECT 1 FROM agent_retired_keys WHERE public_key = $1',
        [input.newPublicKey],
      );
      if (taken) return refuse('key in use', new ConflictError('key rotation refused: key in use'));
      const outcome = await ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ public_key: string }>(
          "SELECT public_key FROM agents WHERE id = $1 AND tenant_id = $2 AND status = 'active' FOR UPDATE",
          [agent.agentId, agent.tenantId],
        );
        // Another rotation won between this request's authentication and the lock.
        if (!row || row.public_key !== agent.publicKey) return 'key changed' as const;
        const fresh = await tx.query(
          'INSERT INTO request_nonces (agent_id, tenant_id, nonce, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1',
          [agent.agentId, agent.tenantId, `rotation:${input.nonce}`, new Date((input.created + MAX_CLOCK_SKEW_SECONDS + 1) * 1000)],
        );
        if (fresh.length === 0) return 'proof replayed' as const;
        await tx.query('INSERT INTO agent_retired_keys (agent_id, tenant_id, public_key, retired_at) VALUES ($1, $2, $3, $4)', [
          agent.agentId,
          agent.tenantId,
          row.public_key,
          now,
        ]);
        await tx.query('UPDATE agents SET public_key = $2, key_rotated_at = $3, key_rotation_requested_at = NULL WHERE id = $1', [
          agent.agentId,
          input.newPublicKey,
          now,
        ]);
        await appendAudit(tx, eventBy(agent, ctx.request, {
          action: 'agent-key-rotate',
          target: agent.agentId,
          outcome: 'success',
          meta: { oldKeySha256: keyDigest(row.public_key), newKeySha256: keyDigest(input.newPublicKey) },
        }));
        // Every replica drops the old key on commit, and a long-poll signed with it ends.
        await notifyAgents(tx, AGENT_KEY_CHANNEL, [agent.agentId]);
        await notifyAgents(tx, WAKE_CHANNEL, [agent.agentId]);
        return 'rotated' as const;
      });
      if (outcome !== 'rotated') return refuse(outcome, new ConflictError(`key rotation refused: ${outcome}`));
      ctx.agentKeys?.forget(agent.agentId);
      return { agentId: agent.agentId, rotatedAt: now.toISOString() };
    }),
} satisfies TRPCRouterRecord;

/** For admins: ask an agent to rotate its key; it learns so from its next heartbeat, which its wake-up stream asks for at once. */
export const adminKeyProcedures = {
  requestKeyRotation: procedureFor('agents:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [agent] = await tx.query<{ id: string }>(
          "UPDATE agents SET key_rotation_requested_at = $3 WHERE id = $1 AND tenant_id = $2 AND status = 'active' RETURNING id",
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!agent) throw new NotFoundError('no active agent with that id');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'agent-key-rotation-request', target: agent.id, outcome: 'success', meta: {} }));
        await notifyAgents(tx, WAKE_CHANNEL, [agent.id]);
        return { agentId: agent.id, requestedAt: ctx.now().toISOString() };
      });
    }),
} satisfies TRPCRouterRecord;
