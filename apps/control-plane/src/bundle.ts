/** `npm run build`: compiles the `airlock` CLI into dist/ the same way as the agent's (see `@airlock/agent/bundle`). */
import path from 'node:path';
import { buildCli } from '@airlock/agent/bundle';

await buildCli(path.join(import.meta.dirname, '..'));
