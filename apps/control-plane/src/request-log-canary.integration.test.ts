/**
 * Proof that the request log, the server's own logs and the database hold no secret a request
 * carried. The real `airlock serve` runs on a throwaway PostgreSQL with logging at `trace`; requests
 * carry canary values in bodies and query input, API keys, bearer tokens, client secrets, client
 * assertions and passwords (and an authorization code at the token endpoint, the one place this
 * server takes a code); then the request_log table, the server's stdout and stderr, and a pg_dump of
 * the database are searched for every canary. Probes stored on purpose first show the search finds
 * what is there.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant, connectPostgres, createAdminUserInTenant, type Database, migrate } from '@airlock/api';
import { startPostgres, type TestPostgres } from '@airlock/testing';

const bin = path.resolve(import.meta.dirname, '../bin/airlock.js');
const hex = () => randomBytes(8).toString('hex');

function hits(haystack: string, needle: string): number {
  let count = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) count += 1;
  return count;
}

describe('the request log holds no secrets', () => {
  let postgres: TestPostgres;
  let url: string;
  let db: Database;
  let work: string;
  let child: ChildProcess;
  let logs = '';
  let base = '';

  beforeAll(async () => {
    postgres = await startPostgres();
    url = await postgres.createDatabase();
    db = connectPostgres(url);
    await migrate(db);
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-canary-'));
  }, 120_000);

  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await db.close();
    await postgres[Symbol.asyncDispose]();
    await rm(work, { recursive: true, force: true });
  });

  it('finds 0 canaries in the request_log table, the server logs and a database dump, and finds the probes', async () => {
    const probes = { dump: `probe-dump-${hex()}`, requestLog: `probe-ua-${hex()}`, logs: `probe-dir-${hex()}` };
    // A console directory whose path the server logs at start: the log search's probe.
    const consoleDir = path.join(work, probes.logs);
    await mkdir(consoleDir);
    await writeFile(path.join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');

    const canary: Record<string, string> = {
      body: `CANARY-body-${hex()}`,
      query: `CANARY-query-${hex()}`,
      password: `CANARY-password-${hex()}-long`,
      wrongPassword: `CANARY-wrongpassword-${hex()}`,
      forgedKey: `alk_${'c'.repeat(12)}_CANARYforgedkey${randomBytes(21).toString('hex').slice(0, 28)}`,
      malformedKey: `CANARY-malformedkey-${hex()}`,
      forgedBearer: `eyJhbGciOiJFZERTQSJ9.Q0FOQVJZ${hex()}.Q0FOQVJZc2ln${hex()}`,
      wrongSecret: `CANARY-wrongsecret-${hex()}`,
      postedSecret: `CANARY-postedsecret-${hex()}`,
      garbageAssertion: `CANARY.garbageassertion.${hex()}`,
      code: `CANARY-authcode-${hex()}`,
      codeVerifier: `CANARY-verifier-${hex()}`,
    };
    const boot = await bootstrapTenant(db, { tenant: 'canary', keyName: 'owner', expiresInDays: 1 });
    canary['ownerKey'] = boot.key;
    await createAdminUserInTenant(db, { tenant: 'canary', email: 'owner@example.com', role: 'owner', password: canary['password'] ?? '' });

    child = spawn(process.execPath, [bin, 'serve'], {
      env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: url, AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'data'), AIRLOCK_LOG_LEVEL: 'trace', AIRLOCK_CONSOLE_DIR: consoleDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    const deadline = Date.now() + 90_000;
    while (base === '' && Date.now() < deadline && child.exitCode === null) {
      const listening = /"url":"(http:\/\/[^"]+)".*"msg":"control plane listening"/.exec(logs);
      if (listening?.[1]) base = listening[1];
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(base, logs).not.toBe('');

    const owner = { authorization: `Bearer ${boot.key}`, 'content-type': 'application/json', 'user-agent': probes.requestLog };
    const post = (procedure: string, body: unknown, headers: Record<string, string> = owner) => fetch(`${base}/trpc/${procedure}`, { method: 'POST', headers, body: JSON.stringify(body) });
    // The dump's probe: an API key name is stored by design.
    expect((await post('apiKeys.create', { name: probes.dump, role: 'auditor', expiresInDays: 1 })).status).toBe(200);
    // Bodies and query input that are refused, so nothing of them is stored by design either.
    expect((await post('apiKeys.create', { name: canary['body'], role: 'superuser', expiresInDays: 1 })).status).toBe(400);
    expect((await post('oauthClients.create', { name: 'x', role: 'admin', authMethod: 'client_secret_basic', jwks: { keys: [{ kty: 'oct', k: canary['body'] }] } })).status).toBe(400);
    expect((await fetch(`${base}/trpc/runs.list?input=${encodeURIComponent(JSON.stringify({ limit: 5, integrationId: canary['query'] }))}`, { headers: owner })).status).toBe(400);
    // API keys: forged, malformed, and the real one used on every call above.
    for (const key of [canary['forgedKey'], canary['malformedKey']]) expect((await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${key ?? ''}` } })).status).toBe(401);
    // Passwords: the right one and a wrong one.
    const login = (password: string) => post('session.login', { tenant: 'canary', email: 'owner@example.com', password }, { 'content-type': 'application/json', origin: base });
    expect((await login(canary['password'] ?? '')).status).toBe(200);
    expect((await login(canary['wrongPassword'] ?? '')).status).toBe(401);

    // OAuth: a secret client and a private_key_jwt client, used for real, and refused tries.
    const secretClient = (await (await post('oauthClients.create', { name: 'erp', role: 'operator', authMethod: 'client_secret_basic' })).json()) as { result: { data: { clientId: string; clientSecret: string } } };
    const { clientId, clientSecret } = secretClient.result.data;
    canary['clientSecret'] = clientSecret;
    const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    canary['basicHeader'] = basic(clientId, clientSecret).slice('Basic '.length);
    const tokenRequest = (form: Record<string, string>, authorization?: string) =>
      fetch(`${base}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) }, body: new URLSearchParams(form).toString() });
    const issued = (await (await tokenRequest({ grant_type: 'client_credentials' }, basic(clientId, clientSecret))).json()) as { access_token: string };
    canary['accessToken'] = issued.access_token;
    expect((await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${issued.access_token}` } })).status).toBe(200);
    expect((await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${canary['forgedBearer'] ?? ''}` } })).status).toBe(401);
    expect((await tokenRequest({ grant_type: 'client_credentials' }, basic(clientId, canary['wrongSecret'] ?? ''))).status).toBe(401);
    expect((await tokenRequest({ grant_type: 'client_credentials', client_id: clientId, client_secret: canary['postedSecret'] ?? '' })).status).toBe(401);
    expect((await tokenRequest({ grant_type: 'authorization_code', code: canary['code'] ?? '', code_verifier: canary['codeVerifier'] ?? '' }, basic(clientId, clientSecret))).status).toBe(400);

    const keys = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1' };
    const jwtClient = (await (await post('oauthClients.create', { name: 'partner', role: 'auditor', authMethod: 'private_key_jwt', jwks: { keys: [{ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: 'k1' }] } })).json()) as {
      result: { data: { clientId: string } };
    };
    const partner = jwtClient.result.data.clientId;
    const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(partner).setSubject(partner).setAudience(`${base}/oauth/token`).setExpirationTime('1m').setJti(randomUUID()).sign(keys.privateKey);
    canary['assertion'] = assertion;
    canary['assertionSignature'] = assertion.split('.')[2] ?? '';
    const assertionForm = (value: string) => ({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: value });
    const partnerToken = (await (await tokenRequest(assertionForm(assertion))).json()) as { access_token: string };
    canary['partnerToken'] = partnerToken.access_token;
    expect((await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${partnerToken.access_token}` } })).status).toBe(200);
    expect((await tokenRequest(assertionForm(assertion))).status).toBe(401);
    expect((await tokenRequest(assertionForm(canary['garbageAssertion'] ?? ''))).status).toBe(401);

    // Every request above is in the log before the search (written within a flush period).
    const sent = 20;
    const logDeadline = Date.now() + 30_000;
    let logged = 0;
    while (Date.now() < logDeadline) {
      const [row] = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM request_log');
      logged = Number(row?.n ?? '0');
      if (logged >= sent) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(logged).toBeGreaterThanOrEqual(sent);
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));

    const [table] = await db.query<{ text: string }>("SELECT coalesce(string_agg(row_to_json(r)::text, E'\\n'), '') AS text FROM request_log r");
    const places = { requestLog: table?.text ?? '', logs, dump: await postgres.dump(url) };
    expect(places.dump.length).toBeGreaterThan(10_000);
    expect(places.logs).toContain('control plane listening');
    // The search finds what is there: each place holds its probe.
    expect(hits(places.dump, probes.dump)).toBeGreaterThan(0);
    expect(hits(places.requestLog, probes.requestLog)).toBeGreaterThan(0);
    expect(hits(places.logs, probes.logs)).toBeGreaterThan(0);

    const found: Record<string, number> = {};
    for (const [name, value] of Object.entries(canary)) {
      expect(value.length, name).toBeGreaterThan(15);
      for (const [place, text] of Object.entries(places)) {
        const count = hits(text, value);
        if (count > 0) found[`${name} in ${place}`] = count;
      }
    }
    console.log(`canary search: ${JSON.stringify({ canaries: Object.keys(canary).length, places: Object.keys(places).length, requestLogRows: logged, hits: Object.values(found).reduce((a, b) => a + b, 0) })}`);
    expect(found).toEqual({});
  }, 300_000);
});
