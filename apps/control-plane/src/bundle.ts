/**
 * `npm run build`: compiles the `airlock` CLI into dist/ the same way as the agent's (see
 * `@airlock/agent/bundle`), with the audit verify's worker threads beside it.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE_WORKERS } from '@airlock/audit';
import { buildCli } from '@airlock/agent/bundle';

const app = path.join(import.meta.dirname, '..');

export function buildControlPlaneCli(dist = path.join(app, 'dist')): Promise<void> {
  return buildCli(app, dist, { workers: PAGE_WORKERS });
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildControlPlaneCli();
}
