/**
 * Request rate limits, counted per tRPC operation (a batch of five calls costs five):
 * - per admin API key, per OAuth client (its tokens and its token requests), per console user (all of a user's sessions share one counter, so opening
 *   more sessions buys no more) and per agent, once the caller is authenticated;
 * - per source IP for everything unauthenticated: public procedures and every failed
 *   authentication, so a flood of bad credentials from one address ends in 429s.
 * Counters live in PostgreSQL (`rate_limit_counters`, one atomic upsert per operation), so every
 * replica on one database counts against the same limit; without a database they live in this
 * process's memory. A counter is keyed by its limit's definition too, so changing a limit starts
 * fresh counters instead of judging old counts by new numbers.
 *
 * Refusals are audited without letting a flood write one audit row per request: the first refusal
 * of a subject is audited at once, the ones after it are counted, and their number is audited as
 * one summary row when the summary period ends. Every refusal is in some row's `refusals` count;
 * a process that stops mid-period loses that period's count.
 */
import { TRPCError } from '@trpc/server';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { OverloadedError } from '@airlock/errors';
import type { AgentPrincipal } from './agent-auth.ts';
import type { ApiKeyPrincipal } from './api-keys.ts';
import type { UserPrincipal } from './principal.ts';
import type { OAuthClientPrincipal } from './oauth/clients.ts';
import { type Database, eventBy, processMetrics, recordAudit } from '@airlock/storage';
import type { CounterCount, SharedCounter } from './counters.ts';
import { addressKey, LoginBusy } from './login-guard.ts';
import type { RequestFacts } from './request-facts.ts';

export type LimitKind = 'api-key' | 'oauth-client' | 'session' | 'agent' | 'ip';

export interface RateLimit {
  /** Operations allowed per window. */
  points: number;
  /** Window length in seconds. */
  durationSeconds: number;
}

export type RateLimitSettings = Record<LimitKind, RateLimit>;

export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  'api-key': { points: 1_200, durationSeconds: 60 },
  'oauth-client': { points: 1_200, durationSeconds: 60 },
  // A console page polls a few queries; a person does not come near an API key's automation.
  session: { points: 1_200, durationSeconds: 60 },
  // An agent long-polls about twice a minute and reports each run; this leaves room for bursts.
  agent: { points: 600, durationSeconds: 60 },
  ip: { points: 120, durationSeconds: 60 },
};

/** How long the refusals after a subject's first are counted before one row audits their number. */
export const DEFAULT_REFUSAL_SUMMARY_MS = 10_000;

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

/** Counts operations per key within fixed windows; answers the count so far and when the window ends. */
interface CounterStore {
  consume(counter: SharedCounter, now: Date): Promise<CounterCount>;
}

/** Shared by every replica on the database: one statement, atomic under concurrency (migration 0027). */
function databaseStore(db: Database): CounterStore {
  return {
    async consume(counter, now) {
      const [row] = await db.query<{ points: number; window_ends_at: Date }>('SELECT points, window_ends_at FROM airlock_count($1, $2, $3)', [
        counter.key,
        now,
        counter.durationSeconds,
      ]);
      if (!row) throw new Error('rate-limit counter not returned');
      return { points: row.points, windowEndsAt: new Date(row.window_ends_at) };
    },
  };
}

/** Forgets counters whose window has ended; the next operation of their subject starts a new one. */
export async function pruneRateLimits(db: Database, now: Date): Promise<void> {
  await db.query('DELETE FROM rate_limit_counters WHERE window_ends_at <= $1', [now]);
}

export class RateLimits {
  readonly #limiters: Record<LimitKind, RateLimiterMemory>;
  readonly #store: CounterStore | null;
  /** Open summary periods by limit and subject: how many refusals came after the audited first. */
  readonly #refusals = new Map<string, { suppressed: number }>();

  readonly settings: RateLimitSettings;

  /** A limit left out takes its default. With `db`, the counters are shared by every replica on it. */
  constructor(
    settings: Partial<RateLimitSettings> = DEFAULT_RATE_LIMITS,
    readonly refusalSummaryMs: number = DEFAULT_REFUSAL_SUMMARY_MS,
    db?: Database,
  ) {
    this.settings = { ...DEFAULT_RATE_LIMITS, ...settings };
    this.#store = db ? databaseStore(db) : null;
    const limiter = (kind: LimitKind) =>
      new RateLimiterMemory({ keyPrefix: kind, points: this.settings[kind].points, duration: this.settings[kind].durationSeconds });
    this.#limiters = { 'api-key': limiter('api-key'), 'oauth-client': limiter('oauth-client'), session: limiter('session'), agent: limiter('agent'), ip: limiter('ip') };
  }

