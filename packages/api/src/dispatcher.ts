/**
 * Wakes long-polling agents when work is queued for them. In-process wake-ups make a single
 * replica immediate; the long-poll also re-checks the database every `pollMs`, so several
 * replicas sharing one PostgreSQL stay correct.
 */
import { EventEmitter } from 'node:events';

export class Dispatcher {
  readonly #events = new EventEmitter();

  constructor(readonly pollMs = 1000) {
    this.#events.setMaxListeners(0);
  }

  notify(agentId: string): void {
    this.#events.emit(agentId);
  }

  /** Resolves on a wake-up for `agentId`, after `pollMs`, or when `signal` aborts. */
  wait(agentId: string, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#events.off(agentId, done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      this.#events.on(agentId, done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
