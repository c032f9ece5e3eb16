/**
 * A signed-in person's own sign-in: passkey registration (WebAuthn), TOTP enrollment (a secret and its otpauth:// URI for the
 * console's QR code, confirmed with a code, then recovery codes shown once), removing either (the
 * current password, and for TOTP a code too) and a password change that needs the current
 * password; each change ends the account's other sessions. Console sessions only:
 * an API key has no person behind it to enroll or to know a password.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { NotAllowedError } from '@airlock/errors';
import { changePasswordInput, confirmPasskeyInput, confirmTotpInput, removePasskeyInput, removeTotpInput } from '@airlock/protocol';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import {
  type AdminPrincipal,
  attemptClaims,
  beginPasskeyRegistration,
  beginTotpEnrollment,
  changeOwnPassword,
  confirmTotpEnrollment,
  finishPasskeyRegistration,
  relyingPartyOf,
  removeOwnPasskey,
  removeOwnTotp,
  resolveAuthSettings,
  type StepRequest,
  type UserPrincipal,
} from '@airlock/auth';
import { appendAudit, eventBy, type Queryable } from '@airlock/storage';
import type { Context } from '../context.ts';
import { procedureFor } from '../trpc.ts';

function person(admin: AdminPrincipal): UserPrincipal {
  if (admin.kind !== 'user') throw new NotAllowedError('only a signed-in person manages their own sign-in; API keys cannot');
  return admin;
}

const SSO_OWNS_SIGN_IN = "single sign-on accounts use their identity provider's password and second factor";

/**
 * The signed-in person, when their account is local. The identity provider owns a single sign-on
 * account's password and second factor, so every change to them is refused alike, before any
 * input is looked at, rather than failing later as a wrong code or a missing challenge.
 */
async function localPerson(db: Queryable, admin: AdminPrincipal): Promise<UserPrincipal> {
  const user = person(admin);
  const [row] = await db.query<{ sso: boolean }>('SELECT oidc_subject IS NOT NULL AS sso FROM admin_users WHERE id = $1', [user.userId]);
  if (!row || row.sso) throw new NotAllowedError(SSO_OWNS_SIGN_IN);
  return user;
}

/** What checking the current password needs, as a login has it. */
function stepRequestOf(ctx: Context): StepRequest {
  const settings = resolveAuthSettings(ctx.auth);
  const now = ctx.now();
  return { db: ctx.db, box: ctx.alerts?.secretBox, settings, sourceIp: ctx.request.sourceIp, now, claim: attemptClaims(settings, now), ...(ctx.loginGuard ? { guard: ctx.loginGuard } : {}) };
}

export const accountRouter = {
  status: procedureFor('account:manage').query(async ({ ctx }) => {
    const user = person(ctx.admin);
    const [row] = await ctx.db.query<{ totp: boolean; password: boolean; sso: boolean; left: number; passkeys: number }>(
      `SELECT totp_secret_sealed IS NOT NULL AS totp, password_hash IS NOT NULL AS password, oidc_subject IS NOT NULL AS sso,
         (SELECT count(*)::int FROM webauthn_credentials w WHERE w.user_id = u.id) AS passkeys,
         (SELECT count(*)::int FROM recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NULL) AS left
       FROM admin_users u WHERE id = $1`,
      [user.userId],
    );
    return { totpEnabled: row?.totp ?? false, passkeys: row?.passkeys ?? 0, hasPassword: row?.password ?? false, singleSignOn: row?.sso ?? false, recoveryCodesLeft: row?.left ?? 0 };
  }),

  beginTotp: procedureFor('account:manage').mutation(async ({ ctx }) => {
    const user = person(ctx.admin);
    return ctx.db.transaction(async (tx) => {
      const [row] = await tx.query<{ name: string; sso: boolean }>(
        'SELECT t.name, u.oidc_subject IS NOT NULL AS sso FROM admin_users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1',
        [user.userId],
      );
      // The identity provider owns an SSO account's second factor.
      if (!row || row.sso) throw new NotAllowedError(SSO_OWNS_SIGN_IN);
      const begun = await beginTotpEnrollment(tx, ctx.alerts?.secretBox, { id: user.userId, email: user.email }, row.name);
      await appendAudit(tx, eventBy(user, ctx.request, { action: 'totp-enroll-begin', target: user.email, outcome: 'success', meta: {} }), ctx.now());
      return begun;
    });
  }),

  confirmTotp: procedureFor('account:manage')
    .input(confirmTotpInput)
    .mutation(async ({ ctx, input }) => {
      const user = await localPerson(ctx.db, ctx.admin);
      const recoveryCodes = await confirmTotpEnrollment(ctx.db, ctx.alerts?.secretBox, user.userId, input.code, ctx.request.sourceIp, ctx.now());
      return { recoveryCodes };
    }),

  beginPasskey: procedureFor('account:manage').mutation(async ({ ctx }) => {
    const user = person(ctx.admin);
    const rp = relyingPartyOf(ctx.request.headers.get('host'), resolveAuthSettings(ctx.auth).secureCookies);
    return ctx.db.transaction(async (tx) => {
      const [row] = await tx.query<{ sso: boolean }>('SELECT oidc_subject IS NOT NULL AS sso FROM admin_users WHERE id = $1', [user.userId]);
      if (!row || row.sso) throw new NotAllowedError(SSO_OWNS_SIGN_IN);
      return beginPasskeyRegistration(tx, rp, { id: user.userId, email: user.email });
    });
  }),

  confirmPasskey: procedureFor('account:manage')
    .input(confirmPasskeyInput)
    .mutation(async ({ ctx, input }) => {
      const user = await localPerson(ctx.db, ctx.admin);
      const rp = relyingPartyOf(ctx.request.headers.get('host'), resolveAuthSettings(ctx.auth).secureCookies);
      // The shape is checked by the input schema, the contents by the WebAuthn verification.
      const response = input.response as unknown as RegistrationResponseJSON;
      return finishPasskeyRegistration(ctx.db, rp, { id: user.userId, email: user.email, tenantId: user.tenantId }, response, ctx.request.sourceIp, ctx.now());
    }),

  /** The account's passkeys, to choose one to remove; the ids are WebAuthn credential ids, not secrets. */
  passkeys: procedureFor('account:manage').query(async ({ ctx }) => {
    const user = person(ctx.admin);
    const rows = await ctx.db.query<{ id: string; created_at: Date; last_used_at: Date | null }>(
      'SELECT id, created_at, last_used_at FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id',
      [user.userId],
    );
    return rows.map((row) => ({ id: row.id, createdAt: row.created_at.toISOString(), lastUsedAt: row.last_used_at?.toISOString() ?? null }));
  }),

  removeTotp: procedureFor('account:manage')
    .input(removeTotpInput)
    .mutation(async ({ ctx, input }) => {
      const user = await localPerson(ctx.db, ctx.admin);
      return removeOwnTotp(stepRequestOf(ctx), user, input);
    }),

  removePasskey: procedureFor('account:manage')
    .input(removePasskeyInput)
    .mutation(async ({ ctx, input }) => {
      const user = await localPerson(ctx.db, ctx.admin);
      return removeOwnPasskey(stepRequestOf(ctx), user, input);
    }),

  changePassword: procedureFor('account:manage')
    .input(changePasswordInput)
    .mutation(async ({ ctx, input }) => {
      const user = await localPerson(ctx.db, ctx.admin);
      return changeOwnPassword(stepRequestOf(ctx), user, input);
    }),
} satisfies TRPCRouterRecord;
