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
import { mkdir } from 'node:fs/promises';
import pg from 'pg';
import { type DataDirLock, type LockHolder, lockDataDir } from '@airlock/data-dir-lock';

export interface Queryable {
  query<Row>(text: string, params?: readonly unknown[]): Promise<Row[]>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs a trusted multi-statement script (migrations only; refused on a scoped view). */
  execScript(sql: string): Promise<void>;
  /** Closes the connection; on a scoped view it does nothing (the view does not own it). */
  close(): Promise<void>;
  /** The same database confined to one tenant by row-level security. */
  forTenant(tenantId: string): Database;
  /** The same database for explicitly cross-tenant system work. */
  forSystem(): Database;
}

/** The row-level security settings; the policies in migration 0011 read them. */
export const TENANT_SETTING = 'airlock.tenant_id';
export const SYSTEM_SETTING = 'airlock.system';
/** The role tenant-scoped statements run as, so RLS applies even when the server connects as a superuser or owner. */
export const APP_ROLE = 'airlock_app';

type Scope = { kind: 'tenant'; tenantId: string } | { kind: 'system' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Sets the scope for the rest of the current transaction only (`is_local`), so it never leaks to the next user of a pooled connection. */
async function enterScope(tx: Queryable, scope: Scope): Promise<void> {
  if (scope.kind === 'system') {
    await tx.query('SELECT set_config($1, $2, true)', [SYSTEM_SETTING, 'on']);
    return;
  }
  // A malformed id would make the policy's uuid cast fail on every row; refuse it up front.
  if (!UUID.test(scope.tenantId)) throw new Error('tenant scope needs a tenant uuid');
  await tx.query('SELECT set_config($1, $2, true), set_config($3, $4, true)', ['role', APP_ROLE, TENANT_SETTING, scope.tenantId]);
}

/** What each driver provides; the scoped views are built on top of it once, for both. */
interface Driver {
  kind: Database['kind'];
  query<Row>(text: string, params: readonly unknown[]): Promise<Row[]>;
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  execScript(sql: string): Promise<void>;
  close(): Promise<void>;
}

function scopedView(driver: Driver, scope: Scope): Database {
  const transaction = <T>(fn: (tx: Queryable) => Promise<T>) =>
    driver.transaction(async (tx) => {
      await enterScope(tx, scope);
      return fn(tx);
    });
  return {
    kind: driver.kind,
    query: <Row>(text: string, params: readonly unknown[] = []) => transaction((tx) => tx.query<Row>(text, params)),
    transaction,
    execScript: () => Promise.reject(new Error('scripts run on the unscoped database only')),
    close: () => Promise.resolve(),
    forTenant: (tenantId) => scopedView(driver, { kind: 'tenant', tenantId }),
    forSystem: () => scopedView(driver, { kind: 'system' }),
  };
}

function fromDriver(driver: Driver): Database {
  return {
    kind: driver.kind,
    query: <Row>(text: string, params: readonly unknown[] = []) => driver.query<Row>(text, params),
    transaction: (fn) => driver.transaction(fn),
    execScript: (sql) => driver.execScript(sql),
    close: () => driver.close(),
    forTenant: (tenantId) => scopedView(driver, { kind: 'tenant', tenantId }),
    forSystem: () => scopedView(driver, { kind: 'system' }),
  };
}

export function connectPostgres(url: string, options: { maxConnections?: number } = {}): Database {
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10 });
  // An idle client's error must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return fromDriver({
    kind: 'postgres',
    async query<Row>(text: string, params: readonly unknown[]) {
      const result = await pool.query(text, [...params]);
      return result.rows as Row[];
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          async query<Row>(text: string, params: readonly unknown[] = []) {
            return (await client.query(text, [...params])).rows as Row[];
          },
        };
        const value = await fn(tx);
        await client.query('COMMIT');
        return value;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async execScript(sql: string) {
      await pool.query(sql);
    },
    async close() {
      await pool.end();
    },
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
  return fromDriver({
    kind: 'pglite',
    async query<Row>(text: string, params: readonly unknown[]) {
      return (await db.query<Row>(text, [...params])).rows;
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      return db.transaction(async (tx) =>
        fn({
          async query<Row>(text: string, params: readonly unknown[] = []) {
            return (await tx.query<Row>(text, [...params])).rows;
          },
        }),
      );
    },
    async execScript(sql: string) {
      await db.exec(sql);
    },
    async close() {
      try {
        await db.close();
      } finally {
        await lock?.release();
      }
    },
  });
}
