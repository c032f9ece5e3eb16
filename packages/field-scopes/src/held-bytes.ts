/**
 * The bytes of an unfinished record, kept across chunks in one growing buffer. Holding the chunks'
 * slices instead would cost an object per chunk: a record arriving a byte at a time would take
 * far more memory than its size.
 */
const SMALL = 64 * 1024;

export class HeldBytes {
  #buffer = Buffer.alloc(0);
  #length = 0;

  get length(): number {
    return this.#length;
  }

  append(bytes: Buffer): void {
    if (this.#length + bytes.length > this.#buffer.length) {
      const grown = Buffer.alloc(Math.max(SMALL, 2 * (this.#length + bytes.length)));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    bytes.copy(this.#buffer, this.#length);
    this.#length += bytes.length;
  }

  /** The held bytes followed by `tail` (`tail` itself when nothing is held); nothing is held afterwards. */
  take(tail: Buffer): Buffer {
    const bytes = this.#length === 0 ? tail : Buffer.concat([this.#buffer.subarray(0, this.#length), tail]);
    this.#length = 0;
    // A long record's buffer is let go, so one long record does not pin its size for the rest of the file.
    if (this.#buffer.length > SMALL) this.#buffer = Buffer.alloc(0);
    return bytes;
  }
}
