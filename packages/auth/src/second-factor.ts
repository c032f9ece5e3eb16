/**
 * Second factors and the steps a password login may still need after its password: TOTP codes
 * (RFC 6238, 30 s steps, one step of drift either way, each step accepted once), single-use
 * recovery codes, passkeys (passkeys.ts), a new password after an owner's reset, and enrolling TOTP when the tenant
 * requires a second factor of owners and admins.
 *
 * A password that passed but still needs a step yields a pending login (a random token, only its
 * hash kept, five minutes). Guessing a code is bounded like guessing a password: every attempt is
 * counted against the account's lockout and the source address before the code is checked, and
 * the account's failure count is cleared only when the whole login succeeds, so a known password
 * does not buy fresh code guesses.
 */
import { AuthenticationError, NotAllowedError, NotFoundError, UserError } from '@airlock/errors';
import { PENDING_LOGIN_TTL_MS } from '@airlock/protocol';
import { authenticator } from 'otplib';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { SecretBox } from '@airlock/alerts';
import { appendAudit, type Database, type Queryable, recordAudit } from '@airlock/storage';
import { identitySettingsOf } from './identity-settings.ts';
import { addressKey, type LoginGuard } from './login-guard.ts';
import { acceptPasskeyAssertion, beginPasskeyAssertion, type RelyingParty } from './passkeys.ts';
import { checkPasswordPolicy, hashPassword, verifyPassword } from './passwords.ts';
import type { Role } from './permissions.ts';
import { randomToken, sha256Hex } from './secrets.ts';
import { createSession, type Session } from './sessions.ts';
import type { AuthSettings } from './settings.ts';

export type PendingStage = 'second-factor' | 'change-password' | 'enroll-second-factor';

export const INVALID_CODE = 'invalid code';
export const LOGIN_EXPIRED = 'this login has expired; sign in again';
const STEP_SECONDS = 30;
const RECOVERY_CODE_COUNT = 10;
/** Wrong codes one pending login takes before it is dropped (the account's lockout also counts them). */
const MAX_PENDING_ATTEMPTS = 5;

const totpSealContext = (userId: string) => `totp:${userId}`;

/** A TOTP checker for `now`: 6 digits, 30 s, one step of drift either way. */
function totpAt(now: Date) {
  return authenticator.clone({ window: 1, epoch: now.getTime(), step: STEP_SECONDS, digits: 6 });
}

export function newTotpSecret(): string {
  return authenticator.generateSecret(20);
}

export function otpauthUri(email: string, tenant: string, secret: string): string {
  return authenticator.keyuri(email, `Airlock (${tenant})`, secret);
}

/**
 * Whether `code` is the current TOTP of `sealedSecret` and newer than the last accepted step; when
 * it is, that step becomes the last accepted one, so the same code does not answer twice.
 */
async function acceptTotp(tx: Queryable, box: SecretBox, user: { id: string; totp_last_step: string | null }, sealedSecret: string, code: string, now: Date): Promise<boolean> {
  if (!/^\d{6}$/.test(code)) return false;
  const secret = box.open(sealedSecret, totpSealContext(user.id));
  const delta = totpAt(now).checkDelta(code, secret);
  if (delta === null) return false;
  const step = Math.floor(now.getTime() / 1000 / STEP_SECONDS) + delta;
  const rows = await tx.query('UPDATE admin_users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2) RETURNING id', [user.id, step]);
  return rows.length > 0;
}

/** Recovery codes as shown once: 4 groups of 4 from an alphabet without look-alikes. */
function newRecoveryCode(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = Buffer.from(randomToken(24), 'base64url');
  let code = '';
  for (let i = 0; i < 16; i += 1) code += alphabet[(bytes[i] ?? 0) % alphabet.length];
  return code.match(/.{4}/g)?.join('-') ?? code;
}

const normalizeRecoveryCode = (code: string) => code.trim().toLowerCase().replace(/[\s-]/g, '');

