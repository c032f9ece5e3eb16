/**
 * Password login for admin users, by tenant name and email (an email is unique only within its
 * tenant; an unknown tenant is just another unknown email). Guessing is bounded three ways, each
 * counted before the password is checked so parallel guesses cannot slip past a limit: per account (5 failures, then a lock of
 * 1 min doubling to 1 h), per unknown email (the same, so a lock reveals nothing), and per source
 * address. An unknown email is checked against a dummy hash, so it takes as long as a known one,
 * and every refusal has the same two messages whether the account exists or not.
 */
import { AuthenticationError, UserError } from '@airlock/errors';
import { escapeUnprintable, truncateText } from '@airlock/protocol';
import { appendAudit, type Database, type Queryable, recordAudit } from '@airlock/storage';
import { MAX_EMAIL_LENGTH, normalizeEmail } from './admin-users.ts';
import { identitySettingsByName } from './identity-settings.ts';
import { createPendingLogin, nextStage, type PendingLogin, type StepRequest } from './second-factor.ts';
import { addressKey, LoginBusy, type LoginGuard } from './login-guard.ts';
import { hashPassword, needsRehash, type ScryptParams, verifyPassword } from './passwords.ts';
import type { Role } from './permissions.ts';
import { randomToken } from './secrets.ts';
import { createSession, type Session } from './sessions.ts';
import type { AuthSettings, Backoff } from './settings.ts';

export const BAD_CREDENTIALS = 'invalid email or password';
export const TOO_MANY_ATTEMPTS = 'too many failed logins; try again later';
const MAX_TENANT_LENGTH = 200;

/** Why a login failed, as the audit trail records it (never shown to the caller). */
export type LoginFailure = 'bad-password' | 'unknown-email' | 'disabled' | 'locked' | 'ip-throttled' | 'busy' | 'local-passwords-off';

export const LOCAL_PASSWORDS_OFF = 'this tenant signs in through single sign-on';

const dummyHashes = new Map<string, Promise<string>>();

/** A hash of a random password at the current cost: what an unknown email is checked against. */
function dummyHash(params: ScryptParams): Promise<string> {
  const key = `${params.N}:${params.r}:${params.p}`;
  let hash = dummyHashes.get(key);
  if (!hash) {
    hash = hashPassword(randomToken(), params);
    dummyHashes.set(key, hash);
  }
  return hash;
}

const seconds = (ms: number) => ms / 1000;

/** Counts one attempt against an account; false when the account is locked (nothing counted). */
async function claimAccountAttempt(db: Queryable, userId: string, backoff: Backoff, now: Date): Promise<boolean> {
  const rows = await db.query(
    `UPDATE admin_users SET failed_attempts = failed_attempts + 1, locked_until = CASE
       WHEN failed_attempts + 1 >= $3
       THEN $2::timestamptz + make_interval(secs => least($4::double precision * power(2, least(failed_attempts + 1 - $3, 20)), $5::double precision))
       ELSE NULL END
     WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)
     RETURNING failed_attempts`,
    [userId, now, backoff.threshold, seconds(backoff.baseMs), seconds(backoff.maxMs)],
  );
  return rows.length > 0;
}

/**
 * Counts one attempt against a throttle key (`ip:<address>` or `email:["<tenant>","<address>"]`); false when it is
 * locked. With `windowMs`, a key whose last failure is older than that starts again from one.
 * One statement, like the account's, so an unknown email costs the same round trips as a known one.
 */
