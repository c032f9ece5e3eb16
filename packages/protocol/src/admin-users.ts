/** Inputs of console login and admin-user management. */
import { z } from 'zod';

const adminRole = z.enum(['owner', 'admin', 'operator', 'auditor']);

/**
 * Loose on purpose: a malformed email or an over-long password is still a failed login that is
 * counted and audited, not an input error that bypasses both.
 */
export const loginInput = z.strictObject({
  /** The tenant's name: an email is unique only within its tenant. */
  tenant: z.string().min(1).max(1024),
  email: z.string().min(1).max(1024),
  password: z.string().min(1).max(4096),
});

export const createAdminUserInput = z.strictObject({
  email: z.email().max(254),
  role: adminRole,
  /** At least 12 characters; hashed with scrypt and never stored or logged as given. */
  password: z.string().min(12).max(1024),
});

export const setAdminUserRoleInput = z.strictObject({ id: z.uuid(), role: adminRole });
