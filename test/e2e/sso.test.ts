/**
 * Single sign-on against a real OpenID Provider (oidc-provider on loopback, test/src/oidc-provider.ts)
 * and the control plane's HTTP handler on PostgreSQL. The flow is driven over plain HTTP with a
 * cookie jar per origin, exactly as a browser follows redirects; the Chromium walk-through is in
 * sso-browser.test.ts. Each refusal is checked by its audited reason, and each tampered token by
 * the provider's count of tokens it rewrote, so a refusal for the wrong reason fails the test.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  bootstrapTenant,
  connectPostgres,
  createAdminUserInTenant,
  createHttpHandler,
  type Database,
  Dispatcher,
  migrate,
  secretBoxFromKey,
  signerFromSecretKey,
} from '@airlock/api';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { type IdpUser, startTestIdp, type TestIdp } from '../src/oidc-provider.ts';

const silent = { warn: () => undefined, error: () => undefined };
const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };
const TENANT = 'acme';
const CLIENT_ID = 'airlock-console';
const CLIENT_SECRET = randomBytes(24).toString('base64url');
const MAX_HOPS = 12;

/** Cookies per origin, kept the way a browser keeps them across redirects. */
class CookieJar {
  readonly #byOrigin = new Map<string, Map<string, string>>();

  header(url: URL): string {
    return [...(this.#byOrigin.get(url.origin) ?? new Map<string, string>())].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  store(url: URL, response: Response): void {
    const jar = this.#byOrigin.get(url.origin) ?? new Map<string, string>();
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const separator = pair.indexOf('=');
      const name = pair.slice(0, separator).trim();
      const value = pair.slice(separator + 1).trim();
      if (attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute)) || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    this.#byOrigin.set(url.origin, jar);
  }

  get(origin: string, name: string): string | undefined {
    return this.#byOrigin.get(origin)?.get(name);
  }

  copy(): CookieJar {
    const copy = new CookieJar();
    for (const [origin, cookies] of this.#byOrigin) copy.#byOrigin.set(origin, new Map(cookies));
    return copy;
  }
}

async function get(url: URL, jar: CookieJar): Promise<Response> {
  const response = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(url) } });
  jar.store(url, response);
  return response;
}

/**
 * Follows redirects from `start` until one leads to a URL `stop` accepts (returned unvisited), or a
 * response that is not a redirect (returned with that URL).
 */
async function follow(start: URL, jar: CookieJar, stop: (url: URL) => boolean): Promise<URL> {
  let url = start;
  for (let hop = 0; hop < MAX_HOPS; hop += 1) {
    const response = await get(url, jar);
    await response.arrayBuffer();
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) return url;
    url = new URL(location, url);
    if (stop(url)) return url;
  }
  throw new Error(`more than ${MAX_HOPS} redirects from ${start.href}`);
}

