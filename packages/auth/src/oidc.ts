/**
 * Single sign-on through OpenID Connect (authorization code flow with PKCE, `state` and `nonce`),
 * through `openid-client`, which checks the ID token's signature, issuer, audience, nonce and
 * times. A login is begun by `beginSsoLogin`, which keeps a short-lived row keyed by the state's
 * hash and binds it to the browser through a cookie; `finishSsoLogin` takes that row once, lets
 * openid-client redeem the code, maps the role claim through the owner's mapping and opens a
 * session for the account bound to (tenant, issuer, subject). Every sign-in and every refusal is
 * audited with its reason; the caller only learns that single sign-on failed.
 */
import { AuthenticationError } from '@airlock/errors';
import { OIDC_LOGIN_STATE_TTL_MS, OIDC_REQUEST_TIMEOUT_MS } from '@airlock/protocol';
import * as client from 'openid-client';
import type { SecretBox } from '@airlock/alerts';
import { appendAudit, type Database, type Queryable, recordAudit } from '@airlock/storage';
import { normalizeEmail } from './admin-users.ts';
import { roles, type Role } from './permissions.ts';
import { randomToken, sha256Hex } from './secrets.ts';
import { createSession, type Session } from './sessions.ts';
import type { AuthSettings } from './settings.ts';

/** Why a single sign-on was refused, as the audit trail records it (never shown to the caller). */
export type SsoRefusal =
  | 'bad-state'
  | 'unknown-provider'
  | 'expired-state'
  | 'browser-mismatch'
  | 'provider-disabled'
  | 'idp-error'
  | 'code-rejected'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'nonce-mismatch'
  | 'expired-id-token'
  | 'bad-signature'
  | 'invalid-id-token'
  | 'idp-unreachable'
  | 'unmapped-user'
  | 'disabled';

export const SSO_FAILED = 'single sign-on failed; try again or ask your administrator';

export class SsoRefused extends AuthenticationError {
  constructor(readonly reason: SsoRefusal) {
    super(SSO_FAILED);
  }
}

/** The cookie binding a begun login to the browser that began it (login CSRF). */
export const SSO_BROWSER_COOKIE = 'airlock_sso';
/** The console's path the provider sends the browser back to. */
export const SSO_CALLBACK_PATH = '/auth/oidc/callback';
export const SSO_START_PATH = '/auth/oidc/start';

export interface ProviderRow {
  id: string;
  tenant_id: string;
  name: string;
  issuer: string;
  client_id: string;
  client_secret_sealed: string;
  role_claim: string;
  enabled: boolean;
  last_owner_sign_in_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export const PROVIDER_COLUMNS = 'id, tenant_id, name, issuer, client_id, client_secret_sealed, role_claim, enabled, last_owner_sign_in_at, created_at, updated_at';

export const sealContext = (providerId: string) => `oidc-provider:${providerId}`;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * The issuer as a URL, or why it is refused: https, or plain http on a loopback address only (a
 * provider on the same host, as in tests); no query, fragment or credentials.
 */
export function issuerUrl(issuer: string): URL | string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return 'the issuer must be a URL';
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return 'the issuer must not carry credentials, a query or a fragment';
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return url;
  return 'the issuer must be an https URL (plain http only on a loopback address)';
}

const configurations = new Map<string, Promise<client.Configuration>>();
const MAX_CACHED_CONFIGURATIONS = 200;

/**
 * The provider's discovered configuration, cached per provider version (a changed provider row gets
 * a fresh discovery). A failed discovery is not cached, so the next login tries again.
 */
