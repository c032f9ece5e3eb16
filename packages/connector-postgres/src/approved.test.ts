import { describe, expect, it } from 'vitest';
import { approvedQuery, checkParameters, postgresServerPolicy, rewriteQuery, sha256Of } from './approved.ts';
import { postgresSourceDefinition } from './definition.ts';

const approve = (sql: string, params: Record<string, unknown> = {}) => approvedQuery.parse({ name: 'q', sql, sha256: sha256Of(sql), params });

describe('approved queries', () => {
  it('replaces each placeholder with a typed read of its setting, from the policy alone', () => {
    const query = approve('SELECT * FROM t WHERE a = {region} AND b > {since} AND c = {region};\n', { region: {}, since: { type: 'date' } });
    expect(rewriteQuery(query, query.sql ?? '')).toBe(
      "SELECT * FROM t WHERE a = (current_setting('airlock.param_region')::text) AND b > (current_setting('airlock.param_since')::date) AND c = (current_setting('airlock.param_region')::text)",
    );
  });

  it('refuses a placeholder the policy does not declare, and a declared parameter never used', () => {
    expect(() => rewriteQuery(approve('SELECT {x}'), 'SELECT {x}')).toThrow(/do not declare/);
    expect(() => rewriteQuery(approve('SELECT 1', { x: {} }), 'SELECT 1')).toThrow(/never uses: x/);
  });

  it('checks every value against its rule and gives the canonical text to bind', () => {
    const query = approve('SELECT {n}, {amount}, {flag}, {day}, {at}, {name}', {
      n: { type: 'integer', min: 1, max: 10 },
      amount: { type: 'numeric' },
      flag: { type: 'boolean' },
      day: { type: 'date' },
      at: { type: 'timestamptz' },
      name: { values: ['a', 'b'] },
    });
    const values = checkParameters(query, { n: '7', amount: 1.5, flag: true, day: '2026-12-04', at: '2026-12-04T01:00:00Z', name: 'b' });
    expect(Object.fromEntries(values)).toEqual({ n: '7', amount: '1.5', flag: 'true', day: '2026-12-04', at: '2026-12-04T01:00:00Z', name: 'b' });
    const good = { n: 7, amount: '2', flag: 'false', day: '2026-12-04', at: '2026-12-04T01:00:00+01:00', name: 'a' };
    expect(() => checkParameters(query, good)).not.toThrow();
    for (const bad of [{ n: 11 }, { n: '7; DROP' }, { n: 1.5 }, { amount: '1e' }, { flag: 'yes' }, { day: '2026-13-01' }, { at: '2026-12-04 01:00' }, { name: 'c' }]) {
      expect(() => checkParameters(query, { ...good, ...bad })).toThrow(/not valid/);
    }
  });

  it('refuses a policy entry with both or neither of sql and file, or an unknown key', () => {
    expect(approvedQuery.safeParse({ name: 'q', sha256: sha256Of('x') }).success).toBe(false);
    expect(approvedQuery.safeParse({ name: 'q', sql: 'x', file: '/q.sql', sha256: sha256Of('x') }).success).toBe(false);
    expect(postgresServerPolicy.safeParse({ host: 'db', database: 'erp', queries: [approve('SELECT 1')], tsl: 'disable' }).success).toBe(false);
  });

  it('claims read of /<database>/<query> on host:port, granted only by an entry pinning that server', () => {
    const config = postgresSourceDefinition.config.parse({ host: 'erp-db.internal', database: 'erp', username: 'export', query: 'customers' });
    const [claim] = postgresSourceDefinition.claims(config);
    expect(claim).toEqual({ action: 'read', scheme: 'postgres', authority: 'erp-db.internal:5432', path: '/erp/customers' });
    if (!claim) throw new Error('no claim');
    const entry = postgresServerPolicy.parse({ host: 'erp-db.internal', database: 'erp', queries: [{ ...approve('SELECT 1'), name: 'customers' }] });
    expect(postgresSourceDefinition.policy.grant(entry, claim)).toEqual({ paths: ['/erp/customers'] });
    expect(postgresSourceDefinition.policy.grant({ ...entry, port: 5433 }, claim)).toBeUndefined();
  });
});
