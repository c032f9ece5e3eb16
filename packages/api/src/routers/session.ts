/**
 * Console login: `login` sets the `airlock_session` cookie and returns the user, the CSRF token the
 * console sends as `x-airlock-csrf` on every mutation, and when the session lapses if left idle.
 * `me` answers the same for the current cookie (null without a valid one); `logout` ends it.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { AuthenticationError, NotAllowedError } from '@airlock/errors';
import { loginCredentials, loginInput, pendingLoginInput, pendingPasswordInput, secondFactorInput, verifyPasskeyInput } from '@airlock/protocol';
import { appendAudit, eventBy, recordAudit } from '@airlock/storage';
import {
  attemptClaims,
  beginPasskeyLogin,
  beginRequiredEnrollment,
  clearedLegacySessionCookie,
  clearedSessionCookie,
  completePasswordChange,
  confirmRequiredEnrollment,
  csrfRefusal,
  deleteSession,
  login,
  originRefusal,
  type PendingLogin,
  refuseMalformedLogin,
  relyingPartyOf,
  resolveAuthSettings,
  resumeSession,
  type Session,
  sessionCookie,
  sessionTokenOf,
  type SessionView,
  type StepRequest,
  type StepResult,
  verifyPasskeyLogin,
  verifySecondFactor,
} from '@airlock/auth';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Context } from '../context.ts';
import { publicProcedure } from '../trpc.ts';

const CROSS_SITE = 'request refused: cross-site request check failed';

/** The session cookie's token; a request with two session cookies is audited and refused. */
async function sessionTokenAudited(ctx: Context, target: string, secure: boolean): Promise<string | null> {
  try {
    return sessionTokenOf(ctx.request.headers, secure);
  } catch (error) {
    if (error instanceof AuthenticationError) {
      await recordAudit(ctx.db.forSystem(), {
        tenantId: null,
        actor: { type: 'anonymous', id: null },
        action: 'admin-auth-failed',
        target,
        outcome: 'denied',
        sourceIp: ctx.request.sourceIp,
        meta: { reason: error.message },
      });
    }
    throw error;
  }
}

/** A forged cross-site request could complete a login into the attacker's account. */
async function refuseCrossSite(ctx: Context, target: string): Promise<void> {
  const refusal = originRefusal(ctx.request);
  if (!refusal) return;
  await recordAudit(ctx.db.forSystem(), {
    tenantId: null,
    actor: { type: 'anonymous', id: null },
    action: 'csrf-refused',
    target,
    outcome: 'denied',
    sourceIp: ctx.request.sourceIp,
    meta: { reason: refusal },
  });
  throw new NotAllowedError(CROSS_SITE);
}

function stepRequest(ctx: Context): StepRequest {
  const settings = resolveAuthSettings(ctx.auth);
  const now = ctx.now();
  return {
    db: ctx.db.forSystem(),
    box: ctx.alerts?.secretBox,
    settings,
    sourceIp: ctx.request.sourceIp,
    now,
    claim: attemptClaims(settings, now),
    ...(ctx.loginGuard ? { guard: ctx.loginGuard } : {}),
  };
}

/** Sets the session cookie of an opened session and returns what the console shows. */
function signedIn(ctx: Context, opened: { token: string; session: Session }): SessionView {
  const settings = resolveAuthSettings(ctx.auth);
  ctx.resHeaders.append('set-cookie', sessionCookie(opened.token, settings.secureCookies));
  if (settings.secureCookies) ctx.resHeaders.append('set-cookie', clearedLegacySessionCookie());
  return opened.session.view;
}

function stepResult(ctx: Context, result: StepResult): (SessionView & { recoveryCodes?: string[] }) | PendingLogin {
  if ('pending' in result) return result;
  const view = signedIn(ctx, result.opened);
  return result.recoveryCodes ? { ...view, recoveryCodes: result.recoveryCodes } : view;
}

