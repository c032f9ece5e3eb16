/**
 * Narrowing helpers for the JSON the CLIs print. This is the parsing boundary of the system tests:
 * every value read from a child process goes through here and fails with a message naming it.
 */
export type JsonObject = Readonly<Record<string, unknown>>;

export function parseJsonLine(text: string, what: string): unknown {
  const line = text.trim().split('\n').at(-1);
  if (line === undefined || line === '') throw new Error(`${what}: printed nothing`);
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${what}: the last line of its output is not JSON`);
  }
}

export function object(value: unknown, what: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what}: expected an object`);
  return value as JsonObject;
}

export function array(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new Error(`${what}: expected an array`);
  return value;
}

export function string(value: JsonObject, key: string, what: string): string {
  const found = value[key];
  if (typeof found !== 'string') throw new Error(`${what}.${key}: expected a string`);
  return found;
}

export function optionalString(value: JsonObject, key: string, what: string): string | null {
  const found = value[key];
  if (found === undefined || found === null) return null;
  if (typeof found !== 'string') throw new Error(`${what}.${key}: expected a string or null`);
  return found;
}

export function number(value: JsonObject, key: string, what: string): number {
  const found = value[key];
  if (typeof found !== 'number') throw new Error(`${what}.${key}: expected a number`);
  return found;
}
