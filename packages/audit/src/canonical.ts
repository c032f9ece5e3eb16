/**
 * Canonical JSON: the one byte form an audit event is hashed in. Object keys are sorted by code
 * unit, there is no whitespace, and anything JSON cannot round-trip exactly (undefined, functions,
 * NaN, Infinity, class instances, cycles) is refused rather than silently dropped, because a
 * field that vanishes on serialization would be a field the hash does not protect.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A value that cannot be put into an audit record as-is. */
export class AuditValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Where a refused value sits, built only when one is refused: verification writes a million
 * records, and tracking a `$.a.b` path for every field would dominate its time. Each level that
 * descended adds its key or index as the refusal passes back up through it.
 */
class Refusal {
  readonly path: (string | number)[] = [];
  constructor(readonly message: string) {}
}

function fail(message: string): never {
  throw new Refusal(message);
}

function within<T>(step: string | number, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof Refusal) error.path.unshift(step);
    throw error;
  }
}

// Strings with nothing JSON would escape (quotes, backslashes, control characters, lone surrogates).
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be escaped
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

// A lone surrogate becomes U+FFFD: PostgreSQL's jsonb refuses one, and a hostile file name must
// not be able to make its audit record, and so the action, fail.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function quote(text: string): string {
  return PLAIN.test(text) ? `"${text}"` : JSON.stringify(text.replace(LONE_SURROGATE, '\ufffd'));
}

/** Object.keys in code-unit order; most objects are built already sorted, so check before sorting. */
function sortedKeys(value: object): string[] {
  const keys = Object.keys(value);
  for (let i = 1; i < keys.length; i++) {
    if ((keys[i - 1] ?? '') > (keys[i] ?? '')) return keys.sort();
  }
  return keys;
}

function write(value: unknown, open: object[]): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) fail('non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      // Nesting is shallow, so a linear scan beats a Set here.
      if (open.includes(value)) fail('cycle');
      open.push(value);
      let text: string;
      if (Array.isArray(value)) {
        text = '[';
        for (let i = 0; i < value.length; i++) {
          // Holes and undefined would become `null` in JSON.stringify; refuse them instead.
          if (!(i in value)) within(i, () => fail('missing array element'));
          const element: unknown = value[i];
          text += (i === 0 ? '' : ',') + writeWithin(i, element, open);
        }
        text += ']';
      } else {
        if (!isPlainObject(value)) fail('not a plain object');
        const keys = sortedKeys(value);
        text = '{';
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i] ?? '';
          text += `${i === 0 ? '' : ','}${quote(key)}:${writeWithin(key, Reflect.get(value, key), open)}`;
        }
        text += '}';
      }
      open.pop();
      return text;
    }
    default:
      return fail(`${typeof value} is not JSON`);
  }
}

/** `write` one level down; scalars, by far the most values, skip the bookkeeping. */
function writeWithin(step: string | number, value: unknown, open: object[]): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number' && Number.isFinite(value)) return JSON.stringify(value);
  return within(step, () => write(value, open));
}

/** Deterministic JSON of `value`. Throws `AuditValidationError` for anything that is not plain JSON. */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  try {
    return write(value, []);
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    const where = error.path.map((step) => (typeof step === 'number' ? `[${step}]` : `.${step}`)).join('');
    throw new AuditValidationError(`$${where}: ${error.message}`);
  }
}
