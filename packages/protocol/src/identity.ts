/** Inputs of single sign-on administration, second factors and password changes. */
import { z } from 'zod';
import { adminRole } from './admin-users.ts';
import { text } from './text.ts';

/** A claim name as IdPs spell them (`groups`, `roles`, `https://example.com/roles`). */
const claimName = text({ min: 1, max: 200 }).regex(/^[\x21-\x7e]+$/, 'a claim name is printable ASCII without spaces');

export const createOidcProviderInput = z.strictObject({
  /** Shown on the tenant's login page. */
  name: text({ min: 1, max: 100 }),
  /** The issuer identifier: https, or plain http on a loopback address only. */
  issuer: text({ min: 1, max: 2000 }),
  clientId: text({ min: 1, max: 500 }),
  /** Sealed at rest; never returned. */
  clientSecret: text({ min: 1, max: 2000 }),
  /** The ID token claim whose values the mapping turns into roles. Default `groups`. */
  roleClaim: claimName.default('groups'),
});

export const updateOidcProviderInput = z.strictObject({
  id: z.uuid(),
  name: text({ min: 1, max: 100 }).optional(),
  clientSecret: text({ min: 1, max: 2000 }).optional(),
  roleClaim: claimName.optional(),
  enabled: z.boolean().optional(),
});

export const setOidcRoleMappingsInput = z.strictObject({
  providerId: z.uuid(),
  /** The whole mapping, replacing the one before; a claim value maps to one role. */
  mappings: z.array(z.strictObject({ claimValue: text({ min: 1, max: 500 }), role: adminRole })).max(200),
});

export const loginProvidersInput = z.strictObject({ tenant: z.string().min(1).max(1024) });

export const setLocalPasswordsInput = z.strictObject({
  enabled: z.boolean(),
  /** Required when turning local passwords off: the one local owner who keeps a password. */
  breakGlassUserId: z.uuid().optional(),
});
