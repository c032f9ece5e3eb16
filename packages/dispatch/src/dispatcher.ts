/**
 * Wakes long-polling agents when something happens for them, through PostgreSQL's LISTEN/NOTIFY:
 * whatever queues a run, revokes an agent or cancels a run calls `pg_notify` inside its own
 * transaction (see `notifyAgents`), so every replica sharing the database hears it at commit, and
 * never for work that rolled back. Each replica holds one listener connection; an agent waiting
 * for work costs no database work until it is woken or its long-poll ends.
 *
 * A notification can be lost while the listener reconnects. Each (re)connection, and every
 * `sweepMs` while anyone waits, one query looks for work across all the agents waiting here at
 * once, and wakes those that have some: never one query per agent. It also refreshes their
 * last-seen times, since an agent's wake-up stream stays open for minutes without a request.
 *
 * Agent key changes (revocation, rotation) travel the same way, so every replica drops its cached
 * key at once.
 *
 * Without a database (in-process callers and unit tests) each waiter simply re-checks every
 * `sweepMs`, which is correct on one replica and on many, only slower.
 */
import { AGENT_SEEN_REFRESH_MS, WAKE_SWEEP_MS } from '@airlock/protocol';
import type { Database, Listener, Queryable } from '@airlock/storage';

/** Payload: an agent id with something for it (a queued run, a revocation, a cancelled run). */
export const WAKE_CHANNEL = 'airlock_agent_wake';
/** Payload: an agent id whose key was revoked or rotated; every replica forgets its cached key. */
export const AGENT_KEY_CHANNEL = 'airlock_agent_key';

/**
 * Notifies `agentIds` on `channel` from inside the caller's transaction: delivered on commit, to
 * every replica. PostgreSQL folds identical notifications of one transaction into one.
 */
export async function notifyAgents(tx: Queryable, channel: typeof WAKE_CHANNEL | typeof AGENT_KEY_CHANNEL, agentIds: readonly (string | null)[]): Promise<void> {
  const ids = [...new Set(agentIds.filter((id): id is string => typeof id === 'string' && id !== ''))];
  if (ids.length === 0) return;
  await tx.query('SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id', [channel, ids]);
}

export interface DispatcherOptions {
  /** Listened to for wake-ups and swept for missed ones; without it, waiters re-check on their own. */
  db?: Database;
  /** How often (ms) waiting agents are swept for work they missed. Default `WAKE_SWEEP_MS`. */
  sweepMs?: number;
  logger?: { warn(meta: Record<string, unknown>, message: string): void };
}

/** One agent's wait for work; made before the claim that finds nothing, so a wake-up in between is kept. */
export interface Waiter {
  /** Whether a wake-up came since the waiter was made or last waited on. */
  readonly woken: boolean;
  /** Resolves true on a wake-up, false at `deadline` (epoch ms) or when `signal` aborts. */
  wait(deadline: number, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

interface WaiterState {
  woken: boolean;
  resolve: ((woken: boolean) => void) | null;
}

export class Dispatcher {
  readonly sweepMs: number;
  readonly #db: Database | undefined;
  readonly #logger: DispatcherOptions['logger'];
  readonly #waiting = new Map<string, Set<WaiterState>>();
  readonly #keyListeners = new Set<(agentId: string) => void>();
  #listener: Listener | null = null;
  #sweep: NodeJS.Timeout | null = null;
  #sweeping: Promise<void> | null = null;
  #started: Promise<void> | null = null;

  /** A number is the sweep period, for callers without a database. */
  constructor(options: number | DispatcherOptions = {}) {
    const given = typeof options === 'number' ? { sweepMs: options } : options;
    this.sweepMs = given.sweepMs ?? WAKE_SWEEP_MS;
    this.#db = given.db;
    this.#logger = given.logger;
  }

  /** Whether wake-ups come from the database (else each waiter re-checks every `sweepMs`). */
  get listening(): boolean {
    return this.#db !== undefined;
  }

  /** How many long-polls wait here now. */
  get waitingCount(): number {
    let count = 0;
    for (const set of this.#waiting.values()) count += set.size;
    return count;
  }

  /** Opens the listener connection and starts the sweep. Idempotent. */
  start(): Promise<void> {
    const db = this.#db;
    if (db === undefined) return Promise.resolve();
    this.#started ??= (async () => {
      this.#listener = await db.listen([WAKE_CHANNEL, AGENT_KEY_CHANNEL], {
        onNotify: (channel, payload) => {
          if (channel === WAKE_CHANNEL) this.notify(payload);
          else for (const listener of this.#keyListeners) listener(payload);
        },
        // Anything sent while the listener was away is lost: look for it now.
        onConnect: () => void this.sweep(),
      });
      this.#sweep = setInterval(() => void this.sweep(), this.sweepMs);
      this.#sweep.unref();
    })();
    return this.#started;
  }