function configurationOf(provider: ProviderRow, box: SecretBox): Promise<client.Configuration> {
  const key = `${provider.id}:${provider.updated_at.toISOString()}`;
  const cached = configurations.get(key);
  if (cached) return cached;
  const url = issuerUrl(provider.issuer);
  if (typeof url === 'string') return Promise.reject(new Error(url));
  const secret = box.open(provider.client_secret_sealed, sealContext(provider.id));
  const discovered = client.discovery(url, provider.client_id, { client_secret: secret }, client.ClientSecretBasic(secret), {
    timeout: OIDC_REQUEST_TIMEOUT_MS / 1000,
    ...(url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
  });
  configurations.set(key, discovered);
  if (configurations.size > MAX_CACHED_CONFIGURATIONS) {
    const oldest = configurations.keys().next().value;
    if (oldest !== undefined) configurations.delete(oldest);
  }
  discovered.catch(() => configurations.delete(key));
  return discovered;
}

/** The enabled providers of the tenant named `tenant`, for its login page: id and name only. */
export async function providersForLogin(db: Queryable, tenant: string): Promise<Array<{ id: string; name: string }>> {
  return db.query<{ id: string; name: string }>(
    `SELECT p.id, p.name FROM oidc_providers p JOIN tenants t ON t.id = p.tenant_id WHERE t.name = $1 AND p.enabled ORDER BY p.name`,
    [tenant],
  );
}

export interface SsoRequest {
  db: Database;
  box: SecretBox;
  settings: AuthSettings;
  sourceIp: string | null;
  now: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Begins a login through `providerId` (of the tenant named `tenant`): returns where to send the
 * browser and the value of the browser-binding cookie. An unknown or disabled provider is refused
 * and audited like any other refusal.
 */
export async function beginSsoLogin(
  request: SsoRequest,
  input: { tenant: string; providerId: string; redirectUri: string },
): Promise<{ authorizationUrl: URL; browserToken: string }> {
  const { db, now } = request;
  const [provider] = UUID.test(input.providerId)
    ? await db.query<ProviderRow>(
        `SELECT ${PROVIDER_COLUMNS.split(', ').map((column) => `p.${column}`).join(', ')}
         FROM oidc_providers p JOIN tenants t ON t.id = p.tenant_id WHERE t.name = $1 AND p.id = $2`,
        [input.tenant, input.providerId],
      )
    : [];
  if (!provider?.enabled) {
    const reason = provider ? 'provider-disabled' : 'unknown-provider';
    await auditRefusal(request, provider?.tenant_id ?? null, reason, { tenant: input.tenant, providerId: provider?.id ?? null, stage: 'begin' });
    throw new SsoRefused(reason);
  }
  let config: client.Configuration;
  try {
    config = await configurationOf(provider, request.box);
  } catch (error) {
    await auditRefusal(request, provider.tenant_id, 'idp-unreachable', { providerId: provider.id, stage: 'discovery', error: describe(error) });
    throw new SsoRefused('idp-unreachable');
  }
  const state = client.randomState();
  const nonce = client.randomNonce();
  const codeVerifier = client.randomPKCECodeVerifier();
  const browserToken = randomToken(32);
  await db.query(
    `INSERT INTO oidc_login_states (state_sha256, tenant_id, provider_id, browser_sha256, nonce, code_verifier, redirect_uri, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [sha256Hex(state), provider.tenant_id, provider.id, sha256Hex(browserToken), nonce, codeVerifier, input.redirectUri, new Date(now.getTime() + OIDC_LOGIN_STATE_TTL_MS)],
  );
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: input.redirectUri,
    response_type: 'code',
    scope: `openid email ${provider.role_claim}`,
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  });
  return { authorizationUrl, browserToken };
}

interface StateRow {
  tenant_id: string;
  provider_id: string;
  browser_sha256: string;
  nonce: string;
  code_verifier: string;
  redirect_uri: string;
  expires_at: Date;
}

/** A short description of an error for the audit trail: its code and class, never token contents. */
function describe(error: unknown): string {
  if (error instanceof client.ResponseBodyError) return `${error.code}:${error.error}`;
  if (error instanceof client.AuthorizationResponseError) return `${error.code}:${error.error}`;
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.name : 'unknown';
}

/**
 * The claim a failed comparison names. openid-client wraps oauth4webapi's error, whose cause
 * carries `claim`, so it is looked for one level down as well.
 */
function claimOf(cause: unknown): unknown {
  if (typeof cause !== 'object' || cause === null) return undefined;
  if ('claim' in cause) return cause.claim;
  return 'cause' in cause && typeof cause.cause === 'object' && cause.cause !== null && 'claim' in cause.cause ? cause.cause.claim : undefined;
}

/** The refusal reason for an error openid-client raised while redeeming the code. */
export function refusalOf(error: unknown): SsoRefusal {
  if (error instanceof client.AuthorizationResponseError) return 'idp-error';
  if (error instanceof client.ResponseBodyError) return error.error === 'invalid_grant' ? 'code-rejected' : 'idp-error';
  if (error instanceof Error && 'code' in error) {
    const claim = claimOf(error.cause);
    switch (error.code) {
      case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
        if (claim === 'aud' || claim === 'azp') return 'wrong-audience';
        if (claim === 'iss') return 'wrong-issuer';
        if (claim === 'nonce') return 'nonce-mismatch';
        return 'invalid-id-token';
      case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
        return 'expired-id-token';
      case 'OAUTH_KEY_SELECTION_FAILED':
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return 'bad-signature';
      case 'OAUTH_INVALID_RESPONSE':
      case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
      case 'OAUTH_PARSE_ERROR':
      case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED':
        return 'invalid-id-token';
    }
  }
  if (error instanceof Error && /signature/i.test(error.message)) return 'bad-signature';
  return 'idp-unreachable';
}

async function auditRefusal(request: SsoRequest, tenantId: string | null, reason: SsoRefusal, meta: Record<string, string | number | boolean | null>): Promise<void> {
  await recordAudit(request.db, {
    tenantId,
    actor: { type: 'anonymous', id: null },
    action: 'sso-login-failed',
    target: typeof meta['providerId'] === 'string' ? meta['providerId'] : null,
    outcome: 'denied',
    sourceIp: request.sourceIp,
    meta: { reason, ...meta },
  });
}

/** The strings of a claim that may be one string or a list of them. */
function claimValues(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/** The highest role any of `values` maps to, or null when none is mapped. */
export function mappedRole(mappings: ReadonlyArray<{ claim_value: string; role: Role }>, values: readonly string[]): Role | null {
  const granted = mappings.filter((mapping) => values.includes(mapping.claim_value)).map((mapping) => roles.indexOf(mapping.role));
  return granted.length === 0 ? null : (roles[Math.min(...granted)] ?? null);
}

/**
 * Finishes a login at the callback: `callbackUrl` is the URL the provider sent the browser to,
 * `browserToken` the binding cookie's value (null when the browser sent none).
 */
export async function finishSsoLogin(request: SsoRequest, callbackUrl: URL, browserToken: string | null): Promise<{ token: string; session: Session }> {
  const { db, now } = request;
  const state = callbackUrl.searchParams.get('state');
  // Taken whatever happens next, so a state (and the code that came with it) answers once.
  const [row] = state
    ? await db.query<StateRow>(
        `DELETE FROM oidc_login_states WHERE state_sha256 = $1
         RETURNING tenant_id, provider_id, browser_sha256, nonce, code_verifier, redirect_uri, expires_at`,
        [sha256Hex(state)],
      )
    : [];
  if (!row) {
    await auditRefusal(request, null, 'bad-state', { stage: 'callback', stateSent: state !== null });
    throw new SsoRefused('bad-state');
  }
  const refuse = async (reason: SsoRefusal, meta: Record<string, string | number | boolean | null> = {}): Promise<never> => {
    await auditRefusal(request, row.tenant_id, reason, { providerId: row.provider_id, stage: 'callback', ...meta });
    throw new SsoRefused(reason);
  };
  if (row.expires_at <= now) return refuse('expired-state');
  if (browserToken === null || sha256Hex(browserToken) !== row.browser_sha256) return refuse('browser-mismatch');
  const [provider] = await db.query<ProviderRow>(`SELECT ${PROVIDER_COLUMNS} FROM oidc_providers WHERE id = $1 AND tenant_id = $2`, [row.provider_id, row.tenant_id]);
  if (!provider?.enabled) return refuse('provider-disabled');

  // The provider sees the redirect URI the login began with; the callback's own host plays no part.
  const currentUrl = new URL(row.redirect_uri);
  currentUrl.search = callbackUrl.search;
  let claims: client.IDToken;
  try {
    const config = await configurationOf(provider, request.box);
    const tokens = await client.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: row.code_verifier,
      expectedState: state ?? '',
      expectedNonce: row.nonce,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims();
    if (!idClaims) return refuse('invalid-id-token');
    claims = idClaims;
  } catch (error) {
    if (error instanceof SsoRefused) throw error;
    return refuse(refusalOf(error), { error: describe(error) });
  }

  const issuer = claims.iss;
  const subject = claims.sub;
  const values = claimValues(claims[provider.role_claim]);
  const mappings = await db.query<{ claim_value: string; role: Role }>('SELECT claim_value, role FROM oidc_role_mappings WHERE provider_id = $1', [provider.id]);
  const role = mappedRole(mappings, values);
  const email = typeof claims['email'] === 'string' && claims['email'] !== '' ? normalizeEmail(claims['email']).slice(0, 254) : subject.slice(0, 254).toLowerCase();

  return db.transaction(async (tx) => {
    const [existing] = await tx.query<{ id: string; role: Role; disabled: boolean; email: string }>(
      'SELECT id, role, disabled, email FROM admin_users WHERE tenant_id = $1 AND oidc_issuer = $2 AND oidc_subject = $3 FOR UPDATE',
      [provider.tenant_id, issuer, subject],
    );
    if (role === null) {
      // The IdP no longer puts this person in any mapped group: the account keeps its history but
      // loses its sessions now, not when they lapse.
      const ended = existing ? await endSessionsOf(tx, existing.id) : 0;
      await appendAudit(
        tx,
        {
          tenantId: provider.tenant_id,
          actor: { type: 'anonymous', id: null },
          action: 'sso-login-failed',
          target: provider.id,
          outcome: 'denied',
          sourceIp: request.sourceIp,
          meta: { reason: 'unmapped-user', providerId: provider.id, stage: 'mapping', subject, userId: existing?.id ?? null, claimValues: values.slice(0, 20), sessionsEnded: ended },
        },
        now,
      );
      return null;
    }
    if (existing?.disabled) {
      await appendAudit(
        tx,
        {
          tenantId: provider.tenant_id,
          actor: { type: 'anonymous', id: null },
          action: 'sso-login-failed',
          target: provider.id,
          outcome: 'denied',
          sourceIp: request.sourceIp,
          meta: { reason: 'disabled', providerId: provider.id, stage: 'account', subject, userId: existing.id },
        },
        now,
      );
      return null;
    }
    let userId: string;
    if (existing) {
      userId = existing.id;
      await tx.query('UPDATE admin_users SET role = $2, email = $3, last_login_at = $4, updated_at = $4 WHERE id = $1', [existing.id, role, email, now]);
    } else {
      const [created] = await tx.query<{ id: string }>(
        `INSERT INTO admin_users (tenant_id, email, password_hash, role, oidc_issuer, oidc_subject, last_login_at, created_at, updated_at)
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $6, $6) RETURNING id`,
        [provider.tenant_id, email, role, issuer, subject, now],
      );
      if (!created) throw new Error('account insert returned nothing');
      userId = created.id;
      await appendAudit(
        tx,
        {
          tenantId: provider.tenant_id,
          actor: { type: 'system', id: 'sso' },
          action: 'admin-user-create',
          target: userId,
          outcome: 'success',
          sourceIp: request.sourceIp,
          meta: { email, providerId: provider.id, issuer, subject, before: null, after: { email, role, disabled: false } },
        },
        now,
      );
    }
    if (role === 'owner') await tx.query('UPDATE oidc_providers SET last_owner_sign_in_at = $2 WHERE id = $1', [provider.id, now]);
    const opened = await createSession(tx, { id: userId, email, role, tenantId: provider.tenant_id }, request.settings, request.sourceIp, now);
    await appendAudit(
      tx,
      {
        tenantId: provider.tenant_id,
        actor: { type: 'admin', id: userId },
        action: 'sso-login',
        target: email,
        outcome: 'success',
        sourceIp: request.sourceIp,
        meta: { providerId: provider.id, issuer, subject, role, roleBefore: existing?.role ?? null, sessionId: opened.session.principal.sessionId },
      },
      now,
    );
    return opened;
  }).then((opened) => {
    if (opened === null) throw new SsoRefused(role === null ? 'unmapped-user' : 'disabled');
    return opened;
  });
}

/** Ends every session of an account; returns how many there were. */
export async function endSessionsOf(tx: Queryable, userId: string, exceptSessionId: string | null = null): Promise<number> {
  const rows = await tx.query('DELETE FROM admin_sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2 RETURNING id', [userId, exceptSessionId]);
  return rows.length;
}

/** Login states past their expiry, which no callback can take any more. */
export async function pruneSsoStates(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query('DELETE FROM oidc_login_states WHERE expires_at <= $1 RETURNING state_sha256', [now]);
  return rows.length;
}