/** Replaces the account's recovery codes with fresh ones and returns them: the only time they are shown. */
export async function replaceRecoveryCodes(tx: Queryable, tenantId: string, userId: string): Promise<string[]> {
  await tx.query('DELETE FROM recovery_codes WHERE user_id = $1', [userId]);
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  for (const code of codes) {
    await tx.query('INSERT INTO recovery_codes (tenant_id, user_id, code_sha256) VALUES ($1, $2, $3)', [tenantId, userId, sha256Hex(normalizeRecoveryCode(code))]);
  }
  return codes;
}

async function useRecoveryCode(tx: Queryable, userId: string, code: string, now: Date): Promise<boolean> {
  const normalized = normalizeRecoveryCode(code);
  if (!/^[a-z0-9]{16}$/.test(normalized)) return false;
  const rows = await tx.query('UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_sha256 = $2 AND used_at IS NULL RETURNING user_id', [userId, sha256Hex(normalized), now]);
  return rows.length > 0;
}

interface LoginUser {
  id: string;
  tenant_id: string;
  email: string;
  role: Role;
  disabled: boolean;
  totp_secret_sealed: string | null;
  totp_pending_sealed: string | null;
  totp_last_step: string | null;
  must_change_password: boolean;
  has_passkey: boolean;
}

const LOGIN_USER_COLUMNS =
  'id, tenant_id, email, role, disabled, totp_secret_sealed, totp_pending_sealed, totp_last_step::text AS totp_last_step, must_change_password, ' +
  'EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = admin_users.id) AS has_passkey';

/**
 * The step a login of `user` still needs after `done`, or null when it may open a session. The order:
 * second factor, then a forced password change, then enrolling a required second factor.
 */
export async function nextStage(
  db: Queryable,
  user: Pick<LoginUser, 'tenant_id' | 'role' | 'totp_secret_sealed' | 'must_change_password' | 'has_passkey'>,
  done: ReadonlySet<PendingStage>,
): Promise<PendingStage | null> {
  const hasSecondFactor = user.totp_secret_sealed !== null || user.has_passkey;
  if (hasSecondFactor && !done.has('second-factor')) return 'second-factor';
  if (user.must_change_password && !done.has('change-password')) return 'change-password';
  if (!hasSecondFactor && (user.role === 'owner' || user.role === 'admin')) {
    const settings = await identitySettingsOf(db, user.tenant_id);
    if (settings.requireSecondFactor) return 'enroll-second-factor';
  }
  return null;
}

export interface PendingLogin {
  pending: { token: string; stage: PendingStage; expiresAt: string };
}

export async function createPendingLogin(tx: Queryable, user: { id: string; tenant_id: string }, stage: PendingStage, sourceIp: string | null, now: Date): Promise<PendingLogin> {
  const token = randomToken(32);
  const expiresAt = new Date(now.getTime() + PENDING_LOGIN_TTL_MS);
  await tx.query('INSERT INTO pending_logins (token_sha256, tenant_id, user_id, stage, source_ip, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [
    sha256Hex(token),
    user.tenant_id,
    user.id,
    stage,
    sourceIp,
    expiresAt,
  ]);
  return { pending: { token, stage, expiresAt: expiresAt.toISOString() } };
}

export interface StepRequest {
  db: Database;
  box: SecretBox | undefined;
  settings: AuthSettings;
  sourceIp: string | null;
  now: Date;
  guard?: LoginGuard;
  /** Counts an attempt against a throttle key or the account (login.ts); false when locked. */
  claim: { account(db: Queryable, userId: string): Promise<boolean>; address(db: Queryable, key: string): Promise<boolean> };
}

export type StepResult = { opened: { token: string; session: Session }; recoveryCodes?: string[] } | PendingLogin;

function requireBox(box: SecretBox | undefined): SecretBox {
  if (!box) throw new UserError('this server has no sealing key configured; second factors are unavailable');
  return box;
}

