/**
 * `postgres@1`: runs one approved query and streams its rows, as CSV with a header line, straight
 * into the host's pipeline (field scopes, then encryption). Nothing is buffered beyond the stream's
 * high-water mark: `pg-copy-streams` reads the socket only as fast as the stream is read, so a slow
 * reader holds the server back through TCP rather than growing memory.
 *
 * Every check that the local policy makes happens in `connect`, before any connection: the server
 * and database pinned, the query approved, its text matching the pinned SHA-256, every parameter
 * declared and valid. The query then runs in a `REPEATABLE READ, READ ONLY` transaction with
 * `statement_timeout` set for that transaction only, so one consistent snapshot is exported and the
 * query cannot write, whatever its text says. The stream ends only after the transaction committed:
 * a result cut short by a timeout, a cancel or a lost connection ends in an error, never a short file.
 */
import { readFile } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { assertSafeName, type ConnectorContext, type SourceFile, type SourceRuntime, type SourceSession } from '@airlock/connector-api';
import { AuthenticationError, OperationalError, PolicyViolationError, UserError } from '@airlock/errors';
import { type ApprovedQuery, approvedText, checkParameters, type PostgresServerPolicy, rewriteQuery, settingOf } from './approved.ts';
import { type PostgresSourceConfig, queryPath } from './definition.ts';

/** SQLSTATE classes that mean "try again later": connection trouble, resources, an operator's intervention. */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-4]|40001|40P01|55P03)/;

/**
 * A driver or server error in Airlock's terms. The server's message can quote a value from the
 * data, so it stays in the local log (the message); the control plane sees only the class.
 */
function classified(error: unknown, what: string): Error {
  if (error instanceof Error && 'errorClass' in error) return error;
  const code: unknown = error instanceof Error ? Reflect.get(error, 'code') : undefined;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    if (code === '28P01' || code === '28000') return new AuthenticationError(`${what}: the server refused the login (${code})`, { cause: error });
    if (code === '57014') return new UserError(`${what}: cancelled by statement_timeout or an operator (${code})`, { cause: error });
    if (code === '25006') return new PolicyViolationError(`${what}: the query tried to write in a read-only transaction (${code})`, { cause: error });
    if (TRANSIENT_SQLSTATE.test(code)) return new OperationalError(`${what}: ${message} (${code})`, { cause: error, safeReason: `a transient database failure (${code})` });
    return new UserError(`${what}: ${message} (${code})`, { cause: error, safeReason: `the database refused the query (SQLSTATE ${code})` });
  }
  // No SQLSTATE: the connection itself failed (refused, reset, timed out, cut).
  return new OperationalError(`${what}: ${message}`, { cause: error, safeReason: 'the database connection failed' });
}

/** Closes the socket at once: during COPY the server is blocked writing, and would never read a polite Terminate. */
function hardClose(client: pg.Client): void {
  const connection: unknown = Reflect.get(client, 'connection');
  const socket: unknown = typeof connection === 'object' && connection !== null ? Reflect.get(connection, 'stream') : undefined;
  if (typeof socket === 'object' && socket !== null && 'destroy' in socket && typeof socket.destroy === 'function') socket.destroy();
  client.end().catch(() => undefined);
}

interface Run {
  readonly server: PostgresServerPolicy;
  readonly query: ApprovedQuery;
  readonly values: ReadonlyMap<string, string>;
  readonly password: string | undefined;
}

class QuerySession implements SourceSession {
  readonly #open = new Set<pg.Client>();

  constructor(
    private readonly ctx: ConnectorContext,
    private readonly config: PostgresSourceConfig,
    private readonly run: Run,
  ) {}

  async list(): Promise<SourceFile[]> {
    const name = assertSafeName(this.config.outputName ?? `${this.config.query}.csv`);
    return [{ path: queryPath(this.config.database, this.config.query), name, size: 0, mtimeMs: Date.now(), generated: true }];
  }