export const sessionRouter = {
  login: publicProcedure.input(loginInput).mutation(async ({ ctx, input }): Promise<SessionView | PendingLogin> => {
    // A forged cross-site login would sign the victim's browser in to the attacker's account.
    const refusal = originRefusal(ctx.request);
    if (refusal) {
      await recordAudit(ctx.db.forSystem(), {
        tenantId: null,
        actor: { type: 'anonymous', id: null },
        action: 'csrf-refused',
        target: 'session.login',
        outcome: 'denied',
        sourceIp: ctx.request.sourceIp,
        meta: { reason: refusal },
      });
      throw new NotAllowedError(CROSS_SITE);
    }
    const settings = resolveAuthSettings(ctx.auth);
    if (!loginCredentials.safeParse(input).success) {
      return refuseMalformedLogin({ db: ctx.db.forSystem(), settings, sourceIp: ctx.request.sourceIp, now: ctx.now() }, input.email);
    }
    const result = await login(
      { db: ctx.db.forSystem(), settings, sourceIp: ctx.request.sourceIp, now: ctx.now(), ...(ctx.loginGuard ? { guard: ctx.loginGuard } : {}) },
      input,
    );
    if ('pending' in result) return result;
    return signedIn(ctx, result);
  }),

  /** The second step of a login with a second factor: a TOTP or recovery code. */
  verifySecondFactor: publicProcedure.input(secondFactorInput).mutation(async ({ ctx, input }) => {
    await refuseCrossSite(ctx, 'session.verifySecondFactor');
    return stepResult(ctx, await verifySecondFactor(stepRequest(ctx), input));
  }),

  /** The passkey way through the second step: options for the browser's WebAuthn call... */
  beginPasskey: publicProcedure.input(pendingLoginInput).mutation(async ({ ctx, input }) => {
    await refuseCrossSite(ctx, 'session.beginPasskey');
    return beginPasskeyLogin(stepRequest(ctx), input, relyingPartyOf(ctx.request.headers.get('host'), resolveAuthSettings(ctx.auth).secureCookies));
  }),

  /** ... and the assertion it signed. */
  verifyPasskey: publicProcedure.input(verifyPasskeyInput).mutation(async ({ ctx, input }) => {
    await refuseCrossSite(ctx, 'session.verifyPasskey');
    const rp = relyingPartyOf(ctx.request.headers.get('host'), resolveAuthSettings(ctx.auth).secureCookies);
    // The shape is checked by the input schema, the contents by the WebAuthn verification.
    return stepResult(ctx, await verifyPasskeyLogin(stepRequest(ctx), { token: input.token, response: input.response as unknown as AuthenticationResponseJSON }, rp));
  }),

  /** The new password a login needs after an owner's reset. */
  changePasswordToContinue: publicProcedure.input(pendingPasswordInput).mutation(async ({ ctx, input }) => {
    await refuseCrossSite(ctx, 'session.changePasswordToContinue');
    return stepResult(ctx, await completePasswordChange(stepRequest(ctx), input));
  }),

  /** Enrolling the second factor the tenant requires, during login: a secret to scan... */
  beginEnrollment: publicProcedure.input(pendingLoginInput).mutation(async ({ ctx, input }) => {
    await refuseCrossSite(ctx, 'session.beginEnrollment');
    return beginRequiredEnrollment(stepRequest(ctx), input, async (tx, tenantId) => {
      const [row] = await tx.query<{ name: string }>('SELECT name FROM tenants WHERE id = $1', [tenantId]);
      return row?.name ?? '';
    });
  }),

  /** ... and a code from it, which signs in and shows the recovery codes once. */
  confirmEnrollment: publicProcedure.input(secondFactorInput).mutation(async ({ ctx, input }) => {
    await refuseCrossSite(ctx, 'session.confirmEnrollment');
    return stepResult(ctx, await confirmRequiredEnrollment(stepRequest(ctx), input));
  }),

  me: publicProcedure.query(async ({ ctx }): Promise<SessionView | null> => {
    const settings = resolveAuthSettings(ctx.auth);
    const token = await sessionTokenAudited(ctx, 'session.me', settings.secureCookies);
    if (token === null) return null;
    const session = await resumeSession(ctx.db.forSystem(), token, settings, ctx.now());
    if (!session) ctx.resHeaders.append('set-cookie', clearedSessionCookie(settings.secureCookies));
    return session?.view ?? null;
  }),

  logout: publicProcedure.mutation(async ({ ctx }): Promise<{ ok: true }> => {
    const settings = resolveAuthSettings(ctx.auth);
    const token = await sessionTokenAudited(ctx, 'session.logout', settings.secureCookies);
    const session = token === null ? null : await resumeSession(ctx.db.forSystem(), token, settings, ctx.now());
    if (token !== null && session) {
      const refusal = csrfRefusal(ctx.request, token);
      if (refusal) {
        await recordAudit(ctx.db.forSystem(), eventBy(session.principal, ctx.request, { action: 'csrf-refused', target: 'session.logout', outcome: 'denied', meta: { reason: refusal } }));
        throw new NotAllowedError(CROSS_SITE);
      }
      await ctx.db.forSystem().transaction(async (tx) => {
        await deleteSession(tx, session.principal.sessionId);
        await appendAudit(tx, eventBy(session.principal, ctx.request, { action: 'logout', target: session.principal.email, outcome: 'success', meta: { sessionId: session.principal.sessionId } }), ctx.now());
      });
    }
    ctx.resHeaders.append('set-cookie', clearedSessionCookie(settings.secureCookies));
    return { ok: true };
  }),
} satisfies TRPCRouterRecord;
