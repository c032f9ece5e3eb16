/**
 * The connectors the console offers, with each config schema as JSON Schema (zod 4
 * `z.toJSONSchema`) so the console can generate its forms. To offer a new connector, add its
 * definition to the list below; agents run only what their own registry and local policy allow.
 */
import { z } from 'zod';
import { localFolderDestination, localFolderSource } from '@airlock/connector-local';
import { scriptSource } from '@airlock/connector-script';
import { sftpDestination, sftpSource } from '@airlock/connector-sftp';

export interface ConnectorDescription {
  kind: 'source' | 'destination';
  /** `id@version`, what an integration spec names. */
  ref: string;
  title: string;
  /** JSON Schema (draft 2020-12) of the config as an admin types it: defaults make fields optional. */
  configSchema: Record<string, unknown>;
}

// The script source's approved list lives in each agent's local policy; only its config shape matters here.
const definitions = [sftpSource, localFolderSource, scriptSource([]), sftpDestination, localFolderDestination];

let cached: ConnectorDescription[] | null = null;

export function connectorCatalog(): ConnectorDescription[] {
  cached ??= definitions.map((definition) => ({
    kind: definition.kind,
    ref: `${definition.id}@${definition.version}`,
    title: definition.title,
    configSchema: z.toJSONSchema(definition.config, { io: 'input', unrepresentable: 'any' }),
  }));
  return cached;
}

export interface ConfigIssue {
  /** Dotted path inside the config, empty for the whole object. */
  path: string;
  message: string;
}

/** Checks a config against its connector's zod schema: the same check the agent makes when it binds the job. */
export function checkConnectorConfig(kind: 'source' | 'destination', ref: string, config: unknown): ConfigIssue[] {
  const definition = definitions.find((candidate) => candidate.kind === kind && `${candidate.id}@${candidate.version}` === ref);
  if (!definition) return [{ path: '', message: `no ${kind} connector ${ref}` }];
  const parsed = definition.config.safeParse(config);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}
