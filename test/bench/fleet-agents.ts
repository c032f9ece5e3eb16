/**
 * One of bench:fleet's load processes: runs its share of the fleet's idle agents (fleet-agent-loop.ts:
 * wake-up stream, claims, heartbeats) with the agent's own client and signing code, from its own
 * loopback source address, so the fleet's sockets and its signing are spread over processes and
 * cores and no one heap grows with the whole fleet.
 *
 * Started by fleet.ts over IPC. It is told `{ url, localAddress, agents }` (each agent's id and
 * base64 key pair), ramps its agents up in steps, and answers `count` with how many streams it
 * holds open and how many calls failed; `stop` ends every agent and the process.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { createAgentClient } from '@airlock/agent';
import { WAKEUP_STREAM_MS } from '@airlock/protocol';
import { actAsAgent, type BenchAgent } from './fleet-agent-loop.ts';

export interface HoldOrder {
  url: string;
  localAddress: string;
  agents: { id: string; publicKey: string; secretKey: string }[];
  /** Agents started per step, and the pause between steps (ms). */
  step: number;
  stepMs: number;
}

/** `held`: agents whose wake-up stream is open now; `answered`: streams the server connected so far (each a signed call it authenticated). */
export type HolderMessage = { kind: 'ramped' } | { kind: 'count'; held: number; errors: number; answered: number; kinds: Record<string, number>; waits: Record<string, number> };

const send = (message: HolderMessage) => process.send?.(message);

process.once('message', (order: HoldOrder) => {
  const stop = new AbortController();
  // One signal ends every agent: a listener each is expected, not a leak.
  setMaxListeners(0, stop.signal);
  const dispatcher = new Agent({ connect: { localAddress: order.localAddress }, keepAliveTimeout: WAKEUP_STREAM_MS });
  const egress = ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as typeof fetch;
  let errors = 0;
  /** Failed calls by what failed them, for the log. */
  const kinds: Record<string, number> = {};
  const onFailure = (failed: unknown) => {
    errors += 1;
    const kind = failed instanceof Error ? `${Reflect.get(failed, 'data')?.httpStatus ?? ''} ${failed.message}`.slice(0, 100) : String(failed);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  };
  /** How the agents' waits on their streams ended, by outcome. */
  const waits: Record<string, number> = {};
  const onWait = (outcome: string) => void (waits[outcome] = (waits[outcome] ?? 0) + 1);
  const agents: BenchAgent[] = [];
  const tally = () => {
    let held = 0;
    let answered = 0;
    for (const agent of agents) {
      if (agent.connected) held += 1;
      answered += agent.connections;
    }
    return { held, answered };
  };
  process.on('message', (message: 'count' | 'stop') => {
    if (message === 'count') send({ kind: 'count', ...tally(), errors, kinds, waits });
    if (message === 'stop') {
      stop.abort();
      void Promise.allSettled(agents.map((agent) => agent.done)).then(async () => {
        await dispatcher.close().catch(() => undefined);
        process.exit(0);
      });
    }
  });
  void (async () => {
    for (let i = 0; i < order.agents.length && !stop.signal.aborted; i += order.step) {
      for (const agent of order.agents.slice(i, i + order.step)) {
        const keys = { publicKey: Buffer.from(agent.publicKey, 'base64'), secretKey: Buffer.from(agent.secretKey, 'base64') };
        agents.push(actAsAgent(createAgentClient(order.url, agent.id, keys, egress), { signal: stop.signal, onFailure, onWait }));
      }
      await sleep(order.stepMs);
    }
    send({ kind: 'ramped' });
  })();
});