/** The pending login for `token` at `stage`, with its user, locked; refused (and audited) when there is none. */
async function takePending(tx: Queryable, request: StepRequest, token: string, stage: PendingStage): Promise<{ user: LoginUser; attempts: number; tokenHash: string }> {
  const tokenHash = sha256Hex(token);
  const [row] = await tx.query<{ user_id: string; attempts: number; expires_at: Date; stage: PendingStage }>(
    'SELECT user_id, attempts, expires_at, stage FROM pending_logins WHERE token_sha256 = $1 FOR UPDATE',
    [tokenHash],
  );
  const [user] = row ? await tx.query<LoginUser>(`SELECT ${LOGIN_USER_COLUMNS} FROM admin_users WHERE id = $1 FOR UPDATE`, [row.user_id]) : [];
  if (!row || !user || row.stage !== stage || row.expires_at <= request.now || user.disabled) {
    if (row) await tx.query('DELETE FROM pending_logins WHERE token_sha256 = $1', [tokenHash]);
    throw new AuthenticationError(LOGIN_EXPIRED);
  }
  return { user, attempts: row.attempts, tokenHash };
}

/** Moves a pending login on to its next step, or opens its session (clearing the account's failures). */
async function advance(tx: Queryable, request: StepRequest, user: LoginUser, tokenHash: string, done: Set<PendingStage>, method: string): Promise<StepResult> {
  await tx.query('DELETE FROM pending_logins WHERE token_sha256 = $1', [tokenHash]);
  const refreshed = (await tx.query<LoginUser>(`SELECT ${LOGIN_USER_COLUMNS} FROM admin_users WHERE id = $1`, [user.id]))[0] ?? user;
  const stage = await nextStage(tx, refreshed, done);
  if (stage !== null) return createPendingLogin(tx, refreshed, stage, request.sourceIp, request.now);
  await tx.query('UPDATE admin_users SET failed_attempts = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1', [user.id, request.now]);
  const opened = await createSession(tx, { id: user.id, email: user.email, role: refreshed.role, tenantId: user.tenant_id }, request.settings, request.sourceIp, request.now);
  await appendAudit(
    tx,
    {
      tenantId: user.tenant_id,
      actor: { type: 'admin', id: user.id },
      action: 'login',
      target: user.email,
      outcome: 'success',
      sourceIp: request.sourceIp,
      meta: { sessionId: opened.session.principal.sessionId, steps: [...done, method] },
    },
    request.now,
  );
  return { opened };
}

/**
 * Counts a code attempt, then checks it with `check`; a wrong code is audited and refused, and the
 * pending login is dropped after MAX_PENDING_ATTEMPTS of them.
 */
async function attemptCode(
  request: StepRequest,
  token: string,
  stage: PendingStage,
  check: (tx: Queryable, user: LoginUser, tokenHash: string) => Promise<string | null>,
  onSuccess: (tx: Queryable, user: LoginUser, tokenHash: string, method: string) => Promise<StepResult>,
): Promise<StepResult> {
  const ipKey = `ip:${addressKey(request.sourceIp)}`;
  const outcome = await request.db.transaction(async (tx) => {
    const { user, attempts, tokenHash } = await takePending(tx, request, token, stage);
    const fail = async (reason: string): Promise<{ refused: string }> => {
      if (attempts + 1 >= MAX_PENDING_ATTEMPTS) await tx.query('DELETE FROM pending_logins WHERE token_sha256 = $1', [tokenHash]);
      else await tx.query('UPDATE pending_logins SET attempts = attempts + 1 WHERE token_sha256 = $1', [tokenHash]);
      await appendAudit(
        tx,
        {
          tenantId: user.tenant_id,
          actor: { type: 'anonymous', id: null },
          action: 'second-factor-failed',
          target: user.email,
          outcome: 'denied',
          sourceIp: request.sourceIp,
          meta: { reason, stage, userId: user.id, attempt: attempts + 1 },
        },
        request.now,
      );
      return { refused: reason };
    };
    if (!(await request.claim.address(tx, ipKey))) return fail('ip-throttled');
    if (!(await request.claim.account(tx, user.id))) return fail('locked');
    const method = await check(tx, user, tokenHash);
    if (method === null) return fail('wrong-code');
    return onSuccess(tx, user, tokenHash, method);
  });
  if ('refused' in outcome) {
    throw new AuthenticationError(outcome.refused === 'wrong-code' ? INVALID_CODE : 'too many failed attempts; try again later');
  }
  return outcome;
}