  async open(_file: SourceFile): Promise<Readable> {
    const { server, query, values } = this.run;
    const what = `query ${query.name} on ${server.host}:${server.port}/${server.database}`;
    // Checked again right before it runs: a query file may have changed since connect.
    const sql = rewriteQuery(query, await approvedText(query));
    const ssl = server.tls === 'disable' ? false : { rejectUnauthorized: true, servername: server.host, ...(server.caFile ? { ca: await readFile(server.caFile, 'utf8') } : {}) };
    const client = new pg.Client({
      host: this.config.host,
      port: this.config.port,
      database: this.config.database,
      user: this.config.username,
      ...(this.run.password === undefined ? {} : { password: this.run.password }),
      ssl,
      connectionTimeoutMillis: server.connectTimeoutMs,
      application_name: 'airlock-agent',
      keepAlive: true,
    });
    // A dead socket reaches the active query (and so the stream) as well; this only keeps it from being unhandled.
    client.on('error', () => undefined);
    this.#open.add(client);
    const out = new PassThrough();
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      this.ctx.signal.removeEventListener('abort', onAbort);
      hardClose(client);
      this.#open.delete(client);
      out.destroy(classified(error, what));
    };
    const onAbort = () => fail(new OperationalError(`${what} was cancelled`));
    try {
      await client.connect();
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      // SET takes no bind parameters; set_config does, and `true` makes each setting end with the transaction.
      await client.query('SELECT set_config($1, $2, true)', ['statement_timeout', String(query.statementTimeoutMs)]);
      for (const [name, value] of values) await client.query('SELECT set_config($1, $2, true)', [settingOf(name), value]);
    } catch (error) {
      hardClose(client);
      this.#open.delete(client);
      throw classified(error, what);
    }
    if (this.ctx.signal.aborted) {
      hardClose(client);
      this.#open.delete(client);
      throw new OperationalError(`${what} was cancelled`);
    }
    this.ctx.signal.addEventListener('abort', onAbort, { once: true });
    const copy = client.query(copyTo(`COPY (${sql}) TO STDOUT WITH (FORMAT csv, HEADER)`));
    copy.on('error', fail);
    copy.pipe(out, { end: false });
    copy.on('end', () => {
      // The rows are all out; the stream ends only once the server confirms the statement and the transaction.
      client.query('COMMIT').then(
        async () => {
          if (settled) return;
          settled = true;
          this.ctx.signal.removeEventListener('abort', onAbort);
          this.#open.delete(client);
          await client.end().catch(() => undefined);
          out.end();
        },
        fail,
      );
    });
    // A reader that stops early (an aborted delivery) must not leave the server mid-COPY.
    out.on('close', () => {
      if (!settled) fail(new OperationalError(`${what}: the reader stopped`));
    });
    return out;
  }

  async close(): Promise<void> {
    for (const client of this.#open) hardClose(client);
    this.#open.clear();
  }
}

/**
 * The PostgreSQL query source's runtime, loaded on first connect (index.ts) with `pg`. It runs only
 * an approved entry the host hands it from the local policy (`sources.postgres`): a query that is
 * not there, or whose text changed, is refused before any connection, whatever the job says.
 */
export const postgresRuntime: SourceRuntime<PostgresSourceConfig, PostgresServerPolicy> = {
  async connect(ctx, config, policy) {
    const server = policy.find((entry) => entry.host === config.host && entry.port === config.port && entry.database === config.database);
    if (!server) throw new PolicyViolationError(`${config.host}:${config.port}/${config.database} is not pinned in the local policy`);
    const query = server.queries.find((entry) => entry.name === config.query);
    if (!query) throw new PolicyViolationError(`query ${JSON.stringify(config.query)} is not approved for ${config.host}:${config.port}/${config.database} in the local policy`);
    rewriteQuery(query, await approvedText(query));
    const values = checkParameters(query, config.params);
    const password = config.credentialRef === undefined ? undefined : (await ctx.secret(config.credentialRef))['password'];
    return new QuerySession(ctx, config, { server, query, values, password });
  },
};
