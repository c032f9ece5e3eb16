/**
 * vitest `globalSetup` that starts one PostgreSQL server per test run and provides its admin URL.
 * In a test file: `const url = await createTestDatabase(inject('postgresUrl'))`.
 */
import type { TestProject } from 'vitest/node';
// Importing postgres.ts also brings in the `ProvidedContext.postgresUrl` declaration.
import { startPostgres } from './postgres.ts';

export default async function setup({ provide }: Pick<TestProject, 'provide'>): Promise<() => Promise<void>> {
  const postgres = await startPostgres();
  provide('postgresUrl', postgres.url);
  return () => postgres.stop();
}