  async close(): Promise<void> {
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
    await this.#started?.catch(() => undefined);
    await this.#listener?.close();
    this.#listener = null;
    await this.#sweeping;
    for (const set of this.#waiting.values()) for (const state of set) state.resolve?.(false);
  }

  /** Called with the id of every agent whose key was revoked or rotated, on any replica. */
  onAgentKeyChanged(listener: (agentId: string) => void): () => void {
    this.#keyListeners.add(listener);
    return () => this.#keyListeners.delete(listener);
  }

  /** Wakes the waiters of `agentId` in this process. */
  notify(agentId: string): void {
    const set = this.#waiting.get(agentId);
    if (!set) return;
    for (const state of set) {
      state.woken = true;
      state.resolve?.(true);
    }
  }

  waiter(agentId: string): Waiter {
    const state: WaiterState = { woken: false, resolve: null };
    let set = this.#waiting.get(agentId);
    if (!set) {
      set = new Set();
      this.#waiting.set(agentId, set);
    }
    set.add(state);
    const listening = this.listening;
    const sweepMs = this.sweepMs;
    const close = () => {
      state.resolve?.(false);
      const current = this.#waiting.get(agentId);
      current?.delete(state);
      if (current?.size === 0) this.#waiting.delete(agentId);
    };
    return {
      get woken() {
        return state.woken;
      },
      wait(deadline: number, signal?: AbortSignal): Promise<boolean> {
        if (state.woken) {
          state.woken = false;
          return Promise.resolve(true);
        }
        if (signal?.aborted) return Promise.resolve(false);
        // Without a listener, each waiter re-checks on its own, as a wake-up.
        const until = listening ? deadline : Math.min(deadline, Date.now() + sweepMs);
        return new Promise<boolean>((resolve) => {
          const done = (woken: boolean) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', aborted);
            state.resolve = null;
            state.woken = false;
            resolve(woken);
          };
          const aborted = () => done(false);
          const timer = setTimeout(() => done(!listening && Date.now() < deadline), Math.max(0, until - Date.now()));
          state.resolve = done;
          signal?.addEventListener('abort', aborted, { once: true });
        });
      },
      close,
    };
  }

  /**
   * One query for every agent waiting here: those with a queued run (theirs or a group's) or no
   * longer active are woken, and their long-poll's claim sorts out the rest.
   */
  sweep(): Promise<void> {
    const db = this.#db;
    if (db === undefined || this.#waiting.size === 0) return Promise.resolve();
    this.#sweeping ??= (async () => {
      try {
        const ids = [...this.#waiting.keys()];
        const now = Date.now();
        // The same statement keeps the waiting agents' last-seen times fresh: a stream that stays
        // open sends no signed request to refresh them.
        const rows = await db.forSystem().query<{ id: string }>(
          `WITH seen AS (
             UPDATE agents SET last_seen_at = $2 WHERE id = ANY($1::uuid[]) AND status = 'active' AND (last_seen_at IS NULL OR last_seen_at < $3)
           )
           SELECT r.agent_id AS id FROM runs r WHERE r.status = 'queued' AND r.agent_id = ANY($1::uuid[])
           UNION
           SELECT m.agent_id FROM runs r JOIN agent_group_members m ON m.group_id = r.group_id
             WHERE r.status = 'queued' AND r.group_id IS NOT NULL AND m.agent_id = ANY($1::uuid[])
           UNION
           SELECT a.id FROM agents a WHERE a.id = ANY($1::uuid[]) AND a.status <> 'active'`,
          [ids, new Date(now), new Date(now - AGENT_SEEN_REFRESH_MS)],
        );
        for (const row of rows) this.notify(row.id);
      } catch (error) {
        this.#logger?.warn({ error: error instanceof Error ? error.message : String(error) }, 'wake-up sweep failed');
      } finally {
        this.#sweeping = null;
      }
    })();
    return this.#sweeping;
  }
}
