import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, startPostgres } from './postgres.ts';

describe('startPostgres', () => {
  it('starts a server, creates fresh databases and dumps them', async () => {
    await using postgres = await startPostgres();
    const first = await postgres.createDatabase();
    const second = await postgres.createDatabase();
    expect(first).not.toBe(second);

    const client = new pg.Client({ connectionString: first });
    await client.connect();
    try {
      const result = await client.query<{ one: number }>('select 1 as one');
      expect(result.rows).toEqual([{ one: 1 }]);
      await client.query('create table marker (id int primary key)');
    } finally {
      await client.end();
    }
    expect(await postgres.dump(first)).toContain('CREATE TABLE public.marker');
  });
});

describe('postgres global setup', () => {
  it('provides one server URL and tears it down', async () => {
    const { default: setup } = await import('./postgres-global-setup.ts');
    const provided = new Map<string, unknown>();
    const teardown = await setup({
      provide: (key, value) => {
        provided.set(key, value);
      },
    });
    try {
      const url = provided.get('postgresUrl');
      expect(typeof url).toBe('string');
      const database = await createTestDatabase(String(url));
      const client = new pg.Client({ connectionString: database });
      await client.connect();
      await client.end();
    } finally {
      await teardown();
    }
  });
});
