// Shared vitest settings: unit tests beside the source, integration tests with real parts, generous but bounded timeouts.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * With AIRLOCK_TEST_REPORTS set (as `npm test` sets it), every workspace's run also writes a JSON
 * report there, named by `reportFileFor`, so the proofs (`test:integrity`, `test:identity`, ...)
 * read the verdicts of the run that just happened instead of running the same tests again.
 */
export const REPORTS_ENV = 'AIRLOCK_TEST_REPORTS';
const root = path.dirname(fileURLToPath(import.meta.url));

/** The report of the workspace at `workspaceDir`: its path below the repository root, flattened. */
export function reportFileFor(reports: string, workspaceDir: string, repositoryRoot = root): string {
  const relative = path.relative(repositoryRoot, workspaceDir).split(path.sep).join('__');
  return path.join(reports, `${relative || 'root'}.json`);
}

const reports = process.env[REPORTS_ENV];

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: reports ? ['default', 'json'] : ['default'],
    ...(reports ? { outputFile: { json: reportFileFor(reports, process.cwd()) } } : {}),
  },
});
