import type { Readable, Writable } from 'node:stream';
import type { z } from 'zod';
import {
  refOf,
  parseConfig,
  type DestinationDefinition,
  type ResourceClaim,
  type SourceDefinition,
  type SourceFile,
} from './definition.ts';

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

/** How a source connects: the runtime half of a connector, built on its definition. */
export interface SourceRuntime<TConfig> {
  connect(ctx: ConnectorContext, config: TConfig): Promise<SourceSession>;
}

export interface DestinationRuntime<TConfig> {
  connect(ctx: ConnectorContext, config: TConfig): Promise<DestinationSession>;
}

export type SourceConnector<TConfig> = SourceDefinition<TConfig> & SourceRuntime<TConfig> & RegisteredSource;
export type DestinationConnector<TConfig> = DestinationDefinition<TConfig> & DestinationRuntime<TConfig> & RegisteredDestination;

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

/** A runnable source: its definition (schema, claims) and how it connects. */
export function defineSource<TConfig>(definition: SourceDefinition<TConfig>, runtime: SourceRuntime<TConfig>): SourceConnector<TConfig> {
  const ref = refOf(definition);
  return {
    ...definition,
    connect: (ctx, config) => runtime.connect(ctx, config),
    bind(raw) {
      const config = parseConfig(definition, raw);
      return {
        ref,
        claims: () => definition.claims(config),
        claimFor: (file) => definition.claimFor(config, file),
        connect: (ctx) => runtime.connect(ctx, config),
      };
    },
  };
}

/** A runnable destination: its definition (schema, claims) and how it connects. */
export function defineDestination<TConfig>(
  definition: DestinationDefinition<TConfig>,
  runtime: DestinationRuntime<TConfig>,
): DestinationConnector<TConfig> {
  const ref = refOf(definition);
  return {
    ...definition,
    connect: (ctx, config) => runtime.connect(ctx, config),
    bind(raw) {
      const config = parseConfig(definition, raw);
      return {
        ref,
        claims: () => definition.claims(config),
        connect: (ctx) => runtime.connect(ctx, config),
      };
    },
  };
}
