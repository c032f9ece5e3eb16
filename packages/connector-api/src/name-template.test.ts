import { describe, expect, it } from 'vitest';
import { UserError } from '@airlock/errors';
import { nameTemplateProblem, nameTemplateSyntax, renderName } from './name-template.ts';

const run = { runId: 'r1', date: new Date(Date.UTC(2026, 11, 3)) };

describe('name templates', () => {
  it('fills the placeholders', () => {
    expect(renderName('{stem}_{date}.{ext}.asc', { path: '/in/a.tar.csv', name: 'a.tar.csv' }, run)).toBe('a.tar_20261203.csv.asc');
    expect(renderName('{name}-{runId}.pgp', { path: '/in/.env', name: '.env' }, run)).toBe('.env-r1.pgp');
  });

  it.each(['../{name}.pgp', 'sub/{name}', '{name}\\x', '.', '..', '{ext}', '.{ext}', 'a\u0000{name}', '{name}\uff0f.pgp', '{name}{unknown}', '{name', 'name}'])(
    '[integrity #3] refuses %j when it is saved',
    (template) => {
      expect(nameTemplateProblem(template)).toEqual(expect.any(String));
    },
  );

  it.each(['{name}.pgp', '{stem}-{date}-{runId}.{ext}.asc', 'fixed.pgp', '{stem}.{ext}'])('accepts %j', (template) => {
    expect(nameTemplateProblem(template)).toBeUndefined();
    expect(nameTemplateSyntax.parse(template)).toBe(template);
  });

  it('lets jobs carry any template of known placeholders, so integrations saved before the check still parse', () => {
    expect(nameTemplateSyntax.safeParse('../{name}').success).toBe(true);
    expect(nameTemplateSyntax.safeParse('{name}{unknown}').success).toBe(false);
  });

  it('still refuses at run time a name that only this file makes unsafe', () => {
    const long = `${'a'.repeat(252)}.csv`;
    expect(() => renderName('{name}.pgp', { path: `/in/${long}`, name: long }, run)).toThrow(UserError);
  });
});
