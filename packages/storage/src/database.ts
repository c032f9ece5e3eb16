/**
 * The storage seam. The control plane speaks SQL to PostgreSQL through `pg`, or, with no
 * DATABASE_URL, to an embedded PGlite in its data directory; both run the same migrations and
 * the same queries. Every query is parameterized: SQL is never built from strings.
 *
 * Tenant isolation (migration 0011): every table that holds tenant data has row-level security
 * keyed on the transaction-local settings below. `forTenant(id)` is the view that admin and agent
 * procedures get: each of its statements runs in a transaction as `airlock_app` with
 * `airlock.tenant_id` set, so PostgreSQL itself hides and protects every other tenant's rows, even
 * from a query that forgets its WHERE clause. `forSystem()` is the explicit, narrow way for work
 * that is cross-tenant by nature (authentication lookups, the scheduler, bootstrap, whole-chain
 * audit verification). The plain database is neither: under a role subject to RLS it sees no
 * tenant rows at all.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { Writable } from 'node:stream';
import pg from 'pg';
import { type DataDirLock, type LockHolder, lockDataDir } from '@airlock/data-dir-lock';
import { copyOut } from './copy-out.ts';
import { OperationalError, OverloadedError } from '@airlock/errors';

/**
 * A statement that runs on every signed request or scoped statement: each PostgreSQL connection
 * parses and plans it once and then only binds and executes it, which for the hot statements is
 * most of their cost. The name comes from the text, so one text is one prepared statement on
 * every connection. PGlite runs the text.
 */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

export function prepared(text: string): PreparedStatement {
  return { name: `airlock_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`, text };
}

/** SQL as a statement takes it: its text, or a statement prepared once per connection. */
export type Sql = string | PreparedStatement;

export const sqlText = (sql: Sql): string => (typeof sql === 'string' ? sql : sql.text);

export interface Queryable {
  query<Row>(text: Sql, params?: readonly unknown[]): Promise<Row[]>;
}

/** A statement and its parameters. */
export interface Statement {
  text: Sql;
  params: readonly unknown[];
}

/**
 * Rows in PostgreSQL's binary COPY format, for reads so large that parsing rows in the driver, or
 * having the database write them as text, would cost more than the work done with them.
 */
export interface BinaryCopy {
  /**
   * The bytes of `COPY (select) TO STDOUT (FORMAT binary)`, header to trailer. COPY takes no
   * parameters, so `select` is a fixed text that reads its values with `current_setting`, and
   * `settings` (parameterized, `set_config(name, $1, true)`) sets them first, in the same
   * transaction: the caller's when this is a view of one, otherwise one of its own. The bytes are
   * written from the start of `into` while they fit there (a reused buffer is warm memory).
   */
  copyBinary(select: string, settings: Statement, into?: ArrayBuffer): Promise<Uint8Array>;
}

/** The COPY statement around a fixed query; `target` is STDOUT, or PGlite's '/dev/blob'. */
const copyStatement = (select: string, target: 'STDOUT' | "'/dev/blob'") => `COPY (${select}) TO ${target} (FORMAT binary)`;

/** The COPY's bytes on `client`, which must be idle (COPY cannot share a pipelined connection). */
const copyOn = (client: pg.ClientBase, select: string, into?: ArrayBuffer): Promise<Uint8Array> => copyOut(client, copyStatement(select, 'STDOUT'), into);

/**
 * A pg client's open transaction as a `Queryable` with binary COPY: for tests that look at the
 * trail through a transaction of their own (one that tampers and rolls back). The client must not
 * be pipelined, and must be inside BEGIN: the settings a COPY reads last until the transaction ends.
 */
export function transactionQueryable(client: pg.ClientBase): Queryable & BinaryCopy {
  return {
    query: async <Row>(text: Sql, params: readonly unknown[] = []) => (await client.query(queryConfig(text, params))).rows as Row[],
    async copyBinary(select: string, settings: Statement, into?: ArrayBuffer) {
      await client.query(queryConfig(settings.text, settings.params));
      return copyOn(client, select, into);
    },
  };
}

