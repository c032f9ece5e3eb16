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

/** A pending login's token, as `session.login` returned it. */
const pendingToken = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'not a pending-login token');

/** Loose like login's input: a malformed code is a wrong code, counted and audited. */
export const secondFactorInput = z.strictObject({ token: pendingToken, code: z.string().min(1).max(64) });

export const pendingPasswordInput = z.strictObject({
  token: pendingToken,
  /** At least 12 characters; hashed with scrypt and never stored or logged as given. */
  newPassword: text({ min: 12, max: 1024 }),
});

export const pendingLoginInput = z.strictObject({ token: pendingToken });

export const confirmTotpInput = z.strictObject({ code: z.string().min(1).max(64) });

export const changePasswordInput = z.strictObject({
  currentPassword: z.string().min(1).max(4096),
  newPassword: text({ min: 12, max: 1024 }),
});

/** Removing one's own authenticator app: the current password and a current code (or an unused recovery code). */
export const removeTotpInput = z.strictObject({
  currentPassword: z.string().min(1).max(4096),
  code: z.string().min(1).max(64),
});

/** Removing one of one's own passkeys, by its credential id, with the current password. */
export const removePasskeyInput = z.strictObject({
  id: z.string().min(1).max(1024),
  currentPassword: z.string().min(1).max(4096),
});

/** An owner's reset: a temporary password the user must replace at their next login. */
export const resetPasswordInput = z.strictObject({ id: z.uuid(), temporaryPassword: text({ min: 12, max: 1024 }) });

export const setRequireSecondFactorInput = z.strictObject({ enabled: z.boolean() });

/**
 * A WebAuthn response as the browser library serializes it; its contents are checked by the
 * server's WebAuthn verification, this only bounds its shape and size.
 */
const webauthnResponse = z
  .looseObject({
    id: z.string().min(1).max(1024),
    rawId: z.string().min(1).max(1024),
    type: z.literal('public-key'),
    response: z.looseObject({ clientDataJSON: z.string().max(8192) }),
    clientExtensionResults: z.looseObject({}),
  })
  .refine((value) => JSON.stringify(value).length <= 32_768, 'the WebAuthn response is too large');

export const confirmPasskeyInput = z.strictObject({ response: webauthnResponse });

export const verifyPasskeyInput = z.strictObject({ token: pendingToken, response: webauthnResponse });
