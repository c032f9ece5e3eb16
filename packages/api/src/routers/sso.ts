/**
 * Single sign-on administration, owner only (`identity:read`, `identity:write`): a tenant's OIDC
 * providers, their claim-value -> role mappings, and whether local passwords still work. The
 * client secret is sealed at rest and never returned. `loginProviders` is public: the login page
 * lists a tenant's enabled providers (names only) before anyone is signed in.
 *
 * Local passwords can be turned off only once single sign-on works (an owner has signed in through
 * an enabled provider) and with a break-glass owner named: one local owner account, not disabled,
 * that keeps its password (and its second factor) so the tenant is never locked out by its IdP.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { ConflictError, NotAllowedError, NotFoundError, UserError } from '@airlock/errors';
import {
  byId,
  createOidcProviderInput,
  loginProvidersInput,
  resetPasswordInput,
  setLocalPasswordsInput,
  setOidcRoleMappingsInput,
  setRequireSecondFactorInput,
  updateOidcProviderInput,
} from '@airlock/protocol';
import {
  checkPasswordPolicy,
  hashPassword,
  identitySettingsOf,
  issuerUrl,
  lockAdminUser,
  PROVIDER_COLUMNS,
  type ProviderRow,
  providersForLogin,
  resolveAuthSettings,
  type Role,
  sealContext,
  setPassword,
} from '@airlock/auth';
import { appendAudit, eventBy, type Queryable } from '@airlock/storage';
import type { Context } from '../context.ts';
import { procedureFor, publicProcedure } from '../trpc.ts';

export interface OidcProviderView {
  id: string;
  name: string;
  issuer: string;
  clientId: string;
  roleClaim: string;
  enabled: boolean;
  lastOwnerSignInAt: string | null;
  createdAt: string;
  updatedAt: string;
  mappings: Array<{ claimValue: string; role: Role }>;
}

function viewOf(row: ProviderRow, mappings: Array<{ claimValue: string; role: Role }>): OidcProviderView {
  return {
    id: row.id,
    name: row.name,
    issuer: row.issuer,
    clientId: row.client_id,
    roleClaim: row.role_claim,
    enabled: row.enabled,
    lastOwnerSignInAt: row.last_owner_sign_in_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    mappings,
  };
}

async function mappingsOf(db: Queryable, providerId: string): Promise<Array<{ claimValue: string; role: Role }>> {
  const rows = await db.query<{ claim_value: string; role: Role }>('SELECT claim_value, role FROM oidc_role_mappings WHERE provider_id = $1 ORDER BY claim_value', [providerId]);
  return rows.map((row) => ({ claimValue: row.claim_value, role: row.role }));
}

async function lockProvider(tx: Queryable, tenantId: string, id: string): Promise<ProviderRow> {
  const [row] = await tx.query<ProviderRow>(`SELECT ${PROVIDER_COLUMNS} FROM oidc_providers WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [tenantId, id]);
  if (!row) throw new NotFoundError('no identity provider with that id in this tenant');
  return row;
}

function secretBoxOf(ctx: Context) {
  // The key that seals webhook secrets seals every secret the control plane must use again.
  const box = ctx.alerts?.secretBox;
  if (!box) throw new UserError('this server has no sealing key configured; identity providers cannot be stored');
  return box;
}

const publicState = (row: ProviderRow) => ({ name: row.name, issuer: row.issuer, clientId: row.client_id, roleClaim: row.role_claim, enabled: row.enabled });

export const ssoRouter = {
  loginProviders: publicProcedure.input(loginProvidersInput).query(({ ctx, input }) => providersForLogin(ctx.db.forSystem(), input.tenant)),

  providers: procedureFor('identity:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<ProviderRow>(`SELECT ${PROVIDER_COLUMNS} FROM oidc_providers WHERE tenant_id = $1 ORDER BY name`, [ctx.admin.tenantId]);
    return Promise.all(rows.map(async (row) => viewOf(row, await mappingsOf(ctx.db, row.id))));
  }),

  createProvider: procedureFor('identity:write')
    .input(createOidcProviderInput)
    .mutation(async ({ ctx, input }) => {
      const url = issuerUrl(input.issuer);
      if (typeof url === 'string') throw new UserError(url);
      const box = secretBoxOf(ctx);
      const now = ctx.now();
      // The issuer as given: ID tokens must name it exactly, so no normalizing (a trailing slash matters).
      return ctx.db.transaction(async (tx) => {
        const [{ id } = { id: '' }] = await tx.query<{ id: string }>('SELECT gen_random_uuid()::text AS id');
        const [row] = await tx.query<ProviderRow>(
          `INSERT INTO oidc_providers (id, tenant_id, name, issuer, client_id, client_secret_sealed, role_claim, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING RETURNING ${PROVIDER_COLUMNS}`,
          [id, ctx.admin.tenantId, input.name, input.issuer, input.clientId, box.seal(input.clientSecret, sealContext(id)), input.roleClaim, now],
        );
        if (!row) throw new ConflictError('this tenant already has an identity provider with that name or issuer');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'sso-provider-create', target: row.id, outcome: 'success', meta: { before: null, after: publicState(row) } }), now);
        return viewOf(row, []);
      });
    }),

  updateProvider: procedureFor('identity:write')
    .input(updateOidcProviderInput)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      const sealed = input.clientSecret === undefined ? null : secretBoxOf(ctx).seal(input.clientSecret, sealContext(input.id));
      return ctx.db.transaction(async (tx) => {
        const before = await lockProvider(tx, ctx.admin.tenantId, input.id);
        if (input.enabled === false) await assertNotLastSignInPath(tx, ctx.admin.tenantId, before.id);
        const [row] = await tx.query<ProviderRow>(
          `UPDATE oidc_providers SET name = coalesce($2, name), client_secret_sealed = coalesce($3, client_secret_sealed),
             role_claim = coalesce($4, role_claim), enabled = coalesce($5, enabled), updated_at = $6
           WHERE id = $1 RETURNING ${PROVIDER_COLUMNS}`,
          [before.id, input.name ?? null, sealed, input.roleClaim ?? null, input.enabled ?? null, now],
        ).catch((error: unknown) => {
          if (error instanceof Error && 'code' in error && error.code === '23505') throw new ConflictError('this tenant already has an identity provider with that name');
          throw error;
        });
        if (!row) throw new NotFoundError('no identity provider with that id in this tenant');
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'sso-provider-update',
            target: row.id,
            outcome: 'success',
            meta: { before: publicState(before), after: publicState(row), clientAuthRotated: sealed !== null },
          }),
          now,
        );
        return viewOf(row, await mappingsOf(tx, row.id));
      });
    }),

  deleteProvider: procedureFor('identity:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      return ctx.db.transaction(async (tx) => {
        const before = await lockProvider(tx, ctx.admin.tenantId, input.id);
        await assertNotLastSignInPath(tx, ctx.admin.tenantId, before.id);
        await tx.query('DELETE FROM oidc_providers WHERE id = $1', [before.id]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'sso-provider-delete', target: before.id, outcome: 'success', meta: { before: publicState(before), after: null } }), now);
        return { ok: true as const };
      });
    }),

  setMappings: procedureFor('identity:write')
    .input(setOidcRoleMappingsInput)
    .mutation(async ({ ctx, input }) => {
      const values = input.mappings.map((mapping) => mapping.claimValue);
      if (new Set(values).size !== values.length) throw new UserError('a claim value may map to one role only');
      const now = ctx.now();
      return ctx.db.transaction(async (tx) => {
        const provider = await lockProvider(tx, ctx.admin.tenantId, input.providerId);
        const before = await mappingsOf(tx, provider.id);
        await tx.query('DELETE FROM oidc_role_mappings WHERE provider_id = $1', [provider.id]);
        for (const mapping of input.mappings) {
          await tx.query('INSERT INTO oidc_role_mappings (tenant_id, provider_id, claim_value, role) VALUES ($1, $2, $3, $4)', [
            ctx.admin.tenantId,
            provider.id,
            mapping.claimValue,
            mapping.role,
          ]);
        }
        const after = await mappingsOf(tx, provider.id);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'sso-mapping-set', target: provider.id, outcome: 'success', meta: { before, after } }), now);
        return after;
      });
    }),

  settings: procedureFor('identity:read').query(({ ctx }) => identitySettingsOf(ctx.db, ctx.admin.tenantId)),

  setRequireSecondFactor: procedureFor('identity:write')
    .input(setRequireSecondFactorInput)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      return ctx.db.transaction(async (tx) => {
        const before = await identitySettingsOf(tx, ctx.admin.tenantId);
        await tx.query(
          `INSERT INTO tenant_identity_settings (tenant_id, require_second_factor, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET require_second_factor = $2, updated_at = $3`,
          [ctx.admin.tenantId, input.enabled, now],
        );
        const after = await identitySettingsOf(tx, ctx.admin.tenantId);
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'second-factor-requirement-set',
            target: ctx.admin.tenantId,
            outcome: 'success',
            meta: { before: { requireSecondFactor: before.requireSecondFactor }, after: { requireSecondFactor: after.requireSecondFactor } },
          }),
          now,
        );
        return after;
      });
    }),

  /**
   * An owner's reset of a local account's password: a temporary one that must be replaced at the
   * next login. The account's sessions and pending logins end at once.
   */
  resetPassword: procedureFor('identity:write')
    .input(resetPasswordInput)
    .mutation(async ({ ctx, input }) => {
      checkPasswordPolicy(input.temporaryPassword);
      const hash = await hashPassword(input.temporaryPassword, resolveAuthSettings(ctx.auth).scrypt);
      const now = ctx.now();
      return ctx.db.transaction(async (tx) => {
        const user = await lockAdminUser(tx, ctx.admin.tenantId, { id: input.id });
        if (ctx.admin.kind === 'user' && ctx.admin.userId === user.id) throw new NotAllowedError('change your own password with your current one instead');
        const [local] = await tx.query<{ local: boolean }>('SELECT oidc_subject IS NULL AS local FROM admin_users WHERE id = $1', [user.id]);
        if (!local?.local) throw new UserError('single sign-on accounts have no password here');
        const ended = await setPassword(tx, user, hash, null, now, true);
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, { action: 'password-reset', target: user.id, outcome: 'success', meta: { email: user.email, mustChange: true, sessionsEnded: ended } }),
          now,
        );
        return { ok: true as const, sessionsEnded: ended };
      });
    }),

  setLocalPasswords: procedureFor('identity:write')
    .input(setLocalPasswordsInput)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      return ctx.db.transaction(async (tx) => {
        const before = await identitySettingsOf(tx, ctx.admin.tenantId);
        let breakGlass: string | null = null;
        if (!input.enabled) {
          const [working] = await tx.query<{ id: string }>(
            'SELECT id FROM oidc_providers WHERE tenant_id = $1 AND enabled AND last_owner_sign_in_at IS NOT NULL LIMIT 1',
            [ctx.admin.tenantId],
          );
          if (!working) throw new UserError('local passwords stay on until an owner has signed in through an enabled identity provider');
          if (input.breakGlassUserId === undefined) throw new UserError('name the break-glass owner: a local owner account that keeps its password');
          const [owner] = await tx.query<{ id: string }>(
            `SELECT id FROM admin_users WHERE tenant_id = $1 AND id = $2 AND role = 'owner' AND NOT disabled AND oidc_subject IS NULL AND password_hash IS NOT NULL`,
            [ctx.admin.tenantId, input.breakGlassUserId],
          );
          if (!owner) throw new UserError('the break-glass account must be an enabled local owner of this tenant');
          breakGlass = owner.id;
        }
        await tx.query(
          `INSERT INTO tenant_identity_settings (tenant_id, local_passwords, break_glass_user_id, updated_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id) DO UPDATE SET local_passwords = $2, break_glass_user_id = $3, updated_at = $4`,
          [ctx.admin.tenantId, input.enabled, breakGlass, now],
        );
        const after = await identitySettingsOf(tx, ctx.admin.tenantId);
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'local-passwords-set',
            target: ctx.admin.tenantId,
            outcome: 'success',
            meta: { before: { localPasswords: before.localPasswords, breakGlassUserId: before.breakGlassUserId }, after: { localPasswords: after.localPasswords, breakGlassUserId: after.breakGlassUserId } },
          }),
          now,
        );
        return after;
      });
    }),
} satisfies TRPCRouterRecord;

/**
 * With local passwords off, the last enabled provider cannot be disabled or deleted: everyone but
 * the break-glass owner would be locked out. Turn local passwords on first.
 */
async function assertNotLastSignInPath(tx: Queryable, tenantId: string, providerId: string): Promise<void> {
  const settings = await identitySettingsOf(tx, tenantId);
  if (settings.localPasswords) return;
  const [other] = await tx.query<{ id: string }>('SELECT id FROM oidc_providers WHERE tenant_id = $1 AND enabled AND id <> $2 LIMIT 1', [tenantId, providerId]);
  if (!other) throw new ConflictError('local passwords are off and this is the last enabled identity provider; turn local passwords on first');
}
