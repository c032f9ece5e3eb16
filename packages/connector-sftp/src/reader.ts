/**
 * A pipelined SFTP read stream. ssh2's own read stream waits for each reply before sending the next
 * request, so every request costs a full round trip; this one keeps up to `maxRequests` requests in
 * flight, the way OpenSSH's `sftp` does, and still delivers bytes strictly in file order.
 *
 * It lends its chunks (`lendChunks`): a full request's buffer that the consumer hands back is read
 * into again, so a transfer runs on a few buffers instead of a fresh one per request.
 */
import { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { lendChunks } from '@airlock/connector-api';
import { OperationalError } from '@airlock/errors';
import { call, callVoid, channelIsOpen, onChannelGone, remoteError } from './connection.ts';

/** How a pipelined stream sizes its window. */
export interface PipelineOptions {
  /** Bytes per request, capped at the server's limit; default 256 KiB. */
  readonly requestSize?: number;
  /** Requests in flight at once; default 16. */
  readonly maxRequests?: number;
}

export const DEFAULT_REQUEST_SIZE = 256 * 1024;
/**
 * 16 x 256 KiB = 4 MiB. ssh2's channel window is a fixed 2 MiB (topped up once half is used), and
 * that, not this window, caps throughput on a long round trip; measured with scripts/throughput.ts,
 * 8 to 16 requests were as fast as 64 at 10 and 40 ms RTT and faster on loopback (less garbage).
 */
export const DEFAULT_MAX_REQUESTS = 16;

/** Resolves the request size and count for a server whose largest request is `serverMax` bytes. */
export function pipelineShape(options: PipelineOptions, serverMax: number): { requestSize: number; maxRequests: number } {
  const requestSize = Math.min(options.requestSize ?? DEFAULT_REQUEST_SIZE, serverMax);
  const maxRequests = options.maxRequests ?? DEFAULT_MAX_REQUESTS;
  if (!Number.isInteger(requestSize) || requestSize < 1) throw new RangeError(`invalid request size ${requestSize}`);
  if (!Number.isInteger(maxRequests) || maxRequests < 1) throw new RangeError(`invalid request count ${maxRequests}`);
  return { requestSize, maxRequests };
}

/** One request's share of the file: `[offset, offset + buffer.length)`, filled from the front. */
interface Slot {
  readonly offset: number;
  readonly buffer: Buffer;
  received: number;
  done: boolean;
  /** The server reported the end of the file inside this slot. */
  eof: boolean;
}

export interface SftpReadStreamOptions extends PipelineOptions {
  /** Where the file is, for error messages: its path and the server's `host:port`. */
  readonly path: string;
  readonly authority: string;
  /** The server's largest READ; requests never ask for more. */
  readonly maxReadLength: number;
}

export class SftpReadStream extends Readable {
  readonly requestSize: number;
  readonly maxRequests: number;
  readonly #sftp: SFTPWrapper;
  readonly #handle: Buffer;
  readonly #path: string;
  readonly #authority: string;
  readonly #stopWatching: () => void;
  /** Requests in file order; the head is pushed once it is complete. */
  readonly #slots: Slot[] = [];
  #nextOffset = 0;
  /** A reply said end of file: nothing past it is requested. */
  #eofSeen = false;
  #ended = false;
  /** The consumer's buffer is full: issue nothing until it asks again. */
  #paused = false;
  #outstandingBytes = 0;
  #peakOutstandingBytes = 0;
  #bytesRequested = 0;
  /** Buffers the consumer handed back, read into before any new one is allocated. */
  readonly #spare: Buffer[] = [];
  /** Buffers pushed and not yet handed back; weak, so a consumer that never releases leaks nothing. */
  readonly #lent = new WeakSet<Buffer>();
  #buffersAllocated = 0;

  /** Opens `path` for reading and returns a stream that owns (and closes) the handle. */
  static async open(sftp: SFTPWrapper, options: SftpReadStreamOptions): Promise<SftpReadStream> {
    let handle: Buffer;
    try {
      handle = await call<Buffer>(sftp, (cb) => sftp.open(options.path, 'r', cb));
    } catch (error) {
      throw remoteError('opening', options.path, options.authority, error);
    }
    return new SftpReadStream(sftp, handle, options);
  }

  constructor(sftp: SFTPWrapper, handle: Buffer, options: SftpReadStreamOptions) {
    const { requestSize, maxRequests } = pipelineShape(options, options.maxReadLength);
    super({ highWaterMark: requestSize });
    this.requestSize = requestSize;
    this.maxRequests = maxRequests;
    this.#sftp = sftp;
    this.#handle = handle;
    this.#path = options.path;
    this.#authority = options.authority;
    this.#stopWatching = onChannelGone(sftp, () => {
      if (!this.#ended) this.destroy(new OperationalError(`the connection to ${this.#authority} closed while reading ${JSON.stringify(this.#path)}`));
    });
    lendChunks(this, (chunk) => this.release(chunk));
  }

  /**
   * Hands back a chunk this stream pushed, once the consumer keeps no reference to it: its buffer
   * is read into again. Anything else (a subarray, a chunk released twice) is ignored.
   */
  release(chunk: Uint8Array): void {
    if (!Buffer.isBuffer(chunk) || !this.#lent.delete(chunk)) return;
    if (!this.#ended && this.#spare.length < this.maxRequests) this.#spare.push(chunk);
  }

  /** Request buffers allocated so far; with a consumer that releases, about the window's worth. */
  get buffersAllocated(): number {
    return this.#buffersAllocated;
  }

  /** The most bytes that requests may hold at once: `requestSize * maxRequests`. */
  get windowBytes(): number {
    return this.requestSize * this.maxRequests;
  }

  /** Bytes held by requests in flight or completed but not yet handed to the consumer. */
  get outstandingBytes(): number {
    return this.#outstandingBytes;
  }

  get peakOutstandingBytes(): number {
    return this.#peakOutstandingBytes;
  }

  /** Bytes asked of the server so far, re-requests of short reads included. */
  get bytesRequested(): number {
    return this.#bytesRequested;
  }

  override _read(): void {
    this.#paused = false;
    this.#deliver();
    this.#fill();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#ended = true;
    this.#stopWatching();
    this.#slots.length = 0;
    this.#spare.length = 0;
    this.#outstandingBytes = 0;
    // Replies to requests still in flight are ignored. The server answers in order, so they are
    // all answered before it sees this CLOSE.
    void callVoid(this.#sftp, (cb) => this.#sftp.close(this.#handle, cb)).catch(() => undefined);
    callback(error);
  }

  /** Issues requests until the window is full, the end of file is known, or the consumer is full. */
  #fill(): void {
    while (!this.#paused && !this.#eofSeen && !this.#ended && this.#slots.length < this.maxRequests) {
      const slot: Slot = {
        offset: this.#nextOffset,
        buffer: this.#takeBuffer(),
        received: 0,
        done: false,
        eof: false,
      };
      this.#nextOffset += this.requestSize;
      this.#slots.push(slot);
      this.#outstandingBytes += this.requestSize;
      this.#peakOutstandingBytes = Math.max(this.#peakOutstandingBytes, this.#outstandingBytes);
      this.#request(slot);
    }
  }

  #takeBuffer(): Buffer {
    const spare = this.#spare.pop();
    if (spare !== undefined) return spare;
    this.#buffersAllocated += 1;
    return Buffer.allocUnsafe(this.requestSize);
  }

  /** Asks for the part of `slot` not yet received. */
  #request(slot: Slot): void {
    if (!channelIsOpen(this.#sftp)) {
      this.destroy(new OperationalError(`the connection to ${this.#authority} is closed`));
      return;
    }
    const length = slot.buffer.length - slot.received;
    this.#bytesRequested += length;
    try {
      this.#sftp.read(this.#handle, slot.buffer, slot.received, length, slot.offset + slot.received, (error, bytesRead) =>
        this.#onReply(slot, error, bytesRead),
      );
    } catch (error) {
      this.destroy(remoteError('reading', this.#path, this.#authority, error));
    }
  }

  #onReply(slot: Slot, error: Error | undefined, bytesRead: number): void {
    if (this.#ended) return;
    if (error) {
      this.destroy(remoteError('reading', this.#path, this.#authority, error));
      return;
    }
    // ssh2 reports SSH_FX_EOF as a read of zero bytes.
    if (bytesRead === 0) {
      slot.eof = true;
      slot.done = true;
      this.#eofSeen = true;
    } else {
      slot.received += bytesRead;
      if (slot.received < slot.buffer.length) {
        // A short read is not the end of the file: only an explicit EOF is. Ask for the rest.
        this.#request(slot);
        return;
      }
      slot.done = true;
    }
    this.#deliver();
    this.#fill();
  }

  /** Hands completed slots to the consumer in file order, until one is missing or it is full. */
  #deliver(): void {
    while (!this.#paused && !this.#ended) {
      const head = this.#slots[0];
      if (head === undefined || !head.done) return;
      this.#slots.shift();
      this.#outstandingBytes -= head.buffer.length;
      const data = head.received === head.buffer.length ? head.buffer : head.buffer.subarray(0, head.received);
      if (head.eof) {
        // Slots past the end are dropped, and with them any bytes a growing file might have had.
        this.#ended = true;
        this.#slots.length = 0;
        this.#outstandingBytes = 0;
        if (data.length > 0) this.push(data);
        this.push(null);
        return;
      }
      // Only whole buffers are lent: a short final one is never read into again.
      if (data === head.buffer) this.#lent.add(data);
      if (!this.push(data)) this.#paused = true;
    }
  }
}
