/**
 * Pass-through stages of the data path that count and hash the bytes going by. Each passes every
 * chunk on as the same object and keeps no reference to it, so chunks a source lends
 * (`lendChunks`) may be handed back behind them.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Counts the bytes that pass, without keeping them; `onBytes` hears of each chunk's length. */
export class Count extends Transform {
  bytes = 0;

  constructor(private readonly onBytes?: (count: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }
}

/** Counts and hashes the bytes that pass, without keeping them; with a key, the hash is an HMAC. */
export class Measure extends Count {
  readonly #hash: Hash | Hmac;

  constructor(key?: Uint8Array) {
    super();
    this.#hash = key === undefined ? createHash('sha256') : createHmac('sha256', key);
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    super._transform(chunk, encoding, callback);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}
