/**
 * @airlock/connector-postgres: queries the on-prem admin approved, run read-only against a pinned
 * PostgreSQL database, their rows streamed out as CSV. The agent registers `postgresSource`; which
 * queries it may run is the local policy's `sources.postgres`.
 */
import { defineSource } from '@airlock/connector-api';
import { postgresSourceDefinition } from './definition.ts';

export {
  approvedQuery,
  approvedText,
  checkParameters,
  parameterSchema,
  postgresServerPolicy,
  queryParameter,
  rewriteQuery,
  settingOf,
  sha256Of,
  type ApprovedQuery,
  type PostgresServerPolicy,
  type QueryParameter,
} from './approved.ts';
export { authorityOf, postgresSecrets, postgresSourceConfig, postgresSourceDefinition, queryPath, type PostgresSourceConfig } from './definition.ts';

/** `pg` loads with the runtime, on the first connect: an agent that never queries PostgreSQL never loads it. */
export const postgresSource = defineSource(postgresSourceDefinition, () => import('./source.ts').then((module) => module.postgresRuntime));
