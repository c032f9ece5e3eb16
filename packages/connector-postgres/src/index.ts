/**
 * @airlock/connector-postgres: queries the on-prem admin approved, run read-only against a pinned
 * PostgreSQL database, their rows streamed out as CSV. The agent registers `postgresSource`; which
 * queries it may run is the local policy's `sources.postgres`.
 */
export {
  approvedQuery,
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
export { approvedText, postgresSource } from './source.ts';
