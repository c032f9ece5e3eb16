import type { Readable, Writable } from 'node:stream';
import { z } from 'zod';
import { formatIssues, UnexpectedError, UserError } from '@airlock/errors';
import {
  refOf,
  parseConfig,
  type DestinationDefinition,
  type LocalPolicySection,
  type ResourceClaim,
  type SchemeSpec,
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
  /**
   * The entries of this connector's local-policy section that allowed the run, as the host found
   * them when it checked the claims. A runtime that runs only what the on-prem admin approved
   * (scripts, queries) takes the approval from here, never from the job.
   */
  readonly policy?: readonly unknown[];
}

/** A directory entry the selection would have taken but the source left alone, and why. */
export interface SkippedEntry {
  /** Where it was listed: an absolute path. */
  readonly directory: string;
  /** Its name as `printableName` renders it: for people, never to open anything with. */
  readonly name: string;
  /** `name-not-utf8`: its bytes are not UTF-8; `name-unsafe`: no safe path component (see `checkListedName`). */
  readonly reason: 'name-not-utf8' | 'name-unsafe';
}

export interface SourceSession {
  /** The files the configuration selects, in a stable order. */
  list(): Promise<SourceFile[]>;
  /**
   * A byte stream of one listed file. Plaintext: the host pipes it straight into encryption. It may
   * lend its chunks (`lendChunks`), and then reuses only those the host hands back.
   */
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

/**
 * How a source connects: the runtime half of a connector, built on its definition. `policy` holds
 * the local-policy entries that allowed this run (parsed with the definition's entry schema);
 * `ctx.secret` returns only secrets of the definition's declared shape.
 */
export interface SourceRuntime<TConfig, TPolicy = unknown> {
  connect(ctx: ConnectorContext, config: TConfig, policy: readonly TPolicy[]): Promise<SourceSession>;
}

export interface DestinationRuntime<TConfig, TPolicy = unknown> {
  connect(ctx: ConnectorContext, config: TConfig, policy: readonly TPolicy[]): Promise<DestinationSession>;
}

/**
 * A runtime, or a function that loads it on first connect (`() => import('./runtime.ts').then(...)`).
 * A connector built on a large SDK loads it lazily, so an agent that never uses the connector never
 * pays for it in memory or start-up time. A load that fails is tried again on the next connect.
 */
export type RuntimeOrLoader<TRuntime> = TRuntime | (() => Promise<TRuntime>);

function loaderOf<TRuntime extends object>(runtime: RuntimeOrLoader<TRuntime>): () => Promise<TRuntime> {
  if (typeof runtime !== 'function') return () => Promise.resolve(runtime);
  let loading: Promise<TRuntime> | undefined;
  return () => {
    loading ??= runtime().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
}

export type SourceConnector<TConfig, TPolicy = unknown> = SourceDefinition<TConfig, TPolicy> & RegisteredSource;
export type DestinationConnector<TConfig, TPolicy = unknown> = DestinationDefinition<TConfig, TPolicy> & RegisteredDestination;

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

/** What a registry needs of any definition, with its types erased. */
interface Registered {
  readonly id: string;
  readonly version: number;
  readonly title: string;
  readonly config: z.ZodType<unknown>;
  readonly secrets?: z.ZodType<Readonly<Record<string, string>>>;
  readonly scheme: SchemeSpec;
  readonly policy: LocalPolicySection<unknown>;
}

/** The type-erased face of a definition that a registry holds. */
export interface RegisteredSource extends Registered {
  readonly kind: 'source';
  /** Parses `config` with the definition's schema; throws `UserError` listing every problem. */
  bind(config: unknown): BoundSource;
}

export interface RegisteredDestination extends Registered {
  readonly kind: 'destination';
  bind(config: unknown): BoundDestination;
}

/**
 * The context a runtime sees: secrets checked against the definition's shape (a connector that
 * declares none gets none), and the policy entries parsed with its own entry schema.
 */
function runtimeContext<TPolicy>(
  definition: { readonly id: string; readonly version: number; readonly secrets?: z.ZodType<Readonly<Record<string, string>>>; readonly policy: LocalPolicySection<TPolicy> },
  ctx: ConnectorContext,
): { ctx: ConnectorContext; policy: TPolicy[] } {
  const ref = refOf(definition);
  const secret = async (name: string): Promise<Readonly<Record<string, string>>> => {
    if (!definition.secrets) throw new UserError(`${ref} takes no secrets, yet asked for credential ${JSON.stringify(name)}`);
    const parsed = definition.secrets.safeParse(await ctx.secret(name));
    // zod's issues name places and expectations, never the value, so no secret reaches the message.
    if (!parsed.success) throw new UserError(`credential ${JSON.stringify(name)} in secrets.yaml does not have the shape ${ref} needs: ${formatIssues(parsed.error.issues)}`);
    return parsed.data;
  };
  const entries = z.array(definition.policy.entry).safeParse(ctx.policy ?? []);
  if (!entries.success) throw new UnexpectedError(`the host passed ${ref} policy entries its schema refuses: ${formatIssues(entries.error.issues)}`);
  return { ctx: { ...ctx, secret }, policy: entries.data };
}

/** A runnable source: its definition (schema, claims, policy section) and how it connects. */
export function defineSource<TConfig, TPolicy>(
  definition: SourceDefinition<TConfig, TPolicy>,
  runtime: RuntimeOrLoader<SourceRuntime<TConfig, TPolicy>>,
): SourceConnector<TConfig, TPolicy> {
  const ref = refOf(definition);
  const load = loaderOf(runtime);
  return {
    ...definition,
    policy: erasePolicy(definition.policy),
    bind(raw) {
      const config = parseConfig(definition, raw);
      return {
        ref,
        claims: () => definition.claims(config),
        claimFor: (file) => definition.claimFor(config, file),
        connect: async (ctx) => {
          const bound = runtimeContext(definition, ctx);
          return (await load()).connect(bound.ctx, config, bound.policy);
        },
      };
    },
  };
}

/** The section with its entry type erased: entries reach `grant` only after `entry` parsed them. */
function erasePolicy<TPolicy>(section: LocalPolicySection<TPolicy>): LocalPolicySection<TPolicy> & LocalPolicySection<unknown> {
  return {
    entry: section.entry,
    grant(entry: unknown, claim: ResourceClaim) {
      const parsed = section.entry.safeParse(entry);
      return parsed.success ? section.grant(parsed.data, claim) : undefined;
    },
  };
}

/** A runnable destination: its definition (schema, claims) and how it connects. */
export function defineDestination<TConfig, TPolicy>(
  definition: DestinationDefinition<TConfig, TPolicy>,
  runtime: RuntimeOrLoader<DestinationRuntime<TConfig, TPolicy>>,
): DestinationConnector<TConfig, TPolicy> {
  const ref = refOf(definition);
  const load = loaderOf(runtime);
  return {
    ...definition,
    policy: erasePolicy(definition.policy),
    bind(raw) {
      const config = parseConfig(definition, raw);
      return {
        ref,
        claims: () => definition.claims(config),
        connect: async (ctx) => {
          const bound = runtimeContext(definition, ctx);
          return (await load()).connect(bound.ctx, config, bound.policy);
        },
      };
    },
  };
}
