/**
 * The streaming field filter: bytes in, bytes out, one record at a time, so memory stays bounded
 * whatever the file's size. Error messages name the row and the rule, never a value.
 */
import { Duplex, pipeline, Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parse } from 'csv-parse';
import { stringify } from 'csv-stringify';
import { UserError } from '@airlock/errors';
import type { FieldRule, FieldScope } from './contract.ts';

export class DataContractError extends UserError {}

const DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function checkText(value: string, field: string, rule: FieldRule, row: number): void {
  if (value === '') {
    if (rule.nullable) return;
    throw new DataContractError(`row ${row}: field ${JSON.stringify(field)} is empty`);
  }
  const ok =
    rule.type === 'string' ||
    (rule.type === 'integer' && /^-?\d+$/.test(value)) ||
    (rule.type === 'number' && value.trim() !== '' && Number.isFinite(Number(value))) ||
    (rule.type === 'boolean' && /^(true|false)$/i.test(value)) ||
    (rule.type === 'date' && DATE.test(value) && !Number.isNaN(Date.parse(value)));
  if (!ok) throw new DataContractError(`row ${row}: field ${JSON.stringify(field)} is not a ${rule.type}`);
  if (rule.maxLength !== undefined && value.length > rule.maxLength) {
    throw new DataContractError(`row ${row}: field ${JSON.stringify(field)} is longer than ${rule.maxLength}`);
  }
  if (rule.pattern !== undefined && !new RegExp(`^(?:${rule.pattern})$`, 'u').test(value)) {
    throw new DataContractError(`row ${row}: field ${JSON.stringify(field)} does not match its pattern`);
  }
}

function checkJson(value: unknown, field: string, rule: FieldRule, row: number): void {
  if (value === null || value === undefined) {
    if (rule.nullable) return;
    throw new DataContractError(`row ${row}: field ${JSON.stringify(field)} is null`);
  }
  const typeOk =
    (rule.type === 'string' && typeof value === 'string') ||
    (rule.type === 'integer' && Number.isInteger(value)) ||
    (rule.type === 'number' && typeof value === 'number' && Number.isFinite(value)) ||
    (rule.type === 'boolean' && typeof value === 'boolean') ||
    (rule.type === 'date' && typeof value === 'string' && DATE.test(value) && !Number.isNaN(Date.parse(value)));
  if (!typeOk) throw new DataContractError(`row ${row}: field ${JSON.stringify(field)} is not a ${rule.type}`);
  if (typeof value === 'string') checkText(value, field, { ...rule, type: 'string' }, row);
}

interface CsvLayout {
  header: string[];
  /** Positions of the granted columns, in output order. */
  keep: number[];
  rules: Array<{ field: string; rule: FieldRule; index: number }>;
}

function csvLayout(scope: FieldScope, header: string[]): CsvLayout {
  if (new Set(header).size !== header.length) throw new DataContractError('header: a column is named twice');
  for (const field of scope.required) {
    if (!header.includes(field)) throw new DataContractError(`header: required column ${JSON.stringify(field)} is missing`);
  }
  return {
    header,
    keep: scope.allow.map((field) => header.indexOf(field)).filter((index) => index >= 0),
    rules: Object.entries(scope.rules)
      .map(([field, rule]) => ({ field, rule, index: header.indexOf(field) }))
      .filter((entry) => entry.index >= 0),
  };
}

function csvFilter(scope: FieldScope): Duplex {
  let layout: CsvLayout | null = null;
  let row = 0;
  const select = new Transform({
    objectMode: true,
    transform(record: string[], _encoding, callback: TransformCallback) {
      try {
        if (layout === null) {
          layout = csvLayout(scope, record);
          const { header } = layout;
          callback(null, layout.keep.map((index) => header[index] ?? ''));
          return;
        }
        row += 1;
        if (record.length !== layout.header.length) {
          throw new DataContractError(`row ${row}: has ${record.length} fields, the header has ${layout.header.length}`);
        }
        for (const { field, rule, index } of layout.rules) checkText(record[index] ?? '', field, rule, row);
        callback(null, layout.keep.map((index) => record[index] ?? ''));
      } catch (error) {
        callback(error instanceof Error ? error : new Error(String(error)));
      }
    },
  });
  const parser = parse({ delimiter: scope.delimiter, relax_column_count: true, bom: true });
  const printer = stringify({ delimiter: scope.delimiter });
  // One error anywhere destroys all three, and the returned duplex reports it.
  pipeline(parser, select, printer, () => undefined);
  return Duplex.from({ writable: parser, readable: printer });
}

function jsonlFilter(scope: FieldScope): Transform {
  // A multi-byte character may straddle two chunks; the decoder holds the partial bytes back.
  const decoder = new StringDecoder('utf8');
  let buffered = '';
  let row = 0;
  const handle = (line: string): string => {
    row += 1;
    if (line.trim() === '') return '';
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new DataContractError(`row ${row}: not valid JSON`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DataContractError(`row ${row}: not a JSON object`);
    const record = new Map(Object.entries(value));
    for (const field of scope.required) {
      if (!record.has(field)) throw new DataContractError(`row ${row}: required field ${JSON.stringify(field)} is missing`);
    }
    for (const [field, rule] of Object.entries(scope.rules)) {
      if (record.has(field)) checkJson(record.get(field), field, rule, row);
    }
    const kept: Record<string, unknown> = {};
    for (const field of scope.allow) if (record.has(field)) kept[field] = record.get(field);
    return `${JSON.stringify(kept)}\n`;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        buffered += decoder.write(chunk);
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        if (Buffer.byteLength(buffered) > scope.maxLineBytes) throw new DataContractError(`row ${row + 1}: longer than ${scope.maxLineBytes} bytes`);
        callback(null, lines.map(handle).join(''));
      } catch (error) {
        callback(error instanceof Error ? error : new Error(String(error)));
      }
    },
    flush(callback: TransformCallback) {
      try {
        buffered += decoder.end();
        callback(null, buffered === '' ? '' : handle(buffered));
      } catch (error) {
        callback(error instanceof Error ? error : new Error(String(error)));
      }
    },
  });
}

/** A byte stream transform that keeps only the granted fields and enforces the data contract. */
export function fieldFilter(scope: FieldScope): Duplex {
  return scope.format === 'csv' ? csvFilter(scope) : jsonlFilter(scope);
}
