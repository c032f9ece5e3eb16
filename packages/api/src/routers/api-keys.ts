/**
 * Admin API keys: list, create, rotate and revoke. A key is shown once, stored hashed, expires in
 * at most 90 days, and a caller can never mint a key with a role above its own. Revocation takes
 * effect on the key's next request. Each key records who minted it (a rotated key: whoever rotated
 * it), and a key minted by a console user stays capped by that user's current role.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { NotFoundError } from '@airlock/errors';
import { z } from 'zod';
import { byId, createApiKeyInput } from '@airlock/protocol';
import { appendAudit, eventBy } from '@airlock/storage';
import { createApiKey, keyCreatorOf, type Permission, permissions, type Role, roleCovers } from '@airlock/auth';
import { assertCanGrant } from '../auth/admin-auth.ts';
import { procedureFor } from '../trpc.ts';

interface KeyRow {
  id: string;
  prefix: string;
  name: string;
  role: Role;
  created_at: Date;
  expires_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
  permissions: Permission[] | null;
  created_by: string | null;
  creator_email: string | null;
  capped_by_role: Role | null;
  capped_by_disabled: boolean | null;
}

/** `user:<id>` or `api-key:<id>` as the listing shows it; null for keys from the CLI bootstrap. */
function creatorOf(row: KeyRow): { kind: 'user' | 'api-key'; id: string; email: string | null } | null {
  const match = /^(user|api-key):(.+)$/.exec(row.created_by ?? '');
  const id = match?.[2];
  if (!match || id === undefined) return null;
  return match[1] === 'user' ? { kind: 'user', id, email: row.creator_email } : { kind: 'api-key', id, email: null };
}

/** Optional narrowing: the key may use only these of its role's permissions. */
const createInput = createApiKeyInput.extend({ permissions: z.array(z.enum(permissions)).min(1).max(permissions.length).optional() });

export const apiKeysRouter = {
  list: procedureFor('keys:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<KeyRow>(
      `SELECT k.id, k.prefix, k.name, k.role, k.created_at, k.expires_at, k.last_used_at, k.revoked_at, k.permissions, k.created_by,
         u.email AS creator_email, cap.role AS capped_by_role, cap.disabled AS capped_by_disabled
       FROM api_keys k LEFT JOIN admin_users u ON k.created_by = 'user:' || u.id::text
       LEFT JOIN admin_users cap ON cap.id = k.created_by_user
       WHERE k.tenant_id = $1 ORDER BY k.created_at`,
      [ctx.admin.tenantId],
    );
    return rows.map((row) => ({
      id: row.id,
      prefix: row.prefix,
      name: row.name,
      role: row.role,
      createdAt: row.created_at.toISOString(),
      expiresAt: row.expires_at.toISOString(),
      lastUsedAt: row.last_used_at?.toISOString() ?? null,
      revokedAt: row.revoked_at?.toISOString() ?? null,
      permissions: row.permissions,
      createdBy: creatorOf(row),
      // What authentication applies now (see authenticateApiKey), so a listing never shows a key as
      // usable while it is refused or narrowed.
      suspended: row.capped_by_disabled === true,
      effectiveRole: row.capped_by_role !== null && !roleCovers(row.capped_by_role, row.role) ? row.capped_by_role : row.role,
    }));
  }),

  create: procedureFor('keys:write')
    .input(createInput)
    .mutation(async ({ ctx, input }) => {
      await assertCanGrant(
        ctx,
        ctx.admin,
        'apiKeys.create',
        { role: input.role, permissions: input.permissions ?? null },
        `a ${ctx.admin.role} cannot create a ${input.role} key${input.permissions ? ' with those permissions' : ''}`,
      );
      return ctx.db.transaction(async (tx) => {
        const key = await createApiKey(tx, { tenantId: ctx.admin.tenantId, ...input }, ctx.now(), keyCreatorOf(ctx.admin));
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'api-key-create',
            target: key.id,
            outcome: 'success',
            meta: { role: input.role, prefix: key.prefix, expiresAt: key.expiresAt.toISOString(), permissions: input.permissions ?? null },
          }),
        );
        return { id: key.id, key: key.key, expiresAt: key.expiresAt.toISOString() };
      });
    }),

  /** A new key with the same name and role; the old one is revoked in the same transaction. */
  rotate: procedureFor('keys:write')
    .input(byId.extend({ expiresInDays: createApiKeyInput.shape.expiresInDays }))
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [old] = await tx.query<{ id: string; name: string; role: Role; permissions: Permission[] | null }>(
          'UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL RETURNING id, name, role, permissions',
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!old) throw new NotFoundError('no live API key with that id');
        await assertCanGrant(ctx, ctx.admin, 'apiKeys.rotate', { role: old.role, permissions: old.permissions }, `a ${ctx.admin.role} cannot rotate a ${old.role} key`);
        const key = await createApiKey(
          tx,
          { tenantId: ctx.admin.tenantId, name: old.name, role: old.role, expiresInDays: input.expiresInDays, permissions: old.permissions },
          ctx.now(),
          keyCreatorOf(ctx.admin),
        );
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, { action: 'api-key-rotate', target: old.id, outcome: 'success', meta: { replacedBy: key.id, prefix: key.prefix } }),
        );
        return { id: key.id, key: key.key, expiresAt: key.expiresAt.toISOString() };
      });
    }),

  revoke: procedureFor('keys:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [key] = await tx.query<{ id: string; role: Role; permissions: Permission[] | null }>(
          'UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL RETURNING id, role, permissions',
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!key) throw new NotFoundError('no live API key with that id');
        // The same bar as creating or rotating it: a narrowed key cannot revoke a broader one.
        await assertCanGrant(ctx, ctx.admin, 'apiKeys.revoke', { role: key.role, permissions: key.permissions }, `a ${ctx.admin.role} cannot revoke a ${key.role} key`);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'api-key-revoke', target: key.id, outcome: 'success', meta: { role: key.role } }));
        return { id: key.id };
      });
    }),
} satisfies TRPCRouterRecord;
