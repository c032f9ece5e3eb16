/**
 * `@airlock/connector-postgres/definition`: the PostgreSQL query source as the control plane sees
 * it: which server, database and approved query an integration names, with which parameter values.
 * Pure. Which queries exist, and their text, live only in each agent's local policy
 * (`sources.postgres`); the runtime in `source.ts` runs the entry the host found there.
 */
import { z } from 'zod';
import { isSafeName, type ResourceClaim, sourceDefinition } from '@airlock/connector-api/definition';
import { databaseName, hostName, parameterName, parameterValue, port, postgresServerPolicy, type PostgresServerPolicy, queryName } from './approved.ts';

export const postgresSourceConfig = z.strictObject({
  host: hostName,
  port: port.default(5432).describe('The server port; default 5432.'),
  database: databaseName,
  /** The role to log in as; its password, if any, is the secrets.yaml entry `credentialRef` names. */
  username: z.string().min(1).max(63).describe('The role to log in as; a read-only role is best.'),
  /** Names the entry in the agent's secrets file holding `password`. Absent: no password is sent. */
  credentialRef: z.string().min(1).max(256).optional(),
  /** The approved query's name in the agent's local policy. */
  query: queryName.describe("The approved query's name in the agent's local policy."),
  /** Values for the query's declared parameters, checked on the agent against their declared rules. */
  params: z.record(parameterName, parameterValue).default({}),
  /** The name the CSV is delivered under (before the destination's suffix); default `<query>.csv`. */
  outputName: z.string().min(1).max(200).refine(isSafeName, 'must be one file name: no /, \\, control characters, . or ..').optional(),
});
export type PostgresSourceConfig = z.output<typeof postgresSourceConfig>;

/** The secret behind `credentialRef`. */
export const postgresSecrets = z.strictObject({ password: z.string().min(1) });

/** `host:port`, as claims and scopes name a server. */
export function authorityOf(server: { host: string; port: number }): string {
  return `${server.host}:${server.port}`;
}

/** `/<database>/<query>`: what a scope grants and a policy entry approves. */
export function queryPath(database: string, query: string): string {
  return `/${database}/${query}`;
}

const claimOf = (config: PostgresSourceConfig): ResourceClaim => ({
  action: 'read',
  scheme: 'postgres',
  authority: authorityOf(config),
  path: queryPath(config.database, config.query),
});

export const postgresSourceDefinition = sourceDefinition<PostgresSourceConfig, PostgresServerPolicy>({
  id: 'postgres',
  version: 1,
  title: 'PostgreSQL query (approved on the agent)',
  config: postgresSourceConfig,
  secrets: postgresSecrets,
  claims: (config) => [claimOf(config)],
  claimFor: (config) => claimOf(config),
  scheme: { name: 'postgres', form: 'network', defaultPort: 5432 },
  // `sources.postgres` in the local policy: an entry pins one server and database and approves
  // queries there. A query reads only its own result, and has nothing to delete or archive.
  policy: {
    entry: postgresServerPolicy,
    grant: (entry, claim) =>
      claim.scheme === 'postgres' && claim.authority === authorityOf(entry)
        ? { paths: entry.queries.map((query) => queryPath(entry.database, query.name)) }
        : undefined,
  },
});
