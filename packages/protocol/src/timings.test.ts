import { describe, expect, it } from 'vitest';
import {
  AGENT_HEALTHY_WITHIN_MS,
  AGENT_LOST_AFTER_MS,
  AGENT_ONLINE_WITHIN_MS,
  HEARTBEAT_INTERVAL_MS,
  JOB_KEEPALIVE_MS,
  LONG_POLL_MAX_WAIT_MS,
  LONG_POLL_WAIT_MS,
  RECONNECT_MAX_DELAY_MS,
} from './timings.ts';
import { nextJobInput } from './schemas.ts';

describe('protocol timings', () => {
  it('a waiting agent is heard of well within the healthy window', () => {
    expect(LONG_POLL_WAIT_MS).toBeLessThanOrEqual(LONG_POLL_MAX_WAIT_MS);
    // One lost long-poll plus the longest retry delay still leaves a healthy agent healthy.
    expect(LONG_POLL_MAX_WAIT_MS + RECONNECT_MAX_DELAY_MS).toBeLessThan(AGENT_HEALTHY_WITHIN_MS);
    expect(HEARTBEAT_INTERVAL_MS).toBeLessThan(AGENT_HEALTHY_WITHIN_MS);
    expect(AGENT_HEALTHY_WITHIN_MS).toBeLessThanOrEqual(AGENT_ONLINE_WITHIN_MS);
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
