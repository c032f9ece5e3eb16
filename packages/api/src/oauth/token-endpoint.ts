/**
 * `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4), answering in RFC 6749 §5.1 /
 * §5.2 JSON. Served by the HTTP transport beside tRPC, since OAuth clients speak form-encoded HTTP.
 * Every refusal is audited (`oauth-token-refused`, with the reason and the client when known, never
 * a credential), every issue too (`oauth-token-issue`), and both count against rate limits: per
 * source IP before the client is known, per client after.
 */
import {
  addressKey,
  authenticateWithAssertion,
  authenticateWithSecret,
  basicCredentials,
  CLIENT_ASSERTION_TYPE,
  clientPermissions,
  type ClientRow,
  issueAccessToken,
  OAuthError,
  type OAuthSettings,
  type Permission,
  permissions as allPermissions,
  type RateLimits,
  roleAllows,
  tokenEndpointOf,
} from '@airlock/auth';
import { recordAudit } from '@airlock/storage';
import type { RequestFacts, ServerDeps } from '../context.ts';

export interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  /** The authenticated client, for the request log. */
  client: ClientRow | null;
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

function refusal(error: OAuthError, basic: boolean): TokenResponse {
  const status = error.error === 'invalid_client' ? 401 : 400;
  const headers: Record<string, string> = { ...NO_STORE, ...(status === 401 && basic ? { 'www-authenticate': 'Basic realm="airlock", charset="UTF-8"' } : {}) };
  return { status, body: { error: error.error, error_description: error.description }, headers, client: null };
}

/** The form's parameters; a parameter sent twice is refused (RFC 6749 §3.2). */
function formOf(facts: RequestFacts): Map<string, string> {
  const type = facts.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
  const form = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(Buffer.from(facts.body).toString('utf8'))) {
    if (form.has(name)) throw new OAuthError('invalid_request', `parameter ${name} sent more than once`);
    form.set(name, value);
  }
  return form;
}

export async function handleTokenRequest(deps: ServerDeps, settings: OAuthSettings, facts: RequestFacts, limits: RateLimits): Promise<TokenResponse> {
  const ipVerdict = await limits.consume('ip', addressKey(facts.sourceIp));
  if (!ipVerdict.allowed) {
    return { status: 429, body: { error: 'invalid_request', error_description: 'rate limit exceeded' }, headers: { ...NO_STORE, 'retry-after': String(ipVerdict.retryAfterSeconds) }, client: null };
  }
  const authorization = facts.headers.get('authorization');
  const usesBasic = /^Basic /i.test(authorization ?? '');
  const db = deps.db.forSystem();
  const now = deps.now();
  let client: ClientRow | null = null;
  try {
    if (facts.method !== 'POST') throw new OAuthError('invalid_request', 'the token endpoint takes POST');
    const form = formOf(facts);
    if (form.has('client_secret')) throw new OAuthError('invalid_client', 'client_secret_post is not supported; use client_secret_basic or private_key_jwt');
    const assertion = form.get('client_assertion');
    const basic = basicCredentials(authorization);
    if (basic !== null && assertion !== undefined) throw new OAuthError('invalid_request', 'use one client authentication method, not two');
    if (assertion !== undefined) {
      if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) throw new OAuthError('invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
      client = await authenticateWithAssertion(db, assertion, form.get('client_id') ?? null, [tokenEndpointOf(settings), settings.issuer], now);
    } else if (basic !== null) {
      if (form.has('client_id') && form.get('client_id') !== basic.clientId) throw new OAuthError('invalid_request', 'client_id differs from the Basic credentials');
      client = await authenticateWithSecret(db, basic);
    } else {
      throw new OAuthError('invalid_client', 'client authentication required (client_secret_basic or private_key_jwt)');
    }
    if (client.disabled_at !== null) throw new OAuthError('invalid_client', 'client disabled', client);
    const grantType = form.get('grant_type');
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type missing', client);
    if (grantType !== 'client_credentials') throw new OAuthError('unsupported_grant_type', 'only client_credentials is supported', client);
    const verdict = await limits.consume('oauth-client', client.id);
    if (!verdict.allowed) {
      await recordAudit(db, refusedEvent(facts, client, 'rate-limited'));
      return { status: 429, body: { error: 'invalid_request', error_description: 'rate limit exceeded' }, headers: { ...NO_STORE, 'retry-after': String(verdict.retryAfterSeconds) }, client };
    }
    const held = clientPermissions(client, allPermissions.filter((permission) => roleAllows(client?.role ?? 'auditor', permission)));
    const scope = scopeOf(form.get('scope'), held, client);
    const { token, expiresIn } = await issueAccessToken(settings, client, scope, now);
    await recordAudit(db, {
      tenantId: client.tenant_id,
      actor: { type: 'oauth-client', id: client.id },
      action: 'oauth-token-issue',
      target: client.client_id,
      outcome: 'success',
      sourceIp: facts.sourceIp,
      meta: { clientId: client.client_id, expiresIn, scope: scope.join(' ') },
    });
    return { status: 200, body: { access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: scope.join(' ') }, headers: NO_STORE, client };
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    await recordAudit(db, refusedEvent(facts, error.client ?? client, error.description));
    return { ...refusal(error, usesBasic), client: null };
  }
}

/** The requested scope (space-separated permissions), each held by the client; none asked: all it holds. */
function scopeOf(requested: string | undefined, held: readonly Permission[], client: ClientRow): Permission[] {
  if (requested === undefined || requested.trim() === '') return [...held];
  const wanted = new Set(requested.split(' ').filter((part) => part !== ''));
  // The refusal names no requested value: it is audited, and a request's text never reaches the audit trail.
  if ([...wanted].some((part) => !held.some((permission) => permission === part))) throw new OAuthError('invalid_scope', 'the scope names a permission this client does not hold', client);
  return held.filter((permission) => wanted.has(permission));
}

function refusedEvent(facts: RequestFacts, client: ClientRow | null, reason: string) {
  return {
    tenantId: client?.tenant_id ?? null,
    actor: client ? { type: 'oauth-client' as const, id: client.id } : { type: 'anonymous' as const, id: null },
    action: 'oauth-token-refused',
    target: client?.client_id ?? null,
    outcome: 'denied' as const,
    sourceIp: facts.sourceIp,
    meta: { reason },
  };
}
