/**
 * The types a client of the control plane needs, and nothing else: importing this with
 * `import type` pulls no server code into the agent's bundle or the console's.
 */
export type { AppRouter } from './router.ts';
export type { Permission, Role } from '@airlock/auth';
