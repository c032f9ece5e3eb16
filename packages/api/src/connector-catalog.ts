/**
 * The connectors the console offers, with each config schema as JSON Schema (zod 4
 * `z.toJSONSchema`) so the console can generate its forms. To offer a new connector, add its
 * definition to the list below; agents run only what their own registry and local policy allow.
 */
import { z } from 'zod';

export interface ConnectorDescription {
  kind: 'source' | 'destination';
  /** `id@version`, what an integration spec names. */
  ref: string;
  title: string;
  /** JSON Schema (draft 2020-12) of the config as an admin types it: defaults make fields optional. */
  configSchema: Record<string, unknown>;
}

/**
 * Loaded on first use: the connector packages (ssh2 and all) are only needed for the console's
 * forms, not by every `airlock` command that imports this package.
 */
async function loadDefinitions() {
  const [local, script, sftp] = await Promise.all([import('@airlock/connector-local'), import('@airlock/connector-script'), import('@airlock/connector-sftp')]);
  // The script source's approved list lives in each agent's local policy; only its config shape matters here.
  return [sftp.sftpSource, local.localFolderSource, script.scriptSource([]), sftp.sftpDestination, local.localFolderDestination];
}

let definitions: ReturnType<typeof loadDefinitions> | null = null;
let catalog: ConnectorDescription[] | null = null;

export async function connectorCatalog(): Promise<ConnectorDescription[]> {
  definitions ??= loadDefinitions();
  catalog ??= (await definitions).map((definition) => ({
    kind: definition.kind,
    ref: `${definition.id}@${definition.version}`,
    title: definition.title,
    configSchema: z.toJSONSchema(definition.config, { io: 'input', unrepresentable: 'any' }),
  }));
  return catalog;
}

export interface ConfigIssue {
  /** Dotted path inside the config, empty for the whole object. */
  path: string;
  message: string;
}

/** Checks a config against its connector's zod schema: the same check the agent makes when it binds the job. */
export async function checkConnectorConfig(kind: 'source' | 'destination', ref: string, config: unknown): Promise<ConfigIssue[]> {
  definitions ??= loadDefinitions();
  const definition = (await definitions).find((candidate) => candidate.kind === kind && `${candidate.id}@${candidate.version}` === ref);
  if (!definition) return [{ path: '', message: `no ${kind} connector ${ref}` }];
  const parsed = definition.config.safeParse(config);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}
