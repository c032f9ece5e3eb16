import { type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@airlock/testing';
import { generateKeyPair } from '@airlock/identity';
import { type AuthSettings, BAD_CREDENTIALS, defaultAuthSettings, login, pruneLoginThrottle, sha256Hex, TOO_MANY_ATTEMPTS } from '@airlock/auth';
import { signerFromSecretKey } from '@airlock/storage';
import {
  bootstrapTenant,
  connectPostgres,
  createAdminUserInTenant,
  createHttpHandler,
  type Database,
  DEFAULT_RATE_LIMITS,
  Dispatcher,
  migrate,
  type Role,
} from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
// The production cost is 2^17; tests hash hundreds of times, so they use a cheap cost.
const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };
const PASSWORD = 'correct horse battery staple';

interface Reply {
  status: number;
  cookies: string[];
  body: { result?: { data: unknown }; error?: { message: string; data?: { code: string } } };
}

interface Endpoint {
  base: string;
  host: string;
}

async function send(endpoint: Endpoint, method: 'GET' | 'POST', path: string, input: unknown, headers: Record<string, string>): Promise<Reply> {
  const response = await fetch(`${endpoint.base}/trpc/${path}`, {
    method,
    headers: method === 'POST' ? { 'content-type': 'application/json', ...headers } : headers,
    body: method === 'POST' ? JSON.stringify(input ?? {}) : undefined,
  });
  return { status: response.status, cookies: response.headers.getSetCookie(), body: (await response.json()) as Reply['body'] };
}

const post = (endpoint: Endpoint, path: string, input: unknown, headers: Record<string, string> = {}) => send(endpoint, 'POST', path, input, headers);
const get = (endpoint: Endpoint, path: string, headers: Record<string, string> = {}) => send(endpoint, 'GET', path, undefined, headers);

function data<T>(reply: Reply): T {
  if (reply.status !== 200) throw new Error(`HTTP ${reply.status}: ${JSON.stringify(reply.body)}`);
  return reply.body.result?.data as T;
}

interface SessionView {
  user: { id: string; email: string; role: Role; tenantId: string };
  csrfToken: string;
  expiresAt: string;
}

interface Browser {
  cookie: string;
  csrf: string;
  view: SessionView;
  /** Headers of a well-formed console mutation: cookie, CSRF token, same Origin. */
  headers: Record<string, string>;
}

