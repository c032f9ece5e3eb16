/**
 * One bench agent between jobs, as the daemon is (apps/agent/src/daemon.ts): it asks for work once
 * (`agent.nextJob`, not waiting), then waits on its wake-up stream, which brings its next job, and
 * asks again whenever the stream falls silent; it heartbeats every `HEARTBEAT_INTERVAL_MS`, its first at a random
 * point of the first interval, as a fleet whose agents started at different times does. Failed
 * calls back off as the daemon's do: full jitter, at least the server's Retry-After.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type createAgentClient, reconnectDelay, retryAfterOf, type WakeupOutcome, wakeupStreamOf } from '@airlock/agent';
import { HEARTBEAT_INTERVAL_MS, RECONNECT_MAX_DELAY_MS } from '@airlock/protocol';

export interface BenchAgent {
  /** Whether its wake-up stream is open now. */
  readonly connected: boolean;
  /** Streams the control plane has connected for it so far. */
  readonly connections: number;
  /** Ends when `signal` aborts. */
  readonly done: Promise<void>;
}

export function actAsAgent(
  client: ReturnType<typeof createAgentClient>,
  options: {
    signal: AbortSignal;
    onEnvelope?: (envelope: unknown) => void;
    onFailure: (error: unknown) => void;
    /** How each wait on the stream ended. */
    onWait?: (outcome: WakeupOutcome['kind']) => void;
    firstHeartbeatWithinMs?: number;
  },
): BenchAgent {
  const wakeups = wakeupStreamOf(client);
  if (wakeups === null) throw new Error('not a signed agent client');
  const { signal } = options;
  const done = (async () => {
    let nextHeartbeat = Date.now() + Math.random() * (options.firstHeartbeatWithinMs ?? HEARTBEAT_INTERVAL_MS);
    let askNow = true;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (Date.now() >= nextHeartbeat) {
          await client.agent.heartbeat.mutate({ version: 'bench', hostname: 'fleet' }, { signal });
          nextHeartbeat = Date.now() + HEARTBEAT_INTERVAL_MS;
        }
        if (askNow) {
          askNow = false;
          const answer = await client.agent.nextJob.mutate({ waitMs: 0, idle: false }, { signal });
          if (answer.envelope !== null) options.onEnvelope?.(answer.envelope);
        } else {
          const outcome = await wakeups.wait(nextHeartbeat, signal);
          options.onWait?.(outcome.kind);
          if (outcome.kind === 'job') options.onEnvelope?.(outcome.envelope);
          askNow = outcome.kind === 'silent';
        }
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        options.onFailure(error);
        await sleep(reconnectDelay(++failures, retryAfterOf(error), RECONNECT_MAX_DELAY_MS), undefined, { signal }).catch(() => undefined);
      }
    }
    wakeups.close();
  })();
  return {
    get connected() {
      return wakeups.connected;
    },
    get connections() {
      return wakeups.connections;
    },
    done,
  };
}
