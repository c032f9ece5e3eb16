/**
 * Request rate limits, counted per tRPC operation (a batch of five calls costs five):
 * - per admin API key and per agent, once the caller is authenticated;
 * - per source IP for everything unauthenticated: public procedures and every failed
 *   authentication, so a flood of bad credentials from one address ends in 429s.
 * Counters live in this process's memory (rate-limiter-flexible): with several replicas each
 * counts on its own, so the effective limit is the configured one times the replica count.
 */
import { TRPCError } from '@trpc/server';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { AgentPrincipal } from './auth/agent-auth.ts';
import type { ApiKeyPrincipal } from './auth/api-keys.ts';
import { eventBy, recordAudit } from './audit-log.ts';
import type { Context } from './context.ts';

export type LimitKind = 'api-key' | 'agent' | 'ip';

export interface RateLimit {
  /** Operations allowed per window. */
  points: number;
  /** Window length in seconds. */
  durationSeconds: number;
}

export type RateLimitSettings = Record<LimitKind, RateLimit>;

export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  'api-key': { points: 1_200, durationSeconds: 60 },
  // An agent long-polls about twice a minute and reports each run; this leaves room for bursts.
  agent: { points: 600, durationSeconds: 60 },
  ip: { points: 120, durationSeconds: 60 },
};

/** The largest tRPC batch accepted; larger ones are refused (400) before any call runs. */
export const DEFAULT_MAX_BATCH_SIZE = 16;

/** Carried as the cause of a TOO_MANY_REQUESTS error, so the transport can set Retry-After. */
export class RateLimited extends Error {
  constructor(
    readonly limit: LimitKind,
    readonly retryAfterSeconds: number,
  ) {
    super(`rate limit exceeded (${limit}); retry in ${retryAfterSeconds} s`);
    this.name = 'RateLimited';
  }
}

export type LimitVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number; limit: RateLimit };

export class RateLimits {
  readonly #limiters: Record<LimitKind, RateLimiterMemory>;

  constructor(readonly settings: RateLimitSettings = DEFAULT_RATE_LIMITS) {
    const limiter = (kind: LimitKind) =>
      new RateLimiterMemory({ keyPrefix: kind, points: settings[kind].points, duration: settings[kind].durationSeconds });
    this.#limiters = { 'api-key': limiter('api-key'), agent: limiter('agent'), ip: limiter('ip') };
  }

  /** Counts one operation for `subject` under `kind`. */
  async consume(kind: LimitKind, subject: string): Promise<LimitVerdict> {
    try {
      await this.#limiters[kind].consume(subject, 1);
      return { allowed: true };
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)), limit: this.settings[kind] };
    }
  }
}

/**
 * Counts one operation against `kind`'s limit for `subject` (a key id, an agent id or an IP). Over
 * the limit, the refusal is audited (`rate-limited`: which limit and whom, never a credential) and
 * a TOO_MANY_REQUESTS error is thrown. In-process callers without `ctx.limits` are not counted.
 */
export async function enforceLimit(
  ctx: Context,
  kind: LimitKind,
  target: string,
  who: ApiKeyPrincipal | AgentPrincipal | null,
  extra: Record<string, string> = {},
): Promise<void> {
  if (!ctx.limits) return;
  const subject = kind === 'ip' ? sourceOf(ctx) : who?.kind === 'agent' ? who.agentId : who?.kind === 'api-key' ? who.keyId : 'unknown';
  const verdict = await ctx.limits.consume(kind, subject);
  if (verdict.allowed) return;
  const meta = {
    limit: kind,
    subject,
    points: verdict.limit.points,
    windowSeconds: verdict.limit.durationSeconds,
    retryAfterSeconds: verdict.retryAfterSeconds,
    ...extra,
  };
  const event = { action: 'rate-limited', target, outcome: 'denied' as const, meta };
  // Refusals may come before the caller's tenant is known: recorded in the system scope.
  await recordAudit(
    ctx.db.forSystem(),
    who ? eventBy(who, ctx.request, event) : { ...event, tenantId: null, actor: { type: 'anonymous', id: null }, sourceIp: ctx.request.sourceIp },
  );
  const cause = new RateLimited(kind, verdict.retryAfterSeconds);
  throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: cause.message, cause });
}

function sourceOf(ctx: Context): string {
  return ctx.request.sourceIp ?? 'unknown';
}

/** The Retry-After of a response: the longest wait any of its refused operations asks for. */
export function retryAfterOf(errors: readonly TRPCError[]): number | null {
  let longest: number | null = null;
  for (const error of errors) {
    if (error.cause instanceof RateLimited) longest = Math.max(longest ?? 0, error.cause.retryAfterSeconds);
  }
  return longest;
}