describe('admin users and console sessions over HTTP on PostgreSQL', () => {
  let db: Database;
  let owner: Record<string, string>;
  let tenantId: string;
  let clock = Date.now();
  const servers: Server[] = [];
  let endpoint: Endpoint;
  let nextUser = 0;

  async function listen(auth: Partial<AuthSettings> = {}): Promise<Endpoint> {
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(clock), logger: silent, signer, auth: { scrypt: fastScrypt, ...auth } },
      // The request rate limit per IP is a coarser layer in front (rate-limits.integration.test.ts);
      // opened wide here so these tests reach the login throttle underneath it.
      { maxBodyBytes: 256 * 1024, rateLimits: { ...DEFAULT_RATE_LIMITS, ip: { points: 100_000, durationSeconds: 60 } } },
    );
    const { server, base } = await listenOnLoopback(handler);
    servers.push(server);
    return { base, host: new URL(base).host };
  }

  async function newUser(role: Role, password = PASSWORD): Promise<{ id: string; email: string }> {
    nextUser += 1;
    const user = await createAdminUserInTenant(db, { tenant: 'acme', email: `User${nextUser}@Acme.test`, role, password }, { scrypt: fastScrypt });
    return { id: user.id, email: user.email };
  }

  async function signIn(email: string, at: Endpoint = endpoint, password = PASSWORD): Promise<Browser> {
    const reply = await post(at, 'session.login', { tenant: 'acme', email, password });
    const view = data<SessionView>(reply);
    const cookie = reply.cookies[0]?.split(';')[0] ?? '';
    return { cookie, csrf: view.csrfToken, view, headers: { cookie, 'x-airlock-csrf': view.csrfToken, origin: `http://${at.host}` } };
  }

  async function auditRows(action: string, sinceSeq = 0) {
    return db.query<{ seq: string; actor_type: string; actor_id: string | null; target: string | null; outcome: string; source_ip: string | null; meta: Record<string, unknown> }>(
      'SELECT seq::text AS seq, actor_type, actor_id, target, outcome, source_ip, meta FROM audit_events WHERE action = $1 AND id > $2 ORDER BY id',
      [action, sinceSeq],
    );
  }

  /** Where the trail is now, across every chain: events written later have a greater id. */
  async function headSeq(): Promise<number> {
    const [head] = await db.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM audit_events');
    return Number(head?.id ?? '0');
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 20 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    owner = { authorization: `Bearer ${boot.key}` };
    tenantId = boot.tenantId;
    endpoint = await listen();
  });

  // The per-address throttle counts every failure from 127.0.0.1; each test starts from a clean slate.
  beforeEach(async () => {
    clock = Date.now();
    await db.query('DELETE FROM login_throttle');
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await db.close();
  });

  it('logs in with an HttpOnly, SameSite=Strict cookie, stores only its hash, and answers me and logout', async () => {
    const user = await newUser('operator');
    expect(user.email).toBe(`user${nextUser}@acme.test`);
    // Email matching ignores case; the cookie carries an opaque token.
    const reply = await post(endpoint, 'session.login', { tenant: 'acme', email: user.email.toUpperCase(), password: PASSWORD });
    expect(reply.status).toBe(200);
    expect(reply.cookies).toHaveLength(1);
    const [cookie = ''] = reply.cookies;
    expect(cookie).toMatch(/^airlock_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
    const token = cookie.split(';')[0]?.split('=')[1] ?? '';
    const view = data<SessionView>(reply);
    expect(view.user).toEqual({ id: user.id, email: user.email, role: 'operator', tenantId });
    expect(view.csrfToken).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(view.expiresAt) - clock).toBe(defaultAuthSettings.sessionIdleMs);

    const stored = await db.query<{ token_sha256: string }>('SELECT token_sha256 FROM admin_sessions WHERE user_id = $1', [user.id]);
    expect(stored).toEqual([{ token_sha256: sha256Hex(token) }]);
    const [row] = await db.query<{ password_hash: string; last_login_at: Date | null }>('SELECT password_hash, last_login_at FROM admin_users WHERE id = $1', [user.id]);
    expect(row?.password_hash).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(row?.password_hash).not.toContain(PASSWORD);
    expect(row?.last_login_at?.getTime()).toBe(clock);

    const headers = { cookie: `other=1; airlock_session=${token}` };
    expect(data<SessionView>(await get(endpoint, 'session.me', headers))).toEqual(view);
    expect(data(await get(endpoint, 'session.me'))).toBeNull();
    expect(data(await get(endpoint, 'session.me', { cookie: 'airlock_session=forged' }))).toBeNull();
    // The session works on admin procedures within the role: an operator reads runs, not users.
    expect((await get(endpoint, 'runs.list?input=%7B%7D', headers)).status).toBe(200);
    expect((await get(endpoint, 'users.list', headers)).status).toBe(403);

    // Logout is a mutation carried by the cookie, so it needs the CSRF token too.
    expect((await post(endpoint, 'session.logout', null, headers)).status).toBe(403);
    const out = await post(endpoint, 'session.logout', null, { ...headers, 'x-airlock-csrf': view.csrfToken });
    expect(out.status).toBe(200);
    expect(out.cookies).toEqual(['airlock_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0']);
    expect(await db.query('SELECT 1 FROM admin_sessions WHERE user_id = $1', [user.id])).toHaveLength(0);
    expect(data(await get(endpoint, 'session.me', headers))).toBeNull();
    expect((await get(endpoint, 'runs.list?input=%7B%7D', headers)).status).toBe(401);

    const logins = await auditRows('login');
    expect(logins.filter((r) => r.actor_id === user.id)).toEqual([
      expect.objectContaining({ actor_type: 'admin', target: user.email, outcome: 'success', source_ip: expect.stringMatching(/127\.0\.0\.1/) }),
    ]);
    expect((await auditRows('logout')).filter((r) => r.actor_id === user.id)).toEqual([
      expect.objectContaining({ actor_type: 'admin', outcome: 'success', meta: expect.objectContaining({ actorEmail: user.email }) }),
    ]);
  });

  it('adds Secure to the cookie when the server runs TLS', async () => {
    const user = await newUser('auditor');
    const tls = await listen({ secureCookies: true });
    const reply = await post(tls, 'session.login', { tenant: 'acme', email: user.email, password: PASSWORD });
    expect(reply.cookies).toContainEqual(expect.stringMatching(/^__Host-airlock_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Secure$/));
  });

  it('[integrity #20] under TLS the cookie is __Host- prefixed and HSTS is sent; without TLS no HSTS', async () => {
    const user = await newUser('auditor');
    const tls = await listen({ secureCookies: true });
    const response = await fetch(`${tls.base}/trpc/session.login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant: 'acme', email: user.email, password: PASSWORD }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
    const cookie = response.headers.getSetCookie().find((c) => c.startsWith('__Host-airlock_session=')) ?? '';
    // A leftover unprefixed cookie from before TLS is cleared, so it does not make two.
    expect(response.headers.getSetCookie()).toContain('airlock_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure');
    expect(cookie).toMatch(/^__Host-airlock_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Secure$/);
    const token = cookie.split(';')[0]?.split('=')[1] ?? '';
    const health = await fetch(`${tls.base}/healthz`);
    expect(health.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
    expect(data<SessionView>(await get(tls, 'session.me', { cookie: `__Host-airlock_session=${token}` })).user.id).toBe(user.id);
    // Under TLS the unprefixed name, which any subdomain or plain-HTTP response could set, is not a session.
    expect(data(await get(tls, 'session.me', { cookie: `airlock_session=${token}` }))).toBeNull();
    const plain = await fetch(`${endpoint.base}/healthz`);
    expect(plain.headers.get('strict-transport-security')).toBeNull();
  });

  it('[integrity #20] refuses a request that carries two session cookies, and audits it', async () => {
    const victim = await signIn((await newUser('operator')).email);
    const planted = await signIn((await newUser('operator')).email);
    const since = await headSeq();
    for (const cookie of [`${planted.cookie}; ${victim.cookie}`, `${victim.cookie}; ${planted.cookie}`, `${victim.cookie}; ${victim.cookie}`]) {
      const reply = await get(endpoint, 'runs.list?input=%7B%7D', { cookie });
      expect(reply.status).toBe(401);
      expect(reply.body.error?.message).toMatch(/two session cookies/);
      expect((await get(endpoint, 'session.me', { cookie })).status).toBe(401);
    }
    const refused = (await auditRows('admin-auth-failed', since)).filter((r) => String(r.meta['reason']).includes('two session cookies'));
    expect(refused.map((r) => r.target).sort()).toEqual([...Array<string>(3).fill('runs.list'), ...Array<string>(3).fill('session.me')]);
    // Under TLS the prefixed and the plain name together are two session cookies as well.
    const tls = await listen({ secureCookies: true });
    const both = await get(tls, 'runs.list?input=%7B%7D', { cookie: `__Host-${victim.cookie}; ${planted.cookie}` });
    expect(both.status).toBe(401);
    expect(both.body.error?.message).toMatch(/two session cookies/);
  });

  it('refuses cookie mutations without the CSRF header, with a wrong one, or from a foreign Origin, and audits each', async () => {
    const admin = await signIn((await newUser('admin')).email);
    const create = (headers: Record<string, string>, n: number) =>
      post(endpoint, 'users.create', { email: `csrf${n}-${nextUser}@acme.test`, role: 'operator', password: PASSWORD }, headers);
    const since = await headSeq();

    const missing = await create({ cookie: admin.cookie }, 1);
    const wrong = await create({ cookie: admin.cookie, 'x-airlock-csrf': admin.csrf.replace(/.$/, (c) => (c === '0' ? '1' : '0')) }, 2);
    const foreign = await create({ ...admin.headers, origin: 'https://evil.example' }, 3);
    const nullOrigin = await create({ ...admin.headers, origin: 'null' }, 4);
    for (const refused of [missing, wrong, foreign, nullOrigin]) {
      expect(refused.status).toBe(403);
      expect(refused.body.error?.data?.code).toBe('FORBIDDEN');
    }
    const refusals = await auditRows('csrf-refused', since);
    expect(refusals.map((r) => r.meta['reason'])).toEqual(['missing-csrf-token', 'wrong-csrf-token', 'foreign-origin', 'foreign-origin']);
    expect(refusals.every((r) => r.actor_type === 'admin' && r.actor_id === admin.view.user.id && r.outcome === 'denied')).toBe(true);
    expect(await db.query("SELECT 1 FROM admin_users WHERE email LIKE 'csrf%'")).toHaveLength(0);

    // Same Origin with the token, or no Origin at all (non-browser clients) with the token: accepted.
    expect((await create(admin.headers, 5)).status).toBe(200);
    expect((await create({ cookie: admin.cookie, 'x-airlock-csrf': admin.csrf }, 6)).status).toBe(200);
    // Queries need no token: they change nothing.
    expect((await get(endpoint, 'users.list', { cookie: admin.cookie })).status).toBe(200);
    // A login posted from a foreign page is refused too (login CSRF).
    const foreignLogin = await post(endpoint, 'session.login', { tenant: 'acme', email: admin.view.user.email, password: PASSWORD }, { origin: 'https://evil.example' });
    expect(foreignLogin.status).toBe(403);
    expect(foreignLogin.cookies).toEqual([]);
  });

  it('prefers the Authorization header to the cookie, and needs no CSRF token with an API key', async () => {
    const auditor = await signIn((await newUser('auditor')).email);
    const since = await headSeq();
    const reply = await post(endpoint, 'users.create', { email: `viakey-${nextUser}@acme.test`, role: 'operator', password: PASSWORD }, { ...owner, cookie: auditor.cookie });
    expect(reply.status).toBe(200);
    const [created] = await auditRows('admin-user-create', since);
    expect(created).toMatchObject({ actor_type: 'api-key', meta: { after: { email: `viakey-${nextUser}@acme.test`, role: 'operator', disabled: false }, before: null } });
  });

  it('ends sessions after idle time and at the absolute limit', async () => {
    const user = await newUser('operator');
    const idle = await signIn(user.email);
    clock += defaultAuthSettings.sessionIdleMs + 1_000;
    expect(data(await get(endpoint, 'session.me', { cookie: idle.cookie }))).toBeNull();

    clock = Date.now();
    const busy = await signIn(user.email);
    const start = clock;
    // Active every 25 minutes: never idle, but cut at 12 hours. Bounded: 30 steps.
    let lastAlive = start;
    for (let step = 0; step < 30; step += 1) {
      clock += 25 * 60_000;
      const view = data<SessionView | null>(await get(endpoint, 'session.me', { cookie: busy.cookie }));
      if (view === null) break;
      lastAlive = clock;
      expect(Date.parse(view.expiresAt)).toBeLessThanOrEqual(start + defaultAuthSettings.sessionAbsoluteMs);
    }
    expect(lastAlive).toBeGreaterThan(start + defaultAuthSettings.sessionAbsoluteMs - 25 * 60_000);
    expect(lastAlive).toBeLessThan(start + defaultAuthSettings.sessionAbsoluteMs);
    expect((await get(endpoint, 'runs.list?input=%7B%7D', { cookie: busy.cookie })).status).toBe(401);
  });

  it('disabling a user ends their sessions and refuses their login like a wrong password', async () => {
    const user = await newUser('operator');
    const browser = await signIn(user.email);
    const admin = await signIn((await newUser('admin')).email);
    const since = await headSeq();
    const disabled = data<{ disabled: boolean }>(await post(endpoint, 'users.disable', { id: user.id }, admin.headers));
    expect(disabled.disabled).toBe(true);
    expect(data(await get(endpoint, 'session.me', { cookie: browser.cookie }))).toBeNull();
    expect(await db.query('SELECT 1 FROM admin_sessions WHERE user_id = $1', [user.id])).toHaveLength(0);
    const again = await post(endpoint, 'session.login', { tenant: 'acme', email: user.email, password: PASSWORD });
    expect(again.status).toBe(401);
    expect(again.body.error?.message).toBe(BAD_CREDENTIALS);
    const [change] = await auditRows('admin-user-disable', since);
    expect(change).toMatchObject({
      actor_type: 'admin',
      actor_id: admin.view.user.id,
      target: user.id,
      meta: { before: { disabled: false }, after: { disabled: true }, sessionsEnded: 1, actorEmail: admin.view.user.email },
    });
    expect((await auditRows('login-failed', since)).map((r) => r.meta['reason'])).toEqual(['disabled']);
  });

  it('locks an account after 5 failures, doubles the lock, and says the same for unknown emails', async () => {
    const user = await newUser('operator');
    const attempt = (email: string, password: string) => post(endpoint, 'session.login', { tenant: 'acme', email, password });
    const lockedUntil = async () =>
      (await db.query<{ locked_until: Date | null }>('SELECT locked_until FROM admin_users WHERE id = $1', [user.id]))[0]?.locked_until?.getTime() ?? null;

    for (let i = 0; i < 5; i += 1) expect((await attempt(user.email, 'wrong password!!')).body.error?.message).toBe(BAD_CREDENTIALS);
    expect(await lockedUntil()).toBe(clock + 60_000);
    // Locked: even the right password is refused, without being checked.
    const locked = await attempt(user.email, PASSWORD);
    expect(locked.status).toBe(401);
    expect(locked.body.error?.message).toBe(TOO_MANY_ATTEMPTS);

    // After the lock: one more failure locks again, for twice as long.
    clock += 61_000;
    expect((await attempt(user.email, 'wrong password!!')).body.error?.message).toBe(BAD_CREDENTIALS);
    expect(await lockedUntil()).toBe(clock + 120_000);
    clock += 61_000;
    expect((await attempt(user.email, PASSWORD)).body.error?.message).toBe(TOO_MANY_ATTEMPTS);
    clock += 60_000;
    expect((await attempt(user.email, PASSWORD)).status).toBe(200);
    const [reset] = await db.query<{ failed_attempts: number; locked_until: Date | null }>('SELECT failed_attempts, locked_until FROM admin_users WHERE id = $1', [user.id]);
    expect(reset).toEqual({ failed_attempts: 0, locked_until: null });

    // The lock is capped at an hour.
    for (let i = 0; i < 12; i += 1) {
      clock += 3_600_001;
      await attempt(user.email, 'wrong password!!');
    }
    expect(await lockedUntil()).toBe(clock + 3_600_000);

    // An unknown email answers in the same words at the same points.
    const ghost = `ghost-${nextUser}@acme.test`;
    const ghostReplies = [];
    for (let i = 0; i < 6; i += 1) ghostReplies.push((await attempt(ghost, 'wrong password!!')).body.error?.message);
    expect(ghostReplies).toEqual([...Array<string>(5).fill(BAD_CREDENTIALS), TOO_MANY_ATTEMPTS]);

    // An owner unlocks the account; the audit keeps the before and after.
    const since = await headSeq();
    expect(data<{ failedAttempts: number }>(await post(endpoint, 'users.unlock', { id: user.id }, owner)).failedAttempts).toBe(0);
    expect((await attempt(user.email, PASSWORD)).status).toBe(200);
    const [unlock] = await auditRows('admin-user-unlock', since);
    expect(unlock?.meta).toMatchObject({ before: { failedAttempts: 12 }, after: { failedAttempts: 0, lockedUntil: null } });
  });

  it('counts parallel guesses before checking them: 20 at once against one account check at most 5 passwords', async () => {
    const user = await newUser('operator');
    const since = await headSeq();
    const replies = await Promise.all(Array.from({ length: 20 }, () => post(endpoint, 'session.login', { tenant: 'acme', email: user.email, password: 'wrong password!!' })));
    expect(replies.every((r) => r.status === 401)).toBe(true);
    const reasons = (await auditRows('login-failed', since)).map((r) => r.meta['reason']);
    expect(reasons).toHaveLength(20);
    expect(reasons.filter((r) => r === 'bad-password')).toHaveLength(5);
    expect(reasons.filter((r) => r === 'locked')).toHaveLength(15);
  });

  it('throttles a source address over all emails', async () => {
    const user = await newUser('operator');
    const throttled = await listen({ ipThrottle: { threshold: 8, baseMs: 60_000, maxMs: 3_600_000, windowMs: 3_600_000 } });
    for (let i = 0; i < 8; i += 1) await post(throttled, 'session.login', { tenant: 'acme', email: `spray${i}@acme.test`, password: 'wrong password!!' });
    const refused = await post(throttled, 'session.login', { tenant: 'acme', email: user.email, password: PASSWORD });
    expect(refused.body.error?.message).toBe(TOO_MANY_ATTEMPTS);
    const [last] = (await auditRows('login-failed')).slice(-1);
    expect(last).toMatchObject({ target: user.email, meta: { reason: 'ip-throttled' } });
    clock += 61_000;
    expect((await post(throttled, 'session.login', { tenant: 'acme', email: user.email, password: PASSWORD })).status).toBe(200);
  });

  it('never lets a user create, promote or manage anyone above their own role', async () => {
    const admin = await signIn((await newUser('admin')).email);
    const operator = await signIn((await newUser('operator')).email);
    const someOwner = await newUser('owner');
    const create = (browser: Browser, role: Role) =>
      post(endpoint, 'users.create', { email: `made-${role}-${nextUser}-${Math.random().toString(36).slice(2)}@acme.test`, role, password: PASSWORD }, browser.headers);

    expect((await create(admin, 'owner')).status).toBe(403);
    const made = data<{ id: string; role: Role }>(await create(admin, 'admin'));
    expect(made.role).toBe('admin');
    expect((await create(operator, 'auditor')).status).toBe(403);
    expect((await post(endpoint, 'users.setRole', { id: made.id, role: 'owner' }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'users.setRole', { id: someOwner.id, role: 'auditor' }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'users.disable', { id: someOwner.id }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'users.setRole', { id: admin.view.user.id, role: 'operator' }, admin.headers)).status).toBe(403);

    const since = await headSeq();
    const demoted = data<{ role: Role }>(await post(endpoint, 'users.setRole', { id: made.id, role: 'auditor' }, admin.headers));
    expect(demoted.role).toBe('auditor');
    const [change] = await auditRows('admin-user-set-role', since);
    expect(change?.meta).toMatchObject({ before: { role: 'admin' }, after: { role: 'auditor' } });

    // Passwords follow the policy; emails are unique whatever their case.
    expect((await post(endpoint, 'users.create', { email: `short-${nextUser}@acme.test`, role: 'operator', password: 'too short' }, admin.headers)).status).toBe(400);
    const taken = await post(endpoint, 'users.create', { email: someOwner.email.toUpperCase(), role: 'operator', password: PASSWORD }, admin.headers);
    expect(taken.status).toBe(409);

    // A role change applies to a live session at once.
    expect((await get(endpoint, 'users.list', { cookie: operator.cookie })).status).toBe(403);
    data(await post(endpoint, 'users.setRole', { id: operator.view.user.id, role: 'admin' }, admin.headers));
    const list = data<{ email: string; role: Role }[]>(await get(endpoint, 'users.list', { cookie: operator.cookie }));
    expect(list.map((u) => u.email)).toContain(someOwner.email);
    expect(JSON.stringify(list)).not.toMatch(/scrypt/);
  });

  it('enforces an API key\'s permission list and updates last_used_at', async () => {
    const created = data<{ id: string; key: string }>(
      await post(endpoint, 'apiKeys.create', { name: 'reader', role: 'admin', expiresInDays: 7, permissions: ['agents:read', 'keys:write'] }, owner),
    );
    const scoped = { authorization: `Bearer ${created.key}` };
    expect((await get(endpoint, 'agents.list', scoped)).status).toBe(200);
    const since = await headSeq();
    expect((await get(endpoint, 'users.list', scoped)).status).toBe(403);
    const [denied] = await auditRows('permission-denied', since);
    expect(denied).toMatchObject({ actor_type: 'api-key', actor_id: created.id, meta: { permission: 'users:read', keyPermissions: ['agents:read', 'keys:write'] } });
    const [used] = await db.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [created.id]);
    expect(used?.last_used_at?.getTime()).toBe(clock);

    // A narrowed key cannot mint a broader one, even of its own role.
    expect((await post(endpoint, 'apiKeys.create', { name: 'wider', role: 'admin', expiresInDays: 7 }, scoped)).status).toBe(403);
    expect((await post(endpoint, 'apiKeys.create', { name: 'narrower', role: 'operator', expiresInDays: 7, permissions: ['agents:read'] }, scoped)).status).toBe(200);
    // A list outside the role is refused.
    expect((await post(endpoint, 'apiKeys.create', { name: 'bad', role: 'operator', expiresInDays: 7, permissions: ['keys:write'] }, owner)).status).toBe(400);
    const listed = data<{ id: string; permissions: string[] | null }[]>(await get(endpoint, 'apiKeys.list', owner));
    expect(listed.find((k) => k.id === created.id)?.permissions).toEqual(['agents:read', 'keys:write']);
    const rotated = data<{ key: string }>(await post(endpoint, 'apiKeys.rotate', { id: created.id, expiresInDays: 7 }, owner));
    expect((await get(endpoint, 'users.list', { authorization: `Bearer ${rotated.key}` })).status).toBe(403);
  });

  it('[integrity #21] an email is unique per tenant: another tenant may use it, and login names the tenant', async () => {
    const globex = await bootstrapTenant(db, { tenant: 'globex', keyName: 'first', expiresInDays: 30 });
    const globexOwner = { authorization: `Bearer ${globex.key}` };
    const acmeUser = await newUser('operator');
    const OTHER = 'globex has its own password';
    // Creating the same address in another tenant succeeds and says nothing about the first one.
    const made = await post(endpoint, 'users.create', { email: acmeUser.email.toUpperCase(), role: 'admin', password: OTHER }, globexOwner);
    expect(made.status).toBe(200);
    const globexUser = data<{ id: string; tenantId: string }>(made);
    expect(globexUser.tenantId).toBe(globex.tenantId);
    expect(JSON.stringify(made.body)).not.toContain(tenantId);
    // Within one tenant the address stays unique.
    expect((await post(endpoint, 'users.create', { email: acmeUser.email, role: 'auditor', password: OTHER }, globexOwner)).status).toBe(409);

    const login = (tenant: string, password: string) => post(endpoint, 'session.login', { tenant, email: acmeUser.email, password });
    expect(data<SessionView>(await login('acme', PASSWORD)).user).toMatchObject({ id: acmeUser.id, tenantId });
    expect(data<SessionView>(await login('globex', OTHER)).user).toMatchObject({ id: globexUser.id, tenantId: globex.tenantId, role: 'admin' });
    // One tenant's password does not open the other's account, and an unknown tenant answers alike.
    for (const reply of [await login('globex', PASSWORD), await login('acme', OTHER), await login('initech', PASSWORD)]) {
      expect(reply.status).toBe(401);
      expect(reply.body.error?.message).toBe(BAD_CREDENTIALS);
    }
    // Login without a tenant is an input error, not a global lookup.
    expect((await post(endpoint, 'session.login', { email: acmeUser.email, password: PASSWORD })).status).toBe(400);
  });

  it('[integrity #16] a key made by a console user is listed with its creator and never outranks them', async () => {
    const creator = await newUser('admin');
    const browser = await signIn(creator.email);
    const made = data<{ id: string; key: string }>(await post(endpoint, 'apiKeys.create', { name: 'automation', role: 'admin', expiresInDays: 7 }, browser.headers));
    const key = { authorization: `Bearer ${made.key}` };
    // A key minted by that key is capped by the same user.
    const child = data<{ id: string; key: string }>(await post(endpoint, 'apiKeys.create', { name: 'child', role: 'admin', expiresInDays: 7 }, key));
    const childKey = { authorization: `Bearer ${child.key}` };
    const bootstrapKey = owner;

    const listed = data<{ id: string; name: string; createdBy: unknown }[]>(await get(endpoint, 'apiKeys.list', owner));
    expect(listed.find((k) => k.id === made.id)?.createdBy).toEqual({ kind: 'user', id: creator.id, email: creator.email });
    expect(listed.find((k) => k.id === child.id)?.createdBy).toEqual({ kind: 'api-key', id: made.id, email: null });
    expect(listed.find((k) => k.name === 'first')?.createdBy).toBeNull();

    expect((await get(endpoint, 'users.list', key)).status).toBe(200);
    expect((await get(endpoint, 'users.list', childKey)).status).toBe(200);

    // Demoted: the keys narrow to the creator's new role at once.
    data(await post(endpoint, 'users.setRole', { id: creator.id, role: 'operator' }, owner));
    for (const credential of [key, childKey]) {
      expect((await get(endpoint, 'users.list', credential)).status).toBe(403);
      expect((await get(endpoint, 'runs.list?input=%7B%7D', credential)).status).toBe(200);
    }
    const narrowed = data<{ id: string; role: string; effectiveRole: string; suspended: boolean }[]>(await get(endpoint, 'apiKeys.list', owner));
    expect(narrowed.find((k) => k.id === made.id)).toMatchObject({ role: 'admin', effectiveRole: 'operator', suspended: false });
    // Disabled: the keys are refused, like an unknown key.
    const since = await headSeq();
    data(await post(endpoint, 'users.disable', { id: creator.id }, owner));
    expect((await auditRows('admin-user-disable', since))[0]?.meta).toMatchObject({ apiKeysSuspended: 2 });
    for (const credential of [key, childKey]) expect((await get(endpoint, 'runs.list?input=%7B%7D', credential)).status).toBe(401);
    const suspended = data<{ id: string; suspended: boolean }[]>(await get(endpoint, 'apiKeys.list', owner));
    expect(suspended.filter((k) => k.id === made.id || k.id === child.id).map((k) => k.suspended)).toEqual([true, true]);
    // The CLI bootstrap key has no creator and keeps working.
    expect((await get(endpoint, 'users.list', bootstrapKey)).status).toBe(200);
  });

  it('[integrity #15] a flood of unknown emails spends a global budget of hashes and does not hold up a real login', async () => {
    const user = await newUser('operator');
    const guarded = await listen({ hashing: { maxConcurrent: 1, maxQueued: 8 }, unknownEmailBudget: { burst: 3, perMinute: 1 } });
    const since = await headSeq();
    const flood = Array.from({ length: 40 }, (_, i) => post(guarded, 'session.login', { tenant: 'acme', email: `flood${i}-${nextUser}@acme.test`, password: 'wrong password!!' }));
    const real = await post(guarded, 'session.login', { tenant: 'acme', email: user.email, password: PASSWORD });
    const replies = await Promise.all(flood);
    expect(real.status).toBe(200);
    // Answered like any wrong password: the reply does not say whether the email exists.
    expect(replies.map((r) => `${r.status} ${r.body.error?.message}`)).toEqual(Array<string>(40).fill(`401 ${BAD_CREDENTIALS}`));
    const failures = (await auditRows('login-failed', since)).filter((r) => r.meta['reason'] === 'unknown-email');
    expect(failures).toHaveLength(40);
    // Only the budget's three were hashed; the rest were answered without touching the thread pool.
    expect(failures.filter((r) => r.meta['hashed'] !== false)).toHaveLength(3);
  });

  it('[integrity #15] past the hashing queue a login is refused at once with 503 and Retry-After, and audited', async () => {
    const slowScrypt = { N: 2 ** 14, r: 8, p: 1 };
    const users = await Promise.all(
      Array.from({ length: 6 }, (_, i) => createAdminUserInTenant(db, { tenant: 'acme', email: `busy${i}-${nextUser}@acme.test`, role: 'auditor', password: PASSWORD }, { scrypt: slowScrypt })),
    );
    const guarded = await listen({ scrypt: slowScrypt, hashing: { maxConcurrent: 1, maxQueued: 1 } });
    const since = await headSeq();
    const replies = await Promise.all(
      users.flatMap((u) => [0, 1].map(async () => {
        const response = await fetch(`${guarded.base}/trpc/session.login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ tenant: 'acme', email: u.email, password: 'wrong password!!' }),
        });
        const body = (await response.json()) as Reply['body'];
        return { status: response.status, retryAfter: response.headers.get('retry-after'), message: body.error?.message ?? '' };
      })),
    );
    const busy = replies.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(replies.filter((r) => r.status !== 503).every((r) => r.status === 401 && r.message === BAD_CREDENTIALS)).toBe(true);
    for (const reply of busy) {
      expect(Number(reply.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(reply.message).toMatch(/busy/);
    }
    const audited = (await auditRows('login-failed', since)).filter((r) => r.meta['reason'] === 'busy');
    expect(audited).toHaveLength(busy.length);
  });

  it('[integrity #15] counts two IPv6 addresses of one /64 as one source', async () => {
    const settings = { ...defaultAuthSettings, scrypt: fastScrypt, ipThrottle: { threshold: 3, baseMs: 60_000, maxMs: 3_600_000, windowMs: 3_600_000 } };
    const attempt = async (sourceIp: string) => {
      try {
        await login({ db, settings, sourceIp, now: new Date(clock) }, { tenant: 'acme', email: `v6-${sourceIp}@acme.test`, password: 'wrong password!!' });
        return 'ok';
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    };
    expect(await attempt('2001:db8:5:6::1')).toBe(BAD_CREDENTIALS);
    expect(await attempt('2001:db8:5:6::2')).toBe(BAD_CREDENTIALS);
    expect(await attempt('2001:db8:5:6:aaaa::3')).toBe(BAD_CREDENTIALS);
    expect(await attempt('2001:db8:5:6:ffff:ffff:ffff:ffff')).toBe(TOO_MANY_ATTEMPTS);
    // The next /64 is another source.
    expect(await attempt('2001:db8:5:7::1')).toBe(BAD_CREDENTIALS);
  });

  it('[integrity #16] keys made before creators were recorded get them from the audit trail when migrating', async () => {
    const creator = await newUser('admin');
    const browser = await signIn(creator.email);
    const made = data<{ id: string; key: string }>(await post(endpoint, 'apiKeys.create', { name: 'older', role: 'admin', expiresInDays: 7 }, browser.headers));
    const child = data<{ id: string; key: string }>(await post(endpoint, 'apiKeys.create', { name: 'older-child', role: 'admin', expiresInDays: 7 }, { authorization: `Bearer ${made.key}` }));
    const rotated = data<{ id: string; key: string }>(await post(endpoint, 'apiKeys.rotate', { id: child.id, expiresInDays: 7 }, { authorization: `Bearer ${made.key}` }));
    // As a database upgraded from before migration 0013 holds them: no creator recorded.
    await db.query('UPDATE api_keys SET created_by = NULL, created_by_user = NULL WHERE id = ANY($1::uuid[])', [[made.id, child.id, rotated.id]]);
    await db.query('DELETE FROM schema_migrations WHERE version = 13');
    await migrate(db);
    const rows = await db.query<{ id: string; created_by: string | null; created_by_user: string | null }>(
      'SELECT id, created_by, created_by_user FROM api_keys WHERE id = ANY($1::uuid[])',
      [[made.id, child.id, rotated.id]],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(made.id)).toMatchObject({ created_by: `user:${creator.id}`, created_by_user: creator.id });
    expect(byId.get(child.id)).toMatchObject({ created_by: `api-key:${made.id}`, created_by_user: creator.id });
    expect(byId.get(rotated.id)).toMatchObject({ created_by: `api-key:${made.id}`, created_by_user: creator.id });
    data(await post(endpoint, 'users.disable', { id: creator.id }, owner));
    expect((await get(endpoint, 'runs.list?input=%7B%7D', { authorization: `Bearer ${rotated.key}` })).status).toBe(401);
  });

  it('[integrity #23] refusals by the role ceiling are audited like permission denials', async () => {
    const admin = await signIn((await newUser('admin')).email);
    const someOwner = await newUser('owner');
    const narrowed = data<{ id: string; key: string }>(
      await post(endpoint, 'apiKeys.create', { name: 'narrow', role: 'admin', expiresInDays: 7, permissions: ['keys:read', 'keys:write'] }, owner),
    );
    const since = await headSeq();
    expect((await post(endpoint, 'users.create', { email: `ceiling-${nextUser}@acme.test`, role: 'owner', password: PASSWORD }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'users.setRole', { id: someOwner.id, role: 'auditor' }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'users.unlock', { id: someOwner.id }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'apiKeys.create', { name: 'too-high', role: 'owner', expiresInDays: 7 }, admin.headers)).status).toBe(403);
    expect((await post(endpoint, 'apiKeys.create', { name: 'wider', role: 'admin', expiresInDays: 7 }, { authorization: `Bearer ${narrowed.key}` })).status).toBe(403);
    const denied = await auditRows('permission-denied', since);
    expect(denied.map((r) => [r.target, r.meta['reason'], r.meta['wantedRole']])).toEqual([
      ['users.create', 'role-ceiling', 'owner'],
      ['users.setRole', 'role-ceiling', 'owner'],
      ['users.unlock', 'role-ceiling', 'owner'],
      ['apiKeys.create', 'role-ceiling', 'owner'],
      ['apiKeys.create', 'role-ceiling', 'admin'],
    ]);
    expect(denied.slice(0, 4).every((r) => r.actor_type === 'admin' && r.actor_id === admin.view.user.id && r.meta['role'] === 'admin')).toBe(true);
    expect(denied[4]).toMatchObject({ actor_type: 'api-key', actor_id: narrowed.id, meta: { keyPermissions: ['keys:read', 'keys:write'] } });
  });

  it('[integrity #23] prunes login_throttle rows that are neither locked nor recent', async () => {
    const now = new Date(clock);
    const hoursAgo = (h: number) => new Date(clock - h * 3_600_000);
    await db.query(
      `INSERT INTO login_throttle (key, failures, last_failure_at, locked_until) VALUES
         ('ip:stale', 3, $1, NULL), ('ip:stale-lock-over', 60, $1, $2), ('ip:locked', 60, $1, $3), ('ip:recent', 2, $4, NULL)`,
      [hoursAgo(48), hoursAgo(47), new Date(clock + 60_000), hoursAgo(1)],
    );
    expect(await pruneLoginThrottle(db, defaultAuthSettings, now)).toBe(2);
    const left = await db.query<{ key: string }>('SELECT key FROM login_throttle ORDER BY key');
    expect(left.map((r) => r.key)).toEqual(['ip:locked', 'ip:recent']);
  });

  it('brute force: 1,000 bad passwords from one address get in nowhere, and every one is audited', async () => {
    const accounts = await Promise.all([newUser('owner'), newUser('admin'), newUser('operator')]);
    const emails = [...accounts.map((a) => a.email), 'nobody@acme.test', 'root@acme.test', 'admin@example.com'];
    const attacker = endpoint;
    const since = await headSeq();
    const deadline = Date.now() + 120_000;
    const outcomes = new Map<string, number>();
    const ATTEMPTS = 1_000;
    const PARALLEL = 10;
    let sent = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (sent < ATTEMPTS && Date.now() < deadline) {
          const n = sent;
          sent += 1;
          const reply = await post(attacker, 'session.login', { tenant: 'acme', email: emails[n % emails.length], password: `guess-${n}-${PASSWORD}` });
          const key = `${reply.status} ${reply.body.error?.message ?? 'ok'}`;
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        }
      }),
    );
    expect(sent).toBe(ATTEMPTS);
    expect(Object.fromEntries(outcomes)).toEqual({
      [`401 ${BAD_CREDENTIALS}`]: expect.any(Number),
      [`401 ${TOO_MANY_ATTEMPTS}`]: expect.any(Number),
    });
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBe(ATTEMPTS);
    expect(await db.query('SELECT 1 FROM admin_sessions WHERE user_id = ANY($1::uuid[])', [accounts.map((a) => a.id)])).toHaveLength(0);

    const failures = await auditRows('login-failed', since);
    expect(failures).toHaveLength(ATTEMPTS);
    expect(failures.every((r) => r.outcome === 'denied' && r.source_ip?.includes('127.0.0.1') && emails.includes(r.target ?? ''))).toBe(true);
    expect(JSON.stringify(failures)).not.toContain(PASSWORD);
    expect(await auditRows('login', since)).toHaveLength(0);
    // No account had more than five passwords checked; after the address limit nothing was checked.
    for (const account of accounts) {
      expect(failures.filter((r) => r.target === account.email && r.meta['reason'] === 'bad-password').length).toBeLessThanOrEqual(5);
    }
    const checked = failures.filter((r) => r.meta['reason'] === 'bad-password' || r.meta['reason'] === 'unknown-email').length;
    expect(checked).toBeLessThanOrEqual(defaultAuthSettings.ipThrottle.threshold);
    expect(failures.filter((r) => r.meta['reason'] === 'ip-throttled').length).toBeGreaterThan(ATTEMPTS - 100);
  });
});
