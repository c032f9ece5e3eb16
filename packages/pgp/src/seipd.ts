/**
 * The bulk of an RFC 4880 message, written with node:crypto instead of openpgp.js's web streams:
 * a Symmetrically Encrypted Integrity Protected Data packet, version 1 (RFC 4880 5.13), around one
 * literal data packet (5.9), both framed with partial body lengths (4.2.2.4) so nothing needs the
 * file's size up front. openpgp.js still makes the session key packets that come before it and
 * decrypts this output in the tests; this module only does what openpgp.js spent most of the
 * agent's CPU on, one chunk at a time: copying, CFB and the SHA-1 MDC.
 *
 * Layout of the output:
 *   session key packets (given)
 *   0xD2 (new-format tag 18), then the SEIPD body in frames of `partialBytes`, the last one with a
 *   regular length. The body is 0x01 (version) then AES-CFB, zero IV, no resynchronisation, over:
 *     16 random octets, their last two repeated;
 *     0xCB (tag 11), the literal body in frames of `partialBytes`: 'b', name length, name,
 *       4-octet date, data;
 *     0xD3 0x14 (tag 19, length 20), SHA-1 over everything above in this list, those two octets included.
 */
import { createCipheriv, createHash, randomBytes, type Cipher, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Frames of 256 KiB: framing costs nothing at this size, and a frame is copied, encrypted and
 * hashed while it is still in a core's L2 cache.
 */
export const DEFAULT_PARTIAL_BYTES = 1 << 18;

const SEIPD_TAG_OCTET = 0xc0 | 18;
const LITERAL_TAG_OCTET = 0xc0 | 11;
const MDC_HEADER = Buffer.from([0xc0 | 19, 20]);
const SEIPD_VERSION = 0x01;
/** Literal data format 'b': binary, no line-ending conversion. */
const BINARY_FORMAT = 0x62;
/** The literal packet holds the file name in at most this many octets (a one-octet length). */
const MAX_NAME_BYTES = 255;

/** RFC 4880 4.2.2.1-3: the one-, two- or five-octet length of a final frame. */
export function regularLength(length: number): Buffer {
  if (length < 192) return Buffer.from([length]);
  if (length < 8384) return Buffer.from([((length - 192) >> 8) + 192, (length - 192) & 0xff]);
  const octets = Buffer.alloc(5);
  octets[0] = 0xff;
  octets.writeUInt32BE(length, 1);
  return octets;
}

/**
 * The name as UTF-8, cut at a character boundary to fit the packet's one-octet length (openpgp.js
 * would wrap the length around and write a corrupt packet). Only `--use-embedded-filename` reads it.
 */
function nameOctets(name: string): Buffer {
  const encoded = Buffer.from(name, 'utf8');
  if (encoded.length <= MAX_NAME_BYTES) return encoded;
  let end = MAX_NAME_BYTES;
  // Back off continuation octets (10xxxxxx) so no character is split.
  while (end > 0 && ((encoded[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return encoded.subarray(0, end);
}

export interface Seipdv1Options {
  /** The session key packets, written first as they are. */
  readonly sessionKeyPackets: Uint8Array;
  readonly algorithm: 'aes256' | 'aes128';
  readonly sessionKey: Uint8Array;
  /** Recorded in the literal packet. */
  readonly filename: string;
  /** Recorded in the literal packet, to the second. */
  readonly date: Date;
  /** A power of two from 512 to 2^30; default `DEFAULT_PARTIAL_BYTES`. */
  readonly partialBytes?: number;
  /**
   * Called with each input chunk, the very object written, once every octet of it is copied and no
   * reference to it is left here: a source that lends its buffers may read into it again.
   */
  readonly releaseChunk?: (chunk: Uint8Array) => void;
}

/** Literal body waiting to be framed: a reference to an input chunk (never a copy), from `offset` on. */
interface QueuedChunk {
  readonly bytes: Buffer;
  offset: number;
  /** The object that was written, to release once it is all copied; null for the literal head. */
  readonly written: Uint8Array | null;
}

/**
 * Plaintext in, the OpenPGP message out. The plaintext is copied once, into a frame-sized buffer
 * that is reused, and each full frame is hashed and encrypted in one call. Holds at most about two
 * frames plus one input chunk, and waits for its reader like any Transform.
 */
export class Seipdv1Encryptor extends Transform {
  readonly #partialBytes: number;
  /** The partial-length octet for a full frame: 224 + log2(partialBytes). */
  readonly #partialOctet: number;
  readonly #cipher: Cipher;
  readonly #mdc: Hash = createHash('sha1');
  /** SEIPD plaintext waiting to be encrypted: at most one frame. */
  readonly #frame: Buffer;
  #frameUsed = 0;
  /** Room in the current frame; the first frame also carries the version octet, in the clear. */
  #frameRoom: number;
  #framesSent = 0;
  /** Literal body not yet framed. */
  readonly #literal: QueuedChunk[] = [];
  #literalQueued = 0;
  readonly #head: Buffer;
  readonly #releaseChunk: ((chunk: Uint8Array) => void) | undefined;

  constructor(options: Seipdv1Options) {
    const partialBytes = options.partialBytes ?? DEFAULT_PARTIAL_BYTES;
    const exponent = Math.log2(partialBytes);
    if (!Number.isInteger(exponent) || exponent < 9 || exponent > 30) throw new RangeError(`partial length ${partialBytes} is not a power of two from 512 to 2^30`);
    // Strings are refused, not encoded: the plaintext is bytes from a file, never text to convert.
    super({ readableHighWaterMark: partialBytes, writableHighWaterMark: partialBytes, decodeStrings: false });
    this.#partialBytes = partialBytes;
    this.#partialOctet = 224 + exponent;
    const keyBytes = options.algorithm === 'aes256' ? 32 : 16;
    if (options.sessionKey.length !== keyBytes) throw new RangeError(`${options.algorithm} needs a ${keyBytes}-octet session key`);
    this.#cipher = createCipheriv(options.algorithm === 'aes256' ? 'aes-256-cfb' : 'aes-128-cfb', options.sessionKey, Buffer.alloc(16));
    this.#frame = Buffer.allocUnsafe(partialBytes);
    this.#frameRoom = partialBytes - 1;
    this.#head = Buffer.from(options.sessionKeyPackets);
    this.#releaseChunk = options.releaseChunk;

    // The random prefix, with its last two octets repeated (RFC 4880 5.13).
    const prefix = randomBytes(18);
    prefix[16] = prefix[14] ?? 0;
    prefix[17] = prefix[15] ?? 0;
    this.#write(prefix);
    this.#write(Buffer.from([LITERAL_TAG_OCTET]));
    const name = nameOctets(options.filename);
    const literalHead = Buffer.alloc(6 + name.length);
    literalHead[0] = BINARY_FORMAT;
    literalHead[1] = name.length;
    name.copy(literalHead, 2);
    literalHead.writeUInt32BE(Math.floor(options.date.getTime() / 1000) >>> 0, 2 + name.length);
    this.#literal.push({ bytes: literalHead, offset: 0, written: null });
    this.#literalQueued = literalHead.length;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!(chunk instanceof Uint8Array)) {
      callback(new TypeError('plaintext stream must yield bytes, not strings or objects'));
      return;
    }
    if (chunk.length > 0) {
      const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      this.#literal.push({ bytes, offset: 0, written: chunk });
      this.#literalQueued += chunk.length;
    } else {
      this.#releaseChunk?.(chunk);
    }
    // A full literal frame goes out only once more data is known to follow, so the final frame is
    // never empty.
    while (this.#literalQueued > this.#partialBytes) {
      this.#write(Buffer.from([this.#partialOctet]));
      this.#writeLiteral(this.#partialBytes);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#write(regularLength(this.#literalQueued));
    this.#writeLiteral(this.#literalQueued);
    this.#write(MDC_HEADER);
    this.#write(this.#mdc.digest(), false);
    this.#sendFrame(true);
    this.#cipher.final();
    callback();
  }

  /** Moves `length` octets of queued literal body into the SEIPD plaintext, releasing each chunk it empties. */
  #writeLiteral(length: number): void {
    let left = length;
    while (left > 0) {
      const head = this.#literal[0];
      if (head === undefined) throw new Error('literal queue underrun');
      const take = Math.min(head.bytes.length - head.offset, left);
      this.#write(head.bytes.subarray(head.offset, head.offset + take));
      head.offset += take;
      left -= take;
      if (head.offset === head.bytes.length) {
        this.#literal.shift();
        if (head.written !== null) this.#releaseChunk?.(head.written);
      }
    }
    this.#literalQueued -= length;
  }

  /** Appends SEIPD plaintext (hashed into the MDC unless it is the MDC itself), sending full frames. */
  #write(data: Buffer, hash = true): void {
    if (hash) this.#mdc.update(data);
    let offset = 0;
    while (offset < data.length) {
      // A full frame is sent only when more follows, for the same reason as literal frames.
      if (this.#frameUsed === this.#frameRoom) this.#sendFrame(false);
      const take = Math.min(data.length - offset, this.#frameRoom - this.#frameUsed);
      data.copy(this.#frame, this.#frameUsed, offset, offset + take);
      this.#frameUsed += take;
      offset += take;
    }
  }

  #sendFrame(final: boolean): void {
    const first = this.#framesSent === 0;
    const body = this.#frameUsed + (first ? 1 : 0);
    const header = final ? regularLength(body) : Buffer.from([this.#partialOctet]);
    const prefix = first ? [this.#head, Buffer.from([SEIPD_TAG_OCTET]), header, Buffer.from([SEIPD_VERSION])] : [header];
    this.push(Buffer.concat(prefix));
    if (this.#frameUsed > 0) this.push(this.#cipher.update(this.#frame.subarray(0, this.#frameUsed)));
    this.#framesSent += 1;
    this.#frameUsed = 0;
    this.#frameRoom = this.#partialBytes;
  }
}
