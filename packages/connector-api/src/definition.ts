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
  /** The scheme the definition declares (`SchemeSpec.name`); the registry, not this type, says which exist. */
  readonly scheme: string;
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

/**
 * How a scheme's resources are spelled, in claims and in control-plane scopes:
 * - `network`: `<name>://<host>[:<port>]/<path>`; a claim's `authority` is `host:port`;
 * - `path`: `<name>:///<path>`, a path on the agent's own host;
 * - `name`: `<name>:<name>`, one approved thing in the local policy; a claim's path is `/<name>`.
 * Two connectors may share a scheme (the SFTP source and destination do) only with the same spec.
 */
export interface SchemeSpec {
  /** Lowercase: letters, digits, `+`, `.`, `-`, starting with a letter. */
  readonly name: string;
  readonly form: 'network' | 'path' | 'name';
  /** The port a scope without one means; network schemes only. */
  readonly defaultPort?: number;
}

/**
 * What one entry of a connector's local-policy section allows for a claim, in the host's terms:
 * the host checks paths, post-delivery actions and recipient keys the same way for every connector.
 */
export interface PolicyGrant {
  /**
   * For a source: path patterns it may read (a claim must lie inside a pattern's base, and each
   * file must match a pattern). For a destination: directories deliveries may land in or below.
   */
  readonly paths: readonly string[];
  /** May a job delete a source file after delivery? Default no. */
  readonly allowDelete?: boolean;
  /** Directories a job may move delivered source files into. Default none. */
  readonly allowArchiveTo?: readonly string[];
  /** Recipient keys this destination adds to the policy's global ones (OpenPGP fingerprints, uppercase hex). */
  readonly recipients?: readonly string[];
}

/**
 * A connector's section of the agent's local policy (`sources.<id>` or `destinations.<id>`): a
 * list of entries, each parsed with `entry`. The on-prem admin writes them; the control plane
 * never sees them.
 */
export interface LocalPolicySection<TEntry> {
  /** One entry, strict: an unknown key is an error, so a misspelled pin never silently widens anything. */
  readonly entry: z.ZodType<TEntry>;
  /**
   * What `entry` grants for `claim`, or `undefined` when the entry is about something else (another
   * server, another pinned key, another approved name). Pure.
   */
  grant(entry: TEntry, claim: ResourceClaim): PolicyGrant | undefined;
}

interface DefinitionBase<TConfig, TPolicy> {
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
  /**
   * The shape of the secret this connector reads through `ctx.secret`, if any. The agent checks
   * every `secrets.yaml` entry against the registered shapes when it loads the file, and each
   * resolved secret against this one before the connector sees it; a connector without it gets no
   * secrets at all.
   */
  readonly secrets?: z.ZodType<Readonly<Record<string, string>>>;
  /** The scheme its claims use. */
  readonly scheme: SchemeSpec;
  /** Its section of the agent's local policy; the runtime receives the entries that allowed a run. */
  readonly policy: LocalPolicySection<TPolicy>;
}

export interface SourceDefinition<TConfig = unknown, TPolicy = unknown> extends DefinitionBase<TConfig, TPolicy> {
  readonly kind: 'source';
  /** What the source may read or run. Pure. */
  claims(config: TConfig): ResourceClaim[];
  /** The claim one listed file stands for, checked again by the host before it is opened. */
  claimFor(config: TConfig, file: SourceFile): ResourceClaim;
}

export interface DestinationDefinition<TConfig = unknown, TPolicy = unknown> extends DefinitionBase<TConfig, TPolicy> {
  readonly kind: 'destination';
  /** The directories deliveries land in. Pure. */
  claims(config: TConfig): ResourceClaim[];
}

export type ConnectorDefinition = SourceDefinition | DestinationDefinition;

export function sourceDefinition<TConfig, TPolicy>(definition: Omit<SourceDefinition<TConfig, TPolicy>, 'kind'>): SourceDefinition<TConfig, TPolicy> {
  return { ...definition, kind: 'source' };
}

export function destinationDefinition<TConfig, TPolicy>(
  definition: Omit<DestinationDefinition<TConfig, TPolicy>, 'kind'>,
): DestinationDefinition<TConfig, TPolicy> {
  return { ...definition, kind: 'destination' };
}

/** `id@version`, the name stored integrations and jobs use. */
export function refOf(definition: Pick<DefinitionBase<unknown, unknown>, 'id' | 'version'>): string {
  return `${definition.id}@${definition.version}`;
}

/**
 * Parses `raw` with the definition's schema; throws `UserError` listing every problem with its
 * path, each under `path` (`source.config`) when given.
 */
export function parseConfig<TConfig>(definition: Pick<DefinitionBase<TConfig, unknown>, 'id' | 'version' | 'config'>, raw: unknown, path = ''): TConfig {
  const parsed = definition.config.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new UserError(`invalid ${refOf(definition)} config: ${formatIssues(parsed.error.issues, path)}`);
}

/** The claims of a config as an admin wrote it: parsed with the definition's own schema first. */
export function claimsOf<TConfig, TPolicy>(definition: SourceDefinition<TConfig, TPolicy> | DestinationDefinition<TConfig, TPolicy>, raw: unknown, path = ''): ResourceClaim[] {
  return definition.claims(parseConfig(definition, raw, path));
}

const SCHEME_NAME = /^[a-z][a-z0-9+.-]{0,31}$/;

/**
 * The schemes a set of definitions declares, by name. Throws `UserError` for a malformed name or
 * two definitions that spell one scheme differently, so the registry stays the single source of
 * what a scope may name.
 */
export function schemesOf(definitions: ReadonlyArray<Pick<DefinitionBase<unknown, unknown>, 'id' | 'version' | 'scheme'>>): ReadonlyMap<string, SchemeSpec> {
  const schemes = new Map<string, SchemeSpec>();
  for (const definition of definitions) {
    const spec = definition.scheme;
    if (!SCHEME_NAME.test(spec.name)) throw new UserError(`${refOf(definition)}: bad scheme name ${JSON.stringify(spec.name)}`);
    if ((spec.form === 'network') !== (spec.defaultPort !== undefined)) {
      throw new UserError(`${refOf(definition)}: a network scheme needs a default port, and only a network scheme has one`);
    }
    const known = schemes.get(spec.name);
    if (known && (known.form !== spec.form || known.defaultPort !== spec.defaultPort)) {
      throw new UserError(`${refOf(definition)}: scheme ${spec.name} is already registered with another form or port`);
    }
    schemes.set(spec.name, spec);
  }
  return schemes;
}
