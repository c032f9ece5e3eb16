/**
 * Versioned SQL migrations from `packages/storage/migrations`, applied in order, each in its own
 * transaction, once. To change the schema, add the next numbered file; never edit an applied one.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Database, SYSTEM_SETTING } from './database.ts';

// Found through the package, not this file's URL: bundled into a CLI, this code runs from another directory.
const MIGRATIONS_DIR = path.join(path.dirname(createRequire(import.meta.url).resolve('@airlock/storage/package.json')), 'migrations');

async function migrationFiles(): Promise<string[]> {
  return (await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{4}_[a-z0-9_]+\.sql$/.test(name)).sort();
}

/**
 * The migrations this build knows that the database has not applied (for readiness): a replica of
 * a newer build facing an older schema is not ready until a start migrates it.
 */
export async function pendingMigrations(db: Database): Promise<string[]> {
  const files = await migrationFiles();
  const [known] = await db.query<{ exists: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS exists");
  if (!known?.exists) return files;
  const applied = new Set((await db.query<{ version: number }>('SELECT version FROM schema_migrations')).map((row) => Number(row.version)));
  return files.filter((file) => !applied.has(Number(file.slice(0, 4))));
}

export async function migrate(db: Database): Promise<{ applied: string[] }> {
  // Checked first: the app role (airlock_app) may not create tables, even with IF NOT EXISTS.
  const [known] = await db.query<{ exists: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS exists");
  if (!known?.exists) {
    await db.execScript(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
  }
  const files = await migrationFiles();
  const applied: string[] = [];
  for (const file of files) {
    const version = Number(file.slice(0, 4));
    const sql = await readFile(path.join(MIGRATIONS_DIR, file), 'utf8');
    const done = await db.transaction(async (tx) => {
      // Serializes concurrent starts of several replicas against one database.
      await tx.query('SELECT pg_advisory_xact_lock(7261001)');
      // Migrations are system work: a data fix in one must see every tenant's rows under row-level security.
      await tx.query('SELECT set_config($1, $2, true)', [SYSTEM_SETTING, 'on']);
      const existing = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version]);
      if (existing.length > 0) return false;
      for (const statement of splitStatements(sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, file]);
      return true;
    });
    if (done) applied.push(file);
  }
  return { applied };
}

/** Splits a migration file into statements, keeping `$$`-quoted function bodies whole. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let inDollar = false;
  for (const line of sql.split('\n')) {
    if (line.trim().startsWith('--') && !inDollar) continue;
    current += `${line}\n`;
    const dollars = line.split('$$').length - 1;
    if (dollars % 2 === 1) inDollar = !inDollar;
    if (!inDollar && line.trimEnd().endsWith(';')) {
      statements.push(current.trim());
      current = '';
    }
  }
  if (current.trim() !== '') statements.push(current.trim());
  return statements;
}
