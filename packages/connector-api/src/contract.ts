import type { Readable, Writable } from 'node:stream';
import type { z } from 'zod';
import { UserError } from '@airlock/errors';

/** Structured, pino-compatible logging. Pass metadata only: never file contents, secrets or key material. */
export interface Logger {
  debug(meta: Record<string, unknown>, message: string): void;
  info(meta: Record<string, unknown>, message: string): void;
  warn(meta: Record<string, unknown>, message: string): void;
  error(meta: Record<string, unknown>, message: string): void;
}

/** What the host gives a connector for one run. */
export interface ConnectorContext {
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /**
   * Resolves a credential reference from the agent's local secrets file. Secrets never come from
   * the control plane; the connector validates the shape it needs.
   */
  secret(ref: string): Promise<Readonly<Record<string, string>>>;
  /**
   * Receives each entry a source passes over (through `skipEntry`), for the run's report. A host
   * that leaves it out gets a warning in the log per entry instead.
   */
  readonly skipped?: (entry: SkippedEntry) => void;
}

/** A directory entry the selection would have taken but the source left alone, and why. */
export interface SkippedEntry {
  /** Where it was listed: an absolute path. */
  readonly directory: string;
  /** Its name as `printableName` renders it: for people, never to open anything with. */
  readonly name: string;
  readonly reason: 'name-not-utf8';
}

/**
 * A resource a connector will touch, declared before it connects so that the host can check it
 * against the local policy. `path` is an absolute POSIX path and may end in a glob for sources;
 * for a script it is `/<script name>`.
 */
export interface ResourceClaim {
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

export interface SourceSession {
  /** The files the configuration selects, in a stable order. */
  list(): Promise<SourceFile[]>;
  /** A byte stream of one listed file. Plaintext: the host pipes it straight into encryption. */
  open(file: SourceFile): Promise<Readable>;
  /**
   * Optional post-delivery actions. The host calls them only after the file's delivery is
   * committed, and only when the agent's local policy allows the action for this source (and, for
   * `archive`, the directory). An implementation must refuse, with `ConflictError`, a file whose
   * size or mtime differs from `file` (it changed since it was read), and must never replace an
   * existing file. A source without them cannot run an integration that asks for them.
   */
  remove?(file: SourceFile): Promise<void>;
  /** Moves the file into `directory` (absolute, normalized) under its own name. */
  archive?(file: SourceFile, directory: string): Promise<void>;
  close(): Promise<void>;
}

export interface PendingDelivery {
  /** Where the ciphertext goes. Nothing is visible under the final name until `commit`. */
  readonly stream: Writable;
  /** Makes the written bytes durable, then visible under the final name, atomically. */
  commit(): Promise<{ location: string }>;
  /** Removes whatever was written. Safe to call more than once, and after a failed commit. */
  abort(): Promise<void>;
}

export interface DestinationSession {
  /** Starts a delivery named `name`, a single path component the host has already checked. */
  begin(name: string): Promise<PendingDelivery>;
  close(): Promise<void>;
}

interface DefinitionBase<TConfig> {
  /** A short, stable, lowercase id (`sftp`, `local`). Stored jobs name `id@version`. */
  readonly id: string;
  /** Bumped when the config schema changes incompatibly; old versions stay registered. */
  readonly version: number;
  readonly title: string;
  readonly config: z.ZodType<TConfig>;
  /** Documents the shape of the secret this connector reads through `ctx.secret`, if any. */
  readonly secrets?: z.ZodType<Readonly<Record<string, string>>>;
}

export interface SourceDefinition<TConfig = unknown> extends DefinitionBase<TConfig> {
  readonly kind: 'source';
  /** What `connect` and `open` may read. Must be computable without any I/O. */
  claims(config: TConfig): ResourceClaim[];
  /** The claim one listed file stands for, checked again by the host before it is opened. */
  claimFor(config: TConfig, file: SourceFile): ResourceClaim;
  connect(ctx: ConnectorContext, config: TConfig): Promise<SourceSession>;
}

export interface DestinationDefinition<TConfig = unknown> extends DefinitionBase<TConfig> {
  readonly kind: 'destination';
  /** Where deliveries land. Must be computable without any I/O. */
  claims(config: TConfig): ResourceClaim[];
  connect(ctx: ConnectorContext, config: TConfig): Promise<DestinationSession>;
}

/** A source with its configuration parsed and checked: what the host works with. */
export interface BoundSource {
  readonly ref: string;
  claims(): ResourceClaim[];
  claimFor(file: SourceFile): ResourceClaim;
  connect(ctx: ConnectorContext): Promise<SourceSession>;
}

export interface BoundDestination {
  readonly ref: string;
  claims(): ResourceClaim[];
  connect(ctx: ConnectorContext): Promise<DestinationSession>;
}

/** The type-erased face of a definition that a registry holds. */
export interface RegisteredSource {
  readonly kind: 'source';
  readonly id: string;
  readonly version: number;
  readonly title: string;
  readonly config: z.ZodType<unknown>;
  /** Parses `config` with the definition's schema; throws `UserError` listing every problem. */
  bind(config: unknown): BoundSource;
}

export interface RegisteredDestination {
  readonly kind: 'destination';
  readonly id: string;
  readonly version: number;
  readonly title: string;
  readonly config: z.ZodType<unknown>;
  bind(config: unknown): BoundDestination;
}

function parseConfig<TConfig>(ref: string, schema: z.ZodType<TConfig>, raw: unknown): TConfig {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  throw new UserError(`invalid ${ref} config: ${problems.join('; ')}`);
}

export function defineSource<TConfig>(
  definition: Omit<SourceDefinition<TConfig>, 'kind'>,
): SourceDefinition<TConfig> & RegisteredSource {
  const ref = `${definition.id}@${definition.version}`;
  return {
    ...definition,
    kind: 'source',
    bind(raw) {
      const config = parseConfig(ref, definition.config, raw);
      return {
        ref,
        claims: () => definition.claims(config),
        claimFor: (file) => definition.claimFor(config, file),
        connect: (ctx) => definition.connect(ctx, config),
      };
    },
  };
}

export function defineDestination<TConfig>(
  definition: Omit<DestinationDefinition<TConfig>, 'kind'>,
): DestinationDefinition<TConfig> & RegisteredDestination {
  const ref = `${definition.id}@${definition.version}`;
  return {
    ...definition,
    kind: 'destination',
    bind(raw) {
      const config = parseConfig(ref, definition.config, raw);
      return {
        ref,
        claims: () => definition.claims(config),
        connect: (ctx) => definition.connect(ctx, config),
      };
    },
  };
}