/** The second step of a login with TOTP: a current code, or one of the account's recovery codes. */
export function verifySecondFactor(request: StepRequest, input: { token: string; code: string }): Promise<StepResult> {
  const box = requireBox(request.box);
  return attemptCode(
    request,
    input.token,
    'second-factor',
    async (tx, user) => {
      if (user.totp_secret_sealed !== null && (await acceptTotp(tx, box, user, user.totp_secret_sealed, input.code.trim(), request.now))) return 'totp';
      if (await useRecoveryCode(tx, user.id, input.code, request.now)) return 'recovery-code';
      return null;
    },
    (tx, user, tokenHash, method) => advance(tx, request, user, tokenHash, new Set(['second-factor']), method),
  );
}

/** The passkey way through the second step: assertion options for the account's passkeys... */
export function beginPasskeyLogin(request: StepRequest, input: { token: string }, rp: RelyingParty): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return request.db.transaction(async (tx) => {
    const { user, tokenHash } = await takePending(tx, request, input.token, 'second-factor');
    return beginPasskeyAssertion(tx, rp, tokenHash, user.id);
  });
}

/** ... and the signed assertion, counted against the lockout like a code. */
export function verifyPasskeyLogin(request: StepRequest, input: { token: string; response: AuthenticationResponseJSON }, rp: RelyingParty): Promise<StepResult> {
  return attemptCode(
    request,
    input.token,
    'second-factor',
    async (tx, user, tokenHash) => ((await acceptPasskeyAssertion(tx, rp, tokenHash, user.id, input.response, request.now)) ? 'passkey' : null),
    (tx, user, tokenHash, method) => advance(tx, request, user, tokenHash, new Set(['second-factor']), method),
  );
}

/** Begins TOTP enrollment: a fresh secret kept sealed as pending until a code confirms it. */
export async function beginTotpEnrollment(tx: Queryable, box: SecretBox | undefined, user: { id: string; email: string }, tenant: string): Promise<{ secret: string; otpauthUri: string }> {
  const secret = newTotpSecret();
  await tx.query('UPDATE admin_users SET totp_pending_sealed = $2 WHERE id = $1', [user.id, requireBox(box).seal(secret, totpSealContext(user.id))]);
  return { secret, otpauthUri: otpauthUri(user.email, tenant, secret) };
}

/** Makes the pending secret the account's TOTP when `code` matches it; returns fresh recovery codes. */
async function confirmPendingTotp(tx: Queryable, box: SecretBox, user: LoginUser, code: string, now: Date): Promise<string[] | null> {
  if (user.totp_pending_sealed === null) return null;
  if (!(await acceptTotp(tx, box, user, user.totp_pending_sealed, code.trim(), now))) return null;
  await tx.query('UPDATE admin_users SET totp_secret_sealed = totp_pending_sealed, totp_pending_sealed = NULL WHERE id = $1', [user.id]);
  return replaceRecoveryCodes(tx, user.tenant_id, user.id);
}

/** The enrollment step a tenant's requirement adds to a login: begin (a secret to scan). */
export async function beginRequiredEnrollment(request: StepRequest, input: { token: string }, tenantName: (tx: Queryable, tenantId: string) => Promise<string>): Promise<{ secret: string; otpauthUri: string }> {
  return request.db.transaction(async (tx) => {
    const { user } = await takePending(tx, request, input.token, 'enroll-second-factor');
    return beginTotpEnrollment(tx, request.box, user, await tenantName(tx, user.tenant_id));
  });
}

