/**
 * Free text from outside (admins, agents, the login form). Every free-text input is built from
 * `text` or `displayText`, so that a string PostgreSQL cannot store (NUL) or that is not Unicode
 * (an unpaired surrogate) is refused as bad input rather than failing in the database, and text
 * that reaches an admin's terminal cannot carry escape sequences or reorder what is around it.
 * Lengths here count code points, like PostgreSQL's, and `truncateText` cuts by code points too,
 * so shortened text never ends in half a character and still fits the schema it is sent to.
 */
import { z } from 'zod';

// eslint-disable-next-line no-control-regex
const NOT_STORABLE = /[\u0000\p{Cs}]/u;

/**
 * Control characters (C0, DEL, C1), unpaired surrogates, line and paragraph separators, and the
 * bidirectional controls that can make a terminal or a page show text in another order than stored.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/gu;
const HAS_UNPRINTABLE = new RegExp(UNPRINTABLE.source, 'u');

/** Whether PostgreSQL can store the text as given: no NUL and no unpaired surrogate. */
export function isStorableText(value: string): boolean {
  return !NOT_STORABLE.test(value);
}

/** Whether every string in a JSON-like value, keys included, is storable text (walked without recursion). */
export function isStorableJson(value: unknown): boolean {
  const pending: unknown[] = [value];
  for (let next = pending.pop(); pending.length > 0 || next !== undefined; next = pending.pop()) {
    if (typeof next === 'string') {
      if (!isStorableText(next)) return false;
    } else if (Array.isArray(next)) {
      pending.push(...next);
    } else if (typeof next === 'object' && next !== null) {
      for (const [key, entry] of Object.entries(next)) {
        if (!isStorableText(key)) return false;
        pending.push(entry);
      }
    }
  }
  return true;
}

/** Whether the text is storable and prints as itself: no control, separator or bidi character. */
export function isDisplayText(value: string): boolean {
  return !HAS_UNPRINTABLE.test(value);
}

/** Length in code points. */
export function codePointLength(value: string): number {
  let count = 0;
  for (const _ of value) count += 1;
  return count;
}

/** At most `max` code points of `value`; a surrogate pair is kept whole or dropped whole. */
export function truncateText(value: string, max: number): string {
  if (value.length <= max) return value;
  let out = '';
  let count = 0;
  for (const char of value) {
    if (count === max) break;
    out += char;
    count += 1;
  }
  return out;
}

function hex(code: number): string {
  return code.toString(16).padStart(code <= 0xff ? 2 : 4, '0');
}

/**
 * The text with every character `isDisplayText` refuses written as an escape (`\x1b`, `\u202e`),
 * so it prints as one line and in its stored order. For display only: the escape is not reversible.
 * With `json`, every escape is JSON's `\uXXXX`, so JSON text stays JSON that parses to the same value.
 */
export function escapeUnprintable(value: string, options: { json?: boolean } = {}): string {
  return value.replace(UNPRINTABLE, (char) => {
    const code = char.codePointAt(0) ?? 0;
    if (options.json) return `\\u${code.toString(16).padStart(4, '0')}`;
    return code <= 0xff ? `\\x${hex(code)}` : `\\u${hex(code)}`;
  });
}

interface TextLimits {
  /** Code points; default 0. */
  min?: number;
  /** Code points. */
  max: number;
  /** Trim surrounding white space before the limits are checked. */
  trim?: boolean;
}

function bounded(limits: TextLimits) {
  const min = limits.min ?? 0;
  const base = limits.trim ? z.string().trim() : z.string();
  // A code point is one or two UTF-16 units: the cheap bound first, so a huge string is never walked.
  return base
    .max(limits.max * 2, `at most ${limits.max} characters`)
    .refine(isStorableText, 'must not contain NUL or unpaired surrogate characters')
    .refine((value) => {
      const length = codePointLength(value);
      return length >= min && length <= limits.max;
    }, min > 0 ? `${min} to ${limits.max} characters` : `at most ${limits.max} characters`);
}

/** Free text that PostgreSQL can store (no NUL, no unpaired surrogate); may span lines. */
export function text(limits: TextLimits) {
  return bounded(limits);
}

/**
 * One line of text shown to people (names, hostnames, reasons): storable, and without control,
 * separator or bidi characters, which could forge table rows or retitle a terminal.
 */
export function displayText(limits: TextLimits) {
  return bounded(limits).refine(isDisplayText, 'must not contain control, line-separator or bidirectional-override characters');
}
