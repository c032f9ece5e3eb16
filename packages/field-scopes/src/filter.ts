/**
 * The streaming field filter: bytes in, bytes out, one record at a time, so memory stays bounded
 * whatever the file's size. Granted values are copied byte for byte, in the input's encoding; they
 * are decoded only to check rules. Error messages name the row and the rule, never a value.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { UnexpectedError } from '@airlock/errors';
import type { FieldScope } from './contract.ts';
import { CsvReader, type CsvRecord } from './csv.ts';
import { decode, firstInvalidByte } from './encoding.ts';
import { HeldBytes } from './held-bytes.ts';
import { checkJson, checkText, type CompiledRule, compileRules, DataContractError } from './rules.ts';

export { DataContractError } from './rules.ts';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const LF = Buffer.from('\n');
const CRLF = Buffer.from('\r\n');

interface Handlers {
  chunk(bytes: Buffer): Buffer[];
  end(): Buffer[];
}

/**
 * Wraps a format's handlers in a transform: keeps a UTF-8 byte order mark (the output is in the
 * input's encoding), and lets only DataContractError messages out.
 */
function byteFilter(scope: FieldScope, handlers: Handlers): Transform {
  // Until three bytes have arrived, whether the input opens with a byte order mark is unknown.
  let head: Buffer | null = scope.encoding === 'utf-8' ? Buffer.alloc(0) : null;
  const run = (produce: () => Buffer[], callback: TransformCallback) => {
    try {
      const out = produce();
      callback(null, out.length === 0 ? undefined : Buffer.concat(out));
    } catch (error) {
      // Anything but our own errors may quote the input (a RangeError, a library's message): it
      // must not reach a log or a report, so only the fact of a failure leaves.
      callback(error instanceof DataContractError ? error : new UnexpectedError('the field filter failed'));
    }
  };
  const opening = (bytes: Buffer, ending: boolean): Buffer[] | null => {
    if (head === null) return handlers.chunk(bytes);
    head = Buffer.concat([head, bytes]);
    if (head.length < BOM.length && !ending) return null;
    const start = head.subarray(0, BOM.length).equals(BOM) ? BOM.length : 0;
    const rest = head.subarray(start);
    head = null;
    return [...(start > 0 ? [BOM] : []), ...handlers.chunk(rest)];
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      run(() => opening(chunk, false) ?? [], callback);
    },
    flush(callback: TransformCallback) {
      run(() => [...(opening(Buffer.alloc(0), true) ?? []), ...handlers.end()], callback);
    },
  });
}

interface CsvLayout {
  columns: number;
  /** Positions of the granted columns, in output order. */
  keep: number[];
  rules: Array<{ compiled: CompiledRule; index: number }>;
  lineBreak: Buffer;
}

const recordName = (record: number) => (record === 0 ? 'header' : `row ${record}`);

/** Field i of a record as text, decoded and unquoted; the record's encoding is checked before. */
function cellText(record: CsvRecord, i: number, scope: FieldScope): string {
  const quoted = record.quoted[i] === true;
  const start = (record.starts[i] ?? 0) + (quoted ? 1 : 0);
  const end = (record.ends[i] ?? 0) - (quoted ? 1 : 0);
  const text = decode(record.bytes, start, end, scope.encoding);
  return quoted ? text.replaceAll('""', '"') : text;
}

function checkEncoding(record: CsvRecord, name: string, scope: FieldScope): void {
  const bad = firstInvalidByte(record.bytes, 0, record.bytes.length, scope.encoding);
  if (bad < 0) return;
  const column = record.ends.findIndex((end) => bad < end) + 1;
  throw new DataContractError(`${name}, column ${column}: not valid ${scope.encoding}`);
}

