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

function write(value: unknown, where: string, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new AuditValidationError(`${where}: non-finite number`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (seen.has(value)) throw new AuditValidationError(`${where}: cycle`);
      seen.add(value);
      try {
        if (Array.isArray(value)) {
          const items: string[] = [];
          for (let i = 0; i < value.length; i++) {
            // Holes and undefined would become `null` in JSON.stringify; refuse them instead.
            if (!(i in value)) throw new AuditValidationError(`${where}[${i}]: missing array element`);
            items.push(write(value[i], `${where}[${i}]`, seen));
          }
          return `[${items.join(',')}]`;
        }
        if (!isPlainObject(value)) throw new AuditValidationError(`${where}: not a plain object`);
        const keys = Object.keys(value).sort();
        const entries = keys.map((key) => {
          const field: unknown = Reflect.get(value, key);
          return `${JSON.stringify(key)}:${write(field, `${where}.${key}`, seen)}`;
        });
        return `{${entries.join(',')}}`;
      } finally {
        seen.delete(value);
      }
    }
    default:
      throw new AuditValidationError(`${where}: ${typeof value} is not JSON`);
  }
}

/** Deterministic JSON of `value`. Throws `AuditValidationError` for anything that is not plain JSON. */
export function canonicalJson(value: unknown): string {
  return write(value, '$', new Set());
}
