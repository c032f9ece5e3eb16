/**
 * `npm run -s bench:audit -- --json [--verify-events 1000000] [--append-seconds 10]`
 *
 * Runs bench/audit-run.ts, which measures the figures (described there), compiled the way the
 * control plane's bin runs (`@airlock/agent/bundle`, with the page workers at the bundle's root as
 * `buildControlPlaneCli` puts them), not through the tsx loader: the verify's worker threads then
 * start as they do where Airlock is installed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { bundleNode } from '@airlock/agent/bundle';
import { PAGE_WORKERS } from '@airlock/audit';

// Inside the repository, so the bundle's third-party imports resolve from node_modules; dist/ is
// neither committed nor linted. A directory of its own, for its chunks and workers.
const compiled = path.join(import.meta.dirname, 'dist', 'audit', 'audit-run.js');
await bundleNode(path.join(import.meta.dirname, 'audit-run.ts'), compiled, { workers: PAGE_WORKERS });
const child = spawn(process.execPath, [compiled, ...process.argv.slice(2)], { stdio: 'inherit' });
const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
process.exitCode = code ?? 1;
