/**
 * Who an admin request acts as: an API key or a signed-in admin user. Procedures read
 * `ctx.admin` through these helpers, so every permission check and audit record treats both alike.
 */
import type { ApiKeyPrincipal, KeyCreator } from './api-keys.ts';
import { type Permission, permissions, type Role, roleAllows, roleCovers } from './permissions.ts';

export interface UserPrincipal {
  kind: 'user';
  userId: string;
  email: string;
  tenantId: string;
  role: Role;
  sessionId: string;
}

export type AdminPrincipal = ApiKeyPrincipal | UserPrincipal;

/** The permissions a principal may use: its role's, narrowed by an API key's own list. */
export function effectivePermissions(principal: AdminPrincipal): Permission[] {
  const scoped = principal.kind === 'api-key' ? principal.permissions : null;
  return permissions.filter((permission) => roleAllows(principal.role, permission) && (scoped === null || scoped.includes(permission)));
}

export function principalAllows(principal: AdminPrincipal, permission: Permission): boolean {
  return effectivePermissions(principal).includes(permission);
}

/**
 * Whether `principal` may hand out `role` (narrowed to `scope` when given): never a higher role, and
 * never a permission it cannot use itself, so a narrowed key cannot mint a broader credential.
 */
export function canGrant(principal: AdminPrincipal, role: Role, scope: readonly Permission[] | null = null): boolean {
  if (!roleCovers(principal.role, role)) return false;
  const own = effectivePermissions(principal);
  const wanted = permissions.filter((permission) => roleAllows(role, permission) && (scope === null || scope.includes(permission)));
  return wanted.every((permission) => own.includes(permission));
}

/** `api-key:<id>` or `user:<id>`, for the `created_by`-style columns. */
export function principalRef(principal: AdminPrincipal): string {
  return principal.kind === 'api-key' ? `api-key:${principal.keyId}` : `user:${principal.userId}`;
}

/** Who mints a key made by `principal`: a key made by a key is capped by the same user as its maker. */
export function keyCreatorOf(principal: AdminPrincipal): KeyCreator {
  return { ref: principalRef(principal), userId: principal.kind === 'user' ? principal.userId : principal.creatorUserId };
}
