/**
 * Who an admin request acts as: an API key, an OAuth client (access token) or a signed-in admin user. Procedures read
 * `ctx.admin` through these helpers, so every permission check and audit record treats both alike.
 */
import type { ApiKeyPrincipal, KeyCreator } from './api-keys.ts';
import type { OAuthClientPrincipal } from './oauth/clients.ts';
import { type Permission, permissions, type Role, roleAllows, roleCovers } from './permissions.ts';

export interface UserPrincipal {
  kind: 'user';
  userId: string;
  email: string;
  tenantId: string;
  role: Role;
  sessionId: string;
}

export type AdminPrincipal = ApiKeyPrincipal | OAuthClientPrincipal | UserPrincipal;

/**
 * The permissions a principal may use: its role's, narrowed by an API key's or OAuth client's own
 * list, and for a read-only client to the `:read` ones.
 */
export function effectivePermissions(principal: AdminPrincipal): Permission[] {
  const scoped = principal.kind === 'user' ? null : principal.permissions;
  const readOnly = principal.kind === 'oauth-client' && principal.readOnly;
  return permissions.filter(
    (permission) => roleAllows(principal.role, permission) && (scoped === null || scoped.includes(permission)) && (!readOnly || permission.endsWith(':read')),
  );
}

/** The narrowing a credential carries beyond its role, for refusal messages and audit records. */
export function narrowingOf(principal: AdminPrincipal): Record<string, unknown> {
  switch (principal.kind) {
    case 'user':
      return {};
    case 'api-key':
      return principal.permissions ? { keyPermissions: [...principal.permissions] } : {};
    case 'oauth-client':
      return {
        ...(principal.permissions ? { clientPermissions: [...principal.permissions] } : {}),
        ...(principal.readOnly ? { readOnly: true } : {}),
        ...(principal.integrations ? { integrations: [...principal.integrations] } : {}),
      };
  }
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

/** `api-key:<id>`, `oauth-client:<id>` or `user:<id>`, for the `created_by`-style columns. */
export function principalRef(principal: AdminPrincipal): string {
  switch (principal.kind) {
    case 'api-key':
      return `api-key:${principal.keyId}`;
    case 'oauth-client':
      return `oauth-client:${principal.clientRowId}`;
    case 'user':
      return `user:${principal.userId}`;
  }
}

/** Who mints a key made by `principal`: a key made by a key is capped by the same user as its maker. */
export function keyCreatorOf(principal: AdminPrincipal): KeyCreator {
  switch (principal.kind) {
    case 'api-key':
      return { ref: principalRef(principal), userId: principal.creatorUserId };
    case 'oauth-client':
      return { ref: principalRef(principal), userId: null };
    case 'user':
      return { ref: principalRef(principal), userId: principal.userId };
  }
}
