/**
 * `COPY ... TO STDOUT` on a pg client, gathered straight off the socket into one byte array.
 *
 * PostgreSQL sends a COPY's rows as one CopyData message each. pg-copy-streams (and pg's own
 * parser) make an object and a buffer of every message, which for a whole-trail verify was a
 * million of each, and more of the reading thread's time than the hashing it feeds. This copies
 * each of the socket's chunks whole into the one byte array, then reads the messages' five-byte
 * headers there and moves each payload down over the header before it (`copyWithin`: no object
 * for a row, no call that makes one). Like pg-copy-streams, it takes the socket's data from pg
 * while the COPY runs, and hands it back, with every byte it did not consume, at the first
 * message that is not part of the copy (CommandComplete, or an ErrorResponse), so that pg ends
 * the query as usual.
 */
import type pg from 'pg';

const COPY_OUT_RESPONSE = 0x48; // 'H'
const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
// Sent at any time, and of no concern to the copy: skipped, as pg-copy-streams skips them.
const NOTICE_RESPONSE = 0x4e; // 'N'
const PARAMETER_STATUS = 0x53; // 'S'
const NOTIFICATION_RESPONSE = 0x41; // 'A'

const HEADER = 5;

type DataListener = (chunk: Buffer) => void;

export class CopyOut implements pg.Submittable {
  readonly bytes: Promise<Uint8Array>;
  #resolve: (bytes: Uint8Array) => void = () => undefined;
  #reject: (error: Error) => void = () => undefined;
  #error: Error | null = null;

  #stream: pg.Connection['stream'] | null = null;
  /** pg's own listener, put back as it was: a wrapper would wrap the one before it, copy after copy. */
  #pgListener: DataListener | null = null;
  /**
   * `[0, length)`: the payloads so far. `[length, end)`: bytes received and not read yet, a
   * header split across chunks at most, then the chunk being read.
   */
  #out: Buffer;
  #length = 0;
  #end = 0;
  /** The code of the message being read and the bytes of its body still to come. */
  #code = 0;
  #remaining = 0;

  /** `into`: a buffer to write the bytes to, while they fit; a new one takes over when they do not. */
  constructor(
    readonly text: string,
    into: ArrayBuffer = new ArrayBuffer(1 << 20),
  ) {
    this.#out = Buffer.from(into);
    this.bytes = new Promise<Uint8Array>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Awaited by the caller; a rejection before that is not unhandled.
    this.bytes.catch(() => undefined);
  }

  submit(connection: pg.Connection): void {
    const stream = connection.stream;
    const listeners = stream.listeners('data');
    const pgListener = listeners[0] as DataListener | undefined;
    if (listeners.length !== 1 || typeof pgListener !== 'function') throw new Error('COPY needs a pg connection with exactly one data listener');
    this.#stream = stream;
    this.#pgListener = pgListener;
    stream.removeListener('data', pgListener);
    stream.on('data', this.#onData);
    connection.query(this.text);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#end + chunk.length > this.#out.length) {
      const grown = Buffer.from(new ArrayBuffer(Math.max(this.#out.length * 2, this.#end + chunk.length)));
      this.#out.copy(grown, 0, 0, this.#end);
      this.#out = grown;
    }
    chunk.copy(this.#out, this.#end);
    this.#end += chunk.length;
    const out = this.#out;
    let at = this.#length;
    for (;;) {
      if (this.#code === 0) {
        if (at + HEADER > this.#end) break;
        const code = out[at] ?? 0;
        if (code !== COPY_OUT_RESPONSE && code !== COPY_DATA && code !== COPY_DONE && code !== NOTICE_RESPONSE && code !== PARAMETER_STATUS && code !== NOTIFICATION_RESPONSE) {
          // CommandComplete or ErrorResponse: the rest is pg's to read, from this message on.
          const rest = Buffer.from(out.subarray(at, this.#end));
          this.#end = this.#length;
          this.#detach(rest);
          return;
        }
        const remaining = out.readUInt32BE(at + 1) - 4;
        if (remaining < 0) {
          this.#fail(new Error('COPY sent a malformed message'));
          return;
        }
        at += HEADER;
        // A message with no body is read whole already.
        if (remaining === 0) continue;
        this.#code = code;
        this.#remaining = remaining;
      }
      const take = Math.min(this.#remaining, this.#end - at);
      if (take === 0) break;
      if (this.#code === COPY_DATA) {
        out.copyWithin(this.#length, at, at + take);
        this.#length += take;
      }
      at += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#code = 0;
    }
    // What is left is part of a header: it waits, right after the payloads, for the next chunk.
    out.copyWithin(this.#length, at, this.#end);
    this.#end = this.#length + (this.#end - at);
  };

  /** Gives the socket's data back to pg, starting with `rest`. */
  #detach(rest: Buffer): void {
    const stream = this.#stream;
    const pgListener = this.#pgListener;
    if (!stream || !pgListener) return;
    this.#stream = null;
    this.#pgListener = null;
    stream.removeListener('data', this.#onData);
    stream.on('data', pgListener);
    if (rest.length > 0) Reflect.apply(pgListener, stream, [rest]);
  }

  #fail(error: Error): void {
    this.#error ??= error;
    // The connection is out of step with the protocol now: it is not to be used again.
    this.#stream?.destroy(error);
    this.#reject(this.#error);
  }

  handleError(error: Error): void {
    this.#error ??= error;
    this.#reject(this.#error);
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    if (this.#error) return this.#reject(this.#error);
    // At the start of its buffer, which can be moved to a worker thread without a copy.
    this.#resolve(new Uint8Array(this.#out.buffer, 0, this.#length));
  }
}

/**
 * The bytes of `COPY ... TO STDOUT` (`text`) on `client`, which must be idle and not pipelined:
 * written from the start of `into` while they fit there.
 */
export async function copyOut(client: pg.ClientBase, text: string, into?: ArrayBuffer): Promise<Uint8Array> {
  const copy = new CopyOut(text, into);
  client.query(copy);
  return copy.bytes;
}
