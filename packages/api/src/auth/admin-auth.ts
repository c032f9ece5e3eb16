/**
 * Authenticates an admin request: an API key or an OAuth access token (a JWT) in the Authorization
 * header, or else the console's session cookie. A cookie rides along on any request the browser makes, so a mutation carried by
 * the cookie must also prove it came from the console (same Origin, CSRF header). An API key is
 * never sent implicitly and needs neither. With both present the Authorization header decides.
 */
import { AuthenticationError, NotAllowedError } from '@airlock/errors';
import { type Database, eventBy, recordAudit } from '@airlock/storage';
import {
  type AdminPrincipal,
  authenticateAccessToken,
  authenticateApiKey,
  canGrant,
  csrfRefusal,
  enforceLimit,
  looksLikeJwt,
  narrowingOf,
  type Permission,
  resolveAuthSettings,
  resumeSession,
  type Role,
  sessionTokenOf,
} from '@airlock/auth';
import type { Context, RequestFacts } from '../context.ts';

export async function authenticateAdmin(ctx: Context, type: 'query' | 'mutation' | 'subscription', path: string): Promise<AdminPrincipal> {
  const authorization = ctx.request.headers.get('authorization');
  const settings = resolveAuthSettings(ctx.auth);
  // Credentials are looked up before the caller's tenant is known: the one narrow system-scope read.
  const db = ctx.db.forSystem();
  try {
    const token = authorization === null ? sessionTokenOf(ctx.request.headers, settings.secureCookies) : null;
    const bearer = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    if (bearer !== undefined && looksLikeJwt(bearer)) return await authenticateAccessToken(db, ctx.oauth, bearer, ctx.now());
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

/**
 * Throws NotAllowedError unless `admin` may hand out `role` (narrowed to `permissions`), the
 * ceiling `canGrant` draws. A refusal is audited as `permission-denied`, like a missing permission:
 * trying to mint or manage something above one's own role is the same kind of probe.
 */
export async function assertCanGrant(
  ctx: { db: Database; request: RequestFacts },
  admin: AdminPrincipal,
  target: string,
  wanted: { role: Role; permissions?: readonly Permission[] | null },
  message: string,
): Promise<void> {
  if (canGrant(admin, wanted.role, wanted.permissions ?? null)) return;
  const meta = {
    reason: 'role-ceiling',
    role: admin.role,
    wantedRole: wanted.role,
    ...(wanted.permissions ? { wantedPermissions: [...wanted.permissions] } : {}),
    ...narrowingOf(admin),
  };
  await recordAudit(ctx.db, eventBy(admin, ctx.request, { action: 'permission-denied', target, outcome: 'denied', meta }));
  throw new NotAllowedError(message);
}
