/**
 * Finds values inside a JSON page as spans of its own text, so a record leaves exactly as the API
 * wrote it: a 64-bit id or a decimal like `1.10` is not rounded or reformatted by a parse and a
 * re-serialization. The page has already passed `JSON.parse`, so the text is known to be valid.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

function skipSpace(text: string, at: number): number {
  let i = at;
  while (i < text.length && isSpace(text.charCodeAt(i))) i += 1;
  return i;
}

/** The index just past the string that opens at `at`. */
function stringEnd(text: string, at: number): number {
  let i = at + 1;
  for (;;) {
    const quote = text.indexOf('"', i);
    if (quote < 0) return text.length;
    let backslashes = 0;
    for (let j = quote - 1; text.charCodeAt(j) === BACKSLASH; j -= 1) backslashes += 1;
    if (backslashes % 2 === 0) return quote + 1;
    i = quote + 1;
  }
}

/** The index just past the value that starts at `at` (no leading space). */
function valueEnd(text: string, at: number): number {
  const first = text.charCodeAt(at);
  if (first === QUOTE) return stringEnd(text, at);
  if (first !== 0x7b && first !== 0x5b) {
    let i = at;
    while (i < text.length) {
      const code = text.charCodeAt(i);
      if (code === 0x2c || code === 0x7d || code === 0x5d || isSpace(code)) break;
      i += 1;
    }
    return i;
  }
  let depth = 0;
  let i = at;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      i = stringEnd(text, i);
      continue;
    }
    if (code === 0x7b || code === 0x5b) depth += 1;
    else if (code === 0x7d || code === 0x5d) {
      depth -= 1;
      if (depth === 0) return i + 1;
    }
    i += 1;
  }
  return i;
}

export interface Span {
  readonly start: number;
  readonly end: number;
}

export class AmbiguousKeyError extends Error {
  constructor(readonly key: string) {
    super(`member ${JSON.stringify(key)} appears twice`);
  }
}

/** The span of the value at a dotted path of member names (empty: the whole page), or undefined. */
export function spanAt(text: string, path: string): Span | undefined {
  let start = skipSpace(text, 0);
  for (const key of path === '' ? [] : path.split('.')) {
    if (text.charCodeAt(start) !== 0x7b) return undefined;
    let found: number | undefined;
    let i = skipSpace(text, start + 1);
    while (text.charCodeAt(i) === QUOTE) {
      const keyEnd = stringEnd(text, i);
      const name = JSON.parse(text.slice(i, keyEnd)) as string;
      const value = skipSpace(text, skipSpace(text, keyEnd) + 1);
      if (name === key) {
        // Readers differ on which of two equal keys wins; the path must name one value.
        if (found !== undefined) throw new AmbiguousKeyError(key);
        found = value;
      }
      i = skipSpace(text, valueEnd(text, value));
      if (text.charCodeAt(i) === 0x2c) i = skipSpace(text, i + 1);
    }
    if (found === undefined) return undefined;
    start = found;
  }
  return { start, end: valueEnd(text, start) };
}

/** The spans of the elements of the array at `span`, or undefined when it is not an array. */
export function elementSpans(text: string, span: Span): Span[] | undefined {
  if (text.charCodeAt(span.start) !== 0x5b) return undefined;
  const spans: Span[] = [];
  let i = skipSpace(text, span.start + 1);
  while (i < span.end && text.charCodeAt(i) !== 0x5d) {
    const end = valueEnd(text, i);
    spans.push({ start: i, end });
    i = skipSpace(text, end);
    if (text.charCodeAt(i) === 0x2c) i = skipSpace(text, i + 1);
  }
  return spans;
}

/**
 * The value's text with the whitespace between tokens removed: one line, whatever the page's
 * indentation. Strings cannot hold a raw line break, so nothing inside them is touched.
 */
export function compact(text: string, span: Span): string {
  let out = '';
  let from = span.start;
  let i = span.start;
  while (i < span.end) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      i = stringEnd(text, i);
    } else if (isSpace(code)) {
      out += text.slice(from, i);
      i = skipSpace(text, i);
      from = i;
    } else i += 1;
  }
  return out + text.slice(from, span.end);
}
