/**
 * Keeps open event streams (an agent's wake-up stream) from looking idle to the proxies and load
 * balancers on their way, which commonly close a connection quiet for a minute: every stream gets
 * a comment line (`: ping`) every `WAKEUP_PING_MS`. One timer serves every stream of the process:
 * each second it pings one slice of them, so the writes spread evenly over time, and a waiting
 * stream costs nothing else. A ping is written only between two events, never inside one.
 */
import type { ServerResponse } from 'node:http';
import { WAKEUP_PING_MS } from '@airlock/protocol';

const PING = Buffer.from(': ping\n');
const TICK_MS = 1_000;

export interface PingedStream {
  /** Writes a chunk of the stream's events; chunks ending in a blank line end an event. */
  write(chunk: Uint8Array): void;
  /** No more pings: the stream ended. */
  remove(): void;
}

export class StreamPings {
  readonly #slices: Set<{ res: ServerResponse; between: boolean }>[];
  #next = 0;
  #count = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(intervalMs = WAKEUP_PING_MS) {
    this.#slices = Array.from({ length: Math.max(1, Math.round(intervalMs / TICK_MS)) }, () => new Set());
  }

  add(res: ServerResponse): PingedStream {
    const entry = { res, between: true };
    const slice = this.#slices[this.#count++ % this.#slices.length] as Set<typeof entry>;
    slice.add(entry);
    this.#timer ??= setInterval(() => this.#tick(), TICK_MS).unref();
    return {
      write: (chunk) => {
        if (res.destroyed) return;
        res.write(chunk);
        entry.between = chunk.length >= 2 && chunk[chunk.length - 1] === 0x0a && chunk[chunk.length - 2] === 0x0a;
      },
      remove: () => {
        slice.delete(entry);
        if (this.#timer !== null && this.#slices.every((s) => s.size === 0)) {
          clearInterval(this.#timer);
          this.#timer = null;
        }
      },
    };
  }

  #tick(): void {
    const slice = this.#slices[this.#next] as Set<{ res: ServerResponse; between: boolean }>;
    this.#next = (this.#next + 1) % this.#slices.length;
    for (const entry of slice) if (entry.between && !entry.res.destroyed) entry.res.write(PING);
  }
}
