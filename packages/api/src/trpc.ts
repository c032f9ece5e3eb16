/**
 * The tRPC building blocks every router uses. Add a procedure with one of the builders below;
 * a procedure built from `t.procedure` directly has no declared permission and the router test fails.
 *
 * - `publicProcedure`: no caller identity (enrollment, which authenticates with its one-time token;
 *   console login, me and logout, which read the session cookie themselves).
 * - `procedureFor(permission)`: an admin (API key, OAuth access token or console session) that may
 *   use `permission`; narrows ctx.admin to an AdminPrincipal, whose `kind` says which. An OAuth
 *   client limited to named integrations is refused every procedure but those built with
 *   `procedureFor(permission, { integrationScoped: true })`, which confine themselves to
 *   `integrationLimitOf(ctx.admin)`.
 * - `agentProcedure`: a signed agent request; narrows ctx.agent.
 *
 * Both authenticated builders replace ctx.db with the caller's tenant view (`db.forTenant`), so
 * row-level security confines every statement of the procedure to that tenant; only the
 * credential lookups before it run in the system scope.
 *
 * Errors from @airlock/errors map to tRPC codes here and nowhere else.
 */
import { initTRPC, type TRPC_ERROR_CODE_KEY, TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';
import { ZodError } from 'zod';
import { type AirlockError, type ErrorClass, formatIssues, isAirlockError, NotAllowedError } from '@airlock/errors';
import { authenticateAdmin } from './auth/admin-auth.ts';
import {
  type AdminPrincipal,
  AgentAuthError,
  type AgentPrincipal,
  authenticateAgent,
  type CounterCount,
  enforceLimit,
  narrowingOf,
  type Permission,
  principalAllows,
} from '@airlock/auth';
import { type Database, eventBy, RequestAbandoned, recordAudit } from '@airlock/storage';
import type { Context } from './context.ts';

const codes: Record<AirlockError['errorClass'], TRPC_ERROR_CODE_KEY> = {
  user: 'BAD_REQUEST',
  'recipient-key': 'BAD_REQUEST',
  'host-key-mismatch': 'BAD_REQUEST',
  operational: 'SERVICE_UNAVAILABLE',
  unexpected: 'INTERNAL_SERVER_ERROR',
  'not-found': 'NOT_FOUND',
  'not-allowed': 'FORBIDDEN',
  'policy-violation': 'FORBIDDEN',
  authentication: 'UNAUTHORIZED',
  conflict: 'CONFLICT',
};

/** The class of an error that did not come from an AirlockError (tRPC's own refusals, middleware). */
const classOfCode: Partial<Record<TRPC_ERROR_CODE_KEY, ErrorClass>> = {
  PARSE_ERROR: 'user',
  BAD_REQUEST: 'user',
  PAYLOAD_TOO_LARGE: 'user',
  UNPROCESSABLE_CONTENT: 'user',
  METHOD_NOT_SUPPORTED: 'user',
  UNAUTHORIZED: 'authentication',
  FORBIDDEN: 'not-allowed',
  NOT_FOUND: 'not-found',
  CONFLICT: 'conflict',
  TOO_MANY_REQUESTS: 'operational',
  SERVICE_UNAVAILABLE: 'operational',
  TIMEOUT: 'operational',
  CLIENT_CLOSED_REQUEST: 'operational',
};

const t = initTRPC.context<Context>().meta<ProcedureMeta>().create({
  // Subscriptions (an agent's wake-up stream) are server-sent events; http.ts pings them while quiet,
  // from one timer for all of them rather than one per stream.
  sse: { ping: { enabled: false } },
  // Every error crosses the wire with its class (`data.errorClass`), which clients read back with
  // `remoteErrorClass` from @airlock/errors; the stack never leaves the server.
  errorFormatter({ shape, error }) {
    const errorClass = isAirlockError(error.cause) ? error.cause.errorClass : (classOfCode[error.code] ?? 'unexpected');
    // Thrown while a subscription streams, after `mapErrors` has let it through: given its class's code here.
    if (isAirlockError(error.cause) && error.code === 'INTERNAL_SERVER_ERROR' && errorClass !== 'unexpected') {
      const code = codes[errorClass];
      const data = { ...shape.data, stack: undefined, errorClass, code, httpStatus: getHTTPStatusCodeFromError(new TRPCError({ code })) };
      return { ...shape, code: TRPC_ERROR_CODES_BY_KEY[code], data };
    }
    const data = { ...shape.data, stack: undefined, errorClass };
    if (error.cause instanceof ZodError) {
      return { ...shape, message: `invalid input: ${formatIssues(error.cause.issues)}`, data };
    }
    return { ...shape, data };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** Turns thrown AirlockErrors into their tRPC codes; hides the details of anything unexpected. */
const mapErrors = t.middleware(async ({ ctx, next, path }) => {
  const result = await next();
  if (result.ok) return result;
  const cause = result.error.cause;
  if (isAirlockError(cause)) {
    if (cause.errorClass === 'unexpected') ctx.logger.error({ path, error: cause.message }, 'unexpected error');
    throw new TRPCError({ code: codes[cause.errorClass], message: cause.message, cause });
  }
  if (result.error.code === 'INTERNAL_SERVER_ERROR') {
    ctx.logger.error({ path, error: result.error.message }, 'unexpected error');
    throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'internal error' });
  }
  return result;
});

const base = t.procedure.use(mapErrors);

/** Unauthenticated calls count against their source IP's limit. */
export const publicProcedure = base.meta({ permission: 'public' }).use(async ({ ctx, next, path }) => {
  await enforceLimit(ctx, 'ip', path, null);
  return next();
});

export interface ProcedureOptions {
  /** The procedure confines itself to `integrationLimitOf(ctx.admin)`, so integration-limited clients may call it. */
  integrationScoped?: boolean;
}

/**
 * The database for an authenticated procedure's own work: once the client hangs up, none of it
 * starts. Refusals are still audited through the unbound `ctx.db`.
 */
function boundTo(db: Database, signal: AbortSignal | undefined): Database {
  if (signal?.aborted) throw new RequestAbandoned();
  return signal ? db.forRequest(signal) : db;
}

export function procedureFor(permission: Permission, options: ProcedureOptions = {}) {
  return base.meta({ permission, integrationScoped: options.integrationScoped === true }).use(async ({ ctx, next, path, type, signal }) => {
    const admin = await authenticateAdmin(ctx, type, path);
    const db = boundTo(ctx.db, signal).forTenant(admin.tenantId);
    await enforceLimit(ctx, admin.kind === 'user' ? 'session' : admin.kind, path, admin);
    ctx.caller = callerOf(admin);
    const outsideIntegrations = integrationLimitOf(admin) !== null && options.integrationScoped !== true;
    if (!principalAllows(admin, permission) || outsideIntegrations) {
      const meta = { permission, role: admin.role, ...narrowingOf(admin), ...(outsideIntegrations ? { reason: 'integration-limited' } : {}) };
      await recordAudit(db, eventBy(admin, ctx.request, { action: 'permission-denied', target: path, outcome: 'denied', meta }));
      throw new NotAllowedError(refusalMessage(admin, permission, outsideIntegrations));
    }
    return next({ ctx: { admin, db } });
  });
}

/** The integration ids an admin may touch; null: all of its tenant's. */
export function integrationLimitOf(admin: AdminPrincipal): readonly string[] | null {
  return admin.kind === 'oauth-client' ? admin.integrations : null;
}

function refusalMessage(admin: AdminPrincipal, permission: Permission, outsideIntegrations: boolean): string {
  if (outsideIntegrations) return `this OAuth client is limited to named integrations and may not call this`;
  switch (admin.kind) {
    case 'api-key':
      return admin.permissions ? `this API key is not allowed ${permission}` : `role ${admin.role} lacks ${permission}`;
    case 'oauth-client':
      return `this OAuth client is not allowed ${permission}`;
    case 'user':
      return `role ${admin.role} lacks ${permission}`;
  }
}

function callerOf(principal: AdminPrincipal | AgentPrincipal): NonNullable<Context['caller']> {
  switch (principal.kind) {
    case 'api-key':
      return { tenantId: principal.tenantId, type: 'api-key', id: principal.keyId };
    case 'oauth-client':
      return { tenantId: principal.tenantId, type: 'oauth-client', id: principal.clientRowId };
    case 'user':
      return { tenantId: principal.tenantId, type: 'user', id: principal.userId };
    case 'agent':
      return { tenantId: principal.tenantId, type: 'agent', id: principal.agentId };
  }
}

export const agentProcedure = base.meta({ permission: 'agent' }).use(async ({ ctx, next, path, signal }) => {
  const db = boundTo(ctx.db, signal);
  // A batch authenticates once; its first call is counted by the statement that claims the nonce,
  // each further call on its own, so a batch of five still costs five.
  const first = ctx.agentAuth === undefined;
  const at = ctx.now();
  ctx.agentAuth ??= authenticateAgent(db.forSystem(), ctx.request, at, ctx.agentKeys, (agentId) => ctx.limits?.sharedCounter('agent', agentId) ?? null);
  let agent: AgentPrincipal;
  let count: CounterCount | null;
  try {
    ({ principal: agent, count } = await ctx.agentAuth);
  } catch (error) {
    if (error instanceof AgentAuthError) {
      await enforceLimit(ctx, 'ip', path, null, { failure: error.reason });
      await recordAudit(ctx.db.forSystem(), {
        tenantId: error.tenantId,
        actor: { type: 'agent', id: error.claimedAgentId },
        action: 'agent-request-refused',
        target: path,
        outcome: 'denied',
        sourceIp: ctx.request.sourceIp,
        meta: { reason: error.reason },
      });
    }
    throw error;
  }
  await enforceLimit(ctx, 'agent', path, agent, {}, first && count ? { count, at } : undefined);
  ctx.caller = callerOf(agent);
  return next({ ctx: { agent, db: db.forTenant(agent.tenantId) } });
});

export interface ProcedureMeta {
  permission: Permission | 'agent' | 'public';
  integrationScoped?: boolean;
}
