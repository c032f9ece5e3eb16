/**
 * Authenticates an admin request: an API key in the Authorization header, or else the console's
 * session cookie. A cookie rides along on any request the browser makes, so a mutation carried by
 * the cookie must also prove it came from the console (same Origin, CSRF header). An API key is
 * never sent implicitly and needs neither. With both present the Authorization header decides.
 */
import { AuthenticationError, NotAllowedError } from '@airlock/errors';
import { eventBy, recordAudit } from '../audit-log.ts';
import { enforceLimit } from '../rate-limits.ts';
import type { Context } from '../context.ts';
import { authenticateApiKey } from './api-keys.ts';
import type { AdminPrincipal } from './principal.ts';
import { csrfRefusal, resumeSession, sessionTokenOf } from './sessions.ts';
import { resolveAuthSettings } from './settings.ts';

export async function authenticateAdmin(ctx: Context, type: 'query' | 'mutation' | 'subscription', path: string): Promise<AdminPrincipal> {
  const authorization = ctx.request.headers.get('authorization');
  const settings = resolveAuthSettings(ctx.auth);
  // Credentials are looked up before the caller's tenant is known: the one narrow system-scope read.
  const db = ctx.db.forSystem();
  try {
    const token = authorization === null ? sessionTokenOf(ctx.request.headers, settings.secureCookies) : null;
    if (token === null) return await authenticateApiKey(db, authorization, ctx.now());
    const session = await resumeSession(db, token, settings, ctx.now());
    if (!session) throw new AuthenticationError('no valid session; log in again');
    const refusal = type === 'query' ? null : csrfRefusal(ctx.request, token);
    if (refusal) {
      await recordAudit(db, eventBy(session.principal, ctx.request, { action: 'csrf-refused', target: path, outcome: 'denied', meta: { reason: refusal } }));
      throw new NotAllowedError('request refused: cross-site request check failed');
    }
    return session.principal;
  } catch (error) {
    if (error instanceof AuthenticationError) {
      // A failed authentication counts against the source IP: a flood of bad keys ends in 429s.
      await enforceLimit(ctx, 'ip', path, null, { failure: error.message });
      await recordAudit(db, {
        tenantId: null,
        actor: { type: 'anonymous', id: null },
        action: 'admin-auth-failed',
        target: path,
        outcome: 'denied',
        sourceIp: ctx.request.sourceIp,
        meta: { reason: error.message },
      });
    }
    throw error;
  }
}
