/**
 * Console users of the caller's tenant: list, create, change role, disable, unlock. Owners and
 * admins only; nobody creates or manages a user above their own role, and a narrowed API key
 * cannot create a user who could do more than the key. Disabling a user ends their sessions and
 * suspends the API keys they made; demoting them narrows those keys (both audited with the count).
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { NotAllowedError } from '@airlock/errors';
import { byId, createAdminUserInput, setAdminUserRoleInput } from '@airlock/protocol';
import { appendAudit, eventBy, type Queryable } from '@airlock/storage';
import {
  type AdminPrincipal,
  type AdminUser,
  type AuditAuthor,
  createAdminUser,
  listAdminUsers,
  lockAdminUser,
  resolveAuthSettings,
  unlockAdminUser,
  USER_COLUMNS,
  userFromRow,
  type UserRow,
} from '@airlock/auth';
import { assertCanGrant } from '../auth/admin-auth.ts';
import type { Context, RequestFacts } from '../context.ts';
import { procedureFor } from '../trpc.ts';

function authorOf(admin: AdminPrincipal, request: RequestFacts): AuditAuthor {
  const { actor, sourceIp, meta } = eventBy(admin, request, { action: 'admin-user-change', target: null, outcome: 'success', meta: {} });
  return { actor, sourceIp, meta };
}

async function assertManages(ctx: Context, admin: AdminPrincipal, user: AdminUser, target: string, verb: string): Promise<void> {
  if (admin.kind === 'user' && admin.userId === user.id) throw new NotAllowedError(`you cannot ${verb} your own account`);
  await assertCanGrant(ctx, admin, target, { role: user.role }, `a ${admin.role} cannot ${verb} a ${user.role}`);
}

const state = (user: AdminUser) => ({ email: user.email, role: user.role, disabled: user.disabled });

/** Live API keys whose rights follow this user's (see authenticateApiKey), for the audit record. */
async function cappedKeys(tx: Queryable, userId: string, now: Date): Promise<number> {
  const [row] = await tx.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM api_keys WHERE created_by_user = $1 AND revoked_at IS NULL AND expires_at > $2',
    [userId, now],
  );
  return row?.n ?? 0;
}

export const usersRouter = {
  list: procedureFor('users:read').query(({ ctx }) => listAdminUsers(ctx.db, ctx.admin.tenantId)),

  create: procedureFor('users:write')
    .input(createAdminUserInput)
    .mutation(async ({ ctx, input }) => {
      await assertCanGrant(ctx, ctx.admin, 'users.create', { role: input.role }, `a ${ctx.admin.role} cannot create a ${input.role}`);
      const scrypt = resolveAuthSettings(ctx.auth).scrypt;
      return ctx.db.transaction((tx) => createAdminUser(tx, { tenantId: ctx.admin.tenantId, ...input }, authorOf(ctx.admin, ctx.request), scrypt, ctx.now()));
    }),

  setRole: procedureFor('users:write')
    .input(setAdminUserRoleInput)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const before = await lockAdminUser(tx, ctx.admin.tenantId, { id: input.id });
        await assertManages(ctx, ctx.admin, before, 'users.setRole', 'change the role of');
        await assertCanGrant(ctx, ctx.admin, 'users.setRole', { role: input.role }, `a ${ctx.admin.role} cannot promote to ${input.role}`);
        const [row] = await tx.query<UserRow>(
          `UPDATE admin_users SET role = $2, updated_at = $3 WHERE id = $1 RETURNING ${USER_COLUMNS}`,
          [before.id, input.role, ctx.now()],
        );
        if (!row) throw new Error('role update returned nothing');
        const after = userFromRow(row);
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'admin-user-set-role',
            target: after.id,
            outcome: 'success',
            meta: { before: state(before), after: state(after), apiKeysCapped: await cappedKeys(tx, after.id, ctx.now()) },
          }),
          ctx.now(),
        );
        return after;
      });
    }),

  disable: procedureFor('users:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const before = await lockAdminUser(tx, ctx.admin.tenantId, { id: input.id });
        await assertManages(ctx, ctx.admin, before, 'users.disable', 'disable');
        const [row] = await tx.query<UserRow>(
          `UPDATE admin_users SET disabled = true, updated_at = $2 WHERE id = $1 RETURNING ${USER_COLUMNS}`,
          [before.id, ctx.now()],
        );
        if (!row) throw new Error('disable returned nothing');
        const ended = await tx.query('DELETE FROM admin_sessions WHERE user_id = $1 RETURNING id', [before.id]);
        const after = userFromRow(row);
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'admin-user-disable',
            target: after.id,
            outcome: 'success',
            meta: { before: state(before), after: state(after), sessionsEnded: ended.length, apiKeysSuspended: await cappedKeys(tx, after.id, ctx.now()) },
          }),
          ctx.now(),
        );
        return after;
      });
    }),

  unlock: procedureFor('users:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        // Not assertManages: unlocking one's own account (locked by someone else's guessing) is fine.
        const user = await lockAdminUser(tx, ctx.admin.tenantId, { id: input.id });
        await assertCanGrant(ctx, ctx.admin, 'users.unlock', { role: user.role }, `a ${ctx.admin.role} cannot unlock a ${user.role}`);
        return unlockAdminUser(tx, ctx.admin.tenantId, { id: input.id }, authorOf(ctx.admin, ctx.request), ctx.now());
      });
    }),
} satisfies TRPCRouterRecord;
