import { describe, expect, it } from 'vitest';
import { ConflictError, OperationalError, PolicyViolationError, RecipientKeyError, UserError } from '@airlock/errors';
import { forEachLimit } from './limit.ts';
import { backoffDelay, DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry.ts';

const policy: RetryPolicy = { attempts: 4, baseDelayMs: 2, maxDelayMs: 10, maxTotalMs: 5000 };

describe('backoffDelay', () => {
  it('is full jitter under a doubling, capped bound', () => {
    expect([1, 2, 3, 4, 10].map((retry) => backoffDelay(retry, DEFAULT_RETRY, () => 0.999999))).toEqual([999, 1999, 3999, 7999, 29_999]);
    expect(backoffDelay(3, DEFAULT_RETRY, () => 0)).toBe(0);
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