function csvLayout(scope: FieldScope, rules: CompiledRule[], record: CsvRecord): CsvLayout {
  checkEncoding(record, 'header', scope);
  const header = record.starts.map((_start, i) => cellText(record, i, scope));
  if (new Set(header).size !== header.length) throw new DataContractError('header: a column is named twice');
  for (const field of scope.required) {
    if (!header.includes(field)) throw new DataContractError(`header: required column ${JSON.stringify(field)} is missing`);
  }
  const keep = scope.allow.map((field) => header.indexOf(field)).filter((index) => index >= 0);
  if (keep.length === 0) {
    // The header may be a data row of a file without one, so its names stay out of the message;
    // the hints say what went wrong without quoting it.
    const lower = new Set(header.map((name) => name.toLowerCase()));
    const hints = [
      ...(header.length === 1 && /^sep=.$/u.test(header[0] ?? '') ? ['the first line is a "sep=" line, which is not supported'] : []),
      ...(scope.allow.some((field) => lower.has(field.toLowerCase())) ? ['a column differs from an allowed one only in letter case'] : []),
    ];
    throw new DataContractError(
      `header: none of the allowed columns (${scope.allow.map((field) => JSON.stringify(field)).join(', ')}) is in the header, ` +
        `read as ${header.length} column(s) with delimiter ${JSON.stringify(scope.delimiter)}${hints.length > 0 ? `; ${hints.join('; ')}` : ''}`,
    );
  }
  return {
    columns: header.length,
    keep,
    rules: rules.map((compiled) => ({ compiled, index: header.indexOf(compiled.field) })).filter((entry) => entry.index >= 0),
    lineBreak: record.lineBreak === 'crlf' ? CRLF : LF,
  };
}

/** The kept fields of a record, raw, joined by the delimiter: quoted cells keep their quotes. */
function keptBytes(record: CsvRecord, layout: CsvLayout, delimiter: Buffer): Buffer {
  const parts: Buffer[] = [];
  layout.keep.forEach((index, n) => {
    if (n > 0) parts.push(delimiter);
    parts.push(record.bytes.subarray(record.starts[index] ?? 0, record.ends[index] ?? 0));
  });
  parts.push(layout.lineBreak);
  return Buffer.concat(parts);
}

function csvFilter(scope: FieldScope): Transform {
  // The schema allows only delimiters that are one byte, the same in every supported encoding.
  const delimiter = Buffer.from([scope.delimiter.charCodeAt(0)]);
  const reader = new CsvReader(scope.delimiter.charCodeAt(0), scope.maxLineBytes, recordName);
  const rules = compileRules(scope.rules);
  let layout: CsvLayout | null = null;
  let row = 0;
  const handle = (record: CsvRecord): Buffer => {
    if (layout === null) {
      layout = csvLayout(scope, rules, record);
      return keptBytes(record, layout, delimiter);
    }
    row += 1;
    const name = recordName(row);
    if (record.starts.length !== layout.columns) {
      throw new DataContractError(`${name}: has ${record.starts.length} fields, the header has ${layout.columns}`);
    }
    checkEncoding(record, name, scope);
    for (const { compiled, index } of layout.rules) checkText(cellText(record, index, scope), compiled, name);
    return keptBytes(record, layout, delimiter);
  };
  return byteFilter(scope, {
    chunk: (bytes) => reader.push(bytes).map(handle),
    end: () => {
      const last = reader.end();
      return last === null ? [] : [handle(last)];
    },
  });
}

const NEWLINE = 0x0a;
const isJsonSpace = (byte: number | undefined) => byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;

/** The end of the JSON string starting at `at` (its opening quote), after the closing quote. */
function stringEnd(line: Buffer, at: number): number {
  let i = at + 1;
  while (i < line.length && line[i] !== 0x22) i += line[i] === 0x5c ? 2 : 1;
  return i + 1;
}

/** The end of the JSON value starting at `at`; the line is known to be valid JSON. */
function valueEnd(line: Buffer, at: number): number {
  const first = line[at];
  if (first === 0x22) return stringEnd(line, at);
  let i = at;
  if (first === 0x7b || first === 0x5b) {
    let depth = 0;
    while (i < line.length) {
      const byte = line[i];
      if (byte === 0x22) {
        i = stringEnd(line, i);
        continue;
      }
      i += 1;
      if (byte === 0x7b || byte === 0x5b) depth += 1;
      else if ((byte === 0x7d || byte === 0x5d) && --depth === 0) return i;
    }
    return i;
  }
  while (i < line.length && !isJsonSpace(line[i]) && line[i] !== 0x2c && line[i] !== 0x7d) i += 1;
  return i;
}

interface Member {
  key: string;
  /** Byte spans of the key (with its quotes) and of the value, as written. */
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
}

