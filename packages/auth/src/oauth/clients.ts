/**
 * OAuth 2.0 clients of the client credentials grant: how they are stored, created and rotated, and
 * how the token endpoint authenticates one (`client_secret_basic` or `private_key_jwt`, RFC 7523).
 * A client acts like a narrowed API key: a role, optionally a subset of its permissions, optionally
 * only the read permissions (`readOnly`) and only named integrations.
 */
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, errors as joseErrors, type JSONWebKeySet, jwtVerify } from 'jose';
import { z } from 'zod';
import { ConflictError, UserError } from '@airlock/errors';
import { CLIENT_ASSERTION_MAX_LIFETIME_SECONDS, JWT_CLOCK_TOLERANCE_SECONDS } from '@airlock/protocol';
import type { Queryable } from '@airlock/storage';
import { type Permission, type Role, roleAllows } from '../permissions.ts';
import { hashesEqual, randomToken, sha256Hex } from '../secrets.ts';

export const authMethods = ['client_secret_basic', 'private_key_jwt'] as const;
export type AuthMethod = (typeof authMethods)[number];

/** Signature algorithms accepted on client assertions; `none` and HMAC (a shared secret) never. */
export const ASSERTION_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const CLIENT_ID_PATTERN = /^alc_[a-z0-9]{20}$/;

/** A registered public key: the members a verifier needs, and never a private one. */
const publicJwk = z
  .object({
    kty: z.enum(['RSA', 'EC', 'OKP']),
    kid: z.string().min(1).max(200).optional(),
    alg: z.enum(ASSERTION_ALGS).optional(),
    use: z.literal('sig').optional(),
    crv: z.string().max(20).optional(),
    x: z.string().max(2_000).optional(),
    y: z.string().max(2_000).optional(),
    n: z.string().max(2_000).optional(),
    e: z.string().max(20).optional(),
  })
  .strict();
export const clientJwks = z.strictObject({ keys: z.array(publicJwk).min(1).max(5) });

export interface OAuthClientPrincipal {
  kind: 'oauth-client';
  /** The client's row id. */
  clientRowId: string;
  /** The public `client_id`. */
  clientId: string;
  tenantId: string;
  role: Role;
  /** Null: every permission of the role; otherwise only these. Already narrowed by the token's scope. */
  permissions: readonly Permission[] | null;
  /** Only the role's `:read` permissions. */
  readOnly: boolean;
  /** Null: every integration; otherwise only these integration ids. */
  integrations: readonly string[] | null;
}

export interface ClientRow {
  id: string;
  tenant_id: string;
  client_id: string;
  name: string;
  auth_method: AuthMethod;
  secret_sha256: string | null;
  jwks: unknown;
  role: Role;
  permissions: Permission[] | null;
  integrations: string[] | null;
  read_only: boolean;
  token_generation: number;
  disabled_at: Date | null;
}

export const CLIENT_COLUMNS =
  'id, tenant_id, client_id, name, auth_method, secret_sha256, jwks, role, permissions, integrations, read_only, token_generation, disabled_at';

export async function clientByClientId(db: Queryable, clientId: string): Promise<ClientRow | null> {
  if (!CLIENT_ID_PATTERN.test(clientId)) return null;
  const [row] = await db.query<ClientRow>(`SELECT ${CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1`, [clientId]);
  return row ?? null;
}

export interface NewClient {
  tenantId: string;
  name: string;
  role: Role;
  permissions: readonly Permission[] | null;
  readOnly: boolean;
  /** Integration ids, already checked to be the tenant's. */
  integrations: readonly string[] | null;
  authMethod: AuthMethod;
  jwks: z.infer<typeof clientJwks> | null;
}

/** Inserts a client; the secret (for `client_secret_basic`) is returned here and never again. */
export async function createClient(tx: Queryable, input: NewClient, now: Date, createdBy: string): Promise<{ id: string; clientId: string; clientSecret: string | null }> {
  const permissions = input.permissions ? [...new Set(input.permissions)].sort() : null;
  const outside = permissions?.filter((permission) => !roleAllows(input.role, permission)) ?? [];
  if (outside.length > 0) throw new UserError(`role ${input.role} does not hold ${outside.join(', ')}`);
  if ((input.authMethod === 'private_key_jwt') !== (input.jwks !== null)) throw new UserError('a private_key_jwt client needs a JWKS, and only it has one');
  const clientId = `alc_${randomToken(20).toLowerCase().replace(/[^a-z0-9]/g, '0').slice(0, 20)}`;
  const clientSecret = input.authMethod === 'client_secret_basic' ? newSecret() : null;
  const [row] = await tx.query<{ id: string }>(
    `INSERT INTO oauth_clients (tenant_id, client_id, name, auth_method, secret_sha256, jwks, role, permissions, integrations, read_only, created_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id`,
    [
      input.tenantId,
      clientId,
      input.name,
      input.authMethod,
      clientSecret === null ? null : sha256Hex(clientSecret),
      input.jwks === null ? null : JSON.stringify(input.jwks),
      input.role,
      permissions,
      input.integrations === null ? null : [...new Set(input.integrations)],
      input.readOnly,
      now,
      createdBy,
    ],
  );
  if (!row) throw new ConflictError(`an OAuth client named ${input.name} exists`);
  return { id: row.id, clientId, clientSecret };
}

