/**
 * Console login: `login` sets the `airlock_session` cookie and returns the user, the CSRF token the
 * console sends as `x-airlock-csrf` on every mutation, and when the session lapses if left idle.
 * `me` answers the same for the current cookie (null without a valid one); `logout` ends it.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { AuthenticationError, NotAllowedError } from '@airlock/errors';
import { loginCredentials, loginInput } from '@airlock/protocol';
import { appendAudit, eventBy, recordAudit } from '../audit-log.ts';
import { login, refuseMalformedLogin } from '../auth/login.ts';
import { clearedLegacySessionCookie, clearedSessionCookie, csrfRefusal, deleteSession, originRefusal, resumeSession, sessionCookie, sessionTokenOf, type SessionView } from '../auth/sessions.ts';
import { resolveAuthSettings } from '../auth/settings.ts';
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

export const sessionRouter = {
  login: publicProcedure.input(loginInput).mutation(async ({ ctx, input }): Promise<SessionView> => {
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
    const { token, session } = await login(
      { db: ctx.db.forSystem(), settings, sourceIp: ctx.request.sourceIp, now: ctx.now(), ...(ctx.loginGuard ? { guard: ctx.loginGuard } : {}) },
      input,
    );
    ctx.resHeaders.append('set-cookie', sessionCookie(token, settings.secureCookies));
    if (settings.secureCookies) ctx.resHeaders.append('set-cookie', clearedLegacySessionCookie());
    return session.view;
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
