/**
 * Canonical JSON written as bytes, from bytes: what `verifyPage` hashes a stored record over,
 * built without a string or an object per field. `canonical.ts` is the definition; this is the
 * same text for the inputs a stored record holds, and the tests hold the two together.
 */

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const NULL = Buffer.from('null', 'latin1');

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Bytes appended to one buffer that is reused from record to record. */
export class ByteText {
  buffer = Buffer.allocUnsafeSlow(1 << 16);
  length = 0;

  reserve(more: number): void {
    if (this.length + more <= this.buffer.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.length + more));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  /** Bytes as they are; short runs are copied by hand, which beats a native call for each. */
  raw(source: Uint8Array, start: number, length: number): void {
    this.reserve(length);
    if (length > 64) {
      this.buffer.set(source.subarray(start, start + length), this.length);
      this.length += length;
      return;
    }
    const out = this.buffer;
    let at = this.length;
    for (let i = start; i < start + length; i++) out[at++] = source[i] ?? 0;
    this.length = at;
  }

  put(part: Uint8Array): void {
    this.raw(part, 0, part.length);
  }

  /** Bytes as they are, between double quotes: for text known to need no escape. */
  quoted(source: Uint8Array, start: number, length: number): void {
    this.reserve(length + 2);
    this.buffer[this.length++] = QUOTE;
    this.raw(source, start, length);
    this.buffer[this.length++] = QUOTE;
  }

  /** Text of code points below U+0080 only (a time, a number). */
  ascii(text: string): void {
    this.reserve(text.length);
    const out = this.buffer;
    let at = this.length;
    for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
    this.length = at;
  }

  /** `value` (0 or more, below 10^width) in `width` digits, zero-padded. */
  digits(value: number, width: number): void {
    this.reserve(width);
    let rest = value;
    for (let i = width - 1; i >= 0; i--) {
      this.buffer[this.length + i] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    }
    this.length += width;
  }

  /** A safe integer as `String` writes it. */
  integer(value: number): void {
    if (value < 0) this.ascii('-');
    const magnitude = Math.abs(value);
    let width = 1;
    for (let power = 10; power <= magnitude; power *= 10) width += 1;
    this.digits(magnitude, width);
  }

  /** Any text, as UTF-8. */
  utf8(text: string): void {
    this.reserve(text.length * 3);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  /**
   * UTF-8 text (a text column) as a JSON string, escaped exactly as `JSON.stringify` escapes it:
   * `"`, `\` and control characters; length -1 (NULL) as null.
   */
  string(source: Uint8Array, start: number, length: number): void {
    if (length < 0) return this.put(NULL);
    // At most six bytes for each one (\u00XX), and the quotes.
    this.reserve(length * 6 + 2);
    const out = this.buffer;
    let at = this.length;
    out[at++] = QUOTE;
    const end = start + length;
    for (let i = start; i < end; i++) {
      const byte = source[i] ?? 0;
      if (byte >= 0x20 && byte !== QUOTE && byte !== BACKSLASH) {
        out[at++] = byte;
        continue;
      }
      out[at++] = BACKSLASH;
      switch (byte) {
        case QUOTE:
        case BACKSLASH:
          out[at++] = byte;
          break;
        case 0x08:
          out[at++] = 0x62;
          break;
        case 0x09:
          out[at++] = 0x74;
          break;
        case 0x0a:
          out[at++] = 0x6e;
          break;
        case 0x0c:
          out[at++] = 0x66;
          break;
        case 0x0d:
          out[at++] = 0x72;
          break;
        default:
          out[at++] = 0x75;
          out[at++] = 0x30;
          out[at++] = 0x30;
          out[at++] = HEX_DIGITS[byte >> 4] ?? 0;
          out[at++] = HEX_DIGITS[byte & 15] ?? 0;
      }
    }
    out[at++] = QUOTE;
    this.length = at;
  }

  /** A uuid's 16 bytes as its quoted, lowercase, hyphenated text. */
  uuid(source: Uint8Array, start: number): void {
    this.reserve(38);
    const out = this.buffer;
    let at = this.length;
    out[at++] = QUOTE;
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) out[at++] = 0x2d;
      const byte = source[start + i] ?? 0;
      out[at++] = HEX_DIGITS[byte >> 4] ?? 0;
      out[at++] = HEX_DIGITS[byte & 15] ?? 0;
    }
    out[at++] = QUOTE;
    this.length = at;
  }
}

const LITERALS = ['true', 'false', 'null'].map((literal) => Buffer.from(literal, 'latin1'));

function isLowerHex(byte: number | undefined): boolean {
  return byte !== undefined && ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66));
}

