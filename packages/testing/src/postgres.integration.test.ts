import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startPostgres } from './postgres.ts';

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