export function newSecret(): string {
  return `alcs_${randomToken(32)}`;
}

/** A refusal of the token endpoint, with its RFC 6749 §5.2 error code. */
export class OAuthError extends Error {
  constructor(
    readonly error: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope',
    readonly description: string,
    /** The client the request named, when it named one that exists (for the audit record). */
    readonly client: ClientRow | null = null,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

/** `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1), or null when the header is not Basic. */
export function basicCredentials(authorization: string | null): { clientId: string; secret: string } | null {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(authorization ?? '');
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_client', 'malformed Basic credentials');
  try {
    return { clientId: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) };
  } catch {
    throw new OAuthError('invalid_client', 'malformed Basic credentials');
  }
}

export async function authenticateWithSecret(db: Queryable, credentials: { clientId: string; secret: string }): Promise<ClientRow> {
  const client = await clientByClientId(db, credentials.clientId);
  if (!client) throw new OAuthError('invalid_client', 'unknown client or wrong secret');
  if (client.auth_method !== 'client_secret_basic' || client.secret_sha256 === null) {
    throw new OAuthError('invalid_client', 'this client authenticates with private_key_jwt', client);
  }
  if (!hashesEqual(sha256Hex(credentials.secret), client.secret_sha256)) throw new OAuthError('invalid_client', 'unknown client or wrong secret', client);
  return client;
}

/**
 * RFC 7523 §3: the assertion is signed by a key of the client's JWKS, `iss` and `sub` are the
 * client_id, `aud` names this token endpoint or this issuer, `exp` is near, and its `jti` was never
 * seen before (remembered until the assertion expires).
 */
export async function authenticateWithAssertion(
  db: Queryable,
  assertion: string,
  claimedClientId: string | null,
  audiences: readonly string[],
  now: Date,
): Promise<ClientRow> {
  let issuer: unknown;
  try {
    issuer = decodeJwt(assertion).iss;
  } catch {
    throw new OAuthError('invalid_client', 'client_assertion is not a JWT');
  }
  if (typeof issuer !== 'string') throw new OAuthError('invalid_client', 'client_assertion has no iss');
  if (claimedClientId !== null && claimedClientId !== issuer) throw new OAuthError('invalid_client', 'client_id and the assertion issuer differ');
  const client = await clientByClientId(db, issuer);
  if (!client) throw new OAuthError('invalid_client', 'unknown client');
  const jwks = clientJwks.safeParse(client.jwks);
  if (client.auth_method !== 'private_key_jwt' || !jwks.success) throw new OAuthError('invalid_client', 'this client authenticates with a secret', client);
  let payload;
  try {
    ({ payload } = await jwtVerify(assertion, createLocalJWKSet(jwks.data as JSONWebKeySet), {
      issuer: client.client_id,
      subject: client.client_id,
      audience: [...audiences],
      algorithms: [...ASSERTION_ALGS],
      requiredClaims: ['exp', 'jti'],
      clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS,
      currentDate: now,
    }));
  } catch (error) {
    const reason = error instanceof joseErrors.JOSEError ? error.code : 'invalid';
    throw new OAuthError('invalid_client', `client_assertion refused (${reason})`, client);
  }
  const { exp, jti } = payload;
  if (typeof exp !== 'number' || typeof jti !== 'string' || jti.length === 0 || jti.length > 200) throw new OAuthError('invalid_client', 'client_assertion needs exp and jti', client);
  if (exp * 1000 > now.getTime() + (CLIENT_ASSERTION_MAX_LIFETIME_SECONDS + JWT_CLOCK_TOLERANCE_SECONDS) * 1000) {
    throw new OAuthError('invalid_client', `client_assertion expires more than ${CLIENT_ASSERTION_MAX_LIFETIME_SECONDS} s ahead`, client);
  }
  const stored = await db.query('INSERT INTO oauth_assertion_jtis (client_id, tenant_id, jti, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING jti', [
    client.id,
    client.tenant_id,
    jti,
    new Date((exp + JWT_CLOCK_TOLERANCE_SECONDS) * 1000),
  ]);
  if (stored.length === 0) throw new OAuthError('invalid_client', 'client_assertion replayed (jti seen before)', client);
  return client;
}

/** Drops the remembered jtis of assertions that have expired (and can no longer be replayed anyway). */
export async function pruneAssertionJtis(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query('DELETE FROM oauth_assertion_jtis WHERE expires_at < $1 RETURNING jti', [now]);
  return rows.length;
}

export function newTokenId(): string {
  return randomUUID();
}
