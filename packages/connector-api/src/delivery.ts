/**
 * The life cycle every atomic delivery shares, whatever the destination: the host writes the
 * stream, then `commit` finishes it, makes it durable and publishes it under the final name, or
 * `abort` removes what was written. Each happens at most once; `onSettled` is called when the
 * delivery is over either way. A destination supplies the three steps and its error mapping.
 */
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { UnexpectedError } from '@airlock/errors';
import type { PendingDelivery } from './contract.ts';

type DeliveryState = 'writing' | 'committing' | 'committed' | 'aborted';

export abstract class AtomicDelivery<TStream extends Writable = Writable> implements PendingDelivery {
  #state: DeliveryState = 'writing';
  #abort: Promise<void> | undefined;

  constructor(
    readonly stream: TStream,
    protected readonly finalPath: string,
    private readonly onSettled: (delivery: PendingDelivery) => void,
  ) {}

  /** The finished bytes, still under the temporary name, made durable. */
  protected abstract makeDurable(): Promise<void>;
  /** The durable bytes made visible under the final name, never replacing an existing file. */
  protected abstract publish(): Promise<void>;
  /** Best effort: removes the temporary file and releases handles; never touches the final name. */
  protected abstract cleanUp(): Promise<void>;
  /** The error to report for a failed commit. */
  protected abstract failure(error: unknown): unknown;

  async commit(): Promise<{ location: string }> {
    if (this.#state !== 'writing') throw new UnexpectedError(`delivery ${this.finalPath} is already ${this.#state}`);
    this.#state = 'committing';
    try {
      // Publishing a stream the host has not ended would publish a truncated file.
      if (!this.stream.writableEnded) throw new UnexpectedError(`commit of ${this.finalPath} before its stream was ended`);
      await finished(this.stream);
      await this.makeDurable();
      await this.publish();
      this.#state = 'committed';
      this.onSettled(this);
      return { location: this.finalPath };
    } catch (error) {
      // Report why the commit failed, not a secondary cleanup failure; abort() can retry the cleanup.
      await this.cleanUp().catch(() => undefined);
      this.#state = 'aborted';
      this.onSettled(this);
      throw this.failure(error);
    }
  }

  abort(): Promise<void> {
    if (this.#state === 'committed') return Promise.resolve();
    this.#abort ??= (async () => {
      this.#state = 'aborted';
      await this.cleanUp();
      this.onSettled(this);
    })();
    return this.#abort;
  }
}
