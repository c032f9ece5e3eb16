/**
 * OAuth 2.0 client credentials over real HTTP against PostgreSQL: the token endpoint with both
 * client authentication methods and its RFC 6749 §5.2 refusals, access tokens on tRPC through the
 * same procedure builder as API keys, client management and its audit trail, immediate revocation,
 * and per-client rate limits.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair as generateAgentKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { createApiKey, type OAuthSettings } from '@airlock/auth';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, generateTokenKeyPem, migrate, signerFromSecretKey, tokenKeysFromPems } from './index.ts';
import { type Call, data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateAgentKeyPair().secretKey);
const ISSUER = 'https://airlock.test';
const TOKEN_ENDPOINT = `${ISSUER}/oauth/token`;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface TokenReply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

describe('OAuth 2.0 client credentials', () => {
  let db: Database;
  let tenantId: string;
  let ownerKey: string;
  let operatorKey: string;
  let base: string;
  let limitedBase: string;
  let oauth: OAuthSettings;
  /** Moves the server's clock, for expiry. */
  let clockOffsetMs = 0;
  const servers: Server[] = [];
  let integrationA = '';
  let integrationB = '';

  beforeAll(async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    db = connectPostgres(url);
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'oauth', keyName: 'owner', expiresInDays: 30 });
    tenantId = boot.tenantId;
    ownerKey = boot.key;
    operatorKey = (await createApiKey(db, { tenantId, name: 'operator', role: 'operator', expiresInDays: 1 }, new Date())).key;
    oauth = { issuer: ISSUER, keys: await tokenKeysFromPems(generateTokenKeyPem()) };
    const deps = {
      db,
      dispatcher: new Dispatcher(50),
      now: () => new Date(Date.now() + clockOffsetMs),
      logger: silent,
      signer,
      oauth,
    };
    for (const rateLimits of [{}, { 'oauth-client': { points: 3, durationSeconds: 60 } }]) {
      const { server, base: url } = await listenOnLoopback(createHttpHandler(deps, { maxBodyBytes: 64 * 1024, rateLimits }));
      servers.push(server);
      if (base === undefined) base = url;
      else limitedBase = url;
    }
    const [agent] = await db.query<{ id: string }>("INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, 'k', 'h', '1') RETURNING id", [tenantId]);
    for (const name of ['payroll', 'ledger']) {
      const spec = {
        name,
        agentId: agent?.id,
        source: { connector: 'local@1', config: { directory: '/srv/in' } },
        destination: { connector: 'local@1', config: { directory: '/srv/out' } },
        recipients: [],
      };
      const [row] = await db.query<{ id: string }>('INSERT INTO integrations (tenant_id, agent_id, name, spec) VALUES ($1, $2, $3, $4) RETURNING id', [tenantId, agent?.id, name, JSON.stringify(spec)]);
      if (name === 'payroll') integrationA = row?.id ?? '';
      else integrationB = row?.id ?? '';
    }
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await db.close();
  });

  const asKey = (key: string) => ({ authorization: `Bearer ${key}` });

  function query(path: string, input: unknown, headers: Record<string, string>, at = base): Promise<Call> {
    return send(at, path, input, headers, 'GET');
  }
  function mutate(path: string, input: unknown, headers: Record<string, string>, at = base): Promise<Call> {
    return send(at, path, input, headers, 'POST');
  }

  async function tokenRequest(form: Record<string, string>, headers: Record<string, string> = {}, at = base): Promise<TokenReply> {
    const response = await fetch(`${at}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
  }

  function basic(clientId: string, secret: string): Record<string, string> {
    return { authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}` };
  }

  async function secretClient(extra: Record<string, unknown> = {}): Promise<{ id: string; clientId: string; clientSecret: string }> {
    const created = data<{ id: string; clientId: string; clientSecret: string }>(
      await mutate('oauthClients.create', { name: `c-${randomUUID()}`, role: 'admin', authMethod: 'client_secret_basic', ...extra }, asKey(ownerKey)),
    );
    return created;
  }

  async function tokenFor(clientId: string, secret: string, scope?: string, at = base): Promise<string> {
    const reply = await tokenRequest({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, basic(clientId, secret), at);
    if (reply.status !== 200 || typeof reply.body['access_token'] !== 'string') throw new Error(`token refused: ${JSON.stringify(reply.body)}`);
    return reply.body['access_token'];
  }

  async function auditActions(target: string): Promise<string[]> {
    const rows = await db.query<{ action: string }>('SELECT action FROM audit_events WHERE target = $1 ORDER BY id', [target]);
    return rows.map((row) => row.action);
  }

  it('[identity:oauth] serves RFC 8414 metadata and a JWKS with public keys only', async () => {
    const metadata = (await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: ISSUER,
      token_endpoint: TOKEN_ENDPOINT,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt'],
    });
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', kid: oauth.keys.current.kid });
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('[identity:oauth] issues a short-lived signed JWT to a secret client, and tRPC accepts it as a bearer', async () => {
    const client = await secretClient();
    expect(client.clientSecret).toMatch(/^alcs_/);
    const reply = await tokenRequest({ grant_type: 'client_credentials' }, basic(client.clientId, client.clientSecret));
    expect(reply.status).toBe(200);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    expect(reply.body).toMatchObject({ token_type: 'Bearer', expires_in: 600 });
    const token = String(reply.body['access_token']);
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet({ keys: jwks.keys }), { issuer: ISSUER, audience: `${ISSUER}/trpc` });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt', kid: oauth.keys.current.kid });
    expect(payload.sub).toBe(client.clientId);
    expect(typeof payload.jti).toBe('string');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBeLessThanOrEqual(900);
    const listed = await query('agents.list', undefined, asKey(token));
    expect(listed.status).toBe(200);
    // The secret is stored as a hash only.
    const [row] = await db.query<{ stored: string }>('SELECT row_to_json(c)::text AS stored FROM oauth_clients c WHERE client_id = $1', [client.clientId]);
    expect(row?.stored).not.toContain(client.clientSecret);
    expect(await auditActions(client.id)).toEqual(['oauth-client-create']);
  });

  it('[identity:oauth] refuses bad requests with RFC 6749 §5.2 errors', async () => {
    const client = await secretClient();
    const wrong = await tokenRequest({ grant_type: 'client_credentials' }, basic(client.clientId, `${client.clientSecret}x`));
    expect(wrong.status).toBe(401);
    expect(wrong.body['error']).toBe('invalid_client');
    expect(wrong.headers.get('www-authenticate')).toContain('Basic');
    expect((await tokenRequest({ grant_type: 'client_credentials' }, basic('alc_aaaaaaaaaaaaaaaaaaaa', 'x'))).body['error']).toBe('invalid_client');
    expect((await tokenRequest({ grant_type: 'client_credentials' })).body['error']).toBe('invalid_client');
    const post = await tokenRequest({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret });
    expect(post.body['error']).toBe('invalid_client');
    const grant = await tokenRequest({ grant_type: 'password' }, basic(client.clientId, client.clientSecret));
    expect([grant.status, grant.body['error']]).toEqual([400, 'unsupported_grant_type']);
    const missing = await tokenRequest({}, basic(client.clientId, client.clientSecret));
    expect([missing.status, missing.body['error']]).toEqual([400, 'invalid_request']);
    const twice = await fetch(`${base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(client.clientId, client.clientSecret) },
      body: 'grant_type=client_credentials&grant_type=client_credentials',
    });
    expect([twice.status, ((await twice.json()) as Record<string, unknown>)['error']]).toEqual([400, 'invalid_request']);
    const json = await fetch(`${base}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json', ...basic(client.clientId, client.clientSecret) }, body: '{}' });
    expect(json.status).toBe(400);
    const scope = await tokenRequest({ grant_type: 'client_credentials', scope: 'agents:read no:such' }, basic(client.clientId, client.clientSecret));
    expect([scope.status, scope.body['error']]).toEqual([400, 'invalid_scope']);
    const refused = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM audit_events WHERE action = 'oauth-token-refused' AND target = $1", [client.clientId]);
    expect(Number(refused[0]?.n)).toBeGreaterThanOrEqual(4);
  });

  it('[identity:oauth] narrows a token to the scope asked for', async () => {
    const client = await secretClient();
    const token = await tokenFor(client.clientId, client.clientSecret, 'agents:read');
    expect((await query('agents.list', undefined, asKey(token))).status).toBe(200);
    const denied = await query('integrations.list', undefined, asKey(token));
    expect(denied.body.error?.data?.code).toBe('FORBIDDEN');
  });

  describe('private_key_jwt', () => {
    let privateKey: CryptoKey;
    let otherKey: CryptoKey;
    let client: { id: string; clientId: string; clientSecret: string | null };

    beforeAll(async () => {
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateKey = pair.privateKey;
      otherKey = (await generateKeyPair('ES256')).privateKey;
      const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
      client = data(await mutate('oauthClients.create', { name: 'jwt-client', role: 'operator', authMethod: 'private_key_jwt', jwks: { keys: [publicJwk] } }, asKey(ownerKey)));
      expect(client.clientSecret).toBeNull();
    });

    function assertion(claims: Partial<{ iss: string; sub: string; aud: string; exp: number; jti: string | null }> = {}, key: CryptoKey = privateKey): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      const full = { iss: client.clientId, sub: client.clientId, aud: TOKEN_ENDPOINT, exp: now + 60, jti: randomUUID(), ...claims };
      const jwt = new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(full.iss).setSubject(full.sub).setAudience(full.aud).setExpirationTime(full.exp).setIssuedAt(now);
      if (full.jti !== null) jwt.setJti(full.jti);
      return jwt.sign(key);
    }

    const form = (jwt: string) => ({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt });

    it('[identity:oauth] issues a token for a valid assertion, aimed at the token endpoint or the issuer', async () => {
      for (const aud of [TOKEN_ENDPOINT, ISSUER]) {
        const reply = await tokenRequest(form(await assertion({ aud })));
        expect(reply.status).toBe(200);
        const token = String(reply.body['access_token']);
        expect((await query('agents.list', undefined, asKey(token))).status).toBe(200);
        // An operator client: no agent revocation.
        const revoke = await mutate('agents.revoke', { id: randomUUID() }, asKey(token));
        expect(revoke.body.error?.data?.code).toBe('FORBIDDEN');
      }
    });

    it('[identity:oauth] refuses a replayed jti, a foreign key, a wrong audience, iss other than sub, an expired or far-future assertion', async () => {
      const once = await assertion();
      expect((await tokenRequest(form(once))).status).toBe(200);
      const replay = await tokenRequest(form(once));
      expect([replay.status, replay.body['error'], replay.body['error_description']]).toEqual([401, 'invalid_client', 'client_assertion replayed (jti seen before)']);
      const now = Math.floor(Date.now() / 1000);
      const bad = [
        await assertion({}, otherKey),
        await assertion({ aud: 'https://elsewhere.test/oauth/token' }),
        await assertion({ sub: 'alc_bbbbbbbbbbbbbbbbbbbb' }),
        await assertion({ exp: now - 120 }),
        await assertion({ exp: now + 3_600 }),
        await assertion({ jti: null }),
      ];
      for (const jwt of bad) {
        const reply = await tokenRequest(form(jwt));
        expect([reply.status, reply.body['error']], String(reply.body['error_description'])).toEqual([401, 'invalid_client']);
      }
      const wrongType = await tokenRequest({ ...form(await assertion()), client_assertion_type: 'urn:other' });
      expect(wrongType.body['error']).toBe('invalid_request');
      const withSecret = await tokenRequest(form(await assertion()), basic(client.clientId, 'x'));
      expect(withSecret.body['error']).toBe('invalid_request');
    });

    it('[identity:oauth] rotates to a new JWKS: the old key and its tokens stop', async () => {
      const token = String((await tokenRequest(form(await assertion()))).body['access_token']);
      const next = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(next.publicKey)), kid: 'k1' };
      expect((await mutate('oauthClients.rotate', { id: client.id, jwks: { keys: [jwk] } }, asKey(ownerKey))).status).toBe(200);
      expect((await query('agents.list', undefined, asKey(token))).status).toBe(401);
      expect((await tokenRequest(form(await assertion()))).status).toBe(401);
      privateKey = next.privateKey;
      expect((await tokenRequest(form(await assertion()))).status).toBe(200);
    });
  });

  it('[identity:oauth] refuses a second client of the same name with a conflict, not a server error', async () => {
    const name = `c-${randomUUID()}`;
    expect((await mutate('oauthClients.create', { name, role: 'operator', authMethod: 'client_secret_basic' }, asKey(ownerKey))).status).toBe(200);
    const again = await mutate('oauthClients.create', { name, role: 'operator', authMethod: 'client_secret_basic' }, asKey(ownerKey));
    expect(again.status).toBe(409);
    expect(JSON.stringify(again.body)).toContain(`an OAuth client named ${name} exists`);
  });

  it('[identity:oauth] disabling a client stops its live token at once; enabling, rotating and deleting are audited', async () => {
    const client = await secretClient();
    const token = await tokenFor(client.clientId, client.clientSecret);
    expect((await query('agents.list', undefined, asKey(token))).status).toBe(200);
    expect((await mutate('oauthClients.disable', { id: client.id }, asKey(ownerKey))).status).toBe(200);
    const stopped = await query('agents.list', undefined, asKey(token));
    expect(stopped.status).toBe(401);
    expect((await tokenRequest({ grant_type: 'client_credentials' }, basic(client.clientId, client.clientSecret))).body['error']).toBe('invalid_client');
    expect((await mutate('oauthClients.enable', { id: client.id }, asKey(ownerKey))).status).toBe(200);
    expect((await query('agents.list', undefined, asKey(token))).status).toBe(200);

    const rotated = data<{ clientSecret: string }>(await mutate('oauthClients.rotate', { id: client.id }, asKey(ownerKey)));
    expect(rotated.clientSecret).not.toBe(client.clientSecret);
    expect((await query('agents.list', undefined, asKey(token))).status).toBe(401);
    expect((await tokenRequest({ grant_type: 'client_credentials' }, basic(client.clientId, client.clientSecret))).status).toBe(401);
    const fresh = await tokenFor(client.clientId, rotated.clientSecret);
    expect((await query('agents.list', undefined, asKey(fresh))).status).toBe(200);

    const listed = data<{ id: string; disabledAt: string | null; rotatedAt: string | null }[]>(await query('oauthClients.list', undefined, asKey(ownerKey)));
    expect(listed.find((c) => c.id === client.id)).toMatchObject({ disabledAt: null });
    expect(JSON.stringify(listed)).not.toContain('alcs_');

    expect((await mutate('oauthClients.delete', { id: client.id }, asKey(ownerKey))).status).toBe(200);
    expect((await query('agents.list', undefined, asKey(fresh))).status).toBe(401);
    expect(await auditActions(client.id)).toEqual(['oauth-client-create', 'oauth-client-disable', 'oauth-client-enable', 'oauth-client-rotate', 'oauth-client-delete']);
  });

  it('[identity:oauth] refuses an expired token, a forged or tampered one, and one for another audience', async () => {
    const client = await secretClient();
    const token = await tokenFor(client.clientId, client.clientSecret);
    clockOffsetMs = 16 * 60_000;
    try {
      const expired = await query('agents.list', undefined, asKey(token));
      expect([expired.status, expired.body.error?.message]).toEqual([401, 'access token expired']);
    } finally {
      clockOffsetMs = 0;
    }
    const [head, payload] = token.split('.');
    const forger = await tokenKeysFromPems(generateTokenKeyPem());
    const forged = await new SignJWT({ client_id: client.clientId, scope: 'agents:read', tid: tenantId, gen: 1 })
      .setProtectedHeader({ alg: 'EdDSA', kid: oauth.keys.current.kid, typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setSubject(client.clientId)
      .setAudience(`${ISSUER}/trpc`)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(forger.current.privateKey);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${payload ?? ''}.`;
    const otherAudience = await new SignJWT({ client_id: client.clientId, scope: 'agents:read', tid: tenantId, gen: 1 })
      .setProtectedHeader({ alg: 'EdDSA', kid: oauth.keys.current.kid, typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setSubject(client.clientId)
      .setAudience('https://other.test/api')
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(oauth.keys.current.privateKey);
    const tampered = `${head ?? ''}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()), scope: 'users:write' })).toString('base64url')}.${token.split('.')[2] ?? ''}`;
    for (const bad of [forged, `${unsigned}x`, otherAudience, tampered]) {
      expect((await query('agents.list', undefined, asKey(bad))).status).toBe(401);
    }
    expect(decodeProtectedHeader(forged).kid).toBe(oauth.keys.current.kid);
  });

  it('[identity:oauth] a read-only client reads and changes nothing', async () => {
    const client = await secretClient({ readOnly: true });
    const token = await tokenFor(client.clientId, client.clientSecret);
    expect((await query('integrations.list', undefined, asKey(token))).status).toBe(200);
    const run = await mutate('integrations.runNow', { id: integrationA }, asKey(token));
    expect(run.body.error?.data?.code).toBe('FORBIDDEN');
    const mint = await mutate('apiKeys.create', { name: 'x', role: 'auditor', expiresInDays: 1 }, asKey(token));
    expect(mint.body.error?.data?.code).toBe('FORBIDDEN');
    const denied = await db.query<{ meta: { readOnly?: boolean } }>("SELECT meta FROM audit_events WHERE action = 'permission-denied' AND actor_type = 'oauth-client' AND actor_id = $1", [client.id]);
    expect(denied.map((row) => row.meta.readOnly)).toEqual([true, true]);
  });

  it('[identity:oauth] an integration-limited client sees and runs only its integrations', async () => {
    const client = await secretClient({ role: 'operator', integrations: ['payroll'] });
    const token = await tokenFor(client.clientId, client.clientSecret);
    const listed = data<{ id: string }[]>(await query('integrations.list', undefined, asKey(token)));
    expect(listed.map((i) => i.id)).toEqual([integrationA]);
    expect((await mutate('integrations.runNow', { id: integrationB }, asKey(token))).body.error?.data?.code).toBe('NOT_FOUND');
    const queued = data<{ runId: string }>(await mutate('integrations.runNow', { id: integrationA }, asKey(token)));
    expect(data<{ id: string }>(await query('runs.get', { id: queued.runId }, asKey(token))).id).toBe(queued.runId);
    const otherRun = data<{ runId: string }>(await mutate('integrations.runNow', { id: integrationB }, asKey(ownerKey)));
    expect((await query('runs.get', { id: otherRun.runId }, asKey(token))).body.error?.data?.code).toBe('NOT_FOUND');
    expect((await mutate('runs.cancel', { id: otherRun.runId }, asKey(token))).body.error?.data?.code).toBe('NOT_FOUND');
    const runs = data<{ id: string }[]>(await query('runs.list', { limit: 50 }, asKey(token)));
    expect(runs.map((r) => r.id)).toEqual([queued.runId]);
    // Everything not confined to integrations is refused outright.
    expect((await query('agents.list', undefined, asKey(token))).body.error?.data?.code).toBe('FORBIDDEN');
    expect((await mutate('oauthClients.create', { name: 'x', role: 'admin', authMethod: 'client_secret_basic', integrations: ['nope'] }, asKey(ownerKey))).body.error?.message).toContain(
      'no integration named "nope"',
    );
  });

  it('[identity:oauth] nobody creates or manages a client holding more than they hold', async () => {
    const above = await mutate('oauthClients.create', { name: 'x', role: 'admin', authMethod: 'client_secret_basic' }, asKey(operatorKey));
    expect(above.body.error?.data?.code).toBe('FORBIDDEN');
    const ownerClient = await secretClient({ role: 'owner' });
    const adminClient = await secretClient({ role: 'admin', permissions: ['keys:read', 'keys:write', 'agents:read'] });
    const token = await tokenFor(adminClient.clientId, adminClient.clientSecret);
    expect((await mutate('oauthClients.disable', { id: ownerClient.id }, asKey(token))).body.error?.data?.code).toBe('FORBIDDEN');
    const wider = await mutate('oauthClients.create', { name: 'wider', role: 'admin', authMethod: 'client_secret_basic' }, asKey(token));
    expect(wider.body.error?.data?.code).toBe('FORBIDDEN');
    const narrower = await mutate('oauthClients.create', { name: 'narrower', role: 'auditor', permissions: ['agents:read'], authMethod: 'client_secret_basic' }, asKey(token));
    expect(narrower.status).toBe(200);
  });

  it('[identity:oauth] rate-limits each client on its own, at the token endpoint and on tRPC', async () => {
    const first = await secretClient();
    const second = await secretClient();
    const token = await tokenFor(first.clientId, first.clientSecret, undefined, limitedBase);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await query('agents.list', undefined, asKey(token), limitedBase)).status);
    expect(statuses).toEqual([200, 200, 429]);
    expect((await tokenRequest({ grant_type: 'client_credentials' }, basic(first.clientId, first.clientSecret), limitedBase)).status).toBe(429);
    const other = await tokenFor(second.clientId, second.clientSecret, undefined, limitedBase);
    expect((await query('agents.list', undefined, asKey(other), limitedBase)).status).toBe(200);
  });
});
