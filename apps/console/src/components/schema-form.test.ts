import { describe, expect, it } from 'vitest';
import { configFrom, type JsonSchema, validateAgainst } from './SchemaForm.tsx';

// The shape z.toJSONSchema gives the SFTP source's config (abridged).
const sftp: JsonSchema = {
  type: 'object',
  properties: {
    host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_-]+$' },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 22 },
    hostKey: { type: 'string', pattern: '^SHA256:[A-Za-z0-9+/]{43}$' },
    options: { type: 'object' },
  },
  required: ['host', 'hostKey'],
};

describe('validateAgainst', () => {
  it('marks missing required fields and values outside the schema, field by field', () => {
    expect(validateAgainst(sftp, {})).toEqual({ host: 'Required.', hostKey: 'Required.' });
    const errors = validateAgainst(sftp, { host: 'bad host!', port: 70000, hostKey: 'SHA256:short' });
    expect(errors['host']).toMatch(/expected format/);
    expect(errors['port']).toBe('At most 65535.');
    expect(errors['hostKey']).toMatch(/expected format/);
    expect(validateAgainst(sftp, { host: 'h', port: 2.5, hostKey: `SHA256:${'a'.repeat(43)}` })).toEqual({ port: 'Expected a whole number.' });
  });

  it('accepts a valid config and flags unparsable JSON in nested fields', () => {
    expect(validateAgainst(sftp, { host: 'files.example.com', hostKey: `SHA256:${'a'.repeat(43)}` })).toEqual({});
    expect(validateAgainst(sftp, { host: 'h', hostKey: `SHA256:${'a'.repeat(43)}`, options: new SyntaxError('json:{') })).toEqual({ options: 'Not valid JSON.' });
  });
});

describe('configFrom', () => {
  it('leaves out empty optional fields so the connector defaults apply, and anything not in the schema', () => {
    expect(configFrom(sftp, { host: 'h', port: undefined, hostKey: 'k', options: '', stray: 1 })).toEqual({ host: 'h', hostKey: 'k' });
  });
});
