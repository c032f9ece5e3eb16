/**
 * Access tokens: JWTs (RFC 9068 profile, `typ: at+jwt`) signed with the token key, living at most
 * `MAX_ACCESS_TOKEN_TTL_SECONDS`. A signature alone never admits a request: each use reads the
 * client again, so a disabled, rotated or deleted client's tokens stop at once.
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { AuthenticationError } from '@airlock/errors';
import { ACCESS_TOKEN_TTL_SECONDS, JWT_CLOCK_TOLERANCE_SECONDS, MAX_ACCESS_TOKEN_TTL_SECONDS } from '@airlock/protocol';
import type { Queryable } from '@airlock/storage';
import { type Permission, permissions as allPermissions } from '../permissions.ts';
import { clientByClientId, type ClientRow, newTokenId, type OAuthClientPrincipal } from './clients.ts';
import { jwksOf, TOKEN_ALG, type TokenKeys } from './token-keys.ts';

export interface OAuthSettings {
  /** This authorization server's issuer: the control plane's public origin. */
  issuer: string;
  keys: TokenKeys;
  /** Access token lifetime in seconds. Default `ACCESS_TOKEN_TTL_SECONDS`; at most `MAX_ACCESS_TOKEN_TTL_SECONDS`. */
  tokenTtlSeconds?: number;
}

export function tokenEndpointOf(settings: OAuthSettings): string {
  return `${settings.issuer}/oauth/token`;
}

/** The audience of every access token: this control plane's API. */
export function apiAudienceOf(settings: OAuthSettings): string {
  return `${settings.issuer}/trpc`;
}

/** RFC 8414 metadata, served at `/.well-known/oauth-authorization-server`. */
export function authorizationServerMetadata(settings: OAuthSettings) {
  return {
    issuer: settings.issuer,
    token_endpoint: tokenEndpointOf(settings),
    jwks_uri: `${settings.issuer}/.well-known/jwks.json`,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    scopes_supported: [...allPermissions],
    response_types_supported: [],
  };
}

/** The permissions a token may carry: the client's own, fixed at issue and checked again on use. */
export function clientPermissions(client: ClientRow, rolePermissions: readonly Permission[]): Permission[] {
  return rolePermissions.filter((permission) => (client.permissions === null || client.permissions.includes(permission)) && (!client.read_only || permission.endsWith(':read')));
}

export async function issueAccessToken(settings: OAuthSettings, client: ClientRow, scope: readonly Permission[], now: Date): Promise<{ token: string; expiresIn: number }> {
  const expiresIn = Math.min(settings.tokenTtlSeconds ?? ACCESS_TOKEN_TTL_SECONDS, MAX_ACCESS_TOKEN_TTL_SECONDS);
  const issuedAt = Math.floor(now.getTime() / 1000);
  const token = await new SignJWT({ client_id: client.client_id, scope: scope.join(' '), tid: client.tenant_id, gen: client.token_generation })
    .setProtectedHeader({ alg: TOKEN_ALG, kid: settings.keys.current.kid, typ: 'at+jwt' })
    .setIssuer(settings.issuer)
    .setSubject(client.client_id)
    .setAudience(apiAudienceOf(settings))
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + expiresIn)
    .setJti(newTokenId())
    .sign(settings.keys.current.privateKey);
  return { token, expiresIn };
}

/** Whether an Authorization bearer value is shaped like a JWT (and so is no API key). */
export function looksLikeJwt(bearer: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(bearer);
}

/** Verifies an access token and reads its client now; throws AuthenticationError with the reason. */
export async function authenticateAccessToken(db: Queryable, settings: OAuthSettings | undefined, token: string, now: Date): Promise<OAuthClientPrincipal> {
  if (!settings) throw new AuthenticationError('this control plane issues no OAuth access tokens');
  let payload;
  try {
    ({ payload } = await jwtVerify(token, createLocalJWKSet(jwksOf(settings.keys)), {
      issuer: settings.issuer,
      audience: apiAudienceOf(settings),
      algorithms: [TOKEN_ALG],
      typ: 'at+jwt',
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: MAX_ACCESS_TOKEN_TTL_SECONDS + JWT_CLOCK_TOLERANCE_SECONDS,
      currentDate: now,
    }));
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError('access token expired');
    throw new AuthenticationError(`invalid access token (${error instanceof joseErrors.JOSEError ? error.code : 'malformed'})`);
  }
  const { sub, tid, gen, scope } = payload;
  if (typeof sub !== 'string' || typeof tid !== 'string' || typeof gen !== 'number' || typeof scope !== 'string') throw new AuthenticationError('invalid access token (claims)');
  const client = await clientByClientId(db, sub);
  if (!client || client.tenant_id !== tid) throw new AuthenticationError('access token of an unknown client');
  if (client.disabled_at !== null) throw new AuthenticationError('OAuth client disabled');
  if (client.token_generation !== gen) throw new AuthenticationError('access token revoked: the client was rotated');
  await db.query('UPDATE oauth_clients SET last_used_at = $1 WHERE id = $2', [now, client.id]);
  // The token's scope narrows, never widens: a permission taken from the client since issue is gone now.
  const granted = new Set(scope.split(' '));
  const permissions = allPermissions.filter((permission) => granted.has(permission) && (client.permissions === null || client.permissions.includes(permission)));
  return {
    kind: 'oauth-client',
    clientRowId: client.id,
    clientId: client.client_id,
    tenantId: client.tenant_id,
    role: client.role,
    permissions,
    readOnly: client.read_only,
    integrations: client.integrations,
  };
}