/** What a listener is told: each notification on its channels, and each (re)connection. */
export interface NotificationHandlers {
  onNotify(channel: string, payload: string): void;
  /**
   * Called once the channels are listened to, and again after every reconnection: notifications
   * sent while the listener was away are lost, so the caller sweeps for what it may have missed.
   */
  onConnect(): void;
}

export interface Listener {
  close(): Promise<void>;
}

export interface Database extends Queryable, BinaryCopy {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Listens to `channels` (fixed identifiers) for `pg_notify`s committed by any process on the
   * same database: PostgreSQL through one dedicated connection that reconnects with backoff,
   * PGlite in process. Notifications are delivered at commit, never for a rolled-back transaction.
   */
  listen(channels: readonly string[], handlers: NotificationHandlers): Promise<Listener>;
  /**
   * The same database for one request: once `signal` aborts (the client hung up), its
   * transactions are not started, nor queries sent, so a dropped request costs no database work.
   */
  forRequest(signal: AbortSignal): Database;
  /** Runs a trusted multi-statement script (migrations only; refused on a scoped view). */
  execScript(sql: string): Promise<void>;
  /** Closes the connection; on a scoped view it does nothing (the view does not own it). */
  close(): Promise<void>;
  /** The same database confined to one tenant by row-level security. */
  forTenant(tenantId: string): Database;
  /** The same database for explicitly cross-tenant system work. */
  forSystem(): Database;
  /** The connection pool as it is now, for the metrics; null for the embedded database, which has none. */
  poolStats(): PoolStats | null;
}

export interface PoolStats {
  /** Connections open, idle among them, and requests waiting for one. */
  total: number;
  idle: number;
  waiting: number;
  /** The most connections the pool opens. */
  max: number;
}

/** The row-level security settings; the policies in migration 0011 read them. */
export const TENANT_SETTING = 'airlock.tenant_id';
export const SYSTEM_SETTING = 'airlock.system';
/** The role tenant-scoped statements run as, so RLS applies even when the server connects as a superuser or owner. */
export const APP_ROLE = 'airlock_app';

type Scope = { kind: 'tenant'; tenantId: string } | { kind: 'system' };

/** Thrown instead of starting work for a request whose client has gone. */
export class RequestAbandoned extends OperationalError {
  constructor() {
    super('the client closed the request; its work was skipped');
  }
}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new RequestAbandoned();
}

/** Channel names are fixed identifiers (LISTEN takes no parameter); anything else is refused. */
const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const SYSTEM_SCOPE = prepared('SELECT set_config($1, $2, true)');
const TENANT_SCOPE = prepared('SELECT set_config($1, $2, true), set_config($3, $4, true)');

/**
 * What sets `scope` for the rest of the current transaction only (`is_local`), so it never leaks
 * to the next user of a pooled connection.
 */
function scopeStatement(scope: Scope): Statement {
  if (scope.kind === 'system') return { text: SYSTEM_SCOPE, params: [SYSTEM_SETTING, 'on'] };
  // A malformed id would make the policy's uuid cast fail on every row; refuse it up front.
  if (!UUID.test(scope.tenantId)) throw new Error('tenant scope needs a tenant uuid');
  return { text: TENANT_SCOPE, params: ['role', APP_ROLE, TENANT_SETTING, scope.tenantId] };
}

/** What each driver provides; the scoped views are built on top of it once, for both. */
interface Driver {
  kind: Database['kind'];
  /**
   * Connections whose whole session is in the system scope, when the driver has them: a system
   * statement then needs no transaction around it to set the scope.
   */
  system?: Pick<Driver, 'query' | 'transaction'>;
  query<Row>(text: Sql, params: readonly unknown[], signal?: AbortSignal): Promise<Row[]>;
  /**
   * Runs `fn` in one transaction that starts with `prelude` (a scope's settings). `signal` is
   * checked once a connection is in hand, after any wait for one.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, signal?: AbortSignal, prelude?: Statement): Promise<T>;
  /** One statement in a transaction of its own that starts with `prelude`. */
  queryIn<Row>(prelude: Statement, text: Sql, params: readonly unknown[], signal?: AbortSignal): Promise<Row[]>;
  /** `BinaryCopy.copyBinary` in a transaction of its own that starts with `prelude`, when given. */
  copyBinary(prelude: Statement | undefined, select: string, settings: Statement, into: ArrayBuffer | undefined, signal?: AbortSignal): Promise<Uint8Array>;
  execScript(sql: string): Promise<void>;
  listen(channels: readonly string[], handlers: NotificationHandlers): Promise<Listener>;
  close(): Promise<void>;
  poolStats(): PoolStats | null;
}

