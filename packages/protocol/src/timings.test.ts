import { describe, expect, it } from 'vitest';
import {
  AGENT_HEALTHY_WITHIN_MS,
  AGENT_LOST_AFTER_MS,
  AGENT_ONLINE_WITHIN_MS,
  AGENT_SEEN_REFRESH_MS,
  HEARTBEAT_INTERVAL_MS,
  JOB_KEEPALIVE_MS,
  LONG_POLL_MAX_WAIT_MS,
  LONG_POLL_WAIT_MS,
  RECONNECT_MAX_DELAY_MS,
  WAKE_SWEEP_MS,
  WAKEUP_PING_MS,
  WAKEUP_SILENCE_MS,
  WAKEUP_STREAM_MS,
} from './timings.ts';
import { nextJobInput } from './schemas.ts';

describe('protocol timings', () => {
  it('a waiting agent is heard of well within the healthy window', () => {
    expect(LONG_POLL_WAIT_MS).toBeLessThanOrEqual(LONG_POLL_MAX_WAIT_MS);
    // One lost long-poll plus the longest retry delay still leaves a healthy agent healthy.
    expect(LONG_POLL_MAX_WAIT_MS + RECONNECT_MAX_DELAY_MS).toBeLessThan(AGENT_HEALTHY_WITHIN_MS);
    // An agent on its wake-up stream is refreshed at the sweep after its last-seen grew old.
    expect(AGENT_SEEN_REFRESH_MS + WAKE_SWEEP_MS).toBeLessThan(AGENT_HEALTHY_WITHIN_MS);
    // A stream that fell silent is dropped and reopened before its agent stops counting as healthy.
    expect(WAKEUP_SILENCE_MS + RECONNECT_MAX_DELAY_MS).toBeLessThan(AGENT_HEALTHY_WITHIN_MS);
    // The heartbeat carries facts, not liveness, yet an agent that stops heartbeating is never still online.
    expect(HEARTBEAT_INTERVAL_MS).toBeLessThan(AGENT_LOST_AFTER_MS);
    expect(AGENT_HEALTHY_WITHIN_MS).toBeLessThanOrEqual(AGENT_ONLINE_WITHIN_MS);
  });

  it('a wake-up stream pings well within its silence limit and lives longer than a long-poll', () => {
    expect(WAKEUP_PING_MS * 2).toBeLessThan(WAKEUP_SILENCE_MS);
    expect(WAKEUP_STREAM_MS).toBeGreaterThan(LONG_POLL_MAX_WAIT_MS);
  });

  it('a running job is never taken for lost while its agent keeps it alive', () => {
    expect(JOB_KEEPALIVE_MS * 5).toBeLessThanOrEqual(AGENT_LOST_AFTER_MS);
    expect(AGENT_ONLINE_WITHIN_MS).toBeLessThan(AGENT_LOST_AFTER_MS);
  });

  it('the long-poll schema takes its default and ceiling from here', () => {
    expect(nextJobInput.parse({}).waitMs).toBe(LONG_POLL_WAIT_MS);
    expect(nextJobInput.safeParse({ waitMs: LONG_POLL_MAX_WAIT_MS + 1 }).success).toBe(false);
  });
});
