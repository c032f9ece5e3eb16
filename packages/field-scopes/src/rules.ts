/**
 * The data contract's value rules. Numbers are checked on their literal text, never through a
 * float, so what passes is exactly what leaves. Messages name the row, field and rule, never a value.
 */
import { UserError } from '@airlock/errors';
import type { FieldRule } from './contract.ts';

export class DataContractError extends UserError {}

/** The JSON number grammar: no sign `+`, no leading zeros, no hex, no whitespace, no Infinity or NaN. */
export const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
export const INTEGER = /^-?(?:0|[1-9]\d*)$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):?(\d{2}))?)?$/;

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** A calendar date (proleptic Gregorian), optionally with a time of day (no leap second) and offset. */
export function isDate(value: string): boolean {
  const match = DATE.exec(value);
  if (match === null) return false;
  const [, year, month, day, hour, minute, second, offsetHours, offsetMinutes] = match.map((part) => (part === undefined ? 0 : Number(part)));
  if (year === undefined || month === undefined || day === undefined) return false;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return false;
  return (hour ?? 0) <= 23 && (minute ?? 0) <= 59 && (second ?? 0) <= 59 && (offsetHours ?? 0) <= 23 && (offsetMinutes ?? 0) <= 59;
}

/** A field's rule with its pattern compiled once, not per value. */
export interface CompiledRule {
  field: string;
  rule: FieldRule;
  pattern: RegExp | undefined;
}

export function compileRules(rules: Record<string, FieldRule>): CompiledRule[] {
  return Object.entries(rules).map(([field, rule]) => {
    if (rule.pattern === undefined) return { field, rule, pattern: undefined };
    try {
      return { field, rule, pattern: new RegExp(`^(?:${rule.pattern})$`, 'u') };
    } catch {
      throw new UserError(`rules: the pattern of field ${JSON.stringify(field)} is not a valid regular expression`);
    }
  });
}

const fail = (row: string, field: string, what: string) => new DataContractError(`${row}: field ${JSON.stringify(field)} ${what}`);

/** A CSV cell, unquoted and decoded. */
export function checkText(value: string, { field, rule, pattern }: CompiledRule, row: string): void {
  if (value === '') {
    if (rule.nullable) return;
    throw fail(row, field, 'is empty');
  }
  const ok =
    rule.type === 'string' ||
    (rule.type === 'integer' && INTEGER.test(value)) ||
    (rule.type === 'number' && NUMBER.test(value)) ||
    (rule.type === 'boolean' && /^(true|false)$/i.test(value)) ||
    (rule.type === 'date' && isDate(value));
  if (!ok) throw fail(row, field, `is not a ${rule.type}`);
  if (rule.maxLength !== undefined && value.length > rule.maxLength) throw fail(row, field, `is longer than ${rule.maxLength}`);
  if (pattern !== undefined && !pattern.test(value)) throw fail(row, field, 'does not match its pattern');
}

/** A top-level JSON value: `value` as parsed, `literal` its source text (numbers are judged on it). */
export function checkJson(value: unknown, literal: string, compiled: CompiledRule, row: string): void {
  const { field, rule } = compiled;
  if (value === null) {
    if (rule.nullable) return;
    throw fail(row, field, 'is null');
  }
  const ok =
    (rule.type === 'string' && typeof value === 'string') ||
    (rule.type === 'integer' && INTEGER.test(literal)) ||
    (rule.type === 'number' && NUMBER.test(literal)) ||
    (rule.type === 'boolean' && typeof value === 'boolean') ||
    (rule.type === 'date' && typeof value === 'string' && isDate(value));
  if (!ok) throw fail(row, field, `is not a ${rule.type}`);
  if (typeof value === 'string') checkText(value, { ...compiled, rule: { ...rule, type: 'string' } }, row);
}