function listenChecked(driver: Driver, channels: readonly string[], handlers: NotificationHandlers): Promise<Listener> {
  const bad = channels.find((channel) => !CHANNEL.test(channel));
  if (bad !== undefined) return Promise.reject(new Error(`not a channel name: ${JSON.stringify(bad)}`));
  return driver.listen(channels, handlers);
}

function scopedView(driver: Driver, scope: Scope, signal?: AbortSignal): Database {
  const system = scope.kind === 'system' ? driver.system : undefined;
  // Async, so that a malformed scope is a rejection like every other failure.
  const transaction = async <T>(fn: (tx: Queryable) => Promise<T>) => (system ? system.transaction(fn, signal) : driver.transaction(fn, signal, scopeStatement(scope)));
  return {
    kind: driver.kind,
    query: async <Row>(text: Sql, params: readonly unknown[] = []) =>
      system ? system.query<Row>(text, params, signal) : driver.queryIn<Row>(scopeStatement(scope), text, params, signal),
    transaction,
    // Async, so that a malformed scope is a rejection here too.
    copyBinary: async (select, settings, into) => driver.copyBinary(scopeStatement(scope), select, settings, into, signal),
    execScript: () => Promise.reject(new Error('scripts run on the unscoped database only')),
    listen: (channels, handlers) => listenChecked(driver, channels, handlers),
    close: () => Promise.resolve(),
    forTenant: (tenantId) => scopedView(driver, { kind: 'tenant', tenantId }, signal),
    forSystem: () => scopedView(driver, { kind: 'system' }, signal),
    forRequest: (given) => scopedView(driver, scope, given),
    poolStats: () => driver.poolStats(),
  };
}

function fromDriver(driver: Driver, signal?: AbortSignal): Database {
  return {
    kind: driver.kind,
    query: <Row>(text: Sql, params: readonly unknown[] = []) => driver.query<Row>(text, params, signal),
    transaction: (fn) => driver.transaction(fn, signal),
    copyBinary: (select, settings, into) => driver.copyBinary(undefined, select, settings, into, signal),
    execScript: (sql) => driver.execScript(sql),
    listen: (channels, handlers) => listenChecked(driver, channels, handlers),
    close: () => driver.close(),
    forTenant: (tenantId) => scopedView(driver, { kind: 'tenant', tenantId }, signal),
    forSystem: () => scopedView(driver, { kind: 'system' }, signal),
    forRequest: (given) => fromDriver(driver, given),
    poolStats: () => driver.poolStats(),
  };
}

export interface PostgresOptions {
  /**
   * Connections this process keeps, at least 2: half serve system-scope statements (each signed
   * request's authentication), the rest tenant work. Default 10. A whole-trail audit verify opens
   * up to 2 more for its COPY reads while it runs; they close 10 s after it.
   */
  maxConnections?: number;
  /**
   * Requests that may wait for a connection at once. Past it a request is refused at once with
   * `OverloadedError` (503 and Retry-After), so a burst is shed instead of growing a queue that
   * makes every request late. Default 1,000.
   */
  maxQueue?: number;
  /** The longest a request waits for a connection (ms) before it is refused as overloaded. Default 10,000. */
  queueTimeoutMs?: number;
}

/** The Retry-After a refused request is given (s): enough for a burst to drain. */
const OVERLOAD_RETRY_AFTER_SECONDS = 2;

/** How the listener's reconnection backs off: full jitter under a cap that doubles from 250 ms to 10 s. */
function reconnectDelayMs(attempt: number): number {
  return Math.floor(Math.random() * Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)));
}

