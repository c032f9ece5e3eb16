/**
 * The query source against a real PostgreSQL server, reached through a counting proxy so that a
 * refusal can be shown to have made no connection at all.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockContext } from '@airlock/connector-api/testkit';
import { type CutProxy, startCutProxy, startPostgres, type TestPostgres } from '@airlock/testing';
import { postgresSource, sha256Of } from './index.ts';

const CUSTOMERS = 'SELECT id, name, region FROM customers WHERE region = {region} AND id >= {min_id} ORDER BY id';

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(chunks).toString('utf8');
}

describe('postgres@1 query source', () => {
  let server: TestPostgres;
  let proxy: CutProxy;
  let admin: pg.Client;
  let database: string;

  beforeAll(async () => {
    server = await startPostgres();
    const url = new URL(await server.createDatabase());
    database = url.pathname.slice(1);
    admin = new pg.Client({ connectionString: url.toString() });
    await admin.connect();
    await admin.query(`CREATE TABLE customers (id integer PRIMARY KEY, name text, ssn text, region text);
      INSERT INTO customers VALUES (1, 'Alice', '123-45-6789', 'EU'), (2, 'Bob, Jr.', '987-65-4321', 'US'), (3, 'Carol "C"', '555-55-5555', 'EU')`);
    // No cut: it only forwards and counts, so a test can tell whether anything connected.
    proxy = await startCutProxy({ targetPort: Number(url.port), direction: 'download' });
  });
  afterAll(async () => {
    await proxy?.close();
    await admin?.end();
    await server?.stop();
  });

  const query = (overrides: Record<string, unknown> = {}) => ({
    name: 'customers',
    sql: CUSTOMERS,
    sha256: sha256Of(CUSTOMERS),
    params: { region: { pattern: '[A-Z]{2}' }, min_id: { type: 'integer', min: 0 } },
    ...overrides,
  });
  const policy = (queries: unknown[] = [query()]) => [{ host: '127.0.0.1', port: proxy.port, database, tls: 'disable', queries }];
  const config = (overrides: Record<string, unknown> = {}) => ({
    host: '127.0.0.1',
    port: proxy.port,
    database,
    username: 'postgres',
    query: 'customers',
    params: { region: 'EU', min_id: 0 },
    ...overrides,
  });
  const connect = (c: unknown, p: unknown[]) => postgresSource.bind(c).connect(mockContext({ policy: p }));
  const run = async (c: unknown, p: unknown[]) => {
    const session = await connect(c, p);
    try {
      const [file] = await session.list();
      if (!file) throw new Error('nothing listed');
      return await text(await session.open(file));
    } finally {
      await session.close();
    }
  };

  it('streams the rows of an approved query as CSV with a header, its parameters bound', async () => {
    expect(await run(config(), policy())).toBe('id,name,region\n1,Alice,EU\n3,"Carol ""C""",EU\n');
    expect(await run(config({ params: { region: 'US', min_id: '2' } }), policy())).toBe('id,name,region\n2,"Bob, Jr.",US\n');
  });

  it('treats a value as data, never as SQL: a quote-laden value matches nothing', async () => {
    const open = query({ params: { region: { pattern: ".*", maxLength: 100 }, min_id: { type: 'integer' } } });
    expect(await run(config({ params: { region: "EU' OR '1'='1", min_id: 0 } }), policy([open]))).toBe('id,name,region\n');
    expect(await run(config({ params: { region: "EU'); DELETE FROM customers; --", min_id: 0 } }), policy([open]))).toBe('id,name,region\n');
    expect((await admin.query('SELECT count(*)::int AS n FROM customers')).rows[0]).toEqual({ n: 3 });
  });

  it('runs read-only: an approved query that writes fails, and nothing is written', async () => {
    const sql = 'DELETE FROM customers RETURNING id';
    const writer = { name: 'writer', sql, sha256: sha256Of(sql) };
    await expect(run(config({ query: 'writer', params: {} }), policy([writer]))).rejects.toMatchObject({ name: 'PolicyViolationError' });
    expect((await admin.query('SELECT count(*)::int AS n FROM customers')).rows[0]).toEqual({ n: 3 });
  });

  it('cancels a query that runs past its statement timeout, ending in an error', async () => {
    const sql = 'SELECT pg_sleep(30) AS slept';
    const slow = { name: 'slow', sql, sha256: sha256Of(sql), statementTimeoutMs: 300 };
    const started = Date.now();
    await expect(run(config({ query: 'slow', params: {} }), policy([slow]))).rejects.toMatchObject({ name: 'UserError', message: expect.stringContaining('57014') });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('leaves no session on the server when the reader stops mid-result', async () => {
    const sql = 'SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 200000) g';
    const big = { name: 'big', sql, sha256: sha256Of(sql) };
    const session = await connect(config({ query: 'big', params: {} }), policy([big]));
    const [file] = await session.list();
    if (!file) throw new Error('nothing listed');
    const stream = await session.open(file);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    await session.close();
    const sessions = async () => (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'airlock-agent'")).rows[0]?.n;
    for (let i = 0; i < 50 && (await sessions()) !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await sessions()).toBe(0);
  });

  describe('refuses before any connection', () => {
    const refusals: Array<[string, () => Promise<unknown>, string]> = [
      ['a query the policy does not approve', () => connect(config({ query: 'everything' }), policy()), 'PolicyViolationError'],
      ['a database the policy does not pin', () => connect(config({ database: 'other' }), policy()), 'PolicyViolationError'],
      ['approved text that no longer matches its SHA-256', () => connect(config(), policy([query({ sql: `${CUSTOMERS} LIMIT 1` })])), 'PolicyViolationError'],
      ['a value its rule refuses', () => connect(config({ params: { region: 'Europe', min_id: 0 } }), policy()), 'UserError'],
      ['a number out of its range', () => connect(config({ params: { region: 'EU', min_id: -1 } }), policy()), 'UserError'],
      ['a parameter the query does not declare', () => connect(config({ params: { region: 'EU', min_id: 0, limit: 5 } }), policy()), 'UserError'],
      ['a missing parameter', () => connect(config({ params: { region: 'EU' } }), policy()), 'UserError'],
    ];
    for (const [what, attempt, name] of refusals) {
      it(what, async () => {
        const before = proxy.forwarded.upload;
        await expect(attempt()).rejects.toMatchObject({ name });
        expect(proxy.forwarded.upload).toBe(before);
      });
    }

    it('and keeps a refused value out of the message', async () => {
      const secret = 'Zz-very-private-value';
      const error = await connect(config({ params: { region: secret, min_id: 0 } }), policy()).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(Error);
      expect(String((error as Error).message)).not.toContain(secret);
    });
  });
});
