/**
 * Roles and the permissions they hold. Every admin procedure names one permission through
 * `procedureFor`; add a permission here first, then grant it to the roles that need it.
 */
export const permissions = [
  'agents:read',
  'agents:enroll',
  'agents:write',
  'integrations:read',
  'integrations:write',
  'runs:read',
  'runs:create',
  'audit:read',
  'scopes:read',
  'scopes:write',
  'keys:read',
  'keys:write',
  'users:read',
  'users:write',
  'alerts:read',
  'alerts:write',
  'identity:read',
  'identity:write',
  'account:manage',
  'requests:read',
  'requests:write',
] as const;
export type Permission = (typeof permissions)[number];

export const roles = ['owner', 'admin', 'operator', 'auditor'] as const;
export type Role = (typeof roles)[number];

/** How the tenant's people sign in (identity providers, role mappings, local passwords) is the owner's alone. */
const ownerOnly: readonly Permission[] = ['identity:read', 'identity:write'];

const grants: Record<Role, readonly Permission[]> = {
  owner: permissions,
  admin: permissions.filter((permission) => !ownerOnly.includes(permission)),
  operator: ['agents:read', 'integrations:read', 'runs:read', 'runs:create', 'scopes:read', 'alerts:read', 'account:manage'],
  auditor: ['agents:read', 'integrations:read', 'runs:read', 'audit:read', 'scopes:read', 'alerts:read', 'requests:read', 'account:manage'],
};

/** Whether a caller with role `holder` may hand out a key with role `wanted`: never a higher one. */
export function roleCovers(holder: Role, wanted: Role): boolean {
  return roles.indexOf(holder) <= roles.indexOf(wanted);
}

export function roleAllows(role: Role, permission: Permission): boolean {
  return grants[role].includes(permission);
}