function pgListen(url: string, channels: readonly string[], handlers: NotificationHandlers): Promise<Listener> {
  let closed = false;
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  let attempt = 0;
  let firstSettled: (() => void) | null = null;
  const first = new Promise<void>((resolve) => (firstSettled = resolve));
  const settleFirst = () => {
    firstSettled?.();
    firstSettled = null;
  };
  const schedule = () => {
    if (closed || retry !== null) return;
    attempt += 1;
    retry = setTimeout(() => {
      retry = null;
      void connect();
    }, reconnectDelayMs(attempt));
    retry.unref();
  };
  const connect = async () => {
    const candidate = new pg.Client({ connectionString: url });
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      if (client === candidate) client = null;
      candidate.end().catch(() => undefined);
      schedule();
    };
    candidate.on('error', onLost);
    candidate.on('end', onLost);
    candidate.on('notification', (message) => handlers.onNotify(message.channel, message.payload ?? ''));
    try {
      await candidate.connect();
      // Fixed identifiers, checked against CHANNEL above: LISTEN cannot take a parameter.
      for (const channel of channels) await candidate.query(`LISTEN ${channel}`);
    } catch {
      onLost();
      // The first attempt failing still lets the caller start: the sweep covers until a retry succeeds.
      settleFirst();
      return;
    }
    if (closed) {
      await candidate.end().catch(() => undefined);
      return;
    }
    client = candidate;
    attempt = 0;
    settleFirst();
    handlers.onConnect();
  };
  void connect();
  return first.then(() => ({
    async close() {
      closed = true;
      if (retry !== null) clearTimeout(retry);
      const open = client;
      client = null;
      await open?.end().catch(() => undefined);
    },
  }));
}

/** A pg client's socket, which pg keeps as `connection.stream`; null if a version of pg does not. */
function socketOf(client: pg.PoolClient): { cork(): void; uncork(): void } | null {
  const stream: unknown = Reflect.get(Reflect.get(client, 'connection') ?? {}, 'stream');
  return stream instanceof Writable ? stream : null;
}

/** What `pg` is given: a prepared statement goes by its name, so each connection parses it once. */
function queryConfig(sql: Sql, params: readonly unknown[]): pg.QueryConfig {
  return typeof sql === 'string' ? { text: sql, values: [...params] } : { name: sql.name, text: sql.text, values: [...params] };
}

const overloaded = (cause?: unknown) =>
  new OverloadedError('the control plane is busy; try again shortly', OVERLOAD_RETRY_AFTER_SECONDS, cause === undefined ? undefined : { cause });

/**
 * Statements and transactions over one pg pool, which sheds load past its queue. Its connections
 * pipeline (pg's `pipeline` mode): what is sent before the answers to earlier statements arrive
 * shares their round trip, and the answers come back in order. A transaction's BEGIN and prelude
 * therefore travel with its first statement, and a lone statement's whole transaction is one
 * round trip.
 */
