import { describe, expect, it } from 'vitest';
import { addressKey, HashGate, TokenBucket } from './login-guard.ts';

describe('login guard', () => {
  it('[integrity #15] admits a bounded number of hashes, queues a bounded number, and refuses the rest at once', async () => {
    const gate = new HashGate({ maxConcurrent: 1, maxQueued: 2 });
    const first = gate.tryAcquire();
    const second = gate.tryAcquire();
    const third = gate.tryAcquire();
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(third).not.toBeNull();
    expect(gate.saturated()).toBe(true);
    // The queue is full: the next caller is told so without waiting.
    expect(gate.tryAcquire()).toBeNull();
    let secondRan = false;
    const waiting = second?.then((release) => {
      secondRan = true;
      release();
    });
    await Promise.resolve();
    expect(secondRan).toBe(false);
    (await first)?.();
    await waiting;
    expect(secondRan).toBe(true);
    (await third)?.();
    expect(gate.saturated()).toBe(false);
    expect(gate.tryAcquire()).not.toBeNull();
  });

  it('[integrity #15] spends a global budget of unknown-email hashes that refills over time', () => {
    const bucket = new TokenBucket({ burst: 3, perMinute: 60 });
    const t0 = new Date(1_000_000);
    expect([1, 2, 3, 4].map(() => bucket.take(t0))).toEqual([true, true, true, false]);
    expect(bucket.take(new Date(t0.getTime() + 999))).toBe(false);
    expect(bucket.take(new Date(t0.getTime() + 1_000))).toBe(true);
    expect(bucket.take(new Date(t0.getTime() + 3_600_000))).toBe(true);
  });

  it('[integrity #15] counts IPv6 per /64 and IPv4-mapped IPv6 as its IPv4 address', () => {
    expect(addressKey('2001:db8:1:2::1')).toBe(addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:3::1')).not.toBe(addressKey('2001:db8:1:2::1'));
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey(null)).toBe('unknown');
  });
});
