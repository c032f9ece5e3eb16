/**
 * Admin API keys: `alk_<prefix>_<secret>`. The prefix is visible and indexed; only the SHA-256 of
 * the whole key is stored. Keys travel in the Authorization header only, never in URLs or bodies.
 * A key made by a console user (directly or through keys that user made) never holds more than
 * that user does now: it acts with the lower of its own role and the user's current role, and is
 * refused while the user is disabled. Keys from the CLI bootstrap have no such user.
 */
import { AuthenticationError, UserError } from '@airlock/errors';
import type { Queryable } from '@airlock/storage';
import { type Permission, type Role, roleAllows, roleCovers } from './permissions.ts';
import { hashesEqual, randomToken, sha256Hex } from './secrets.ts';

const KEY_PATTERN = /^alk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
export const MAX_API_KEY_DAYS = 90;

export interface ApiKeyPrincipal {
  kind: 'api-key';
  keyId: string;
  tenantId: string;
  role: Role;
  /** Null: every permission of the role; otherwise only these (each also held by the role). */
  permissions: readonly Permission[] | null;
  /** The console user whose current role caps this key; null for keys no user made. */
  creatorUserId: string | null;
}

/**
 * Who mints a key: `ref` is recorded for listings (`user:<id>`, `api-key:<id>`), `userId` is the
 * console user whose role caps it (for a key minted by a key, that key's own capping user).
 */
export interface KeyCreator {
  ref: string;
  userId: string | null;
}

export async function createApiKey(
  tx: Queryable,
  input: { tenantId: string; name: string; role: Role; expiresInDays: number; permissions?: readonly Permission[] | null },
  now: Date,
  creator: KeyCreator | null = null,
): Promise<{ id: string; key: string; prefix: string; expiresAt: Date }> {
  if (!Number.isInteger(input.expiresInDays) || input.expiresInDays < 1 || input.expiresInDays > MAX_API_KEY_DAYS) {
    throw new UserError(`an API key expires in 1 to ${MAX_API_KEY_DAYS} days`);
  }
  const permissions = input.permissions ? [...new Set(input.permissions)].sort() : null;
  const outside = permissions?.filter((permission) => !roleAllows(input.role, permission)) ?? [];
  if (outside.length > 0) throw new UserError(`role ${input.role} does not hold ${outside.join(', ')}`);
  const prefix = randomToken(9).toLowerCase().replace(/[^a-z0-9]/g, '0').slice(0, 12);
  const key = `alk_${prefix}_${randomToken(32)}`;
  const expiresAt = new Date(now.getTime() + input.expiresInDays * 86_400_000);
  const [row] = await tx.query<{ id: string }>(
    `INSERT INTO api_keys (tenant_id, prefix, secret_sha256, name, role, created_at, expires_at, permissions, created_by, created_by_user)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
    [input.tenantId, prefix, sha256Hex(key), input.name, input.role, now, expiresAt, permissions, creator?.ref ?? null, creator?.userId ?? null],
  );
  if (!row) throw new Error('API key insert returned nothing');
  return { id: row.id, key, prefix, expiresAt };
}

export async function authenticateApiKey(db: Queryable, authorization: string | null, now: Date): Promise<ApiKeyPrincipal> {
  const match = /^Bearer (\S+)$/.exec(authorization ?? '');
  const key = match?.[1];
  const parts = key === undefined ? null : KEY_PATTERN.exec(key);
  if (!key || !parts) throw new AuthenticationError('missing or malformed API key');
  const [row] = await db.query<{
    id: string;
    tenant_id: string;
    role: Role;
    secret_sha256: string;
    expires_at: Date;
    revoked_at: Date | null;
    permissions: Permission[] | null;
    created_by_user: string | null;
    creator_role: Role | null;
    creator_disabled: boolean | null;
  }>(
    `SELECT k.id, k.tenant_id, k.role, k.secret_sha256, k.expires_at, k.revoked_at, k.permissions, k.created_by_user,
       u.role AS creator_role, u.disabled AS creator_disabled
     FROM api_keys k LEFT JOIN admin_users u ON u.id = k.created_by_user WHERE k.prefix = $1`,
    [parts[1]],
  );
  if (!row || !hashesEqual(sha256Hex(key), row.secret_sha256)) throw new AuthenticationError('unknown API key');
  if (row.revoked_at) throw new AuthenticationError('API key revoked');
  if (row.expires_at.getTime() <= now.getTime()) throw new AuthenticationError('API key expired');
  // Suspended, not revoked: the key works again if its creator is re-enabled.
  if (row.created_by_user !== null && (row.creator_role === null || row.creator_disabled !== false)) {
    throw new AuthenticationError('API key suspended: the user who created it is disabled');
  }
  const role = row.creator_role !== null && !roleCovers(row.creator_role, row.role) ? row.creator_role : row.role;
  await db.query('UPDATE api_keys SET last_used_at = $1 WHERE id = $2', [now, row.id]);
  return { kind: 'api-key', keyId: row.id, tenantId: row.tenant_id, role, permissions: row.permissions, creatorUserId: row.created_by_user };
}