async function claimThrottledAttempt(db: Queryable, key: string, backoff: Backoff, windowMs: number | null, now: Date): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO login_throttle AS t (key, failures, last_failure_at, locked_until)
     VALUES ($1, 1, $2, CASE WHEN 1 >= $3::integer THEN $2::timestamptz + make_interval(secs => least($4::double precision, $5::double precision)) END)
     ON CONFLICT (key) DO UPDATE SET
       failures = CASE WHEN t.last_failure_at < $2::timestamptz - make_interval(secs => $6::double precision) THEN 1 ELSE t.failures + 1 END,
       last_failure_at = $2,
       locked_until = CASE
         WHEN (CASE WHEN t.last_failure_at < $2::timestamptz - make_interval(secs => $6::double precision) THEN 1 ELSE t.failures + 1 END) >= $3::integer
         THEN $2::timestamptz + make_interval(secs => least(
           $4::double precision * power(2, least((CASE WHEN t.last_failure_at < $2::timestamptz - make_interval(secs => $6::double precision) THEN 1 ELSE t.failures + 1 END) - $3::integer, 20)),
           $5::double precision))
         ELSE NULL END
     WHERE t.locked_until IS NULL OR t.locked_until <= $2
     RETURNING t.failures`,
    // No window: a century, longer than any key will live.
    [key, now, backoff.threshold, seconds(backoff.baseMs), seconds(backoff.maxMs), seconds(windowMs ?? 100 * 365 * 86_400_000)],
  );
  return rows.length > 0;
}

/**
 * How long a `login_throttle` row outlives its last failure once it is not locked. A day, and never
 * less than the per-address window, inside which the row still counts. An unknown email's count
 * restarts after a quiet day; it guards no account, so nothing is lost.
 */
const THROTTLE_RETENTION_MS = 86_400_000;

/** Deletes `login_throttle` rows that are unlocked and quiet for longer than they can matter. */
export async function pruneLoginThrottle(db: Queryable, settings: Pick<AuthSettings, 'ipThrottle'>, now: Date): Promise<number> {
  const retention = Math.max(THROTTLE_RETENTION_MS, settings.ipThrottle.windowMs);
  const rows = await db.query(
    `DELETE FROM login_throttle
     WHERE (locked_until IS NULL OR locked_until <= $1) AND last_failure_at < $1::timestamptz - make_interval(secs => $2::double precision)
     RETURNING key`,
    [now, retention / 1000],
  );
  return rows.length;
}

/** A successful login from an address takes back the attempt it was counted as. */
async function releaseThrottledAttempt(db: Queryable, key: string, backoff: Backoff): Promise<void> {
  await db.query(
    `UPDATE login_throttle SET failures = greatest(failures - 1, 0),
       locked_until = CASE WHEN failures - 1 < $2 THEN NULL ELSE locked_until END
     WHERE key = $1`,
    [key, backoff.threshold],
  );
}

/** A rehash is a second full hash; when the gate is full it waits for a later login instead. */
async function rehashUnlessBusy(password: string, params: ScryptParams, guard: LoginGuard | undefined): Promise<string | null> {
  if (!guard) return hashPassword(password, params);
  try {
    return await guard.hash(() => hashPassword(password, params));
  } catch (error) {
    if (error instanceof LoginBusy) return null;
    throw error;
  }
}

export interface LoginRequest {
  db: Database;
  settings: AuthSettings;
  sourceIp: string | null;
  now: Date;
  /** Bounds password hashing in this process; absent for in-process callers. */
  guard?: LoginGuard;
}

interface Candidate {
  id: string;
  tenant_id: string;
  email: string;
  role: Role;
  password_hash: string;
  disabled: boolean;
  totp_secret_sealed: string | null;
  must_change_password: boolean;
  has_passkey: boolean;
}

/** The attempt counters of login, for the steps after the password (second-factor.ts). */
export function attemptClaims(settings: AuthSettings, now: Date): StepRequest['claim'] {
  return {
    account: (db, userId) => claimAccountAttempt(db, userId, settings.accountLockout, now),
    address: (db, key) => claimThrottledAttempt(db, key, settings.ipThrottle, settings.ipThrottle.windowMs, now),
  };
}

/** Checks the credentials and opens a session, or audits the failure and throws AuthenticationError. */
export async function login(request: LoginRequest, input: { tenant: string; email: string; password: string }): Promise<{ token: string; session: Session } | PendingLogin> {
  const { db, settings, now } = request;
  const email = truncateText(normalizeEmail(input.email), MAX_EMAIL_LENGTH);
  const tenant = truncateText(input.tenant.trim(), MAX_TENANT_LENGTH);
  const [user] = await db.query<Candidate>(
    `SELECT u.id, u.tenant_id, u.email, u.role, u.password_hash, u.disabled, u.totp_secret_sealed, u.must_change_password,
       EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = u.id) AS has_passkey
     FROM admin_users u JOIN tenants t ON t.id = u.tenant_id
     WHERE t.name = $1 AND u.email = $2 AND u.oidc_subject IS NULL AND u.password_hash IS NOT NULL`,
    [tenant, email],
  );
  const ipKey = `ip:${addressKey(request.sourceIp)}`;
  const { guard } = request;

  const auditFailure = (reason: LoginFailure, extra: Record<string, boolean | number>) =>
    recordAudit(db, {
      tenantId: user?.tenant_id ?? null,
      actor: { type: 'anonymous', id: null },
      action: 'login-failed',
      target: email,
      outcome: 'denied',
      sourceIp: request.sourceIp,
      meta: { reason, knownAccount: user !== undefined, tenant, ...extra },
    });
  const refuse = async (reason: LoginFailure, extra: Record<string, boolean> = {}): Promise<never> => {
    await auditFailure(reason, extra);
    throw new AuthenticationError(
      reason === 'locked' || reason === 'ip-throttled' ? TOO_MANY_ATTEMPTS : reason === 'local-passwords-off' ? LOCAL_PASSWORDS_OFF : BAD_CREDENTIALS,
    );
  };
  const busy = async (error: LoginBusy): Promise<never> => {
    await auditFailure('busy', { retryAfterSeconds: error.retryAfterSeconds });
    throw error;
  };

  if (!(await claimThrottledAttempt(db, ipKey, settings.ipThrottle, settings.ipThrottle.windowMs, now))) return refuse('ip-throttled');
  const claimed = user
    ? await claimAccountAttempt(db, user.id, settings.accountLockout, now)
    : await claimThrottledAttempt(db, `email:${JSON.stringify([tenant, email])}`, settings.accountLockout, null, now);
  if (!claimed) return refuse('locked');
  // Whether the tenant takes passwords at all is no secret (its login page offers single sign-on
  // instead), so the answer is the same for every email and no hash is spent on it.
  const identity = await identitySettingsByName(db, tenant);
  const breakGlass = user !== undefined && identity.breakGlassUserId === user.id;
  if (!identity.localPasswords && !breakGlass) return refuse('local-passwords-off');
  if (!user) {
    // Past the global budget an unknown email is not hashed at all. It still answers exactly like a
    // wrong password, after about as long as a hash takes, so the budget reveals no account: a
    // throttle message for unknown emails alone would mark every email that does not get one.
    if (guard && !guard.takeUnknownEmail(now)) {
      if (guard.gate.saturated()) return busy(new LoginBusy(guard.retryAfterSeconds()));
      await new Promise((resolve) => setTimeout(resolve, guard.typicalHashMs));
      return refuse('unknown-email', { hashed: false });
    }
  }
  let matches: boolean;
  try {
    const check = async () => verifyPassword(input.password, user?.password_hash ?? (await dummyHash(settings.scrypt)));
    matches = guard ? await guard.hash(check) : await check();
  } catch (error) {
    if (error instanceof LoginBusy) return busy(error);
    throw error;
  }
  if (!user) return refuse('unknown-email');
  if (!matches) return refuse('bad-password');
  // Checked after the password, so a disabled account answers exactly like a wrong password.
  if (user.disabled) return refuse('disabled');

  const rehash = needsRehash(user.password_hash, settings.scrypt) ? await rehashUnlessBusy(input.password, settings.scrypt, guard) : null;
  const stage = await nextStage(db, user, new Set());
  if (stage !== null) {
    const pending = await db.transaction(async (tx) => {
      // Failures are cleared only when the whole login succeeds: a known password buys no fresh code guesses.
      await tx.query(
        `UPDATE admin_users SET password_hash = coalesce($2, password_hash),
           failed_attempts = CASE WHEN $3 THEN failed_attempts ELSE 0 END, locked_until = CASE WHEN $3 THEN locked_until ELSE NULL END
         WHERE id = $1`,
        [user.id, rehash, stage === 'second-factor'],
      );
      const created = await createPendingLogin(tx, user, stage, request.sourceIp, now);
      await appendAudit(
        tx,
        { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'login-pending', target: user.email, outcome: 'success', sourceIp: request.sourceIp, meta: { stage, rehashed: rehash !== null } },
        now,
      );
      return created;
    });
    await releaseThrottledAttempt(db, ipKey, settings.ipThrottle);
    return pending;
  }
  const opened = await db.transaction(async (tx) => {
    await tx.query(
      `UPDATE admin_users SET failed_attempts = 0, locked_until = NULL, last_login_at = $2, password_hash = coalesce($3, password_hash)
       WHERE id = $1`,
      [user.id, now, rehash],
    );
    const result = await createSession(tx, { id: user.id, email: user.email, role: user.role, tenantId: user.tenant_id }, settings, request.sourceIp, now);
    await appendAudit(
      tx,
      {
        tenantId: user.tenant_id,
        actor: { type: 'admin', id: user.id },
        action: 'login',
        target: user.email,
        outcome: 'success',
        sourceIp: request.sourceIp,
        meta: { sessionId: result.session.principal.sessionId, rehashed: rehash !== null, ...(!identity.localPasswords ? { breakGlass: true } : {}) },
      },
      now,
    );
    return result;
  });
  await releaseThrottledAttempt(db, ipKey, settings.ipThrottle);
  return opened;
}

/**
 * A login whose email or password PostgreSQL cannot store (NUL, an unpaired surrogate): counted
 * against its source address like any failed attempt and audited with the email escaped, then
 * refused as bad input. Otherwise such a request would fail inside the database, uncounted and
 * unaudited, and could be repeated at no cost.
 */
export async function refuseMalformedLogin(request: LoginRequest, email: string): Promise<never> {
  const { db, settings, now } = request;
  const counted = await claimThrottledAttempt(db, `ip:${addressKey(request.sourceIp)}`, settings.ipThrottle, settings.ipThrottle.windowMs, now);
  await recordAudit(db, {
    tenantId: null,
    actor: { type: 'anonymous', id: null },
    action: 'login-failed',
    target: truncateText(escapeUnprintable(email), MAX_EMAIL_LENGTH),
    outcome: 'denied',
    sourceIp: request.sourceIp,
    meta: { reason: 'malformed-input', knownAccount: false, ipThrottled: !counted },
  });
  throw new UserError('invalid input: tenant, email and password must not contain NUL or unpaired surrogate characters');
}