/** ... and confirm (a code from the new secret), which finishes the login and shows the recovery codes once. */
export function confirmRequiredEnrollment(request: StepRequest, input: { token: string; code: string }): Promise<StepResult> {
  const box = requireBox(request.box);
  let codes: string[] | null = null;
  return attemptCode(
    request,
    input.token,
    'enroll-second-factor',
    async (tx, user) => {
      codes = await confirmPendingTotp(tx, box, user, input.code, request.now);
      return codes === null ? null : 'totp-enrolled';
    },
    async (tx, user, tokenHash, method) => {
      await appendAudit(tx, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'totp-enroll', target: user.email, outcome: 'success', sourceIp: request.sourceIp, meta: { duringLogin: true } }, request.now);
      const result = await advance(tx, request, user, tokenHash, new Set(['second-factor', 'enroll-second-factor']), method);
      return 'opened' in result && codes ? { ...result, recoveryCodes: codes } : result;
    },
  );
}

/** For a signed-in user: confirms their pending enrollment; returns the recovery codes, shown once. */
export async function confirmTotpEnrollment(db: Database, box: SecretBox | undefined, userId: string, code: string, sourceIp: string | null, now: Date): Promise<string[]> {
  const outcome = await db.transaction(async (tx): Promise<{ codes: string[] } | { refused: LoginUser }> => {
    const [user] = await tx.query<LoginUser>(`SELECT ${LOGIN_USER_COLUMNS} FROM admin_users WHERE id = $1 FOR UPDATE`, [userId]);
    if (!user) throw new AuthenticationError('no such account');
    const codes = await confirmPendingTotp(tx, requireBox(box), user, code, now);
    if (codes === null) return { refused: user };
    await appendAudit(tx, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'totp-enroll', target: user.email, outcome: 'success', sourceIp, meta: { replaced: user.totp_secret_sealed !== null } }, now);
    return { codes };
  });
  if ('codes' in outcome) return outcome.codes;
  const user = outcome.refused;
  await recordAudit(db, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'totp-enroll', target: user.email, outcome: 'denied', sourceIp, meta: { reason: 'wrong-code' } });
  throw new UserError(`${INVALID_CODE}: enter the current code from the authenticator app`);
}

/** The forced change after an owner's reset: a new password, then the login goes on. */
export async function completePasswordChange(request: StepRequest, input: { token: string; newPassword: string }): Promise<StepResult> {
  checkPasswordPolicy(input.newPassword);
  const hash = request.guard ? await request.guard.hash(() => hashPassword(input.newPassword, request.settings.scrypt)) : await hashPassword(input.newPassword, request.settings.scrypt);
  return request.db.transaction(async (tx) => {
    const { user, tokenHash } = await takePending(tx, request, input.token, 'change-password');
    const ended = await setPassword(tx, user, hash, null, request.now);
    await appendAudit(
      tx,
      { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'password-change', target: user.email, outcome: 'success', sourceIp: request.sourceIp, meta: { forced: true, sessionsEnded: ended } },
      request.now,
    );
    return advance(tx, request, user, tokenHash, new Set(['second-factor', 'change-password']), 'change-password');
  });
}

/** Stores a new password hash and ends the account's sessions (but `keepSessionId`); returns how many ended. */
export async function setPassword(tx: Queryable, user: { id: string }, hash: string, keepSessionId: string | null, now: Date, mustChange = false): Promise<number> {
  await tx.query('UPDATE admin_users SET password_hash = $2, must_change_password = $3, password_changed_at = $4, updated_at = $4 WHERE id = $1', [user.id, hash, mustChange, now]);
  await tx.query('DELETE FROM pending_logins WHERE user_id = $1', [user.id]);
  const rows = await tx.query('DELETE FROM admin_sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2 RETURNING id', [user.id, keepSessionId]);
  return rows.length;
}

/**
 * A signed-in user's own password change: the current password is checked like a login's (counted
 * against the account's lockout first), and every other session of the account ends.
 */
