/**
 * What every procedure sees: storage, the dispatcher, the clock, and the raw request facts that
 * authentication needs. Who the caller is gets decided by the procedure builders in `trpc.ts`, which
 * also narrow `db` to the caller's tenant (row-level security) for admin and agent procedures.
 */
import type { AgentKeyCache, AuthenticatedAgent, AuthSettings, LoginGuard, OAuthSettings, RateLimits, RequestFacts } from '@airlock/auth';
import type { SecretBox, WebhookOptions } from '@airlock/alerts';
import type { Dispatcher } from '@airlock/dispatch';
import type { Database, Signer } from '@airlock/storage';

export type { RequestFacts } from '@airlock/auth';

export interface ServerDeps {
  db: Database;
  dispatcher: Dispatcher;
  now: () => Date;
  /** The control plane's signing key (audit checkpoints); its public half is served to agents. */
  signer: Signer;
  /** The URL agents reach this control plane at, for the enroll command; null until known. */
  publicUrl?: string | null;
  /** Seals and opens alert webhook URLs and secrets; without it, destinations cannot be created or tested. */
  alerts?: { secretBox: SecretBox; webhook: WebhookOptions };
  logger: { warn(meta: Record<string, unknown>, message: string): void; error(meta: Record<string, unknown>, message: string): void };
  /** Admin login and session tunables; unset fields take the production defaults. */
  auth?: Partial<AuthSettings>;
  /** This process's cache of agent keys; the HTTP transport makes one when none is given. */
  agentKeys?: AgentKeyCache;
  /** The OAuth authorization server (token endpoint, access tokens); without it both are off. */
  oauth?: OAuthSettings;
}

/** Who made a request, once a procedure builder has authenticated it; for the request log. */
export interface RequestCaller {
  tenantId: string;
  type: 'user' | 'api-key' | 'oauth-client' | 'agent';
  id: string;
}

export interface Context extends ServerDeps {
  request: RequestFacts;
  /** Memoized agent authentication, so a batched request consumes its nonce once. */
  agentAuth?: Promise<AuthenticatedAgent>;
  /** Headers added to the response (the session cookie). */
  resHeaders: Headers;
  /** Request rate limits; set by the HTTP transport, absent for in-process callers. */
  limits?: RateLimits;
  /** Bounds password hashing across this server's logins; set by the HTTP transport. */
  loginGuard?: LoginGuard;
  /** Set by the procedure builders once the caller is known (the last one of a batch wins). */
  caller?: RequestCaller;
}

export function createContext(deps: ServerDeps, request: RequestFacts, resHeaders: Headers = new Headers(), limits?: RateLimits, loginGuard?: LoginGuard): Context {
  const context: Context = limits ? { ...deps, request, resHeaders, limits } : { ...deps, request, resHeaders };
  return loginGuard ? { ...context, loginGuard } : context;
}
