/**
 * Console sessions. The browser holds an opaque random token in the `airlock_session` cookie
 * (HttpOnly, SameSite=Strict; under TLS `__Host-airlock_session`, which only this host can set, over
 * HTTPS); the server keeps only its SHA-256. The CSRF token is derived from
 * the session token, so it needs no storage and a read of the sessions table yields neither.
 */
import { timingSafeEqual } from 'node:crypto';
import { AuthenticationError } from '@airlock/errors';
import type { RequestFacts } from './request-facts.ts';
import type { Queryable } from '@airlock/storage';
import type { Role } from './permissions.ts';
import type { UserPrincipal } from './principal.ts';
import { randomToken, sha256Hex } from './secrets.ts';
import type { AuthSettings } from './settings.ts';

export const SESSION_COOKIE = 'airlock_session';
/** The name under TLS: a browser takes a `__Host-` cookie only from this host, over HTTPS, with Path=/. */
export const SECURE_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;
export const TWO_SESSION_COOKIES = 'refused: the request carries two session cookies; clear this site\'s cookies and log in again';

const cookieName = (secure: boolean) => (secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE);
export const CSRF_HEADER = 'x-airlock-csrf';
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface SessionView {
  user: { id: string; email: string; role: Role; tenantId: string };
  csrfToken: string;
  expiresAt: string;
}

export interface Session {
  principal: UserPrincipal;
  view: SessionView;
}

export function csrfTokenFor(sessionToken: string): string {
  return sha256Hex(`airlock-csrf:${sessionToken}`);
}

/**
 * The session token from the Cookie header, or null. A malformed value counts as none; under TLS
 * only the `__Host-` name counts. Two session cookies (either name, twice or both) are refused: a
 * cookie planted by a sibling host or a plain-HTTP response rides along with the real one, and
 * whichever the server picked, one of them would be a session the user did not open.
 */
export function sessionTokenOf(headers: Headers, secure: boolean): string | null {
  const values: string[] = [];
  for (const pair of (headers.get('cookie') ?? '').split(';')) {
    const separator = pair.indexOf('=');
    if (separator < 0) continue;
    const name = pair.slice(0, separator).trim();
    if (name === SESSION_COOKIE || name === SECURE_SESSION_COOKIE) values.push(name === cookieName(secure) ? pair.slice(separator + 1).trim() : '');
  }
  if (values.length > 1) throw new AuthenticationError(TWO_SESSION_COOKIES);
  const [value] = values;
  return value !== undefined && TOKEN_PATTERN.test(value) ? value : null;
}

export function sessionCookie(token: string, secure: boolean): string {
  return `${cookieName(secure)}=${token}; HttpOnly; SameSite=Strict; Path=/${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${cookieName(secure)}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? '; Secure' : ''}`;
}

/**
 * Under TLS, clears the unprefixed cookie this host set before it used `__Host-`, so a browser that
 * kept one is not refused for carrying two. A cookie planted with a Domain attribute cannot be
 * cleared from here; such a request stays refused until the user clears the site's cookies.
 */
export function clearedLegacySessionCookie(): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure`;
}

function view(token: string, user: { id: string; email: string; role: Role; tenantId: string }, idleExpiresAt: Date): SessionView {
  return { user, csrfToken: csrfTokenFor(token), expiresAt: idleExpiresAt.toISOString() };
}

export async function createSession(
  tx: Queryable,
  user: { id: string; email: string; role: Role; tenantId: string },
  settings: Pick<AuthSettings, 'sessionIdleMs' | 'sessionAbsoluteMs'>,
  sourceIp: string | null,
  now: Date,
): Promise<{ token: string; session: Session }> {
  const token = randomToken(32);
  const expiresAt = new Date(now.getTime() + settings.sessionAbsoluteMs);
  const idleExpiresAt = new Date(Math.min(now.getTime() + settings.sessionIdleMs, expiresAt.getTime()));
  const [row] = await tx.query<{ id: string }>(
    `INSERT INTO admin_sessions (user_id, tenant_id, token_sha256, created_at, last_seen_at, idle_expires_at, expires_at, source_ip)
     VALUES ($1, $2, $3, $4, $4, $5, $6, $7) RETURNING id`,
    [user.id, user.tenantId, sha256Hex(token), now, idleExpiresAt, expiresAt, sourceIp],
  );
  if (!row) throw new Error('session insert returned nothing');
  const principal: UserPrincipal = { kind: 'user', userId: user.id, email: user.email, tenantId: user.tenantId, role: user.role, sessionId: row.id };
  return { token, session: { principal, view: view(token, user, idleExpiresAt) } };
}

/**
 * The live session for `token`, its idle expiry pushed forward; null when it is unknown, idle or
 * past its absolute expiry, or its user is disabled. Role changes apply at once: the role is read
 * from the user on every request.
 */
export async function resumeSession(db: Queryable, token: string, settings: Pick<AuthSettings, 'sessionIdleMs'>, now: Date): Promise<Session | null> {
  const [row] = await db.query<{ id: string; idle_expires_at: Date; user_id: string; email: string; role: Role; tenant_id: string }>(
    `UPDATE admin_sessions s SET last_seen_at = $2, idle_expires_at = least($3::timestamptz, s.expires_at)
     FROM admin_users u
     WHERE s.token_sha256 = $1 AND u.id = s.user_id AND NOT u.disabled AND s.expires_at > $2 AND s.idle_expires_at > $2
     RETURNING s.id, s.idle_expires_at, u.id AS user_id, u.email, u.role, u.tenant_id`,
    [sha256Hex(token), now, new Date(now.getTime() + settings.sessionIdleMs)],
  );
  if (!row) return null;
  const user = { id: row.user_id, email: row.email, role: row.role, tenantId: row.tenant_id };
  const principal: UserPrincipal = { kind: 'user', userId: user.id, email: user.email, tenantId: user.tenantId, role: user.role, sessionId: row.id };
  return { principal, view: view(token, user, row.idle_expires_at) };
}

export async function deleteSession(db: Queryable, sessionId: string): Promise<void> {
  await db.query('DELETE FROM admin_sessions WHERE id = $1', [sessionId]);
}

/** Sessions past their absolute or idle expiry, which no request can resume. */
export async function pruneSessions(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query('DELETE FROM admin_sessions WHERE expires_at <= $1 OR idle_expires_at <= $1 RETURNING id', [now]);
  return rows.length;
}

export type CsrfRefusal = 'foreign-origin' | 'missing-csrf-token' | 'wrong-csrf-token';

/**
 * A cross-site request cannot read the CSRF token, so it cannot set the header; a browser always
 * sends Origin on cross-site POSTs, and it must name the host the request was sent to.
 */
export function originRefusal(request: RequestFacts): CsrfRefusal | null {
  const origin = request.headers.get('origin');
  if (origin === null) return null;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return 'foreign-origin';
  }
  return host !== '' && host === request.headers.get('host') ? null : 'foreign-origin';
}

export function csrfRefusal(request: RequestFacts, sessionToken: string): CsrfRefusal | null {
  const byOrigin = originRefusal(request);
  if (byOrigin) return byOrigin;
  const sent = request.headers.get(CSRF_HEADER);
  if (sent === null || sent === '') return 'missing-csrf-token';
  const expected = Buffer.from(csrfTokenFor(sessionToken));
  const given = Buffer.from(sent);
  return given.length === expected.length && timingSafeEqual(given, expected) ? null : 'wrong-csrf-token';
}