function poolDriver(pool: pg.Pool, maxQueue: number): Pick<Driver, 'query' | 'transaction' | 'queryIn'> {
  // An idle client's error must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  /** A connection, unless the queue for one is full or the wait for one runs out. */
  const connect = async (signal?: AbortSignal) => {
    checkSignal(signal);
    if (pool.waitingCount >= maxQueue) throw overloaded();
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      // pg-pool's wording for `connectionTimeoutMillis`; any other failure is the database's own.
      if (error instanceof Error && /timeout exceeded when trying to connect/i.test(error.message)) throw overloaded(error);
      throw error;
    }
    if (signal?.aborted) {
      client.release();
      throw new RequestAbandoned();
    }
    return client;
  };
  /**
   * What is sent on `client` from now to the end of this tick leaves in one write. A pipelined
   * statement is otherwise one write each, and on loopback every write also wakes the database's
   * process: a scoped statement was four.
   */
  const gather = (client: pg.PoolClient) => {
    const stream = socketOf(client);
    if (!stream) return;
    stream.cork();
    process.nextTick(() => stream.uncork());
  };
  /** Sent now, awaited later: its rejection is handled here and surfaces where it is awaited. */
  const send = (client: pg.PoolClient, statement: Statement) => {
    const answer = client.query(queryConfig(statement.text, statement.params));
    answer.catch(() => undefined);
    return answer;
  };
  return {
    async query<Row>(text: Sql, params: readonly unknown[], signal?: AbortSignal) {
      const client = await connect(signal);
      try {
        return (await client.query(queryConfig(text, params))).rows as Row[];
      } finally {
        client.release();
      }
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>, signal?: AbortSignal, prelude?: Statement) {
      const client = await connect(signal);
      try {
        // BEGIN and the prelude go out with the transaction's first statement when `fn` sends it at once.
        gather(client);
        const begin = send(client, { text: 'BEGIN', params: [] });
        const opening = Promise.all([begin, ...(prelude ? [send(client, prelude)] : [])]);
        opening.catch(() => undefined);
        const tx: Queryable = {
          async query<Row>(text: Sql, params: readonly unknown[] = []) {
            const answer = send(client, { text, params });
            // A failed BEGIN or prelude is the cause; the statement behind it only fails in its wake.
            await opening;
            return (await answer).rows as Row[];
          },
        };
        const value = await fn(tx);
        await opening;
        await client.query('COMMIT');
        return value;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async queryIn<Row>(prelude: Statement, text: Sql, params: readonly unknown[], signal?: AbortSignal) {
      const client = await connect(signal);
      try {
        gather(client);
        // A failure anywhere aborts the transaction, and the COMMIT behind it then only rolls back.
        const answers = await Promise.allSettled([
          send(client, { text: 'BEGIN', params: [] }),
          send(client, prelude),
          send(client, { text, params }),
          send(client, { text: 'COMMIT', params: [] }),
        ]);
        const failed = answers.find((answer) => answer.status === 'rejected');
        if (failed) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw failed.reason;
        }
        const [, , answer] = answers;
        return answer?.status === 'fulfilled' ? (answer.value.rows as Row[]) : [];
      } finally {
        client.release();
      }
    },
  };
}

export function connectPostgres(url: string, options: PostgresOptions = {}): Database {
  const maxQueue = options.maxQueue ?? 1_000;
  const max = Math.max(2, options.maxConnections ?? 10);
  const systemMax = Math.floor(max / 2);
  const connectionTimeoutMillis = options.queueTimeoutMs ?? 10_000;
  const pool = new pg.Pool({ connectionString: url, max: max - systemMax, connectionTimeoutMillis, pipeline: true });
  // System work is mostly one statement per signed request (its authentication), so it gets its own
  // pool whose sessions start in the system scope: that statement then needs no transaction. Only
  // forSystem() reaches these connections; tenant views and the plain database never do, so
  // nothing else can run in the system scope by accident.
  const systemPool = new pg.Pool({
    connectionString: url,
    max: systemMax,
    connectionTimeoutMillis,
    pipeline: true,
    options: `-c ${SYSTEM_SETTING}=on`,
  });
  // COPY cannot share a pipelined connection, so it has two connections of its own, opened on
  // first use and closed when idle (pg's 10 s): whole-trail reads are rare, and read at most two
  // pages at once.
  const copyPool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis });
  copyPool.on('error', () => undefined);
  const main = poolDriver(pool, maxQueue);
  return fromDriver({
    kind: 'postgres',
    ...main,
    async copyBinary(prelude, select, settings, into, signal) {
      checkSignal(signal);
      const client = await copyPool.connect();
      try {
        await client.query('BEGIN');
        if (prelude) await client.query(queryConfig(prelude.text, prelude.params));
        await client.query(queryConfig(settings.text, settings.params));
        const bytes = await copyOn(client, select, into);
        await client.query('COMMIT');
        client.release();
        return bytes;
      } catch (error) {
        // A connection that failed inside a COPY is not trusted again.
        client.release(error instanceof Error ? error : true);
        throw error;
      }
    },
    system: poolDriver(systemPool, maxQueue),
    async execScript(sql: string) {
      await pool.query(sql);
    },
    listen: (channels, handlers) => pgListen(url, channels, handlers),
    async close() {
      await Promise.all([pool.end(), systemPool.end(), copyPool.end()]);
    },
    poolStats: () => ({
      total: pool.totalCount + systemPool.totalCount,
      idle: pool.idleCount + systemPool.idleCount,
      waiting: pool.waitingCount + systemPool.waitingCount,
      max,
    }),
  });
}