/** Thrown inside `JsonbWriter` at anything outside its fast path; its caller then writes the value the general way. */
class NotPlain extends Error {}
const notPlain = new NotPlain();

/**
 * jsonb's text (as PostgreSQL writes it: keys by length then bytes, `", "` and `": "` between) as
 * `canonicalJson` of the value it holds, written byte to byte: keys re-sorted by code unit, no
 * whitespace, strings as they are (PostgreSQL escapes a string exactly as `JSON.stringify` does).
 * Only what it can write exactly is taken: keys of plain ASCII, integers of at most 15 digits,
 * strings with the escapes PostgreSQL writes. Anything else (a fraction, an exponent, a non-ASCII
 * key) is refused (`write` answers false), for the caller to parse and write with `canonicalJson`.
 */
export class JsonbWriter {
  source: Uint8Array = new Uint8Array();
  at = 0;
  end = 0;
  scratch = Buffer.allocUnsafeSlow(1 << 12);
  /**
   * The members of the objects being written, four numbers each on a stack shared by every level:
   * key start and end in the source, `"key":value` start and end in the output.
   */
  members = new Int32Array(256);
  top = 0;
  order = new Int32Array(64);

  constructor(readonly out: ByteText) {}

  /**
   * Writes jsonb's text at `source[start, end)` to `out` as canonical JSON, if it is plain enough
   * to do so byte to byte; false, with `out` as it was, if not: then the caller parses it and
   * writes it with `canonicalJson`.
   */
  write(source: Uint8Array, start: number, end: number): boolean {
    const mark = this.out.length;
    this.top = 0;
    this.source = source;
    this.at = start;
    this.end = end;
    try {
      this.value();
      this.space();
      if (this.at === end) return true;
    } catch (error) {
      if (!(error instanceof NotPlain)) throw error;
    }
    this.out.length = mark;
    return false;
  }

  /** Skips whitespace; the byte after it, or -1 at the end. */
  space(): number {
    const { source, end } = this;
    for (; this.at < end; this.at += 1) {
      const c = source[this.at] ?? -1;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c;
    }
    return -1;
  }

  expect(byte: number): void {
    if (this.space() !== byte) throw notPlain;
    this.at += 1;
  }

  value(): void {
    const c = this.space();
    if (c === 0x7b) return this.object();
    if (c === 0x5b) return this.array();
    if (c === QUOTE) return this.string(false);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.integer();
    for (const literal of LITERALS) {
      if (this.matches(literal)) {
        this.out.put(literal);
        this.at += literal.length;
        return;
      }
    }
    throw notPlain;
  }

  matches(literal: Uint8Array): boolean {
    if (this.at + literal.length > this.end) return false;
    for (let i = 0; i < literal.length; i++) if (this.source[this.at + i] !== literal[i]) return false;
    const next = this.at + literal.length < this.end ? (this.source[this.at + literal.length] ?? 0x20) : 0x20;
    // A literal ends where a name would not: `nullx` is no literal.
    return !((next >= 0x61 && next <= 0x7a) || (next >= 0x41 && next <= 0x5a) || (next >= 0x30 && next <= 0x39));
  }

  /** -?(0|[1-9][0-9]{0,14}): written the same by `JSON.stringify(Number(text))`; -0 is not (it is 0). */
  integer(): void {
    const { source } = this;
    const start = this.at;
    let at = start;
    if (source[at] === 0x2d) at += 1;
    const digits = at;
    while (at < this.end && (source[at] ?? 0) >= 0x30 && (source[at] ?? 0) <= 0x39) at += 1;
    const count = at - digits;
    if (count === 0 || count > 15 || (source[digits] === 0x30 && (count > 1 || digits > start))) throw notPlain;
    const next = at < this.end ? source[at] : undefined;
    if (next === 0x2e || next === 0x65 || next === 0x45) throw notPlain;
    this.out.raw(source, start, at - start);
    this.at = at;
  }

  /**
   * A string, copied as written. Escapes are those PostgreSQL and `JSON.stringify` write alike;
   * any other (`\/`, `\u00e9`) could stand for text written otherwise, and is not taken. A key must
   * be plain printable ASCII, so that comparing its bytes compares its code units.
   */
  string(key: boolean): void {
    const { source } = this;
    const start = this.at;
    let at = start + 1;
    for (;;) {
      if (at >= this.end) throw notPlain;
      const c = source[at] ?? 0;
      if (c === QUOTE) break;
      if (c < 0x20) throw notPlain;
      if (key && (c >= 0x80 || c === BACKSLASH)) throw notPlain;
      if (c === BACKSLASH) {
        const escaped = source[at + 1];
        if (escaped === 0x75) {
          // \u00XX for a control character only, lowercase, as both write it.
          if (source[at + 2] !== 0x30 || source[at + 3] !== 0x30 || !isLowerHex(source[at + 4]) || !isLowerHex(source[at + 5])) throw notPlain;
          if ((source[at + 4] ?? 0) > 0x31) throw notPlain;
          at += 6;
          continue;
        }
        if (escaped !== QUOTE && escaped !== BACKSLASH && escaped !== 0x62 && escaped !== 0x66 && escaped !== 0x6e && escaped !== 0x72 && escaped !== 0x74) throw notPlain;
        at += 2;
        continue;
      }
      at += 1;
    }
    this.out.raw(source, start, at + 1 - start);
    this.at = at + 1;
  }

