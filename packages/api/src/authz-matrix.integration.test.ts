/**
 * The authorization matrix: every procedure of appRouter, called over HTTP by an API key of each
 * role on its own tenant and on another tenant's rows, by a signed agent of the tenant and of
 * another tenant, by an OAuth access token of each client kind (secret, private_key_jwt, read-only,
 * integration-limited; the secret one on another tenant's rows too), by the console session of a
 * person provisioned just-in-time through single sign-on (operator and admin), and with no
 * credentials, against the expected outcomes in `authz-matrix.json`.
 * To cover a new procedure, add its row (and, if its input names a new kind of row, a placeholder
 * in `seed`). The server runs as a login role in `airlock_app`, as in production, so row-level
 * security is live for every call.
 */
import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { type AgentKeyPair, encodeKey, generateKeyPair, keyRotationProof, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { formatResource, parseScope } from '@airlock/scopes';
import { createTestDatabase } from '@airlock/testing';
import { exportJWK, generateKeyPair as generateJoseKeyPair, type CryptoKey, SignJWT } from 'jose';
import {
  createApiKey,
  createClient,
  createSession,
  CSRF_HEADER,
  csrfTokenFor,
  generateTokenKeyPem,
  hashPassword,
  randomToken,
  SESSION_COOKIE,
  sha256Hex,
  tokenKeysFromPems,
} from '@airlock/auth';
import { sealDestination } from '@airlock/alerts';
import { appendAudit } from '@airlock/storage';
import {
  bootstrapTenant,
  connectPostgres,
  createHttpHandler,
  type Database,
  Dispatcher,
  migrate,
  type Queryable,
  roles,
  type Role,
  secretBoxFromKey,
  signerFromSecretKey,
} from './index.ts';
import { type AppRoleConnection, connectAsAppRole } from './storage/app-role.fixture.ts';
import { connectorSchemes } from '@airlock/dispatch';
import { appRouter } from './router.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const verdict = z.enum(['allow', 'deny', 'n/a']);

/** A seeded release's manifest; the control plane stores the signature without checking it (agents do), so any well-formed one serves. */
const RELEASE_SIGNATURE = `${'A'.repeat(86)}==`;
function releaseManifestOf(artifact: Buffer) {
  return { v: 1, product: 'airlock-agent', platform: 'linux-x64', artifact: { sha256: createHash('sha256').update(artifact).digest('hex'), size: artifact.length }, downgradeAllowed: false, issuedAt: new Date().toISOString() };
}
type Verdict = z.infer<typeof verdict>;
const matrixFile = z.strictObject({
  $comment: z.array(z.string()),
  procedures: z.record(
    z.string(),
    z.strictObject({
      own: z.strictObject({ owner: verdict, admin: verdict, operator: verdict, auditor: verdict }),
      foreign: z.strictObject({ owner: verdict, admin: verdict, operator: verdict, auditor: verdict }),
      agent: z.strictObject({ own: verdict, foreign: verdict }),
      oauth: z.strictObject({
        own: z.strictObject({ secret: verdict, jwt: verdict, readOnly: verdict, integration: verdict }),
        foreign: z.strictObject({ secret: verdict }),
      }),
      sso: z.strictObject({ operator: verdict, admin: verdict }),
      anonymous: verdict,
      input: z.unknown(),
    }),
  ),
});
// The table is data a reviewer reads; parsing it is the boundary where its shape is checked.
const matrix = matrixFile.parse(JSON.parse(readFileSync(new URL('./authz-matrix.json', import.meta.url), 'utf8')));

interface RouterProcedure {
  type: string;
  permission: string;
}

function describeProcedure(procedure: unknown): RouterProcedure {
  const def = typeof procedure === 'function' || (typeof procedure === 'object' && procedure !== null) ? Reflect.get(procedure, '_def') : undefined;
  const type: unknown = typeof def === 'object' && def !== null ? Reflect.get(def, 'type') : undefined;
  const meta: unknown = typeof def === 'object' && def !== null ? Reflect.get(def, 'meta') : undefined;
  const permission: unknown = typeof meta === 'object' && meta !== null ? Reflect.get(meta, 'permission') : undefined;
  return { type: typeof type === 'string' ? type : '', permission: typeof permission === 'string' ? permission : '' };
}

// At run time `_def.procedures` is flat, keyed by the full path.
const routerProcedures = new Map(
  Object.entries(appRouter._def.procedures as Record<string, unknown>).map(([path, procedure]) => [path, describeProcedure(procedure)]),
);

describe('the authorization matrix table', () => {
  it('has exactly one row for every procedure of appRouter', () => {
    const inTable = new Set(Object.keys(matrix.procedures));
    const missing = [...routerProcedures.keys()].filter((path) => !inTable.has(path)).sort();
    const unknown = [...inTable].filter((path) => !routerProcedures.has(path)).sort();
    expect({ missing, unknown }).toEqual({ missing: [], unknown: [] });
    expect(routerProcedures.size).toBeGreaterThan(20);
  });

  it('uses n/a only where the caller plays no part (public procedures), and allows nothing foreign', () => {
    const problems: string[] = [];
    for (const [path, row] of Object.entries(matrix.procedures)) {
      const isPublic = routerProcedures.get(path)?.permission === 'public';
      const cells: [string, Verdict][] = [
        ...roles.map((role): [string, Verdict] => [`own.${role}`, row.own[role]]),
        ...roles.map((role): [string, Verdict] => [`foreign.${role}`, row.foreign[role]]),
        ['agent.own', row.agent.own],
        ['agent.foreign', row.agent.foreign],
        ...clientKinds.map((kind): [string, Verdict] => [`oauth.own.${kind}`, row.oauth.own[kind]]),
        ['oauth.foreign.secret', row.oauth.foreign.secret],
        ...ssoRoles.map((role): [string, Verdict] => [`sso.${role}`, row.sso[role]]),
        ['anonymous', row.anonymous],
      ];
      for (const [cell, value] of cells) {
        if (value === 'n/a' && !(isPublic && cell.includes('foreign'))) problems.push(`${path} ${cell}: n/a`);
        if (value === 'allow' && cell.includes('foreign')) problems.push(`${path} ${cell}: a foreign tenant is never allowed`);
      }
    }
    expect(problems).toEqual([]);
  });
});

/** The OAuth client kinds the matrix calls with: what each is is set up in `beforeAll`. */
const clientKinds = ['secret', 'jwt', 'readOnly', 'integration'] as const;
type ClientKind = (typeof clientKinds)[number];
const OAUTH_ISSUER = 'https://airlock.matrix.test';
/** The roles single sign-on people are mapped to in the matrix; each signs in with a console session. */
const ssoRoles = ['operator', 'admin'] as const;
type SsoRole = (typeof ssoRoles)[number];
const SSO_ISSUER = 'https://idp.matrix.test';

function publicMembers(jwk: { crv?: string; x?: string; y?: string }): { crv?: string; x?: string; y?: string } {
  return { ...(jwk.crv ? { crv: jwk.crv } : {}), ...(jwk.x ? { x: jwk.x } : {}), ...(jwk.y ? { y: jwk.y } : {}) };
}

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
const secretBox = secretBoxFromKey(randomBytes(32));
/** Cheap enough for a seeded user per call; the hash names its own cost, so logins verify with it. */
const fastScrypt = { N: 2 ** 10, r: 8, p: 1 };
const USER_PASSWORD = 'matrix-password-0123';
/** Far above the ~500 calls of one run, so no cell is refused for its rate. */
const NO_RATE_LIMIT = { points: 100_000, durationSeconds: 60 };
const DENY_CODES = new Set(['UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND']);
/** Placeholders that name a row of the target tenant: a mutation naming one of another tenant's must fail. */
const ROW_PLACEHOLDERS = new Set([
  'agent',
  'spareAgent',
  'group',
  'groupName',
  'grant',
  'integration',
  'busyIntegration',
  'disabledIntegration',
  'queuedRun',
  'runningRun',
  'key',
  'enrollmentToken',
  'enrollmentTokenId',
  'user',
  'alert',
  'destination',
  'oidcProvider',
  'oauthClient',
]);
/**
 * Placeholders bound to a row of the target tenant without naming it (a proof signed over its id):
 * a foreign caller must not get one accepted, but the refusal is a failed proof, not an absent row.
 */
const BOUND_PLACEHOLDERS = new Set(['rotationProof']);

interface Seed {
  values: Record<string, string>;
  agent: { id: string; keys: AgentKeyPair };
}

type Caller = { kind: 'key'; bearer: string } | { kind: 'session'; token: string } | { kind: 'agent'; id: string; keys: AgentKeyPair } | { kind: 'none' };

interface Reply {
  status: number;
  code: string | null;
  text: string;
}

interface Cell {
  procedure: string;
  cell: string;
  expected: Verdict;
  observed: string;
  problem: string | null;
}

describe('the authorization matrix on PostgreSQL, served as the airlock_app role', () => {
  let owner: Database;
  let app: AppRoleConnection | null = null;
  let server: Server;
  let base: string;
  let recipient = '';
  let passwordHash = '';
  let receiver: Server;
  let webhookUrl = '';
  /** Test alerts the loopback receiver got: one per allowed `alertDestinations.test` call. */
  let deliveries = 0;
  /** Tenant a's OAuth clients, one of each kind, and a cached access token of each. */
  const clients: Record<ClientKind, { id: string; clientId: string; secret: string | null; token: string | null; fetchedAt: number }> = {
    secret: { id: '', clientId: '', secret: null, token: null, fetchedAt: 0 },
    jwt: { id: '', clientId: '', secret: null, token: null, fetchedAt: 0 },
    readOnly: { id: '', clientId: '', secret: null, token: null, fetchedAt: 0 },
    integration: { id: '', clientId: '', secret: null, token: null, fetchedAt: 0 },
  };
  let assertionKey: CryptoKey;
  let assertionJwks: Parameters<typeof createClient>[1]['jwks'];
  /** Session tokens of tenant a's single sign-on people, one per mapped role; new for every procedure. */
  const ssoSessions: Record<SsoRole, string> = { operator: '', admin: '' };
  const tenants: Record<'a' | 'b', { id: string; keys: Record<Role, string> }> = {
    a: { id: '', keys: { owner: '', admin: '', operator: '', auditor: '' } },
    b: { id: '', keys: { owner: '', admin: '', operator: '', auditor: '' } },
  };

  beforeAll(async () => {
    const url = await createTestDatabase(inject('postgresUrl'));
    owner = connectPostgres(url);
    await migrate(owner);
    app = await connectAsAppRole(owner, url);
    snapshotClient = new pg.Client({ connectionString: url });
    await snapshotClient.connect();
    const jose = await generateJoseKeyPair('ES256');
    assertionKey = jose.privateKey;
    assertionJwks = { keys: [{ ...publicMembers(await exportJWK(jose.publicKey)), kty: 'EC', kid: 'matrix', alg: 'ES256' }] };
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
    passwordHash = await hashPassword(USER_PASSWORD, fastScrypt);
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        deliveries += 1;
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const handler = createHttpHandler(
      {
        db: app.db,
        dispatcher: new Dispatcher(50),
        now: () => new Date(),
        logger: silent,
        signer,
        alerts: { secretBox, webhook: { timeoutMs: 5_000, allowLoopback: true } },
        auth: { scrypt: fastScrypt },
        oauth: { issuer: OAUTH_ISSUER, keys: await tokenKeysFromPems(generateTokenKeyPem()) },
      },
      { maxBodyBytes: 256 * 1024, rateLimits: { 'api-key': NO_RATE_LIMIT, 'oauth-client': NO_RATE_LIMIT, session: NO_RATE_LIMIT, agent: NO_RATE_LIMIT, ip: NO_RATE_LIMIT } },
    );
    ({ server: server, base: base } = await listenOnLoopback(handler));
  });

  afterAll(async () => {
    server.close();
    receiver.close();
    await snapshotClient.end();
    await app?.[Symbol.asyncDispose]();
    await owner.close();
  });

  let generation = 0;

  /**
   * Two new tenants, their keys of every role, tenant a's OAuth clients and its single sign-on
   * people with a session each. Each procedure gets its own, so the snapshots and markers a cell
   * reads cover only that procedure's rows, and a call that ends a session ends only its own.
   */
  async function freshTenants(): Promise<void> {
    generation += 1;
    for (const [name, tenant] of Object.entries(tenants)) {
      const boot = await bootstrapTenant(owner, { tenant: `matrix-${name}-${generation}`, keyName: 'owner', expiresInDays: 30 });
      tenant.id = boot.tenantId;
      tenant.keys.owner = boot.key;
      for (const role of roles.filter((r) => r !== 'owner')) {
        const key = await owner.forSystem().transaction((tx) => createApiKey(tx, { tenantId: boot.tenantId, name: role, role, expiresInDays: 30 }, new Date()));
        tenant.keys[role] = key.key;
      }
    }
    const base = { tenantId: tenants.a.id, permissions: null, readOnly: false, integrations: null, authMethod: 'client_secret_basic', jwks: null } as const;
    const kinds: Record<ClientKind, Parameters<typeof createClient>[1]> = {
      secret: { ...base, name: 'matrix-secret', role: 'admin' },
      jwt: { ...base, name: 'matrix-jwt', role: 'operator', authMethod: 'private_key_jwt', jwks: assertionJwks },
      readOnly: { ...base, name: 'matrix-read-only', role: 'admin', readOnly: true },
      // Its integrations are set to the target's seeded ones before each call.
      integration: { ...base, name: 'matrix-integration', role: 'operator', integrations: [] },
    };
    for (const kind of clientKinds) {
      const created = await owner.forSystem().transaction((tx) => createClient(tx, kinds[kind], new Date(), 'seed'));
      clients[kind] = { id: created.id, clientId: created.clientId, secret: created.clientSecret, token: null, fetchedAt: 0 };
    }
    await owner.forSystem().transaction(async (tx) => {
      // What a just-in-time sign-in leaves behind: the provider, the owner's group -> role mapping,
      // an account bound to (tenant, issuer, subject) with no password, and a session opened the
      // way the callback opens one.
      const provider = randomUUID();
      await tx.query(
        `INSERT INTO oidc_providers (id, tenant_id, name, issuer, client_id, client_secret_sealed, created_at, updated_at) VALUES ($1, $2, 'matrix-idp', $3, 'airlock', $4, now(), now())`,
        [provider, tenants.a.id, SSO_ISSUER, secretBox.seal(randomToken(32), `oidc-provider:${provider}`)],
      );
      const now = new Date();
      for (const role of ssoRoles) {
        await tx.query('INSERT INTO oidc_role_mappings (tenant_id, provider_id, claim_value, role) VALUES ($1, $2, $3, $4)', [tenants.a.id, provider, `airlock-${role}s`, role]);
        const email = `${unique(`sso-${role}`)}@example.com`;
        const [user] = await tx.query<{ id: string }>(
          `INSERT INTO admin_users (tenant_id, email, password_hash, role, oidc_issuer, oidc_subject, last_login_at, created_at, updated_at)
           VALUES ($1, $2, NULL, $3, $4, $5, $6, $6, $6) RETURNING id`,
          [tenants.a.id, email, role, SSO_ISSUER, unique('subject'), now],
        );
        if (!user) throw new Error('sso account insert returned nothing');
        const opened = await createSession(tx, { id: user.id, email, role, tenantId: tenants.a.id }, { sessionIdleMs: 3_600_000, sessionAbsoluteMs: 3_600_000 }, null, now);
        ssoSessions[role] = opened.token;
      }
    });
  }

  function unique(prefix: string): string {
    return `${prefix}-${randomToken(6).toLowerCase().replace(/[^a-z0-9]/g, '0')}`;
  }

  async function insertAgent(tx: Queryable, tenantId: string) {
    const keys = generateKeyPair();
    const [row] = await tx.query<{ id: string }>('INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, $3, $4) RETURNING id', [
      tenantId,
      encodeKey(keys.publicKey),
      unique('host'),
      '0.1.0',
    ]);
    if (!row) throw new Error('agent insert returned nothing');
    return { id: row.id, keys };
  }

  /** Fresh rows of every kind in one tenant, written directly (system scope), for one call. */
  async function seed(tenantId: string): Promise<Seed> {
    return owner.forSystem().transaction(async (tx) => {
      const [head] = await tx.query<{ seq: string }>('SELECT seq::text AS seq FROM audit_head');
      if (!head) throw new Error('no audit head');
      const agent = await insertAgent(tx, tenantId);
      const spare = await insertAgent(tx, tenantId);
      const groupName = unique('grp');
      const [group] = await tx.query<{ id: string }>('INSERT INTO agent_groups (tenant_id, name) VALUES ($1, $2) RETURNING id', [tenantId, groupName]);
      if (!group) throw new Error('group insert returned nothing');
      await tx.query('INSERT INTO agent_group_members (group_id, agent_id, tenant_id) VALUES ($1, $2, $3)', [group.id, agent.id, tenantId]);
      const grantIds: string[] = [];
      for (const text of ['read sftp://files.example.com:2222/exports/**', 'write file:///srv/out/**']) {
        const scope = parseScope(text, connectorSchemes);
        const [grant] = await tx.query<{ id: string }>(
          `INSERT INTO grants (tenant_id, subject_type, subject_id, action, resource, created_by) VALUES ($1, 'agent', $2, $3, $4, 'seed') RETURNING id`,
          [tenantId, agent.id, scope.action, formatResource(scope.resource)],
        );
        if (grant) grantIds.push(grant.id);
      }
      const integrations: string[] = [];
      for (const name of ['idle', 'queued', 'running', 'disabled']) {
        const spec = {
          name: unique(name),
          agentId: agent.id,
          source: { connector: 'sftp@1', config: { host: 'files.example.com', port: 2222, hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp', path: '/exports/daily/*.csv' } },
          destination: { connector: 'local@1', config: { directory: '/srv/out' } },
          recipients: [recipient],
        };
        const [row] = await tx.query<{ id: string }>('INSERT INTO integrations (tenant_id, agent_id, name, spec, disabled_at) VALUES ($1, $2, $3, $4, $5) RETURNING id', [
          tenantId,
          agent.id,
          spec.name,
          JSON.stringify(spec),
          name === 'disabled' ? new Date() : null,
        ]);
        if (row) integrations.push(row.id);
      }
      const runs: string[] = [];
      for (const [index, status] of [[1, 'queued'] as const, [2, 'running'] as const]) {
        const [row] = await tx.query<{ id: string }>(
          `INSERT INTO runs (tenant_id, integration_id, integration_version, agent_id, spec, status, requested_by, claimed_at)
           SELECT tenant_id, id, version, agent_id, spec, $2, 'seed', CASE WHEN $2 = 'running' THEN now() END FROM integrations WHERE id = $1 RETURNING id`,
          [integrations[index], status],
        );
        if (row) runs.push(row.id);
      }
      const key = await createApiKey(tx, { tenantId, name: unique('spare'), role: 'auditor', expiresInDays: 30 }, new Date());
      const oauthClient = await createClient(
        tx,
        { tenantId, name: unique('client'), role: 'auditor', permissions: null, readOnly: false, integrations: null, authMethod: 'client_secret_basic', jwks: null },
        new Date(),
        'seed',
      );
      const token = `aet_${randomToken(32)}`;
      const [tokenRow] = await tx.query<{ id: string }>(
        `INSERT INTO enrollment_tokens (tenant_id, token_sha256, created_by, expires_at) VALUES ($1, $2, 'seed', now() + interval '10 minutes') RETURNING id`,
        [tenantId, sha256Hex(token)],
      );
      const [user] = await tx.query<{ id: string; email: string }>(
        `INSERT INTO admin_users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, 'auditor') RETURNING id, email`,
        [tenantId, `${unique('user')}@example.com`, passwordHash],
      );
      const [tenant] = await tx.query<{ name: string }>('SELECT name FROM tenants WHERE id = $1', [tenantId]);
      const [alert] = await tx.query<{ id: string }>(
        `INSERT INTO alerts (tenant_id, kind, severity, dedupe_key, target, summary, details, first_seen_at, last_seen_at)
         VALUES ($1, 'scope-denied', 'warning', $2, $3, 'seeded alert', '{}', now(), now()) RETURNING id`,
        [tenantId, `scope-denied:${agent.id}`, agent.id],
      );
      const destination = randomUUID();
      const sealed = sealDestination(secretBox, destination, { url: webhookUrl, secret: `whsec_${randomToken(32)}` });
      await tx.query(
        `INSERT INTO alert_destinations (id, tenant_id, name, origin, url_sealed, secret_sealed, min_severity) VALUES ($1, $2, $3, $4, $5, $6, 'info')`,
        [destination, tenantId, unique('dest'), new URL(webhookUrl).origin, sealed.urlSealed, sealed.secretSealed],
      );
      const oidcProvider = randomUUID();
      await tx.query(
        `INSERT INTO oidc_providers (id, tenant_id, name, issuer, client_id, client_secret_sealed, created_at, updated_at)
         VALUES ($1, $2, $3, 'https://' || $3 || '.example.com', 'airlock', $4, now(), now())`,
        [oidcProvider, tenantId, unique('idp'), secretBox.seal(randomToken(32), `oidc-provider:${oidcProvider}`)],
      );
      await tx.query(
        `INSERT INTO agent_security_events (id, tenant_id, agent_id, kind, at, reason) VALUES ($1, $2, $3, 'envelope-bad-signature', now(), 'seeded')`,
        [randomUUID(), tenantId, agent.id],
      );
      // A record of this tenant after auditSeq, so a witness's segment has one to show or withhold.
      await appendAudit(tx, { tenantId, actor: { type: 'system', id: 'seed' }, action: 'agent-key-rotation-request', target: agent.id, outcome: 'success', sourceIp: null, meta: {} });
      // Releases of a three-byte artifact: one uploading (its chunk already there), one published
      // with an active rollout that has offered it to the agent. A new active rollout supersedes any other.
      const artifact = Buffer.from('abc');
      const releaseRow = async (state: 'uploading' | 'published') => {
        const manifest = JSON.stringify({ ...releaseManifestOf(artifact), version: `0.${randomInt(1, 1_000_000)}.${randomInt(1, 1_000_000)}` });
        const [row] = await tx.query<{ id: string }>(
          `INSERT INTO releases (tenant_id, version, platform, manifest, signature, size, sha256, downgrade_allowed, state)
           VALUES ($1, $2, 'linux-x64', $3, $4, 3, $5, false, $6) RETURNING id`,
          [tenantId, JSON.parse(manifest).version, manifest, RELEASE_SIGNATURE, createHash('sha256').update(artifact).digest('hex'), state],
        );
        if (!row) throw new Error('release insert returned nothing');
        await tx.query('INSERT INTO release_chunks (release_id, tenant_id, chunk_index, data) VALUES ($1, $2, 0, $3)', [row.id, tenantId, artifact]);
        return row.id;
      };
      const release = await releaseRow('uploading');
      const publishedRelease = await releaseRow('published');
      await tx.query("UPDATE rollouts SET state = 'halted' WHERE tenant_id = $1 AND state = 'active'", [tenantId]);
      const [rollout] = await tx.query<{ id: string }>(
        `INSERT INTO rollouts (tenant_id, release_id, starts_at, ends_at, halt_failure_rate, downgrade) VALUES ($1, $2, now(), now() + interval '1 day', 0, false) RETURNING id`,
        [tenantId, publishedRelease],
      );
      await tx.query("INSERT INTO rollout_agents (rollout_id, agent_id, tenant_id, ring, state, offered_at) VALUES ($1, $2, $3, 'rest', 'offered', now())", [rollout?.id, agent.id, tenantId]);
      const newRelease = JSON.stringify({ ...releaseManifestOf(artifact), version: `1.${randomInt(1, 1_000_000)}.${randomInt(1, 1_000_000)}` });
      const rotation = keyRotationProof(generateKeyPair(), agent.id);
      const values: Record<string, string | undefined> = {
        agent: agent.id,
        spareAgent: spare.id,
        group: group.id,
        groupName,
        grant: grantIds[0],
        integration: integrations[0],
        busyIntegration: integrations[1],
        disabledIntegration: integrations[3],
        queuedRun: runs[0],
        runningRun: runs[1],
        key: key.id,
        oauthClient: oauthClient.id,
        enrollmentToken: token,
        enrollmentTokenId: tokenRow?.id,
        newPublicKey: encodeKey(generateKeyPair().publicKey),
        recipient,
        user: user?.id,
        userEmail: user?.email,
        tenantName: tenant?.name,
        userPassword: USER_PASSWORD,
        alert: alert?.id,
        destination,
        oidcProvider,
        webhookUrl,
        now: new Date().toISOString(),
        rotationKey: rotation.newPublicKey,
        rotationCreated: String(rotation.created),
        rotationNonce: rotation.nonce,
        rotationProof: rotation.proof,
        auditSeq: head.seq,
        release,
        publishedRelease,
        rollout: rollout?.id,
        releaseManifest: newRelease,
        releaseSignature: RELEASE_SIGNATURE,
      };
      const complete: Record<string, string> = {};
      for (const [name, value] of Object.entries(values)) {
        if (value === undefined) throw new Error(`seed: ${name} missing`);
        complete[name] = value;
      }
      return { values: complete, agent };
    });
  }

  /** The input template with its {placeholders} filled from `values` ({#name}, a whole string, as a number); also which placeholders it used. */
  function fill(template: unknown, values: Record<string, string>, used: Set<string>): unknown {
    const numeric = typeof template === 'string' ? /^\{#(\w+)\}$/.exec(template) : null;
    if (numeric?.[1] !== undefined) {
      const value = values[numeric[1]];
      if (value === undefined) throw new Error(`unknown placeholder ${numeric[0]}`);
      used.add(numeric[1]);
      return Number(value);
    }
    if (typeof template === 'string') {
      return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
        const value = values[name];
        if (value === undefined) throw new Error(`unknown placeholder ${whole}`);
        used.add(name);
        return value;
      });
    }
    if (Array.isArray(template)) return template.map((item) => fill(item, values, used));
    if (typeof template === 'object' && template !== null) {
      return Object.fromEntries(Object.entries(template).map(([key, value]) => [key, fill(value, values, used)]));
    }
    return template;
  }

  async function call(path: string, type: string, input: unknown, caller: Caller): Promise<Reply> {
    const method = type === 'mutation' ? 'POST' : 'GET';
    const pathAndQuery = method === 'GET' ? `/trpc/${path}${input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`}` : `/trpc/${path}`;
    const body = method === 'POST' ? JSON.stringify(input ?? null) : '';
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (caller.kind === 'key') headers['authorization'] = `Bearer ${caller.bearer}`;
    // As the console sends them: the cookie, and on a mutation the CSRF token derived from it.
    if (caller.kind === 'session') Object.assign(headers, { cookie: `${SESSION_COOKIE}=${caller.token}`, ...(method === 'POST' ? { [CSRF_HEADER]: csrfTokenFor(caller.token) } : {}) });
    if (caller.kind === 'agent') Object.assign(headers, signRequest(caller.keys, { agentId: caller.id, method, pathAndQuery, body }));
    const closer = new AbortController();
    const response = await fetch(`${base}${pathAndQuery}`, { method, headers, signal: closer.signal, ...(method === 'POST' ? { body } : {}) });
    if (type === 'subscription' && response.status === 200) return streamed(response, closer);
    const text = await response.text();
    let code: string | null = null;
    if (response.status !== 200) {
      const parsed = z.object({ error: z.object({ data: z.object({ code: z.string() }) }) }).safeParse(JSON.parse(text));
      code = parsed.success ? parsed.data.error.data.code : `HTTP ${response.status}`;
    }
    return { status: response.status, code, text };
  }

  /**
   * A subscription's answer (server-sent events): refused when it sends tRPC's `serialized-error`
   * event, with that error's code and status; allowed when it ends otherwise, or stays open saying
   * nothing more after it connected.
   */
  async function streamed(response: Response, closer: AbortController): Promise<Reply> {
    let text = '';
    const quiet = setTimeout(() => closer.abort(), 1_500);
    try {
      const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
      for (let next = await reader?.read(); next && !next.done; next = await reader?.read()) {
        text += next.value;
        const refused = /^event: serialized-error\ndata: (.*)$/m.exec(text)?.[1];
        if (refused === undefined) continue;
        const error = z.object({ data: z.object({ code: z.string(), httpStatus: z.number() }) }).parse(JSON.parse(refused));
        return { status: error.data.httpStatus, code: error.data.code, text };
      }
    } catch {
      // Still open and quiet: the caller was let in.
    } finally {
      clearTimeout(quiet);
      closer.abort();
    }
    return { status: 200, code: null, text };
  }

  /** Everything of a tenant that a reply must not show to anyone else: ids, names, hostnames, key prefixes. */
  async function markersOf(tenantId: string): Promise<string[]> {
    const rows = await owner.query<{ marker: string }>(
      `SELECT id::text AS marker FROM agents WHERE tenant_id = $1 UNION ALL SELECT hostname FROM agents WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM integrations WHERE tenant_id = $1 UNION ALL SELECT name FROM integrations WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM runs WHERE tenant_id = $1 UNION ALL SELECT id::text FROM grants WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM agent_groups WHERE tenant_id = $1 UNION ALL SELECT name FROM agent_groups WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM api_keys WHERE tenant_id = $1 UNION ALL SELECT prefix FROM api_keys WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM enrollment_tokens WHERE tenant_id = $1 UNION ALL SELECT id::text FROM admin_users WHERE tenant_id = $1
       UNION ALL SELECT email FROM admin_users WHERE tenant_id = $1 UNION ALL SELECT id::text FROM alerts WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM alert_destinations WHERE tenant_id = $1 UNION ALL SELECT name FROM alert_destinations WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM agent_security_events WHERE tenant_id = $1
       UNION ALL SELECT id::text FROM oauth_clients WHERE tenant_id = $1 UNION ALL SELECT client_id FROM oauth_clients WHERE tenant_id = $1
       UNION ALL SELECT $1::text`,
      [tenantId],
    );
    return rows.map((row) => row.marker);
  }

  let snapshotQuery: string | null = null;
  let snapshotClient: pg.Client;

  /**
   * Every row of the tenant in every table with a tenant_id, except the audit trail and its chain
   * heads and checkpoint leaves (a refusal is audited, by design), nonces and client-assertion jtis,
   * and the request log (every request is logged), without the last-used times and session idle
   * expiries that authentication itself moves.
   */
  async function snapshot(tenantId: string): Promise<string> {
    if (snapshotQuery === null) {
      const tables = await owner.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'
           AND table_name NOT IN ('audit_events', 'audit_chain_heads', 'audit_checkpoint_leaves', 'request_nonces', 'oauth_assertion_jtis', 'request_log') ORDER BY table_name`,
      );
      // Table names come from the catalog and are quoted as identifiers; the tenant is a parameter.
      snapshotQuery = `SELECT jsonb_build_array(${tables
        .map(({ table_name: table }) => `(SELECT coalesce(jsonb_agg(r ORDER BY r::text), '[]') FROM (SELECT to_jsonb(t) - 'last_used_at' - 'last_seen_at' - 'idle_expires_at' AS r FROM ${pg.escapeIdentifier(table)} t WHERE tenant_id = $1) s)`)
        .join(', ')})::text AS rows`;
    }
    // Prepared once on its own connection: the statement is the same for every cell.
    const result = await snapshotClient.query<{ rows: string }>({ name: 'matrix-snapshot', text: snapshotQuery, values: [tenantId] });
    return result.rows[0]?.rows ?? '';
  }

  async function runCell(
    procedure: string,
    cell: string,
    expected: Verdict,
    target: { tenant: 'a' | 'b'; seed: Seed },
    caller: Caller,
    callerTenant: 'a' | 'b' | null,
    /** Whether this caller may call the procedure on its own tenant: then a foreign row must look absent (NOT_FOUND). */
    allowedAtHome = false,
  ): Promise<Cell> {
    const { type } = routerProcedures.get(procedure) ?? { type: '' };
    const used = new Set<string>();
    const template = matrix.procedures[procedure]?.input;
    // Names, ids and release versions a call creates are new for every call, since several calls share one seed.
    const seeded = JSON.parse(target.seed.values['releaseManifest'] ?? '{}') as Record<string, unknown>;
    const releaseManifest = JSON.stringify({ ...seeded, version: `1.${randomInt(1, 1_000_000)}.${randomInt(1, 1_000_000)}` });
    const values = { ...target.seed.values, unique: unique('n'), uuid: randomUUID(), releaseManifest };
    const input = template === undefined || template === null ? undefined : fill(template, values, used);
    const victim = tenants[target.tenant].id;
    const other = tenants[target.tenant === 'a' ? 'b' : 'a'].id;
    const foreign = callerTenant !== null && callerTenant !== target.tenant;
    const before = await snapshot(victim);
    const reply = await call(procedure, type, input, caller);
    const after = await snapshot(victim);
    const changed = before !== after;
    // A reply never shows the other tenant's rows; to a foreign caller, the target's rows are the other tenant's.
    // Values the caller sent itself (an id it names, echoed in a not-found message) reveal nothing.
    const sent = JSON.stringify(input ?? null);
    const hidden = (await markersOf(foreign ? victim : other)).filter((marker) => !sent.includes(marker));
    const leaked = hidden.filter((marker) => reply.text.includes(marker));
    const observed = reply.status === 200 ? 'allow' : `deny:${reply.code ?? ''}`;
    const namesRow = [...used].some((name) => ROW_PLACEHOLDERS.has(name));
    let problem: string | null = null;
    if (leaked.length > 0) problem = `leaked ${leaked.length} value(s) of another tenant`;
    else if (expected === 'allow' && reply.status !== 200) problem = `unexpected deny (${reply.code ?? ''}): ${reply.text.slice(0, 300)}`;
    else if (expected === 'deny' && reply.status === 200) {
      const boundToRow = namesRow || [...used].some((name) => BOUND_PLACEHOLDERS.has(name));
      if (!foreign) problem = 'unexpected allow';
      else if (changed) problem = "unexpected allow: changed the other tenant's rows";
      else if (type === 'mutation' && boundToRow) problem = "unexpected allow: a mutation on another tenant's row succeeded";
    } else if (expected === 'deny' && !DENY_CODES.has(reply.code ?? '')) problem = `inconclusive: ${reply.code ?? ''} ${reply.text.slice(0, 300)}`;
    else if (expected === 'deny' && changed) problem = 'denied but changed rows';
    else if (expected === 'deny' && foreign && allowedAtHome && type === 'mutation' && namesRow && reply.code !== 'NOT_FOUND') {
      problem = `a foreign row must look absent (NOT_FOUND), got ${reply.code ?? ''}`;
    }
    return { procedure, cell, expected, observed, problem };
  }

  /** A current access token of tenant a's client `kind`, fetched from the token endpoint. */
  async function tokenOf(kind: ClientKind): Promise<string> {
    const client = clients[kind];
    // Well inside the token's lifetime, so no cell meets an expired one.
    if (client.token !== null && Date.now() - client.fetchedAt < 120_000) return client.token;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (client.secret !== null) headers['authorization'] = `Basic ${Buffer.from(`${client.clientId}:${client.secret}`).toString('base64')}`;
    else {
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'matrix' })
        .setIssuer(client.clientId)
        .setSubject(client.clientId)
        .setAudience(`${OAUTH_ISSUER}/oauth/token`)
        .setExpirationTime('2m')
        .setJti(randomUUID())
        .sign(assertionKey);
      form.set('client_assertion', assertion);
    }
    const response = await fetch(`${base}/oauth/token`, { method: 'POST', headers, body: form.toString() });
    const body = z.object({ access_token: z.string() }).parse(await response.json());
    client.token = body.access_token;
    client.fetchedAt = Date.now();
    return body.access_token;
  }

  /** Limits the integration client to the integrations of `seed` (and so to its runs). */
  async function limitIntegrationClient(seed: Seed): Promise<void> {
    await owner.query(
      `UPDATE oauth_clients SET integrations = ARRAY(SELECT integration_id FROM runs WHERE id = ANY($2::uuid[]) UNION SELECT $3::uuid) WHERE id = $1`,
      [clients.integration.id, [seed.values['queuedRun'], seed.values['runningRun']], seed.values['integration']],
    );
  }

  it('matches the table for every procedure, role, tenant and caller, with no unexpected allow', async () => {
    const cells: Cell[] = [];
    for (const [procedure, row] of Object.entries(matrix.procedures)) {
      if (!routerProcedures.has(procedure)) continue;
      await freshTenants();
      // One seed per tenant serves every call that must leave it as it was: queries, and the calls
      // expected to be refused (a refusal consumes nothing; a wrong allow is reported on its own cell,
      // and the snapshot catches any change). A call expected to succeed gets fresh rows to act on.
      const shared = { a: await seed(tenants.a.id), b: await seed(tenants.b.id) };
      const isQuery = routerProcedures.get(procedure)?.type === 'query';
      const rows = async (tenant: 'a' | 'b', expected: Verdict) => ({ tenant, seed: isQuery || expected !== 'allow' ? shared[tenant] : await seed(tenants[tenant].id) });
      for (const role of roles) {
        cells.push(await runCell(procedure, `own.${role}`, row.own[role], await rows('a', row.own[role]), { kind: 'key', bearer: tenants.a.keys[role] }, 'a'));
        if (row.foreign[role] === 'n/a') continue;
        const home = row.own[role] === 'allow';
        cells.push(await runCell(procedure, `foreign.${role}`, row.foreign[role], await rows('b', row.foreign[role]), { kind: 'key', bearer: tenants.a.keys[role] }, 'a', home));
      }
      // An agent acts on its own rows: the seed's agent is the caller.
      const own = await rows('a', row.agent.own);
      cells.push(await runCell(procedure, 'agent.own', row.agent.own, own, { kind: 'agent', ...own.seed.agent }, 'a'));
      if (row.agent.foreign !== 'n/a') {
        cells.push(await runCell(procedure, 'agent.foreign', row.agent.foreign, await rows('b', row.agent.foreign), { kind: 'agent', ...shared.a.agent }, 'a', row.agent.own === 'allow'));
      }
      for (const kind of clientKinds) {
        const target = await rows('a', row.oauth.own[kind]);
        if (kind === 'integration') await limitIntegrationClient(target.seed);
        cells.push(await runCell(procedure, `oauth.own.${kind}`, row.oauth.own[kind], target, { kind: 'key', bearer: await tokenOf(kind) }, 'a'));
      }
      if (row.oauth.foreign.secret !== 'n/a') {
        const home = row.oauth.own.secret === 'allow';
        cells.push(await runCell(procedure, 'oauth.foreign.secret', row.oauth.foreign.secret, await rows('b', row.oauth.foreign.secret), { kind: 'key', bearer: await tokenOf('secret') }, 'a', home));
      }
      for (const role of ssoRoles) {
        cells.push(await runCell(procedure, `sso.${role}`, row.sso[role], await rows('a', row.sso[role]), { kind: 'session', token: ssoSessions[role] }, 'a'));
      }
      cells.push(await runCell(procedure, 'anonymous', row.anonymous, await rows('a', row.anonymous), { kind: 'none' }, null));
    }

    const unexpectedAllows = cells.filter((c) => c.problem?.startsWith('unexpected allow') === true || c.problem?.startsWith('leaked') === true);
    const otherProblems = cells.filter((c) => c.problem !== null && !unexpectedAllows.includes(c));
    const summary = {
      procedures: new Set(cells.map((c) => c.procedure)).size,
      cells: cells.length,
      allowed: cells.filter((c) => c.observed === 'allow').length,
      denied: cells.filter((c) => c.observed.startsWith('deny')).length,
      unexpectedAllows: unexpectedAllows.length,
      otherProblems: otherProblems.length,
    };
    const lines = [...new Set(cells.map((c) => c.procedure))].map(
      (procedure) => `${procedure.padEnd(28)} ${cells.filter((c) => c.procedure === procedure).map((c) => `${c.cell}=${c.observed}${c.problem ? '!' : ''}`).join(' ')}`,
    );
    console.log(`authorization matrix: ${JSON.stringify(summary)}\n${lines.join('\n')}`);
    expect(summary.procedures).toBe(routerProcedures.size);
    expect(unexpectedAllows.map((c) => `${c.procedure} ${c.cell}: ${c.problem ?? ''}`)).toEqual([]);
    expect(otherProblems.map((c) => `${c.procedure} ${c.cell}: ${c.problem ?? ''}`)).toEqual([]);
    // Both outcomes occur, so neither check above passed by never being reached.
    expect(summary.allowed).toBeGreaterThan(50);
    expect(summary.denied).toBeGreaterThan(150);
    // An allowed destination test really reached the receiver, and nothing else did.
    const tested = cells.filter((c) => c.procedure === 'alertDestinations.test' && c.observed === 'allow').length;
    expect(tested).toBeGreaterThan(0);
    expect(deliveries).toBe(tested);
    // About 1,500 cells, each checked against a snapshot of its tenant: two or three minutes on two cores.
  }, 900_000);
});
