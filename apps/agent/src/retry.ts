/**
 * Retries for transient failures. Only errors that say they are retryable (`OperationalError`,
 * `retryable === true`) are tried again; user, authentication, host-key, policy, recipient-key and
 * conflict errors fail at once, since repeating them cannot help and may lock accounts.
 * Backoff is exponential with full jitter, bounded in attempts and in total time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isAirlockError } from '@airlock/errors';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** The cap of the first backoff; each later cap doubles. */
  baseDelayMs: number;
  /** No single backoff is longer than this. */
  maxDelayMs: number;
  /** No retry starts after this much time has passed since the first attempt. */
  maxTotalMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 1000, maxDelayMs: 30_000, maxTotalMs: 120_000 };

export function isRetryable(error: unknown): boolean {
  return isAirlockError(error) && error.retryable;
}

/** Full jitter: uniformly between 0 and the capped exponential bound for retry number `retry` (1-based). */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.floor(random() * cap);
}

export interface RetryHooks {
  signal?: AbortSignal;
  /** Called before each backoff, with the error that caused it. */
  onRetry?(error: unknown, attempt: number, delayMs: number): void;
  random?: () => number;
}

/** Runs `operation` (given its 1-based attempt number) until it succeeds or a retry is not warranted. */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!isRetryable(error) || attempt >= policy.attempts || hooks.signal?.aborted) throw error;
      const delay = backoffDelay(attempt, policy, hooks.random);
      if (Date.now() - started + delay > policy.maxTotalMs) throw error;
      hooks.onRetry?.(error, attempt, delay);
      // Aborted while waiting: the run is stopping, and the last real error says why this file failed.
      await sleep(delay, undefined, { signal: hooks.signal }).catch(() => {
        throw error;
      });
    }
  }
}

/** The first reconnect's cap (ms); each failure in a row doubles it, up to `RECONNECT_MAX_DELAY_MS`. */
export const RECONNECT_BASE_DELAY_MS = 1_000;

/**
 * How long the daemon waits after its `failures`-th failed control-plane call in a row: full
 * jitter under a doubling cap, so a fleet that lost its control plane at the same instant (a
 * restart) comes back spread over the whole window instead of in one wave. A server that said
 * when to come back (`Retry-After`, on 503 and 429) is given at least that, plus up to as much
 * again at random, so the shed requests do not return together either.
 */
export function reconnectDelay(failures: number, retryAfterMs: number | null, maxDelayMs: number, random: () => number = Math.random): number {
  const jittered = backoffDelay(failures, { attempts: Number.POSITIVE_INFINITY, baseDelayMs: RECONNECT_BASE_DELAY_MS, maxDelayMs, maxTotalMs: Number.POSITIVE_INFINITY }, random);
  if (retryAfterMs === null) return jittered;
  return Math.max(jittered, retryAfterMs + Math.floor(random() * retryAfterMs));
}

/** The Retry-After of a failed tRPC call, in ms, when the server sent one in seconds; else null. */
export function retryAfterOf(error: unknown): number | null {
  const meta: unknown = typeof error === 'object' && error !== null && 'meta' in error ? error.meta : undefined;
  const response: unknown = typeof meta === 'object' && meta !== null && 'response' in meta ? meta.response : undefined;
  if (!(response instanceof Response)) return null;
  const header = response.headers.get('retry-after');
  if (header === null || !/^\d{1,6}$/.test(header.trim())) return null;
  return Number(header.trim()) * 1000;
}
