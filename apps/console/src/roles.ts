/** The admin roles, highest first, as the server names them. */
import type { Role } from '@airlock/api/router';

export const ROLES = ['owner', 'admin', 'operator', 'auditor'] as const satisfies readonly Role[];

export function isRole(value: string): value is Role {
  return ROLES.some((role) => role === value);
}
