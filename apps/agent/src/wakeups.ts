/**
 * The agent's side of its wake-up stream (`agent.wakeups`): one signed request the control plane
 * holds open for minutes, as server-sent events, and answers with the agent's next job as soon as
 * one is queued, then ends. Between jobs the agent waits on it instead of long-polling, so an idle
 * agent costs the control plane one request every few minutes instead of one every long-poll.
 *
 * What comes on the stream is untrusted like any answer: it is parsed with a bounded buffer, and a
 * job's envelope is handed on to be verified as always. A stream the agent hears nothing on, not
 * even a ping, for `WAKEUP_SILENCE_MS` is dropped as dead; the wait then answers `silent` and the
 * agent asks for a job with `agent.nextJob`, so a proxy that holds events back slows dispatch down
 * to one look per silence instead of stopping it.
 */
import { TRPCClientError } from '@trpc/client';
import { type EventSourceMessage, EventSourceParserStream } from 'eventsource-parser/stream';
import { OperationalError } from '@airlock/errors';
import { WAKEUP_SILENCE_MS } from '@airlock/protocol';

/** Opens the stream: the signed GET of `agent.wakeups`, aborted by `signal`. */
export type OpenWakeups = (signal: AbortSignal) => Promise<Response>;

/**
 * How a wait ended: with a job's envelope (unverified), with the control plane asking for a
 * heartbeat now (it has something to say in the answer), at its deadline, or on a stream gone silent.
 */
export type WakeupOutcome = { kind: 'job'; envelope: unknown } | { kind: 'heartbeat' } | { kind: 'deadline' } | { kind: 'silent' };

/** The most one event may hold before the stream is refused: a job's envelope is a few kilobytes. */
const MAX_EVENT_BYTES = 1024 * 1024;

/** A stream the control plane ends sooner than this (ms) having brought nothing, not even an error, still counts as failed, so reopening backs off. */
const SHORTEST_STREAM_MS = 5_000;

/** The most of a refusal's body read for its error. */
const MAX_REFUSAL_BYTES = 64 * 1024;

class StreamSilent extends Error {}

/** The control plane's refusal of the stream (an HTTP error), as the same error a refused call gives. */
async function refusal(response: Response): Promise<Error> {
  let text = '';
  // Read no more than a refusal needs: whatever answered (a proxy, say) may send far more.
  const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (let next = await reader?.read(); next && !next.done && text.length < MAX_REFUSAL_BYTES; next = await reader?.read()) text += next.value;
  } catch {
    // Cut off midway: what came is enough to name the status.
  } finally {
    await reader?.cancel().catch(() => undefined);
  }
  text = text.slice(0, MAX_REFUSAL_BYTES);
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not the control plane's JSON (a proxy's page): the status says what happened.
  }
  if (typeof body === 'object' && body !== null && 'error' in body) return TRPCClientError.from(body as { error: never }, { meta: { response } });
  return new TRPCClientError(`wake-up stream refused: HTTP ${response.status}`, { meta: { response } });
}

export class WakeupStream {
  readonly #open: OpenWakeups;
  readonly #silenceMs: number;
  readonly #shortestStreamMs: number;
  /** What the stream brought (a job's envelope, a request to heartbeat) and no wait has taken yet. */
  #brought: { kind: 'job'; envelope: unknown } | { kind: 'heartbeat' } | null = null;
  #silent = false;
  #failure: unknown = null;
  #closer: AbortController | null = null;
  #reading: Promise<void> | null = null;
  #changed: (() => void) | null = null;
  #connected = false;
  #connections = 0;

  constructor(open: OpenWakeups, options: { silenceMs?: number; shortestStreamMs?: number } = {}) {
    this.#open = open;
    this.#silenceMs = options.silenceMs ?? WAKEUP_SILENCE_MS;
    this.#shortestStreamMs = options.shortestStreamMs ?? SHORTEST_STREAM_MS;
  }

  /**
   * Waits for a job, until `deadline` (epoch ms) or `signal`. Opens the stream when none is open
   * (the control plane ends each after a job or a few minutes, and the next wait opens the next).
   * Rejects with the stream's failure: a refusal, or the connection lost.
   */
  async wait(deadline: number, signal?: AbortSignal): Promise<WakeupOutcome> {
    for (;;) {
      if (this.#brought !== null) {
        const brought = this.#brought;
        this.#brought = null;
        return brought;
      }
      if (this.#failure !== null) {
        const failure = this.#failure;
        this.#failure = null;
        throw failure;
      }
      if (this.#silent) {
        this.#silent = false;
        return { kind: 'silent' };
      }
      if (signal?.aborted || Date.now() >= deadline) return { kind: 'deadline' };
      if (this.#reading === null) this.#start();
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          this.#changed = null;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
        signal?.addEventListener('abort', done, { once: true });
        this.#changed = done;
      });
    }
  }

  /** Whether a stream is open now and the control plane said it was connected. */
  get connected(): boolean {
    return this.#connected;
  }

  /** How many streams the control plane has connected so far. */
  get connections(): number {
    return this.#connections;
  }

  /** Closes the stream; the next wait opens a new one (after a key rotation, signed with the new key). */
  close(): void {
    this.#closer?.abort();
    this.#closer = null;
  }

  #start(): void {
    const closer = new AbortController();
    this.#closer = closer;
    this.#reading = this.#read(closer.signal)
      .catch((error: unknown) => {
        if (closer.signal.aborted) return;
        if (error instanceof StreamSilent) this.#silent = true;
        else this.#failure = error;
      })
      .finally(() => {
        this.#reading = null;
        if (this.#closer === closer) this.#closer = null;
        this.#changed?.();
      });
  }

  async #read(closed: AbortSignal): Promise<void> {
    const silence = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(timer);
      timer = setTimeout(() => silence.abort(new StreamSilent()), this.#silenceMs);
    };
    heard();
    const opened = Date.now();
    let brought = false;
    let reader: ReadableStreamDefaultReader<EventSourceMessage> | null = null;
    try {
      const response = await this.#open(AbortSignal.any([closed, silence.signal]));
      if (!response.ok || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream') || response.body === null) throw await refusal(response);
      const events = response.body
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(new EventSourceParserStream({ onError: 'terminate', onComment: heard, maxBufferSize: MAX_EVENT_BYTES }));
      reader = events.getReader();
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        const event = next.value;
        heard();
        if (event.event === 'serialized-error') throw TRPCClientError.from({ error: JSON.parse(event.data) as never });
        if (event.event === 'return') break;
        if (event.event === 'connected') {
          this.#connected = true;
          this.#connections += 1;
        }
        if (event.event !== undefined && event.event !== 'message') continue;
        const data: unknown = JSON.parse(event.data);
        if (typeof data !== 'object' || data === null) continue;
        if ('envelope' in data && data.envelope !== null && data.envelope !== undefined) this.#brought = { kind: 'job', envelope: data.envelope };
        else if ('heartbeat' in data && data.heartbeat === true) this.#brought = { kind: 'heartbeat' };
        else continue;
        brought = true;
        this.#changed?.();
      }
      if (!brought && Date.now() - opened < this.#shortestStreamMs) throw new OperationalError('the control plane ended the wake-up stream at once');
    } catch (error) {
      if (silence.signal.aborted && !closed.aborted) throw new StreamSilent();
      throw error;
    } finally {
      this.#connected = false;
      clearTimeout(timer);
      await reader?.cancel().catch(() => undefined);
    }
  }
}