  array(): void {
    this.at += 1;
    this.out.ascii('[');
    if (this.space() === 0x5d) {
      this.at += 1;
      this.out.ascii(']');
      return;
    }
    for (;;) {
      this.value();
      const c = this.space();
      this.at += 1;
      if (c === 0x5d) break;
      if (c !== 0x2c) throw notPlain;
      this.out.ascii(',');
    }
    this.out.ascii(']');
  }

  object(): void {
    const { out } = this;
    this.at += 1;
    out.ascii('{');
    if (this.space() === 0x7d) {
      this.at += 1;
      out.ascii('}');
      return;
    }
    const base = this.top;
    let sorted = true;
    for (;;) {
      if (this.space() !== QUOTE) throw notPlain;
      const keyStart = this.at + 1;
      const outStart = out.length;
      this.string(true);
      const keyEnd = this.at - 1;
      this.expect(0x3a);
      out.ascii(':');
      this.value();
      if (this.top > base) {
        const order = this.compareKeys(this.members[this.top - 4] ?? 0, this.members[this.top - 3] ?? 0, keyStart, keyEnd);
        // jsonb holds each key once; text that repeats one is not taken here.
        if (order === 0) throw notPlain;
        if (order > 0) sorted = false;
      }
      this.push(keyStart, keyEnd, outStart, out.length);
      const c = this.space();
      this.at += 1;
      if (c === 0x7d) break;
      if (c !== 0x2c) throw notPlain;
      out.ascii(',');
    }
    if (!sorted) this.reorder(base);
    this.top = base;
    out.ascii('}');
  }

  push(keyStart: number, keyEnd: number, outStart: number, outEnd: number): void {
    if (this.top + 4 > this.members.length) {
      const grown = new Int32Array(this.members.length * 2);
      grown.set(this.members);
      this.members = grown;
    }
    const { members } = this;
    members[this.top] = keyStart;
    members[this.top + 1] = keyEnd;
    members[this.top + 2] = outStart;
    members[this.top + 3] = outEnd;
    this.top += 4;
  }

  /** Source keys (the bytes between the quotes) in code-unit order; only plain ASCII keys come here. */
  compareKeys(aStart: number, aEnd: number, bStart: number, bEnd: number): number {
    const { source } = this;
    const length = Math.min(aEnd - aStart, bEnd - bStart);
    for (let i = 0; i < length; i++) {
      const diff = (source[aStart + i] ?? 0) - (source[bStart + i] ?? 0);
      if (diff !== 0) return diff;
    }
    return aEnd - aStart - (bEnd - bStart);
  }

  /** The members on the stack from `base`, just written, rewritten in key order in the same place. */
  reorder(base: number): void {
    const { out, members } = this;
    const from = members[base + 2] ?? 0;
    const length = out.length - from;
    if (this.scratch.length < length) this.scratch = Buffer.allocUnsafeSlow(Math.max(length, this.scratch.length * 2));
    const { scratch } = this;
    const written = out.buffer;
    written.copy(scratch, 0, from, from + length);
    // Insertion sort of the members' offsets on the stack: objects are small.
    const count = (this.top - base) / 4;
    if (this.order.length < count) this.order = new Int32Array(count * 2);
    const { order } = this;
    for (let i = 0; i < count; i++) {
      const at = base + i * 4;
      let j = i;
      for (; j > 0; j--) {
        const other = order[j - 1] ?? 0;
        if (this.compareKeys(members[other] ?? 0, members[other + 1] ?? 0, members[at] ?? 0, members[at + 1] ?? 0) < 0) break;
        order[j] = other;
      }
      order[j] = at;
    }
    out.length = from;
    for (let i = 0; i < count; i++) {
      if (i > 0) out.ascii(',');
      const at = order[i] ?? 0;
      const start = members[at + 2] ?? 0;
      out.raw(scratch, start - from, (members[at + 3] ?? 0) - start);
    }
  }
}