export async function changeOwnPassword(request: StepRequest, principal: { userId: string; sessionId: string }, input: { currentPassword: string; newPassword: string }): Promise<{ sessionsEnded: number }> {
  checkPasswordPolicy(input.newPassword);
  const { db, now } = request;
  const [user] = await db.query<{ id: string; tenant_id: string; email: string; password_hash: string | null }>('SELECT id, tenant_id, email, password_hash FROM admin_users WHERE id = $1', [principal.userId]);
  if (!user?.password_hash) throw new UserError('this account signs in through single sign-on and has no password here');
  const storedHash = user.password_hash;
  const refuse = async (reason: string): Promise<never> => {
    await recordAudit(db, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'password-change', target: user.email, outcome: 'denied', sourceIp: request.sourceIp, meta: { reason } });
    throw new AuthenticationError(reason === 'locked' ? 'too many failed attempts; try again later' : 'the current password is wrong');
  };
  if (!(await request.claim.account(db, user.id))) return refuse('locked');
  const check = () => verifyPassword(input.currentPassword, storedHash);
  if (!(request.guard ? await request.guard.hash(check) : await check())) return refuse('wrong-current');
  const hash = request.guard ? await request.guard.hash(() => hashPassword(input.newPassword, request.settings.scrypt)) : await hashPassword(input.newPassword, request.settings.scrypt);
  return db.transaction(async (tx) => {
    await tx.query('UPDATE admin_users SET failed_attempts = 0, locked_until = NULL WHERE id = $1', [user.id]);
    const ended = await setPassword(tx, user, hash, principal.sessionId, now);
    await appendAudit(tx, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'password-change', target: user.email, outcome: 'success', sourceIp: request.sourceIp, meta: { forced: false, sessionsEnded: ended } }, now);
    return { sessionsEnded: ended };
  });
}

/** Expired pending logins. */
export async function prunePendingLogins(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query('DELETE FROM pending_logins WHERE expires_at <= $1 RETURNING token_sha256', [now]);
  return rows.length;
}

type OwnFactorOutcome = { sessionsEnded: number } | { refused: string };

/**
 * Checks a signed-in user's current password like a login's (an attempt is counted against the
 * account's lockout first) and then runs `change` in a transaction holding the account's row.
 * A refusal, by `change` or the password, is audited as `action` and answered as a failed sign-in.
 */
async function withCurrentPassword(
  request: StepRequest,
  principal: { userId: string },
  currentPassword: string,
  action: string,
  change: (tx: Queryable, user: LoginUser) => Promise<OwnFactorOutcome>,
): Promise<{ sessionsEnded: number }> {
  const { db } = request;
  const [user] = await db.query<{ id: string; tenant_id: string; email: string; password_hash: string | null }>('SELECT id, tenant_id, email, password_hash FROM admin_users WHERE id = $1', [principal.userId]);
  if (!user?.password_hash) throw new NotAllowedError("single sign-on accounts use their identity provider's password and second factor");
  const storedHash = user.password_hash;
  const refuse = async (reason: string): Promise<never> => {
    await recordAudit(db, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action, target: user.email, outcome: 'denied', sourceIp: request.sourceIp, meta: { reason } });
    if (reason === 'locked') throw new AuthenticationError('too many failed attempts; try again later');
    if (reason === 'wrong-code') throw new AuthenticationError(`${INVALID_CODE}: enter the current code from the authenticator app, or a recovery code`);
    throw new AuthenticationError('the current password is wrong');
  };
  if (!(await request.claim.account(db, user.id))) return refuse('locked');
  const check = () => verifyPassword(currentPassword, storedHash);
  if (!(request.guard ? await request.guard.hash(check) : await check())) return refuse('wrong-current');
  const outcome = await db.transaction(async (tx) => {
    const [locked] = await tx.query<LoginUser>(`SELECT ${LOGIN_USER_COLUMNS} FROM admin_users WHERE id = $1 FOR UPDATE`, [user.id]);
    if (!locked) throw new AuthenticationError('no such account');
    return change(tx, locked);
  });
  if ('refused' in outcome) return refuse(outcome.refused);
  return outcome;
}

/**
 * Whether the tenant's rule that owners and admins use a second factor still holds for `user`
 * once the factor being removed is gone (`left`: whether another remains).
 */
