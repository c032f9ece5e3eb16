/**
 * A byte-level CSV reader (RFC 4180 quoting) that splits a stream into records and reports each
 * field's raw byte span, so granted cells can be copied out unchanged. A record never grows past
 * its byte limit, whatever the quoting, and errors carry positions only: a parser that quotes the
 * offending text would put customer data in logs.
 */
import { HeldBytes } from './held-bytes.ts';
import { DataContractError } from './rules.ts';

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

// Where the reader is within the current record.
const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
/** A quote inside a quoted field: the closing one, or the first of a doubled `""`. */
const QUOTE_IN_QUOTED = 3;
/** A carriage return outside quotes, which must start a CRLF. */
const AFTER_CR = 4;

export interface CsvRecord {
  /** The record's bytes, without its line break. */
  bytes: Buffer;
  /** Byte spans of the fields within `bytes`, quotes included: field i is [starts[i], ends[i]). */
  starts: number[];
  ends: number[];
  quoted: boolean[];
  lineBreak: 'crlf' | 'lf' | 'none';
}

export class CsvReader {
  readonly #delimiter: number;
  readonly #maxBytes: number;
  /** Names a record for errors: 0 is the header, then rows from 1; blank lines are not counted. */
  readonly #name: (record: number) => string;
  #state = FIELD_START;
  /** Earlier chunks' bytes of the current record. */
  readonly #held = new HeldBytes();
  /** Bytes of the current record so far, line break excluded. */
  #length = 0;
  #starts: number[] = [];
  #ends: number[] = [];
  #quoted: boolean[] = [];
  #records = 0;

  constructor(delimiter: number, maxBytes: number, name: (record: number) => string) {
    this.#delimiter = delimiter;
    this.#maxBytes = maxBytes;
    this.#name = name;
  }

  #fail(what: string): DataContractError {
    return new DataContractError(`${this.#name(this.#records)}, column ${this.#ends.length + 1}: ${what}`);
  }

  #startField(quoted: boolean): void {
    this.#starts.push(this.#length);
    this.#quoted.push(quoted);
  }

  #endField(): void {
    if (this.#ends.length === this.#starts.length) this.#startField(false);
    this.#ends.push(this.#length);
  }

  /** Closes the current record; its bytes are the held ones plus `tail`. Blank lines yield nothing. */
  #endRecord(tail: Buffer, lineBreak: CsvRecord['lineBreak']): CsvRecord | null {
    const blank = this.#length === 0;
    if (!blank) this.#endField();
    const bytes = this.#held.take(tail).subarray(0, this.#length);
    const record = { bytes, starts: this.#starts, ends: this.#ends, quoted: this.#quoted, lineBreak };
    this.#length = 0;
    this.#starts = [];
    this.#ends = [];
    this.#quoted = [];
    this.#state = FIELD_START;
    if (blank) return null;
    this.#records += 1;
    return record;
  }

  /** Counts one byte into the record, refusing the record once it is longer than the limit. */
  #grow(): void {
    this.#length += 1;
    if (this.#length > this.#maxBytes) throw new DataContractError(`${this.#name(this.#records)}: longer than ${this.#maxBytes} bytes`);
  }

  /** The records the chunk completes; the rest is held for the next chunk. */
  push(chunk: Buffer): CsvRecord[] {
    const records: CsvRecord[] = [];
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      let lineBreak: CsvRecord['lineBreak'] | null = null;
      switch (this.#state) {
        case FIELD_START:
        case UNQUOTED:
        case QUOTE_IN_QUOTED:
          if (byte === this.#delimiter) {
            this.#endField();
            this.#grow();
            this.#state = FIELD_START;
          } else if (byte === LF) {
            lineBreak = 'lf';
          } else if (byte === CR) {
            this.#state = AFTER_CR;
          } else if (byte === QUOTE) {
            if (this.#state === UNQUOTED) throw this.#fail('a quote inside an unquoted field');
            if (this.#state === FIELD_START) this.#startField(true);
            this.#state = QUOTED;
            this.#grow();
          } else {
            if (this.#state === QUOTE_IN_QUOTED) throw this.#fail('text after the closing quote');
            if (this.#state === FIELD_START) this.#startField(false);
            this.#state = UNQUOTED;
            this.#grow();
          }
          break;
        case QUOTED:
          if (byte === QUOTE) this.#state = QUOTE_IN_QUOTED;
          this.#grow();
          break;
        case AFTER_CR:
          if (byte !== LF) throw this.#fail('a carriage return without a line feed');
          lineBreak = 'crlf';
          break;
      }
      if (lineBreak !== null) {
        // The record's bytes end before its line break, which `#length` already excludes.
        const record = this.#endRecord(chunk.subarray(from, i + 1), lineBreak);
        if (record !== null) records.push(record);
        from = i + 1;
      }
    }
    if (from < chunk.length) this.#held.append(chunk.subarray(from));
    return records;
  }

  /** The last record, when the input does not end with a line break. */
  end(): CsvRecord | null {
    if (this.#state === QUOTED) throw this.#fail('a quoted field is not closed at the end of the input');
    if (this.#state === AFTER_CR) throw this.#fail('a carriage return without a line feed');
    return this.#endRecord(Buffer.alloc(0), 'none');
  }
}
