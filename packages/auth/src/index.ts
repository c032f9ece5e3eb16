/**
 * Authentication for the control plane: admin users, passwords, sessions, the second factor and
 * passkeys, single sign-on (OIDC), API keys, OAuth clients and their access tokens, signed agent
 * requests, permissions, and the rate limits that guard them all.
 */
export * from './admin-users.ts';
export * from './agent-auth.ts';
export * from './api-keys.ts';
export * from './counters.ts';
export * from './identity-settings.ts';
export * from './login.ts';
export * from './login-guard.ts';
export * from './login-steps.ts';
export * from './oauth/clients.ts';
export * from './oauth/token-keys.ts';
export * from './oauth/tokens.ts';
export * from './oidc.ts';
export * from './passkeys.ts';
export * from './passwords.ts';
export * from './permissions.ts';
export * from './principal.ts';
export * from './rate-limits.ts';
export * from './request-facts.ts';
export * from './second-factor.ts';
export * from './secrets.ts';
export * from './sessions.ts';
export * from './settings.ts';
