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
 * The objects being written, outermost first, and the key or index that led into each one. The
 * path is only turned into text when a value is refused: verification hashes a million records,
 * and building `$.a.b` strings for every field would dominate its time.
 */
interface Walk {
  open: object[];
  path: (string | number)[];
}

function fail(walk: Walk, message: string): never {
  const where = walk.path.map((step) => (typeof step === 'number' ? `[${step}]` : `.${step}`)).join('');
  throw new AuditValidationError(`$${where}: ${message}`);
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

function write(value: unknown, walk: Walk): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) fail(walk, 'non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      // Nesting is shallow, so a linear scan beats a Set here.
      if (walk.open.includes(value)) fail(walk, 'cycle');
      walk.open.push(value);
      let text: string;
      if (Array.isArray(value)) {
        text = '[';
        for (let i = 0; i < value.length; i++) {
          walk.path.push(i);
          // Holes and undefined would become `null` in JSON.stringify; refuse them instead.
          if (!(i in value)) fail(walk, 'missing array element');
          text += (i === 0 ? '' : ',') + write(value[i], walk);
          walk.path.pop();
        }
        text += ']';
      } else {
        if (!isPlainObject(value)) fail(walk, 'not a plain object');
        const keys = sortedKeys(value);
        text = '{';
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i] ?? '';
          walk.path.push(key);
          text += `${i === 0 ? '' : ','}${quote(key)}:${write(Reflect.get(value, key), walk)}`;
          walk.path.pop();
        }
        text += '}';
      }
      walk.open.pop();
      return text;
    }
    default:
      return fail(walk, `${typeof value} is not JSON`);
  }
}

/** Deterministic JSON of `value`. Throws `AuditValidationError` for anything that is not plain JSON. */
export function canonicalJson(value: unknown): string {
  return write(value, { open: [], path: [] });
}
