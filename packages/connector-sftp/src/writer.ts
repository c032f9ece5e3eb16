/**
 * A pipelined SFTP write stream: up to `maxRequests` WRITE requests in flight, each of up to
 * `requestSize` bytes at increasing offsets. Small chunks are gathered into full-size requests.
 * A write's callback fires only once its bytes are handed to ssh2 and the window has room again,
 * so a fast producer waits instead of filling memory. It does not own the handle: the caller
 * fsyncs and closes it once the stream has finished.
 */
import { Writable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { OperationalError } from '@airlock/errors';
import { channelIsOpen, onChannelGone, remoteError } from './connection.ts';
import { pipelineShape, type PipelineOptions } from './reader.ts';

export interface SftpWriteStreamOptions extends PipelineOptions {
  readonly path: string;
  readonly authority: string;
  /** The server's largest WRITE; requests never carry more. */
  readonly maxWriteLength: number;
}

interface PendingChunk {
  readonly chunk: Buffer;
  position: number;
  readonly callback: (error?: Error | null) => void;
}

export class SftpWriteStream extends Writable {
  readonly requestSize: number;
  readonly maxRequests: number;
  readonly #sftp: SFTPWrapper;
  readonly #handle: Buffer;
  readonly #path: string;
  readonly #authority: string;
  readonly #stopWatching: () => void;
  /** Gathers small chunks into one request; ssh2 copies a request's bytes when it is sent. */
  readonly #staging: Buffer;
  #staged = 0;
  #pending: PendingChunk | undefined;
  #finalCallback: ((error?: Error | null) => void) | undefined;
  #nextOffset = 0;
  #inFlight = 0;
  #acknowledged = 0;
  #failure: Error | undefined;

  constructor(sftp: SFTPWrapper, handle: Buffer, options: SftpWriteStreamOptions) {
    const { requestSize, maxRequests } = pipelineShape(options, options.maxWriteLength);
    super({ highWaterMark: requestSize });
    this.requestSize = requestSize;
    this.maxRequests = maxRequests;
    this.#sftp = sftp;
    this.#handle = handle;
    this.#path = options.path;
    this.#authority = options.authority;
    this.#staging = Buffer.allocUnsafe(requestSize);
    this.#stopWatching = onChannelGone(sftp, () =>
      this.#fail(new OperationalError(`the connection to ${this.#authority} closed while writing ${JSON.stringify(this.#path)}`)),
    );
  }

  /** Bytes the server has acknowledged. */
  get bytesAcknowledged(): number {
    return this.#acknowledged;
  }

  /** Bytes handed to the server so far (sent, acknowledged or not). */
  get bytesSent(): number {
    return this.#nextOffset;
  }

  get requestsInFlight(): number {
    return this.#inFlight;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#failure !== undefined) {
      callback(this.#failure);
      return;
    }
    this.#pending = { chunk, position: 0, callback };
    this.#pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#failure !== undefined) {
      callback(this.#failure);
      return;
    }
    this.#finalCallback = callback;
    this.#pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#stopWatching();
    this.#failure ??= error ?? new OperationalError(`writing ${JSON.stringify(this.#path)} was cancelled`);
    callback(error);
  }

  #hasRoom(): boolean {
    return this.#inFlight < this.maxRequests;
  }

  /** Sends what can be sent, then releases the producer or finishes if everything is acknowledged. */
  #pump(): void {
    const pending = this.#pending;
    if (pending !== undefined) {
      const { chunk } = pending;
      while (pending.position < chunk.length && this.#hasRoom() && this.#failure === undefined) {
        const left = chunk.length - pending.position;
        if (this.#staged === 0 && left >= this.requestSize) {
          // A whole request's worth: sent straight from the chunk, no staging copy.
          this.#send(chunk.subarray(pending.position, pending.position + this.requestSize));
          pending.position += this.requestSize;
          continue;
        }
        const take = Math.min(left, this.requestSize - this.#staged);
        chunk.copy(this.#staging, this.#staged, pending.position, pending.position + take);
        this.#staged += take;
        pending.position += take;
        if (this.#staged === this.requestSize) this.#sendStaged();
      }
      if (this.#failure !== undefined) return;
      if (pending.position === chunk.length && this.#hasRoom()) {
        this.#pending = undefined;
        pending.callback();
      }
      return;
    }
    const finalCallback = this.#finalCallback;
    if (finalCallback === undefined || this.#failure !== undefined) return;
    if (this.#staged > 0 && this.#hasRoom()) this.#sendStaged();
    if (this.#staged === 0 && this.#inFlight === 0) {
      this.#finalCallback = undefined;
      this.#stopWatching();
      finalCallback();
    }
  }

  #sendStaged(): void {
    this.#send(this.#staging.subarray(0, this.#staged));
    this.#staged = 0;
  }

  /** ssh2 copies `data` into the outgoing packet before `write` returns, so it may be reused at once. */
  #send(data: Buffer): void {
    if (!channelIsOpen(this.#sftp)) {
      this.#fail(new OperationalError(`the connection to ${this.#authority} is closed`));
      return;
    }
    const offset = this.#nextOffset;
    this.#nextOffset += data.length;
    this.#inFlight += 1;
    try {
      this.#sftp.write(this.#handle, data, 0, data.length, offset, (error) => {
        this.#inFlight -= 1;
        if (error) {
          this.#fail(remoteError('writing', this.#path, this.#authority, error));
          return;
        }
        this.#acknowledged += data.length;
        this.#pump();
      });
    } catch (error) {
      this.#inFlight -= 1;
      this.#fail(remoteError('writing', this.#path, this.#authority, error));
    }
  }

  /** Fails the stream once: through whichever callback is waiting, or by destroying it. */
  #fail(error: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#stopWatching();
    const waiting = this.#pending?.callback ?? this.#finalCallback;
    this.#pending = undefined;
    this.#finalCallback = undefined;
    if (waiting !== undefined) waiting(error);
    else this.destroy(error);
  }
}