describe('[identity:oidc] single sign-on through a real OpenID Provider', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let idp: TestIdp;
  let ownerKey: Record<string, string>;
  let adminKey: Record<string, string>;
  let providerId: string;
  const localOwner = { email: 'root@acme.test', password: randomBytes(18).toString('base64url') };
  const localAdmin = { email: 'alice@acme.test', password: randomBytes(18).toString('base64url') };

  const users: IdpUser[] = [
    { sub: 'alice-0001', email: 'alice@acme.test', groups: ['airlock-admins'] },
    { sub: 'bob-0002', email: 'bob@acme.test', groups: ['airlock-auditors', 'unrelated'] },
    { sub: 'carol-0003', email: 'carol@acme.test', groups: ['unrelated'] },
    { sub: 'olga-0004', email: 'olga@acme.test', groups: ['airlock-owners'] },
  ];

  async function trpc(path: string, input: unknown, headers: Record<string, string>, method: 'GET' | 'POST' = 'POST') {
    const url = method === 'GET' ? `${base}/trpc/${path}${input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`}` : `${base}/trpc/${path}`;
    const response = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, ...(method === 'POST' ? { body: JSON.stringify(input) } : {}) });
    const body = (await response.json()) as { result?: { data: unknown }; error?: { message: string; data?: { code: string } } };
    return { status: response.status, data: body.result?.data, error: body.error };
  }

  const startUrl = (provider = providerId) => new URL(`${base}/auth/oidc/start?tenant=${TENANT}&provider=${provider}`);
  const atConsole = (url: URL) => url.origin === base && url.pathname === '/';
  const atCallback = (url: URL) => url.origin === base && url.pathname === '/auth/oidc/callback';

  /** A whole sign-in as `sub`: where the control plane sent the browser last, and the jar. */
  async function signIn(sub: string, jar = new CookieJar()): Promise<{ landed: URL; jar: CookieJar }> {
    idp.autoLogin = sub;
    const landed = await follow(startUrl(), jar, atConsole);
    return { landed, jar };
  }

  async function me(jar: CookieJar): Promise<{ user: { id: string; email: string; role: string } } | null> {
    const url = new URL(`${base}/trpc/session.me`);
    const { data } = await trpc('session.me', undefined, { cookie: jar.header(url) }, 'GET');
    return data as { user: { id: string; email: string; role: string } } | null;
  }

  async function lastRefusal(): Promise<{ reason: string; stage: string } | undefined> {
    const [row] = await db.forSystem().query<{ meta: { reason: string; stage: string } }>(
      "SELECT meta FROM audit_events WHERE action = 'sso-login-failed' ORDER BY id DESC LIMIT 1",
    );
    return row?.meta;
  }

  async function refusalCount(): Promise<number> {
    const [row] = await db.forSystem().query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'sso-login-failed'");
    return row?.n ?? 0;
  }

  async function setMappings(mappings: Array<{ claimValue: string; role: string }>): Promise<void> {
    const result = await trpc('sso.setMappings', { providerId, mappings }, ownerKey);
    expect(result.status).toBe(200);
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: TENANT, keyName: 'first', expiresInDays: 30 });
    ownerKey = { authorization: `Bearer ${boot.key}` };
    await createAdminUserInTenant(db, { tenant: TENANT, email: localOwner.email, role: 'owner', password: localOwner.password }, { scrypt: fastScrypt });
    await createAdminUserInTenant(db, { tenant: TENANT, email: localAdmin.email, role: 'admin', password: localAdmin.password }, { scrypt: fastScrypt });
    const handler = createHttpHandler(
      {
        db,
        dispatcher: new Dispatcher(50),
        now: () => new Date(),
        logger: silent,
        signer: signerFromSecretKey(generateKeyPair().secretKey),
        alerts: { secretBox: secretBoxFromKey(randomBytes(32)), webhook: { timeoutMs: 2_000, allowLoopback: true } },
        auth: { scrypt: fastScrypt },
      },
      { maxBodyBytes: 256 * 1024, rateLimits: { ip: { points: 10_000, durationSeconds: 60 } } },
    );
    server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    idp = await startTestIdp({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: `${base}/auth/oidc/callback`, users });

    const created = await trpc('sso.createProvider', { name: 'Acme IdP', issuer: idp.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, roleClaim: 'groups' }, ownerKey);
    expect(created.error).toBeUndefined();
    providerId = (created.data as { id: string }).id;
    const [tenant] = await db.forSystem().query<{ id: string }>('SELECT id FROM tenants WHERE name = $1', [TENANT]);
    const key = await trpc('apiKeys.create', { name: 'second', role: 'admin', expiresInDays: 1 }, ownerKey);
    adminKey = { authorization: `Bearer ${(key.data as { key: string }).key}` };
    expect(tenant).toBeDefined();
    await setMappings([
      { claimValue: 'airlock-owners', role: 'owner' },
      { claimValue: 'airlock-admins', role: 'admin' },
      { claimValue: 'airlock-auditors', role: 'auditor' },
    ]);
  });

  afterAll(async () => {
    await idp?.close();
    server?.close();
    await db?.close();
  });

  it('keeps the client secret sealed and lets only an owner manage providers', async () => {
    const [row] = await db.forSystem().query<{ client_secret_sealed: string }>('SELECT client_secret_sealed FROM oidc_providers WHERE id = $1', [providerId]);
    expect(row?.client_secret_sealed).toMatch(/^v1\./);
    expect(row?.client_secret_sealed).not.toContain(CLIENT_SECRET);
    const listed = await trpc('sso.providers', undefined, ownerKey, 'GET');
    expect(JSON.stringify(listed.data)).not.toContain(CLIENT_SECRET);
    const byAdmin = await trpc('sso.createProvider', { name: 'Other', issuer: 'https://idp.example.com', clientId: 'x', clientSecret: 'y' }, adminKey);
    expect(byAdmin.error?.data?.code).toBe('FORBIDDEN');
    const plainHttp = await trpc('sso.createProvider', { name: 'Other', issuer: 'http://idp.example.com', clientId: 'x', clientSecret: 'y' }, ownerKey);
    expect(plainHttp.error?.message).toMatch(/https/);
    const offered = await trpc('sso.loginProviders', { tenant: TENANT }, {}, 'GET');
    expect(offered.data).toEqual([{ id: providerId, name: 'Acme IdP' }]);
  });

  it('signs a user in just in time with the role their group maps to, bound to (tenant, issuer, subject)', async () => {
    const { landed, jar } = await signIn('alice-0001');
    expect(landed.href).toBe(`${base}/`);
    const session = await me(jar);
    expect(session?.user).toMatchObject({ email: 'alice@acme.test', role: 'admin' });
    // The local account with the same email is another account: neither reaches the other.
    const [account] = await db.forSystem().query<{ id: string; oidc_issuer: string; oidc_subject: string; password_hash: string | null }>(
      'SELECT id, oidc_issuer, oidc_subject, password_hash FROM admin_users WHERE oidc_subject = $1',
      ['alice-0001'],
    );
    expect(account).toMatchObject({ oidc_issuer: idp.issuer, oidc_subject: 'alice-0001', password_hash: null });
    expect(account?.id).toBe(session?.user.id);
    const local = await trpc('session.login', { tenant: TENANT, ...localAdmin }, {});
    expect(local.status).toBe(200);
    expect((local.data as { user: { id: string } }).user.id).not.toBe(account?.id);
    const [audited] = await db.forSystem().query<{ actor_id: string; meta: { issuer: string; subject: string; role: string } }>(
      "SELECT actor_id, meta FROM audit_events WHERE action = 'sso-login' ORDER BY id DESC LIMIT 1",
    );
    expect(audited).toMatchObject({ actor_id: account?.id, meta: { issuer: idp.issuer, subject: 'alice-0001', role: 'admin' } });

    // The same subject signs in again: the same account, not a second one.
    await signIn('alice-0001');
    const [count] = await db.forSystem().query<{ n: number }>('SELECT count(*)::int AS n FROM admin_users WHERE oidc_subject = $1', ['alice-0001']);
    expect(count?.n).toBe(1);
  });

  it('applies the group mapping at every sign-in: an IdP group change and a mapping change take effect at the next login', async () => {
    const first = await signIn('bob-0002');
    expect((await me(first.jar))?.user.role).toBe('auditor');
    idp.users.set('bob-0002', { sub: 'bob-0002', email: 'bob@acme.test', groups: ['airlock-admins'] });
    const second = await signIn('bob-0002');
    expect((await me(second.jar))?.user.role).toBe('admin');
    // The session opened before the change carries the role as it is now, not as it was.
    expect((await me(first.jar))?.user.role).toBe('admin');
    await setMappings([
      { claimValue: 'airlock-owners', role: 'owner' },
      { claimValue: 'airlock-admins', role: 'operator' },
      { claimValue: 'airlock-auditors', role: 'auditor' },
    ]);
    const third = await signIn('bob-0002');
    expect((await me(third.jar))?.user.role).toBe('operator');
    await setMappings([
      { claimValue: 'airlock-owners', role: 'owner' },
      { claimValue: 'airlock-admins', role: 'admin' },
      { claimValue: 'airlock-auditors', role: 'auditor' },
    ]);
  });

  it('refuses a user in no mapped group, creates no account and audits it', async () => {
    const { landed, jar } = await signIn('carol-0003');
    expect(landed.search).toBe('?sso=failed');
    expect(await me(jar)).toBeNull();
    expect(await lastRefusal()).toMatchObject({ reason: 'unmapped-user' });
    const accounts = await db.forSystem().query('SELECT id FROM admin_users WHERE oidc_subject = $1', ['carol-0003']);
    expect(accounts).toHaveLength(0);
  });

  it('takes access away when the IdP removes the user from every mapped group: next login refused, open sessions ended', async () => {
    idp.users.set('dave-0005', { sub: 'dave-0005', email: 'dave@acme.test', groups: ['airlock-admins'] });
    const before = await signIn('dave-0005');
    expect((await me(before.jar))?.user.role).toBe('admin');
    idp.users.set('dave-0005', { sub: 'dave-0005', email: 'dave@acme.test', groups: ['unrelated'] });
    const after = await signIn('dave-0005');
    expect(after.landed.search).toBe('?sso=failed');
    expect(await lastRefusal()).toMatchObject({ reason: 'unmapped-user' });
    expect(await me(before.jar)).toBeNull();
    // Deleted at the IdP altogether: the IdP signs no one in as dave, so no code ever reaches us.
    idp.users.delete('dave-0005');
    const gone = await signIn('dave-0005');
    expect(gone.landed.origin).toBe(idp.issuer);
    expect(await me(gone.jar)).toBeNull();
  });

  /** A sign-in whose ID token the IdP rewrites with `tamper`; returns the audited refusal. */
  async function tamperedSignIn(tamper: NonNullable<TestIdp['tamper']>): Promise<{ reason: string } | undefined> {
    const refusals = await refusalCount();
    const rewritten = idp.tampered;
    idp.tamper = tamper;
    try {
      const { landed, jar } = await signIn('alice-0001');
      expect(landed.search).toBe('?sso=failed');
      expect(await me(jar)).toBeNull();
    } finally {
      idp.tamper = null;
    }
    expect(idp.tampered).toBe(rewritten + 1);
    expect(await refusalCount()).toBe(refusals + 1);
    return lastRefusal();
  }

  it('refuses an ID token for another audience', async () => {
    expect(await tamperedSignIn((claims) => ({ ...claims, aud: 'another-client' }))).toMatchObject({ reason: 'wrong-audience' });
  });

  it('refuses an ID token with a mismatched nonce', async () => {
    expect(await tamperedSignIn((claims) => ({ ...claims, nonce: 'forged-nonce' }))).toMatchObject({ reason: 'nonce-mismatch' });
  });

  it('refuses an expired ID token', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await tamperedSignIn((claims) => ({ ...claims, iat: now - 7_200, exp: now - 3_600 }))).toMatchObject({ reason: 'expired-id-token' });
  });

  it('refuses an ID token from an unknown issuer, and a login naming no provider of the tenant', async () => {
    expect(await tamperedSignIn((claims) => ({ ...claims, iss: 'https://unknown-issuer.example.com' }))).toMatchObject({ reason: 'wrong-issuer' });
    const jar = new CookieJar();
    const landed = await follow(startUrl('00000000-0000-4000-8000-000000000000'), jar, atConsole);
    expect(landed.search).toBe('?sso=failed');
    expect(await lastRefusal()).toMatchObject({ reason: 'unknown-provider', stage: 'begin' });
  });

  it('refuses a replayed authorization code, whether replayed with its own state or under a fresh one', async () => {
    idp.autoLogin = 'alice-0001';
    const jar = new CookieJar();
    const callback = await follow(startUrl(), jar, atCallback);
    const code = callback.searchParams.get('code');
    expect(code).toBeTruthy();
    const replayJar = jar.copy();
    const first = await follow(callback, jar, atConsole);
    expect(first.href).toBe(`${base}/`);
    expect((await me(jar))?.user.email).toBe('alice@acme.test');

    // The same callback again, from a browser holding the same binding cookie: the state is spent.
    const replayed = await follow(callback, replayJar, atConsole);
    expect(replayed.search).toBe('?sso=failed');
    expect(await lastRefusal()).toMatchObject({ reason: 'bad-state' });

    // The code under a state of a fresh login: the IdP refuses to redeem it twice.
    const tokenRequests = idp.tokenRequests;
    const freshJar = new CookieJar();
    const freshCallback = await follow(startUrl(), freshJar, atCallback);
    freshCallback.searchParams.set('code', code ?? '');
    const reused = await follow(freshCallback, freshJar, atConsole);
    expect(reused.search).toBe('?sso=failed');
    expect(idp.tokenRequests).toBe(tokenRequests + 1);
    expect(await lastRefusal()).toMatchObject({ reason: 'code-rejected' });
  });

  it('refuses a callback carried to another browser (login CSRF)', async () => {
    idp.autoLogin = 'alice-0001';
    const callback = await follow(startUrl(), new CookieJar(), atCallback);
    const victim = new CookieJar();
    const landed = await follow(callback, victim, atConsole);
    expect(landed.search).toBe('?sso=failed');
    expect(await me(victim)).toBeNull();
    expect(await lastRefusal()).toMatchObject({ reason: 'browser-mismatch' });
  });

  it('turns local passwords off only once an owner signed in through SSO, keeping one break-glass owner', async () => {
    const [root] = await db.forSystem().query<{ id: string }>('SELECT id FROM admin_users WHERE email = $1 AND oidc_subject IS NULL', [localOwner.email]);
    const early = await trpc('sso.setLocalPasswords', { enabled: false, breakGlassUserId: root?.id }, ownerKey);
    expect(early.error?.message).toMatch(/owner has signed in/);
    const owner = await signIn('olga-0004');
    expect((await me(owner.jar))?.user.role).toBe('owner');
    const missing = await trpc('sso.setLocalPasswords', { enabled: false }, ownerKey);
    expect(missing.error?.message).toMatch(/break-glass/);
    const off = await trpc('sso.setLocalPasswords', { enabled: false, breakGlassUserId: root?.id }, ownerKey);
    expect(off.data).toMatchObject({ localPasswords: false, breakGlassUserId: root?.id });

    const refused = await trpc('session.login', { tenant: TENANT, ...localAdmin }, {});
    expect(refused.status).toBe(401);
    expect(refused.error?.message).toMatch(/single sign-on/);
    const breakGlass = await trpc('session.login', { tenant: TENANT, ...localOwner }, {});
    expect(breakGlass.status).toBe(200);
    const [audited] = await db.forSystem().query<{ meta: { breakGlass?: boolean } }>(
      "SELECT meta FROM audit_events WHERE action = 'login' AND outcome = 'success' ORDER BY id DESC LIMIT 1",
    );
    expect(audited?.meta.breakGlass).toBe(true);
    // The last enabled provider cannot be switched off while it is the only way in.
    const disable = await trpc('sso.updateProvider', { id: providerId, enabled: false }, ownerKey);
    expect(disable.error?.data?.code).toBe('CONFLICT');
    const on = await trpc('sso.setLocalPasswords', { enabled: true }, ownerKey);
    expect(on.data).toMatchObject({ localPasswords: true, breakGlassUserId: null });
    expect((await trpc('session.login', { tenant: TENANT, ...localAdmin }, {})).status).toBe(200);
  });
});
