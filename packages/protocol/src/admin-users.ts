/** Inputs of console login and admin-user management. */
import { z } from 'zod';
import { text } from './text.ts';

/** A console account's role, from most to least privileged. */
export const adminRole = z.enum(['owner', 'admin', 'operator', 'auditor']);

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

/**
 * What a login's tenant, email and password must be to be checked at all. A login that fails this is still
 * counted and audited, then refused as bad input: the text could not even be stored in the audit trail.
 */
export const loginCredentials = z.strictObject({
  tenant: text({ min: 1, max: 1024 }),
  email: text({ min: 1, max: 1024 }),
  password: text({ min: 1, max: 4096 }),
});

export const createAdminUserInput = z.strictObject({
  email: z.email().max(254),
  role: adminRole,
  /** At least 12 characters; hashed with scrypt and never stored or logged as given. */
  password: text({ min: 12, max: 1024 }),
});

export const setAdminUserRoleInput = z.strictObject({ id: z.uuid(), role: adminRole });
