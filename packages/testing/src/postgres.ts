/**
 * A throwaway PostgreSQL server for integration tests: `initdb` + `pg_ctl` on a free loopback
 * port, or the server named by `AIRLOCK_TEST_DATABASE_URL`. Each test file takes a fresh database
 * from it with `createDatabase()`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { run } from './exec.ts';
import { freePort } from './ports.ts';
import { onProcessExit, removeOnExit, runSyncQuietly } from './process-cleanup.ts';

// `inject('postgresUrl')` in test files is typed by this, for the server `postgres-global-setup` starts.
declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

export interface TestPostgres extends AsyncDisposable {
  /** Admin URL of the server's `postgres` database. */
  readonly url: string;
  /** Creates a fresh, uniquely named database and returns its URL. */
  createDatabase(): Promise<string>;
  /** `pg_dump` text output of a database. */
  dump(databaseUrl: string): Promise<string>;
  /**
   * Stops the server but keeps its data, so that a test can watch clients lose it; `resume()`
   * starts it again on the same port. A server named by `AIRLOCK_TEST_DATABASE_URL` is not ours to stop: refused.
   */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

const POSTGRES_ROOT = '/usr/lib/postgresql';
const READY_TIMEOUT_MS = 20_000;

/** The `bin` directory of the highest PostgreSQL version installed under /usr/lib/postgresql. */
export function postgresBinDir(): string {
  let versions: string[] = [];
  if (existsSync(POSTGRES_ROOT)) {
    versions = readdirSyncSafe(POSTGRES_ROOT)
      .filter((name) => /^\d+(\.\d+)?$/.test(name))
      .filter((name) => existsSync(path.join(POSTGRES_ROOT, name, 'bin', 'initdb')))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  }
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(
      `no PostgreSQL server binaries under ${POSTGRES_ROOT}/<version>/bin: install postgresql (apt-get install postgresql) or set AIRLOCK_TEST_DATABASE_URL`,
    );
  }
  return path.join(POSTGRES_ROOT, newest, 'bin');
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** PostgreSQL refuses to run as root, so as root every server binary runs as `postgres`. */
function asPostgres(bin: string, args: readonly string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, [...args]];
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** Creates a fresh, uniquely named database on the server at `serverUrl` and returns its URL. */
export async function createTestDatabase(serverUrl: string): Promise<string> {
  const name = `airlock_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    // DDL takes no bind parameters; the name is generated above and quoted as an identifier.
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  return withDatabase(serverUrl, name);
}

async function waitForServer(url: string, timeoutMs: number, diagnostics: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch (error) {
      lastError = error;
      await client.end().catch(() => undefined);
      await sleep(100);
    }
  }
  throw new Error(`PostgreSQL was not ready within ${timeoutMs} ms. ${await diagnostics()}`, { cause: lastError });
}

async function dumpWith(binDir: string | undefined, databaseUrl: string): Promise<string> {
  const pgDump = binDir === undefined ? 'pg_dump' : path.join(binDir, 'pg_dump');
  const { stdout } = await run(pgDump, ['--no-owner', '--no-privileges', '--dbname', databaseUrl]);
  return stdout;
}

function external(url: string): TestPostgres {
  let binDir: string | undefined;
  try {
    binDir = postgresBinDir();
  } catch {
    binDir = undefined;
  }
  const stop = async (): Promise<void> => undefined;
  const refuse = () => Promise.reject(new Error('AIRLOCK_TEST_DATABASE_URL names a server these tests do not own: it cannot be paused'));
  return {
    url,
    createDatabase: () => createTestDatabase(url),
    dump: (databaseUrl) => dumpWith(binDir, databaseUrl),
    pause: refuse,
    resume: refuse,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Starts a throwaway PostgreSQL cluster (or uses `AIRLOCK_TEST_DATABASE_URL`). The cluster listens
 * only on 127.0.0.1, trusts loopback connections and runs with fsync off: it is for tests only.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const configured = process.env['AIRLOCK_TEST_DATABASE_URL'];
  if (configured !== undefined && configured !== '') return external(configured);

  const binDir = postgresBinDir();
  const dir = await mkdtemp(path.join(tmpdir(), 'airlock-pg-'));
  const forgetDir = removeOnExit(dir);
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  const pgCtl = path.join(binDir, 'pg_ctl');
  // pg_ctl passes -o through a shell of its own; refuse any path that would need quoting there.
  if (!/^[\w/.-]+$/.test(dataDir)) throw new Error(`unexpected characters in temp dir ${dataDir}`);

  const readLog = async (): Promise<string> => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text ? `server log:\n${text.slice(-4_000)}` : '';
  };

  let forgetServer = (): void => undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const [file, args] = asPostgres(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '20']);
    await run(file, args).catch(() => undefined);
    forgetServer();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  };

  try {
    if (isRoot()) await chown(dir, ...(await postgresIds()));
    const [initFile, initArgs] = asPostgres(path.join(binDir, 'initdb'), [
      '--pgdata',
      dataDir,
      '--username',
      'postgres',
      '--auth',
      'trust',
      '--encoding',
      'UTF8',
      '--no-locale',
      '--no-sync',
    ]);
    await run(initFile, initArgs, { timeoutMs: 60_000 });

    const port = await freePort();
    const serverOptions = [
      `-c listen_addresses=127.0.0.1`,
      `-p ${port}`,
      `-k ${dataDir}`,
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
    ].join(' ');
    const [ctlFile, ctlArgs] = asPostgres(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '20', '-o', serverOptions]);
    forgetServer = onProcessExit(() => {
      const [file, args] = asPostgres(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate']);
      runSyncQuietly(file, args);
    });
    await run(ctlFile, ctlArgs, { timeoutMs: 30_000 }).catch(async (error: unknown) => {
      throw new Error(`pg_ctl start failed. ${await readLog()}`, { cause: error });
    });

    const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
    await waitForServer(url, READY_TIMEOUT_MS, readLog);
    return {
      url,
      createDatabase: () => createTestDatabase(url),
      dump: (databaseUrl) => dumpWith(binDir, databaseUrl),
      async pause() {
        const [file, args] = asPostgres(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '20']);
        await run(file, args, { timeoutMs: 30_000 });
      },
      async resume() {
        await run(ctlFile, ctlArgs, { timeoutMs: 30_000 }).catch(async (error: unknown) => {
          throw new Error(`pg_ctl start failed. ${await readLog()}`, { cause: error });
        });
        await waitForServer(url, READY_TIMEOUT_MS, readLog);
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function postgresIds(): Promise<[number, number]> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === 'postgres' && uid !== undefined && gid !== undefined) return [Number(uid), Number(gid)];
  }
  throw new Error('running as root needs a "postgres" system user to own the test cluster (apt-get install postgresql)');
}
