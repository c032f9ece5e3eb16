/** Test support: the text PostgreSQL writes for a jsonb value, to build pages and jsonb input by hand. */

/** A value as jsonb writes it out: object keys by length, then bytes; ", " and ": " between. */
export function jsonbText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(jsonbText).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const byteOrder = (a: string, b: string) => Buffer.byteLength(a) - Buffer.byteLength(b) || Buffer.compare(Buffer.from(a), Buffer.from(b));
    const entries = Object.entries(value).sort(([a], [b]) => byteOrder(a, b));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}: ${jsonbText(field)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}
