/**
 * One of bench:fleet's load processes: holds its share of the fleet's long-polls with the agent's
 * own client and signing code, from its own loopback source address, so the fleet's sockets and its
 * signing are spread over processes and cores and no one heap grows with the whole fleet.
 *
 * Started by fleet.ts over IPC. It is told `{ url, localAddress, agents }` (each agent's id and
 * base64 key pair), ramps its agents up in steps, and answers `count` with how many long-polls it
 * holds and how many calls failed; `stop` ends every long-poll and the process.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { createAgentClient, reconnectDelay, retryAfterOf } from '@airlock/agent';
import { LONG_POLL_WAIT_MS, RECONNECT_MAX_DELAY_MS } from '@airlock/protocol';

export interface HoldOrder {
  url: string;
  localAddress: string;
  agents: { id: string; publicKey: string; secretKey: string }[];
  /** Long-polls started per step, and the pause between steps (ms). */
  step: number;
  stepMs: number;
}

/** `answered`: long-polls answered so far (each one a signed call the server authenticated and closed). */
export type HolderMessage = { kind: 'ramped' } | { kind: 'count'; held: number; errors: number; answered: number; kinds: Record<string, number> };

const send = (message: HolderMessage) => process.send?.(message);

process.once('message', (order: HoldOrder) => {
  const stop = new AbortController();
  // One signal ends every long-poll: a listener each is expected, not a leak.
  setMaxListeners(0, stop.signal);
  const dispatcher = new Agent({ connect: { localAddress: order.localAddress }, keepAliveTimeout: LONG_POLL_WAIT_MS * 2 });
  const egress = ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as typeof fetch;
  let held = 0;
  let errors = 0;
  let answered = 0;
  /** Failed calls by what failed them, for the log. */
  const kinds: Record<string, number> = {};
  const hold = async (client: ReturnType<typeof createAgentClient>) => {
    let failures = 0;
    while (!stop.signal.aborted) {
      held += 1;
      let failed: unknown = null;
      try {
        await client.agent.nextJob.mutate({ waitMs: LONG_POLL_WAIT_MS, idle: false }, { signal: stop.signal });
        answered += 1;
        failures = 0;
      } catch (error) {
        failed = error ?? new Error('failed');
      } finally {
        held -= 1;
      }
      if (failed !== null && !stop.signal.aborted) {
        errors += 1;
        const kind = failed instanceof Error ? `${Reflect.get(failed, 'data')?.httpStatus ?? ''} ${failed.message}`.slice(0, 100) : String(failed);
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        // As the daemon does: full jitter, at least the server's Retry-After.
        await sleep(reconnectDelay(++failures, retryAfterOf(failed), RECONNECT_MAX_DELAY_MS), undefined, { signal: stop.signal }).catch(() => undefined);
      }
    }
  };
  const polls: Promise<void>[] = [];
  process.on('message', (message: 'count' | 'stop') => {
    if (message === 'count') send({ kind: 'count', held, errors, answered, kinds });
    if (message === 'stop') {
      stop.abort();
      void Promise.allSettled(polls).then(async () => {
        await dispatcher.close().catch(() => undefined);
        process.exit(0);
      });
    }
  });
  void (async () => {
    for (let i = 0; i < order.agents.length && !stop.signal.aborted; i += order.step) {
      for (const agent of order.agents.slice(i, i + order.step)) {
        const keys = { publicKey: Buffer.from(agent.publicKey, 'base64'), secretKey: Buffer.from(agent.secretKey, 'base64') };
        polls.push(hold(createAgentClient(order.url, agent.id, keys, egress)));
      }
      await sleep(order.stepMs);
    }
    send({ kind: 'ramped' });
  })();
});