/** The top-level members of a JSON object line, with where each key and value is written. */
function members(line: Buffer, scope: FieldScope): Member[] {
  const found: Member[] = [];
  const skip = (at: number) => {
    let i = at;
    while (isJsonSpace(line[i])) i += 1;
    return i;
  };
  let i = skip(0) + 1;
  i = skip(i);
  while (i < line.length && line[i] === 0x22) {
    const keyStart = i;
    const keyEnd = stringEnd(line, i);
    const key: unknown = JSON.parse(decode(line, keyStart, keyEnd, scope.encoding));
    const valueStart = skip(skip(keyEnd) + 1);
    const end = valueEnd(line, valueStart);
    if (typeof key === 'string') found.push({ key, keyStart, keyEnd, valueStart, valueEnd: end });
    i = skip(end);
    if (line[i] === 0x2c) i = skip(i + 1);
  }
  return found;
}

function jsonlFilter(scope: FieldScope): Transform {
  const inScope = new Set([...scope.allow, ...scope.required, ...Object.keys(scope.rules)]);
  const rules = compileRules(scope.rules);
  const held = new HeldBytes();
  let row = 0;
  let records = 0;
  let matched = false;
  const tooLong = () => new DataContractError(`row ${row + 1}: longer than ${scope.maxLineBytes} bytes`);

  const handle = (line: Buffer): Buffer | null => {
    row += 1;
    const name = `row ${row}`;
    if (line.every((byte) => isJsonSpace(byte))) return null;
    const bad = firstInvalidByte(line, 0, line.length, scope.encoding);
    if (bad >= 0) throw new DataContractError(`${name}, byte ${bad + 1}: not valid ${scope.encoding}`);
    let value: unknown;
    try {
      value = JSON.parse(decode(line, 0, line.length, scope.encoding));
    } catch {
      throw new DataContractError(`${name}: not valid JSON`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DataContractError(`${name}: not a JSON object`);
    records += 1;
    const parsed = new Map(Object.entries(value));
    const fields = new Map<string, Member>();
    for (const member of members(line, scope)) {
      if (!inScope.has(member.key)) continue;
      // Readers differ on which of two equal keys wins, so a granted or checked one must be unique.
      if (fields.has(member.key)) throw new DataContractError(`${name}: field ${JSON.stringify(member.key)} appears twice`);
      fields.set(member.key, member);
    }
    for (const field of scope.required) {
      if (!fields.has(field)) throw new DataContractError(`${name}: required field ${JSON.stringify(field)} is missing`);
    }
    for (const compiled of rules) {
      const member = fields.get(compiled.field);
      if (member !== undefined) checkJson(parsed.get(compiled.field), decode(line, member.valueStart, member.valueEnd, scope.encoding), compiled, name);
    }
    const parts: Buffer[] = [Buffer.from('{')];
    for (const field of scope.allow) {
      const member = fields.get(field);
      if (member === undefined) continue;
      matched = true;
      if (parts.length > 1) parts.push(Buffer.from(','));
      parts.push(line.subarray(member.keyStart, member.keyEnd), Buffer.from(':'), line.subarray(member.valueStart, member.valueEnd));
    }
    parts.push(Buffer.from('}\n'));
    return Buffer.concat(parts);
  };

  return byteFilter(scope, {
    chunk(bytes) {
      const out: Buffer[] = [];
      let from = 0;
      for (let at = bytes.indexOf(NEWLINE, from); at >= 0; at = bytes.indexOf(NEWLINE, from)) {
        // The limit applies to the line however it arrived: held bytes count with the new ones.
        if (held.length + at - from > scope.maxLineBytes) throw tooLong();
        const line = held.take(bytes.subarray(from, at));
        from = at + 1;
        const kept = handle(line);
        if (kept !== null) out.push(kept);
      }
      if (from < bytes.length) {
        // Checked before holding, so no more than the limit is ever held.
        if (held.length + bytes.length - from > scope.maxLineBytes) throw tooLong();
        held.append(bytes.subarray(from));
      }
      return out;
    },
    end() {
      const out: Buffer[] = [];
      if (held.length > 0) {
        const kept = handle(held.take(Buffer.alloc(0)));
        if (kept !== null) out.push(kept);
      }
      if (records > 0 && !matched) {
        throw new DataContractError(`no record has any of the allowed fields (${scope.allow.map((field) => JSON.stringify(field)).join(', ')})`);
      }
      return out;
    },
  });
}

/** A byte stream transform that keeps only the granted fields and enforces the data contract. */
export function fieldFilter(scope: FieldScope): Transform {
  return scope.format === 'csv' ? csvFilter(scope) : jsonlFilter(scope);
}
