/**
 * Runs background work now and then every `intervalMs` until stopped. Ticks never overlap: the
 * next one is scheduled only when the last has settled, and `stop()` waits for one in progress,
 * so the database can be closed after it. A failed tick is reported and the loop goes on.
 */
export class Ticker {
  readonly #tick: () => Promise<unknown>;
  readonly #intervalMs: number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = true;

  constructor(tick: () => Promise<unknown>, intervalMs: number, onError: (error: unknown) => void) {
    this.#tick = tick;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const loop = () => {
      this.#running = this.#tick()
        .catch(this.#onError)
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(loop, this.#intervalMs);
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
