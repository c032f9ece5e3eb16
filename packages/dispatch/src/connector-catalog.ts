/**
 * The connectors the console offers, with each config schema as JSON Schema (zod 4
 * `z.toJSONSchema`) so the console can generate its forms. The list is `connector-definitions.ts`;
 * to offer a new connector, add its definition there.
 */
import { z } from 'zod';
import { refOf, type ConnectorDefinition } from '@airlock/connector-api/definition';
import { destinationDefinition, destinationDefinitions, sourceDefinition, sourceDefinitions } from './connector-definitions.ts';

export interface ConnectorDescription {
  kind: 'source' | 'destination';
  /** `id@version`, what an integration spec names. */
  ref: string;
  title: string;
  /** JSON Schema (draft 2020-12) of the config as an admin types it: defaults make fields optional. */
  configSchema: Record<string, unknown>;
}

let catalog: ConnectorDescription[] | null = null;

export function connectorCatalog(): ConnectorDescription[] {
  const definitions: readonly ConnectorDefinition[] = [...sourceDefinitions, ...destinationDefinitions];
  catalog ??= definitions.map((definition) => ({
    kind: definition.kind,
    ref: refOf(definition),
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

/** Checks a config against its connector's zod schema: the same check `integrations.save` and the agent make. */
export function checkConnectorConfig(kind: 'source' | 'destination', ref: string, config: unknown): ConfigIssue[] {
  const definition = kind === 'source' ? sourceDefinition(ref) : destinationDefinition(ref);
  if (!definition) return [{ path: '', message: `no ${kind} connector ${ref}` }];
  const parsed = definition.config.safeParse(config);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}
