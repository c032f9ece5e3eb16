/**
 * Second factors and password changes over HTTP on PostgreSQL: TOTP enrollment and login (codes
 * from otplib at the server's clock), replayed codes, recovery codes, lockout of code guessing,
 * the tenant's requirement for owners and admins, a user's own password change and an owner's reset.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { authenticator } from 'otplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, connectPostgres, createAdminUserInTenant, createHttpHandler, type Database, Dispatcher, migrate, secretBoxFromKey, signerFromSecretKey } from './index.ts';
import { generateKeyPair } from '@airlock/identity';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };
const TENANT = 'acme';
const password = () => randomBytes(15).toString('base64url');

interface Reply {
  status: number;
  data: unknown;
  error?: { message: string; data?: { code: string } };
  cookie: string | null;
}

describe('[identity:mfa] second factors and passwords', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let ownerKey: Record<string, string>;
  let clock = Date.now();

  async function call(path: string, input: unknown, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'POST'): Promise<Reply> {
    const url = method === 'GET' ? `${base}/trpc/${path}${input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`}` : `${base}/trpc/${path}`;
    const response = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, ...(method === 'POST' ? { body: JSON.stringify(input) } : {}) });
    const body = (await response.json()) as { result?: { data: unknown }; error?: Reply['error'] };
    const cookie = response.headers.getSetCookie().find((line) => line.startsWith('airlock_session=') && !line.startsWith('airlock_session=;'));
    return { status: response.status, data: body.result?.data, error: body.error, cookie: cookie?.split(';')[0] ?? null };
  }

  /** A signed-in session's headers: its cookie, and the CSRF token mutations need. */
  function sessionOf(reply: Reply): Record<string, string> {
    const view = reply.data as { csrfToken?: string };
    if (reply.cookie === null || view.csrfToken === undefined) throw new Error(`not signed in: ${JSON.stringify(reply.data ?? reply.error)}`);
    return { cookie: reply.cookie, 'x-airlock-csrf': view.csrfToken };
  }

  const login = (email: string, pass: string) => call('session.login', { tenant: TENANT, email, password: pass });
  const codeFor = (secret: string, at = clock) => authenticator.clone({ epoch: at }).generate(secret);
  const pendingOf = (reply: Reply) => (reply.data as { pending: { token: string; stage: string } }).pending;

  async function newUser(role: 'owner' | 'admin' | 'operator' | 'auditor'): Promise<{ email: string; password: string }> {
    const user = { email: `${role}-${randomBytes(4).toString('hex')}@acme.test`, password: password() };
    await createAdminUserInTenant(db, { tenant: TENANT, email: user.email, role, password: user.password }, { scrypt: fastScrypt });
    return user;
  }

  /** Enrolls TOTP for a signed-in user; returns the secret and the recovery codes. */
  async function enroll(session: Record<string, string>): Promise<{ secret: string; recoveryCodes: string[] }> {
    const begun = await call('account.beginTotp', undefined, session);
    const { secret, otpauthUri } = begun.data as { secret: string; otpauthUri: string };
    expect(otpauthUri).toMatch(/^otpauth:\/\/totp\//);
    expect(otpauthUri).toContain(`secret=${secret}`);
    const confirmed = await call('account.confirmTotp', { code: codeFor(secret) }, session);
    expect(confirmed.error).toBeUndefined();
    return { secret, recoveryCodes: (confirmed.data as { recoveryCodes: string[] }).recoveryCodes };
  }

  async function auditActions(action: string): Promise<Array<{ outcome: string; meta: Record<string, unknown> }>> {
    return db.forSystem().query('SELECT outcome, meta FROM audit_events WHERE action = $1 ORDER BY id', [action]);
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    ownerKey = { authorization: `Bearer ${(await bootstrapTenant(db, { tenant: TENANT, keyName: 'first', expiresInDays: 30 })).key}` };
    const handler = createHttpHandler(
      {
        db,
        dispatcher: new Dispatcher(50),
        now: () => new Date(clock),
        logger: silent,
        signer: signerFromSecretKey(generateKeyPair().secretKey),
        alerts: { secretBox: secretBoxFromKey(randomBytes(32)), webhook: { timeoutMs: 2_000, allowLoopback: true } },
        auth: { scrypt: fastScrypt },
      },
      { maxBodyBytes: 64 * 1024, rateLimits: { ip: { points: 10_000, durationSeconds: 60 }, session: { points: 10_000, durationSeconds: 60 } } },
    );
    ({ server, base } = await listenOnLoopback(handler));
  });

  afterAll(async () => {
    server?.close();
    await db?.close();
  });

  it('enrolls TOTP with a code, keeping the secret sealed and the recovery codes hashed', async () => {
    const user = await newUser('operator');
    const session = sessionOf(await login(user.email, user.password));
    const begun = await call('account.beginTotp', undefined, session);
    const { secret } = begun.data as { secret: string };
    const wrong = await call('account.confirmTotp', { code: codeFor(secret, clock - 10 * 60_000) }, session);
    expect(wrong.error?.message).toMatch(/invalid code/);
    const confirmed = await call('account.confirmTotp', { code: codeFor(secret) }, session);
    const { recoveryCodes } = confirmed.data as { recoveryCodes: string[] };
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    const [row] = await db.forSystem().query<{ sealed: string }>('SELECT totp_secret_sealed AS sealed FROM admin_users WHERE email = $1', [user.email]);
    expect(row?.sealed).toMatch(/^v1\./);
    expect(row?.sealed).not.toContain(secret);
    const stored = await db.forSystem().query<{ code_sha256: string }>('SELECT r.code_sha256 FROM recovery_codes r JOIN admin_users u ON u.id = r.user_id WHERE u.email = $1', [user.email]);
    expect(stored).toHaveLength(10);
    const dump = JSON.stringify(stored);
    for (const code of recoveryCodes) expect(dump).not.toContain(code.replace(/-/g, ''));
    expect((await call('account.status', undefined, session, 'GET')).data).toMatchObject({ totpEnabled: true, recoveryCodesLeft: 10 });
    expect((await auditActions('totp-enroll')).map((row) => row.outcome)).toEqual(['denied', 'success']);
  });

  it('asks for the code after the password, accepts it once, and refuses it replayed', async () => {
    const user = await newUser('admin');
    const { secret } = await enroll(sessionOf(await login(user.email, user.password)));
    clock += 30_000;
    const first = await login(user.email, user.password);
    expect(first.cookie).toBeNull();
    const pending = pendingOf(first);
    expect(pending.stage).toBe('second-factor');
    const code = codeFor(secret);
    const signedIn = await call('session.verifySecondFactor', { token: pending.token, code });
    expect(signedIn.cookie).not.toBeNull();
    expect((signedIn.data as { user: { email: string } }).user.email).toBe(user.email);
    // The same code, within its 30 seconds, on another login: already used.
    const again = pendingOf(await login(user.email, user.password));
    const replayed = await call('session.verifySecondFactor', { token: again.token, code });
    expect(replayed.status).toBe(401);
    expect(replayed.cookie).toBeNull();
    const failures = await auditActions('second-factor-failed');
    expect(failures.at(-1)?.meta).toMatchObject({ reason: 'wrong-code', stage: 'second-factor' });
    // A spent pending token opens nothing.
    expect((await call('session.verifySecondFactor', { token: pending.token, code: codeFor(secret, clock + 30_000) })).error?.message).toMatch(/expired/);
  });

  it('accepts each recovery code once', async () => {
    const user = await newUser('auditor');
    const { recoveryCodes } = await enroll(sessionOf(await login(user.email, user.password)));
    const [code = ''] = recoveryCodes;
    const used = await call('session.verifySecondFactor', { token: pendingOf(await login(user.email, user.password)).token, code: code.toUpperCase() });
    expect(used.cookie).not.toBeNull();
    const reused = await call('session.verifySecondFactor', { token: pendingOf(await login(user.email, user.password)).token, code });
    expect(reused.status).toBe(401);
  });

  it('locks the account after repeated wrong codes, and a known password buys no fresh guesses', async () => {
    const user = await newUser('operator');
    const { secret } = await enroll(sessionOf(await login(user.email, user.password)));
    clock += 30_000;
    let refusedAsLocked = false;
    // Five failures lock the account; a correct password in between must not reset the count.
    for (let round = 0; round < 6 && !refusedAsLocked; round += 1) {
      const reply = await login(user.email, user.password);
      if (reply.status !== 200) {
        refusedAsLocked = /too many/.test(reply.error?.message ?? '');
        break;
      }
      const wrong = await call('session.verifySecondFactor', { token: pendingOf(reply).token, code: '000000' === codeFor(secret) ? '111111' : '000000' });
      expect(wrong.status).toBe(401);
      if (/too many/.test(wrong.error?.message ?? '')) refusedAsLocked = true;
    }
    expect(refusedAsLocked).toBe(true);
    const [row] = await db.forSystem().query<{ locked: boolean }>('SELECT locked_until > now() AS locked FROM admin_users WHERE email = $1', [user.email]);
    expect(row?.locked).toBe(true);
    // Even the right password and a right code are refused while the lock holds.
    const during = await login(user.email, user.password);
    expect(during.status).toBe(401);
    expect(during.error?.message).toMatch(/too many/);
  });

  it('makes owners and admins enroll at login once the tenant requires a second factor', async () => {
    const admin = await newUser('admin');
    const operator = await newUser('operator');
    const set = await call('sso.setRequireSecondFactor', { enabled: true }, ownerKey);
    expect(set.data).toMatchObject({ requireSecondFactor: true });
    try {
      // An operator is not covered by the requirement.
      expect((await login(operator.email, operator.password)).cookie).not.toBeNull();
      const pending = pendingOf(await login(admin.email, admin.password));
      expect(pending.stage).toBe('enroll-second-factor');
      const begun = await call('session.beginEnrollment', { token: pending.token });
      const { secret } = begun.data as { secret: string };
      const done = await call('session.confirmEnrollment', { token: pending.token, code: codeFor(secret) });
      expect(done.cookie).not.toBeNull();
      expect((done.data as { recoveryCodes: string[] }).recoveryCodes).toHaveLength(10);
      clock += 30_000;
      expect(pendingOf(await login(admin.email, admin.password)).stage).toBe('second-factor');
    } finally {
      await call('sso.setRequireSecondFactor', { enabled: false }, ownerKey);
    }
  });

  it('changes a password only with the current one, and ends the account\'s other sessions', async () => {
    const user = await newUser('operator');
    const kept = sessionOf(await login(user.email, user.password));
    const other = sessionOf(await login(user.email, user.password));
    const next = password();
    const wrong = await call('account.changePassword', { currentPassword: 'not-the-password', newPassword: next }, kept);
    expect(wrong.status).toBe(401);
    const changed = await call('account.changePassword', { currentPassword: user.password, newPassword: next }, kept);
    expect(changed.data).toEqual({ sessionsEnded: 1 });
    expect((await call('session.me', undefined, { cookie: kept['cookie'] ?? '' }, 'GET')).data).not.toBeNull();
    expect((await call('session.me', undefined, { cookie: other['cookie'] ?? '' }, 'GET')).data).toBeNull();
    expect((await login(user.email, user.password)).status).toBe(401);
    expect((await login(user.email, next)).cookie).not.toBeNull();
    const audited = await auditActions('password-change');
    expect(audited.map((row) => row.outcome).slice(-2)).toEqual(['denied', 'success']);
    expect(JSON.stringify(audited)).not.toContain(next);
  });

  it('removes the authenticator app only with the current password and a current code, ending the other sessions', async () => {
    const user = await newUser('operator');
    const kept = sessionOf(await login(user.email, user.password));
    const other = sessionOf(await login(user.email, user.password));
    const { secret } = await enroll(kept);
    clock += 30_000;
    const wrongPassword = await call('account.removeTotp', { currentPassword: 'not-the-password', code: codeFor(secret) }, kept);
    expect(wrongPassword.status).toBe(401);
    const wrongCode = await call('account.removeTotp', { currentPassword: user.password, code: codeFor(secret, clock - 10 * 60_000) }, kept);
    expect(wrongCode.status).toBe(401);
    expect(wrongCode.error?.message).toMatch(/invalid code/);
    // An API key has no person behind it, and no factor to remove.
    expect((await call('account.removeTotp', { currentPassword: user.password, code: codeFor(secret) }, ownerKey)).status).toBe(403);
    expect((await call('account.status', undefined, kept, 'GET')).data).toMatchObject({ totpEnabled: true });

    const removed = await call('account.removeTotp', { currentPassword: user.password, code: codeFor(secret) }, kept);
    expect(removed.data).toEqual({ sessionsEnded: 1 });
    expect((await call('session.me', undefined, { cookie: kept['cookie'] ?? '' }, 'GET')).data).not.toBeNull();
    expect((await call('session.me', undefined, { cookie: other['cookie'] ?? '' }, 'GET')).data).toBeNull();
    expect((await call('account.status', undefined, kept, 'GET')).data).toMatchObject({ totpEnabled: false, recoveryCodesLeft: 0 });
    const [row] = await db.forSystem().query<{ sealed: string | null; codes: number }>(
      'SELECT totp_secret_sealed AS sealed, (SELECT count(*)::int FROM recovery_codes r WHERE r.user_id = u.id) AS codes FROM admin_users u WHERE email = $1',
      [user.email],
    );
    expect(row).toEqual({ sealed: null, codes: 0 });
    // The password alone signs in again.
    expect((await login(user.email, user.password)).cookie).not.toBeNull();
    const audited = (await auditActions('totp-remove')).slice(-3);
    expect(audited.map((event) => event.outcome)).toEqual(['denied', 'denied', 'success']);
    expect(audited.map((event) => event.meta['reason'] ?? event.meta['confirmedWith'])).toEqual(['wrong-current', 'wrong-code', 'totp']);
    expect(JSON.stringify(audited)).not.toContain(user.password);
  });

  it('removes the authenticator app with a recovery code, unless the tenant requires it of an admin with no other factor', async () => {
    const admin = await newUser('admin');
    const session = sessionOf(await login(admin.email, admin.password));
    const { recoveryCodes } = await enroll(session);
    const [code] = recoveryCodes;
    await call('sso.setRequireSecondFactor', { enabled: true }, ownerKey);
    try {
      const refused = await call('account.removeTotp', { currentPassword: admin.password, code }, session);
      expect(refused.status).toBe(403);
      expect(refused.error?.message).toMatch(/requires a second factor/);
    } finally {
      await call('sso.setRequireSecondFactor', { enabled: false }, ownerKey);
    }
    // The refusal used nothing up: the same recovery code still answers.
    const removed = await call('account.removeTotp', { currentPassword: admin.password, code }, session);
    expect(removed.data).toEqual({ sessionsEnded: 0 });
    expect((await auditActions('totp-remove')).at(-1)?.meta).toMatchObject({ confirmedWith: 'recovery-code' });
    const again = await call('account.removeTotp', { currentPassword: admin.password, code: recoveryCodes[1] }, session);
    expect(again.status).toBe(400);
  });

  it('removes one of its own passkeys with the current password, never another account\'s, and keeps a required last factor', async () => {
    const admin = await newUser('admin');
    const bystander = await newUser('operator');
    const kept = sessionOf(await login(admin.email, admin.password));
    const other = sessionOf(await login(admin.email, admin.password));
    // Registration needs an authenticator (the browser test has one); removal never reads the key.
    const credential = async (email: string, id: string) =>
      db.forSystem().query(
        `INSERT INTO webauthn_credentials (id, tenant_id, user_id, public_key, counter, transports, created_at)
         SELECT $2, tenant_id, id, 'AAAA', 0, '{internal}', now() FROM admin_users WHERE email = $1`,
        [email, id],
      );
    await credential(admin.email, 'cred-first');
    await credential(admin.email, 'cred-second');
    await credential(bystander.email, 'cred-bystander');
    const listed = await call('account.passkeys', undefined, kept, 'GET');
    expect((listed.data as Array<{ id: string }>).map((passkey) => passkey.id)).toEqual(['cred-first', 'cred-second']);

    expect((await call('account.removePasskey', { id: 'cred-first', currentPassword: 'not-the-password' }, kept)).status).toBe(401);
    expect((await call('account.removePasskey', { id: 'cred-bystander', currentPassword: admin.password }, kept)).status).toBe(404);
    expect((await call('account.removePasskey', { id: 'cred-first', currentPassword: admin.password }, ownerKey)).status).toBe(403);
    const removed = await call('account.removePasskey', { id: 'cred-first', currentPassword: admin.password }, kept);
    expect(removed.data).toEqual({ sessionsEnded: 1 });
    expect((await call('session.me', undefined, { cookie: other['cookie'] ?? '' }, 'GET')).data).toBeNull();

    await call('sso.setRequireSecondFactor', { enabled: true }, ownerKey);
    try {
      const last = await call('account.removePasskey', { id: 'cred-second', currentPassword: admin.password }, kept);
      expect(last.status).toBe(403);
    } finally {
      await call('sso.setRequireSecondFactor', { enabled: false }, ownerKey);
    }
    expect((await call('account.removePasskey', { id: 'cred-second', currentPassword: admin.password }, kept)).data).toEqual({ sessionsEnded: 0 });
    expect((await call('account.status', undefined, kept, 'GET')).data).toMatchObject({ passkeys: 0 });
    const left = await db.forSystem().query<{ id: string }>('SELECT id FROM webauthn_credentials ORDER BY id');
    expect(left.map((row) => row.id)).toContain('cred-bystander');
    expect(left.map((row) => row.id)).not.toContain('cred-first');
    const audited = await auditActions('passkey-remove');
    expect(audited.map((event) => `${event.outcome}:${String(event.meta['reason'] ?? event.meta['passkeyId'])}`)).toEqual(['denied:wrong-current', 'success:cred-first', 'success:cred-second']);
  });

  it('lets an owner reset a password, ending its sessions and forcing a change at the next login', async () => {
    const user = await newUser('admin');
    const before = sessionOf(await login(user.email, user.password));
    const [row] = await db.forSystem().query<{ id: string }>('SELECT id FROM admin_users WHERE email = $1', [user.email]);
    const temporary = password();
    const admin = await newUser('admin');
    const byAdmin = await call('sso.resetPassword', { id: row?.id, temporaryPassword: temporary }, sessionOf(await login(admin.email, admin.password)));
    expect(byAdmin.error?.data?.code).toBe('FORBIDDEN');
    const reset = await call('sso.resetPassword', { id: row?.id, temporaryPassword: temporary }, ownerKey);
    expect(reset.data).toEqual({ ok: true, sessionsEnded: 1 });
    expect((await call('session.me', undefined, { cookie: before['cookie'] ?? '' }, 'GET')).data).toBeNull();
    const pending = pendingOf(await login(user.email, temporary));
    expect(pending.stage).toBe('change-password');
    const chosen = password();
    const done = await call('session.changePasswordToContinue', { token: pending.token, newPassword: chosen });
    expect(done.cookie).not.toBeNull();
    expect((await login(user.email, temporary)).status).toBe(401);
    expect((await login(user.email, chosen)).cookie).not.toBeNull();
    expect((await auditActions('password-reset')).at(-1)?.meta).toMatchObject({ mustChange: true, sessionsEnded: 1 });
    expect((await auditActions('password-change')).at(-1)?.meta).toMatchObject({ forced: true });
  });
});
