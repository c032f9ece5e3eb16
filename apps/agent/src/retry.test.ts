import { describe, expect, it } from 'vitest';
import { ConflictError, OperationalError, PolicyViolationError, RecipientKeyError, UserError } from '@airlock/errors';
import { forEachLimit } from './limit.ts';
import { backoffDelay, DEFAULT_RETRY, RECONNECT_BASE_DELAY_MS, reconnectDelay, retryAfterOf, type RetryPolicy, withRetry } from './retry.ts';

const policy: RetryPolicy = { attempts: 4, baseDelayMs: 2, maxDelayMs: 10, maxTotalMs: 5000 };

describe('backoffDelay', () => {
  it('is full jitter under a doubling, capped bound', () => {
    expect([1, 2, 3, 4, 10].map((retry) => backoffDelay(retry, DEFAULT_RETRY, () => 0.999999))).toEqual([999, 1999, 3999, 7999, 29_999]);
    expect(backoffDelay(3, DEFAULT_RETRY, () => 0)).toBe(0);
  });
});

describe('reconnectDelay', () => {
  it('spreads a fleet that failed at once over the whole window (full jitter), under a doubling cap', () => {
    expect([1, 2, 3, 6, 20].map((failures) => reconnectDelay(failures, null, 30_000, () => 0.999999))).toEqual([999, 1999, 3999, 29_999, 29_999]);
    expect(reconnectDelay(5, null, 30_000, () => 0)).toBe(0);
    // 10,000 agents after a restart: every tenth of the window gets about a tenth of them, none all.
    let seed = 1;
    const random = () => ((seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647);
    const buckets = new Array<number>(10).fill(0);
    for (let agent = 0; agent < 10_000; agent++) {
      const bucket = Math.floor(reconnectDelay(3, null, 30_000, random) / ((4 * RECONNECT_BASE_DELAY_MS) / 10));
      buckets[bucket] = (buckets[bucket] ?? 0) + 1;
    }
    for (const count of buckets) expect(count).toBeGreaterThan(800);
    for (const count of buckets) expect(count).toBeLessThan(1_200);
  });

  it('waits at least the Retry-After the server asked for, plus jitter up to as much again', () => {
    expect(reconnectDelay(1, 2_000, 30_000, () => 0)).toBe(2_000);
    expect(reconnectDelay(1, 2_000, 30_000, () => 0.5)).toBe(3_000);
    expect(reconnectDelay(6, 2_000, 30_000, () => 0.999999)).toBe(29_999);
  });

  it('reads Retry-After from a failed call, in seconds only', () => {
    const failed = (value: string | null) => ({ meta: { response: new Response(null, { status: 503, headers: value === null ? {} : { 'retry-after': value } }) } });
    expect(retryAfterOf(failed('2'))).toBe(2_000);
    expect(retryAfterOf(failed(null))).toBeNull();
    expect(retryAfterOf(failed('Wed, 21 Oct 2015 07:28:00 GMT'))).toBeNull();
    expect(retryAfterOf(new Error('network down'))).toBeNull();
  });
});

describe('withRetry', () => {
  it('retries transient errors until success', async () => {
    let calls = 0;
    const result = await withRetry(async (attempt) => {
      calls += 1;
      if (attempt < 3) throw new OperationalError('timeout');
      return 'ok';
    }, policy);
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('stops after the attempt bound and after the time bound', async () => {
    let calls = 0;
    const failing = () => ((calls += 1), Promise.reject(new OperationalError('down')));
    await expect(withRetry(failing, policy)).rejects.toThrow('down');
    expect(calls).toBe(4);
    calls = 0;
    await expect(withRetry(failing, { ...policy, attempts: 100, baseDelayMs: 1000, maxDelayMs: 1000, maxTotalMs: 50 }, { random: () => 0.5 })).rejects.toThrow('down');
    expect(calls).toBe(1);
  });

  it.each([new UserError('x'), new PolicyViolationError('x'), new RecipientKeyError('x'), new ConflictError('x'), new Error('bug')])(
    'never retries %s',
    async (error) => {
      let calls = 0;
      await expect(withRetry(() => ((calls += 1), Promise.reject(error)), policy)).rejects.toBe(error);
      expect(calls).toBe(1);
    },
  );

  it('stops waiting when aborted', async () => {
    const controller = new AbortController();
    let calls = 0;
    const started = Date.now();
    setTimeout(() => controller.abort(), 20);
    await expect(
      withRetry(() => ((calls += 1), Promise.reject(new OperationalError('down'))), { ...policy, baseDelayMs: 10_000, maxDelayMs: 10_000 }, { signal: controller.signal, random: () => 1 }),
    ).rejects.toThrow('down');
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('forEachLimit', () => {
  it('runs at most `limit` at once and starts nothing new after a failure', async () => {
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const task = async (item: number) => {
      started.push(item);
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running -= 1;
      if (item === 3) throw new Error('third failed');
    };
    await expect(forEachLimit([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 2, task)).rejects.toThrow('third failed');
    expect(peak).toBe(2);
    expect(started.length).toBeLessThan(10);
    expect(running).toBe(0);
  });
});