async function assertFactorNotRequired(tx: Queryable, user: LoginUser, left: boolean): Promise<void> {
  if (left || (user.role !== 'owner' && user.role !== 'admin')) return;
  if ((await identitySettingsOf(tx, user.tenant_id)).requireSecondFactor) {
    throw new NotAllowedError('this tenant requires a second factor of owners and admins: add another one before removing this one');
  }
}

/**
 * Ends every other session and pending login of the account after one of its factors went: a
 * session opened elsewhere may be the very one the factor was removed to shut out.
 */
async function endOtherSessions(tx: Queryable, userId: string, keepSessionId: string): Promise<number> {
  await tx.query('DELETE FROM pending_logins WHERE user_id = $1', [userId]);
  const rows = await tx.query('DELETE FROM admin_sessions WHERE user_id = $1 AND id <> $2 RETURNING id', [userId, keepSessionId]);
  return rows.length;
}

/**
 * A signed-in user's removal of their own authenticator app: the current password and a current
 * code (or an unused recovery code) are both required, so a session left open on a shared machine
 * is not enough. The recovery codes go with it and every other session of the account ends.
 */
export async function removeOwnTotp(request: StepRequest, principal: { userId: string; sessionId: string }, input: { currentPassword: string; code: string }): Promise<{ sessionsEnded: number }> {
  const box = requireBox(request.box);
  return withCurrentPassword(request, principal, input.currentPassword, 'totp-remove', async (tx, user) => {
    if (user.totp_secret_sealed === null) throw new UserError('no authenticator app is set up for this account');
    await assertFactorNotRequired(tx, user, user.has_passkey);
    const method = (await acceptTotp(tx, box, user, user.totp_secret_sealed, input.code, request.now))
      ? 'totp'
      : (await useRecoveryCode(tx, user.id, input.code, request.now))
        ? 'recovery-code'
        : null;
    if (method === null) return { refused: 'wrong-code' };
    await tx.query(
      'UPDATE admin_users SET totp_secret_sealed = NULL, totp_pending_sealed = NULL, totp_last_step = NULL, failed_attempts = 0, locked_until = NULL, updated_at = $2 WHERE id = $1',
      [user.id, request.now],
    );
    await tx.query('DELETE FROM recovery_codes WHERE user_id = $1', [user.id]);
    const ended = await endOtherSessions(tx, user.id, principal.sessionId);
    await appendAudit(tx, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'totp-remove', target: user.email, outcome: 'success', sourceIp: request.sourceIp, meta: { confirmedWith: method, sessionsEnded: ended } }, request.now);
    return { sessionsEnded: ended };
  });
}

/** A signed-in user's removal of one of their own passkeys, with the current password; every other session of the account ends. */
export async function removeOwnPasskey(request: StepRequest, principal: { userId: string; sessionId: string }, input: { id: string; currentPassword: string }): Promise<{ sessionsEnded: number }> {
  return withCurrentPassword(request, principal, input.currentPassword, 'passkey-remove', async (tx, user) => {
    const [found] = await tx.query<{ others: number }>(
      'SELECT (SELECT count(*)::int FROM webauthn_credentials o WHERE o.user_id = $2 AND o.id <> $1) AS others FROM webauthn_credentials WHERE id = $1 AND user_id = $2',
      [input.id, user.id],
    );
    if (!found) throw new NotFoundError('no passkey with that id on this account');
    await assertFactorNotRequired(tx, user, found.others > 0 || user.totp_secret_sealed !== null);
    await tx.query('DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2', [input.id, user.id]);
    await tx.query('UPDATE admin_users SET failed_attempts = 0, locked_until = NULL, updated_at = $2 WHERE id = $1', [user.id, request.now]);
    const ended = await endOtherSessions(tx, user.id, principal.sessionId);
    await appendAudit(tx, { tenantId: user.tenant_id, actor: { type: 'admin', id: user.id }, action: 'passkey-remove', target: user.email, outcome: 'success', sourceIp: request.sourceIp, meta: { passkeyId: input.id, sessionsEnded: ended } }, request.now);
    return { sessionsEnded: ended };
  });
}