/** Who opens an embedded database, as a refused second process is told, and what that one should do instead. */
export interface EmbeddedDatabaseUse {
  /** This process, e.g. `airlock serve`. */
  command: string;
  /** The one-line refusal while another live process holds the data directory. */
  refusal?: (holder: LockHolder) => string;
}

/** A data directory on disk, as opposed to PGlite's `memory://` and `idb://` stores, which no other process can open. */
const onDisk = (dataDir: string) => !/^[a-z]+:\/\//.test(dataDir);

/**
 * PGlite allows one process per data directory: a second one corrupts what the first holds in
 * memory (the audit chain forks, new rows stay unseen) or aborts. The directory is locked before
 * PGlite opens it and released when the database is closed.
 */
export async function openPglite(dataDir: string, use: EmbeddedDatabaseUse = { command: 'an airlock process' }): Promise<Database> {
  let lock: DataDirLock | undefined;
  if (onDisk(dataDir)) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    lock = await lockDataDir(dataDir, {
      name: 'airlock.lock',
      command: use.command,
      refusal:
        use.refusal ?? ((holder) => `the embedded database in ${dataDir} is in use by ${holder.command ?? 'another process'} (pid ${holder.pid}): stop it first`),
    });
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create(dataDir).catch(async (error: unknown) => {
    await lock?.release();
    throw error;
  });
  const transaction = async <T>(fn: (tx: Queryable) => Promise<T>, signal?: AbortSignal, prelude?: Statement): Promise<T> => {
    checkSignal(signal);
    return db.transaction(async (tx) => {
      if (prelude) await tx.query(sqlText(prelude.text), [...prelude.params]);
      return fn({
        async query<Row>(text: Sql, params: readonly unknown[] = []) {
          return (await tx.query<Row>(sqlText(text), [...params])).rows;
        },
      });
    });
  };
  return fromDriver({
    kind: 'pglite',
    async query<Row>(text: Sql, params: readonly unknown[], signal?: AbortSignal) {
      checkSignal(signal);
      return (await db.query<Row>(sqlText(text), [...params])).rows;
    },
    transaction,
    queryIn: <Row>(prelude: Statement, text: Sql, params: readonly unknown[], signal?: AbortSignal) =>
      transaction((tx) => tx.query<Row>(text, params), signal, prelude),
    // PGlite hands its COPY back as a blob of its own; `into` is of no use there.
    async copyBinary(prelude, select, settings, _into, signal) {
      checkSignal(signal);
      return db.transaction(async (tx) => {
        if (prelude) await tx.query(sqlText(prelude.text), [...prelude.params]);
        await tx.query(sqlText(settings.text), [...settings.params]);
        // PGlite has no STDOUT to copy to: its COPY writes to a blob it returns with the result.
        const { blob } = await tx.query(copyStatement(select, "'/dev/blob'"));
        if (!blob) throw new Error('PGlite returned no COPY output');
        return new Uint8Array(await blob.arrayBuffer());
      });
    },
    async execScript(sql: string) {
      await db.exec(sql);
    },
    // One process holds an embedded database, so notifications are in-process and never lost.
    async listen(channels, handlers) {
      const stops = await Promise.all(channels.map((channel) => db.listen(channel, (payload) => handlers.onNotify(channel, payload))));
      handlers.onConnect();
      return {
        async close() {
          await Promise.all(stops.map((stop) => stop().catch(() => undefined)));
        },
      };
    },
    async close() {
      try {
        await db.close();
      } finally {
        await lock?.release();
      }
    },
    poolStats: () => null,
  });
}
