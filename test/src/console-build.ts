/** Builds the console with Vite for the e2e tests and the demo, into a directory of the caller's. */
import path from 'node:path';
import { inheritedEnv } from './config.ts';
import { runCommand } from './processes.ts';
import { REPO_ROOT } from './system.ts';

const BUILD_TIMEOUT_MS = 120_000;

/** Builds apps/console into `outDir` (not its own dist/, which a parallel typecheck may be rewriting). */
export async function buildConsole(outDir: string): Promise<void> {
  const vite = path.join(REPO_ROOT, 'node_modules/vite/bin/vite.js');
  const result = await runCommand(process.execPath, [vite, 'build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'], {
    env: inheritedEnv(),
    cwd: path.join(REPO_ROOT, 'apps/console'),
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  if (result.code !== 0) throw new Error(`vite build failed: ${result.stderr.trim()}`);
}
