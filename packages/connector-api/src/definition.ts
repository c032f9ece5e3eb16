/**
 * A connector's definition: what it is, how it is configured and what it touches, computed without
 * any I/O and without its runtime's dependencies. The control plane imports definitions only (to
 * validate configs, derive the scopes an integration needs and draw the console's forms); the
 * agent's runtime is built on the same object with `defineSource`/`defineDestination`, so every
 * schema exists exactly once. A connector package exports its definitions from a `./definition`
 * entry point that imports nothing but this contract, zod and its own schema modules.
 */
import type { z } from 'zod';
import { formatIssues, UserError } from '@airlock/errors';

/** What a claim lets the connector do to its resource; the control-plane scope it needs has the same action. */
export type ClaimAction = 'read' | 'write' | 'execute';

/**
 * A resource a connector will touch, declared before it connects so that the host can check it
 * against the local policy and the control plane can derive the scope it needs. `path` is an
 * absolute POSIX path and may end in a glob for sources; for a script it is `/<script name>`.
 */
export interface ResourceClaim {
  readonly action: ClaimAction;
  readonly scheme: 'sftp' | 'file' | 'script';
  /** `host:port` for network schemes. */
  readonly authority?: string;
  readonly path: string;
  /** The pinned host key (`SHA256:...`) for SSH-based schemes. */
  readonly hostKey?: string;
}

export interface SourceFile {
  /** Absolute POSIX path on the source, already checked to lie under the configured directory. */
  readonly path: string;
  /** The file's own name: one path component. */
  readonly name: string;
  readonly size: number;
  readonly mtimeMs: number;
  /**
   * Produced when read (a script's output): it has no size to check in advance, is never skipped
   * as already delivered, and has no post-action.
   */
  readonly generated?: boolean;
}

interface DefinitionBase<TConfig> {
  /** A short, stable, lowercase id (`sftp`, `local`). Stored jobs name `id@version`. */
  readonly id: string;
  /** Bumped when the config schema changes incompatibly; old versions stay registered. */
  readonly version: number;
  readonly title: string;
  /**
   * The whole config, strict: an unknown key (a misspelled `credentialRef`) is an error, never
   * silently dropped, because the control plane saves what this schema accepts.
   */
  readonly config: z.ZodType<TConfig>;
  /** Documents the shape of the secret this connector reads through `ctx.secret`, if any. */
  readonly secrets?: z.ZodType<Readonly<Record<string, string>>>;
}

export interface SourceDefinition<TConfig = unknown> extends DefinitionBase<TConfig> {
  readonly kind: 'source';
  /** What the source may read or run. Pure. */
  claims(config: TConfig): ResourceClaim[];
  /** The claim one listed file stands for, checked again by the host before it is opened. */
  claimFor(config: TConfig, file: SourceFile): ResourceClaim;
}

export interface DestinationDefinition<TConfig = unknown> extends DefinitionBase<TConfig> {
  readonly kind: 'destination';
  /** The directories deliveries land in. Pure. */
  claims(config: TConfig): ResourceClaim[];
}

export type ConnectorDefinition = SourceDefinition | DestinationDefinition;

export function sourceDefinition<TConfig>(definition: Omit<SourceDefinition<TConfig>, 'kind'>): SourceDefinition<TConfig> {
  return { ...definition, kind: 'source' };
}

export function destinationDefinition<TConfig>(definition: Omit<DestinationDefinition<TConfig>, 'kind'>): DestinationDefinition<TConfig> {
  return { ...definition, kind: 'destination' };
}

/** `id@version`, the name stored integrations and jobs use. */
export function refOf(definition: Pick<DefinitionBase<unknown>, 'id' | 'version'>): string {
  return `${definition.id}@${definition.version}`;
}

/**
 * Parses `raw` with the definition's schema; throws `UserError` listing every problem with its
 * path, each under `path` (`source.config`) when given.
 */
export function parseConfig<TConfig>(definition: Pick<DefinitionBase<TConfig>, 'id' | 'version' | 'config'>, raw: unknown, path = ''): TConfig {
  const parsed = definition.config.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new UserError(`invalid ${refOf(definition)} config: ${formatIssues(parsed.error.issues, path)}`);
}

/** The claims of a config as an admin wrote it: parsed with the definition's own schema first. */
export function claimsOf<TConfig>(definition: SourceDefinition<TConfig> | DestinationDefinition<TConfig>, raw: unknown, path = ''): ResourceClaim[] {
  return definition.claims(parseConfig(definition, raw, path));
}