  /** Counts one operation for `subject` under `kind`. */
  async consume(kind: LimitKind, subject: string, now: Date = new Date()): Promise<LimitVerdict> {
    const counter = this.sharedCounter(kind, subject);
    if (this.#store && counter) return this.judge(kind, await this.#store.consume(counter, now), now);
    try {
      await this.#limiters[kind].consume(subject, 1);
      return { allowed: true };
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return this.#refused(kind, Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)));
    }
  }

  /**
   * The database counter of `kind`'s limit for `subject`, for a statement that counts on it itself
   * (`airlock_count`), or null when the counters live in this process's memory.
   */
  sharedCounter(kind: LimitKind, subject: string): SharedCounter | null {
    if (!this.#store) return null;
    const limit = this.settings[kind];
    return { key: `${kind}/${limit.points}/${limit.durationSeconds} ${subject}`, durationSeconds: limit.durationSeconds };
  }

  /** The verdict on a count taken on `kind`'s shared counter at `now`. */
  judge(kind: LimitKind, count: CounterCount, now: Date): LimitVerdict {
    if (count.points <= this.settings[kind].points) return { allowed: true };
    return this.#refused(kind, Math.max(1, Math.ceil((count.windowEndsAt.getTime() - now.getTime()) / 1000)));
  }

  #refused(kind: LimitKind, retryAfterSeconds: number): LimitVerdict {
    // By limit only: the subject (a key, a user, an address) never becomes a metric label.
    processMetrics.rateLimitRefusals.inc({ limit: kind });
    return { allowed: false, retryAfterSeconds, limit: this.settings[kind] };
  }

  /**
   * Whether a refusal is the first of `subject` in a summary period, to be audited now. Later ones
   * are only counted; when the period ends, `summarize` gets their number (if any).
   */
  firstRefusal(kind: LimitKind, subject: string, summarize: (suppressed: number) => void): boolean {
    const key = `${kind}\u0000${subject}`;
    const open = this.#refusals.get(key);
    if (open !== undefined) {
      open.suppressed += 1;
      return false;
    }
    const period = { suppressed: 0 };
    this.#refusals.set(key, period);
    // Unreferenced: a pending summary never keeps the process alive.
    setTimeout(() => {
      this.#refusals.delete(key);
      if (period.suppressed > 0) summarize(period.suppressed);
    }, this.refusalSummaryMs).unref();
    return true;
  }
}

/** What `enforceLimit` reads of a procedure's context (the whole context fits). */
export interface LimitContext {
  db: Database;
  request: RequestFacts;
  limits?: RateLimits;
  logger: { error(meta: Record<string, unknown>, message: string): void };
}

/**
 * Counts one operation against `kind`'s limit for `subject` (a key id, a user id, an agent id or an IP). Over
 * the limit, a TOO_MANY_REQUESTS error is thrown and the refusal is audited (`rate-limited`: which
 * limit and whom, never a credential, and `refusals`, how many the row stands for): the first of a
 * summary period at once, the rest as one summary row. In-process callers without `ctx.limits` are
 * not counted.
 */
export async function enforceLimit(
  ctx: LimitContext,
  kind: LimitKind,
  target: string,
  who: ApiKeyPrincipal | OAuthClientPrincipal | UserPrincipal | AgentPrincipal | null,
  extra: Record<string, string> = {},
  /** The count already taken on the shared counter by the caller's own statement (see `sharedCounter`), at `at`. */
  counted?: { count: CounterCount; at: Date },
): Promise<void> {
  if (!ctx.limits) return;
  const subject = kind === 'ip' ? sourceOf(ctx) : subjectOf(who);
  const verdict = counted ? ctx.limits.judge(kind, counted.count, counted.at) : await ctx.limits.consume(kind, subject);
  if (verdict.allowed) return;
  const meta = {
    limit: kind,
    subject,
    points: verdict.limit.points,
    windowSeconds: verdict.limit.durationSeconds,
    retryAfterSeconds: verdict.retryAfterSeconds,
    ...extra,
  };
  // Async, so that even a synchronous failure (a closed pool) reaches the catch below.
  const audit = async (refusals: number, summary: boolean) => {
    const event = { action: 'rate-limited', target, outcome: 'denied' as const, meta: { ...meta, refusals, ...(summary ? { summary: true } : {}) } };
    // Refusals may come before the caller's tenant is known: recorded in the system scope.
    return recordAudit(
      ctx.db.forSystem(),
      who ? eventBy(who, ctx.request, event) : { ...event, tenantId: null, actor: { type: 'anonymous', id: null }, sourceIp: ctx.request.sourceIp },
    );
  };
  const first = ctx.limits.firstRefusal(kind, subject, (suppressed) => {
    audit(suppressed, true).catch((error: unknown) =>
      ctx.logger.error({ limit: kind, subject, refusals: suppressed, error: error instanceof Error ? error.message : String(error) }, 'rate-limit summary not audited'),
    );
  });
  if (first) await audit(1, false);
  const cause = new RateLimited(kind, verdict.retryAfterSeconds);
  throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: cause.message, cause });
}

function subjectOf(who: ApiKeyPrincipal | OAuthClientPrincipal | UserPrincipal | AgentPrincipal | null): string {
  switch (who?.kind) {
    case 'agent':
      return who.agentId;
    case 'api-key':
      return who.keyId;
    case 'oauth-client':
      return who.clientRowId;
    case 'user':
      return who.userId;
    case undefined:
      return 'unknown';
  }
}

/** IPv6 counts per /64 (see addressKey): one host can rotate through its whole prefix. */
function sourceOf(ctx: LimitContext): string {
  return addressKey(ctx.request.sourceIp);
}

/** The Retry-After of a response: the longest wait any of its refused (or shed) operations asks for. */
export function retryAfterOf(errors: readonly TRPCError[]): number | null {
  let longest: number | null = null;
  for (const error of errors) {
    if (error.cause instanceof RateLimited || error.cause instanceof LoginBusy || error.cause instanceof OverloadedError) longest = Math.max(longest ?? 0, error.cause.retryAfterSeconds);
  }
  return longest;
}
