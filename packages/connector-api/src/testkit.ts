/**
 * The connector testkit: in-memory connectors for host tests, and the doubles a connector author
 * needs. `memorySource(files)` and `memoryDestination()` are ordinary definitions (`memory@1`):
 * register them in a `ConnectorRegistry` and point a job at them. Each records what the host did
 * (opens, deliveries, aborts, removals) and takes hooks to inject failures or change files between
 * two listings. Import from `@airlock/connector-api/testkit`; never from production code.
 */
import { Readable, Writable } from 'node:stream';
import { z } from 'zod';
import { ConflictError, NotAllowedError, NotFoundError, UnexpectedError } from '@airlock/errors';
import { type ConnectorContext, defineDestination, defineSource, type Logger, type RegisteredDestination, type RegisteredSource } from './contract.ts';
import { destinationDefinition, type LocalPolicySection, sourceDefinition, type SourceFile } from './definition.ts';
import { lendChunks } from './lending.ts';
import { assertSafeName, matchPath, normalizePath, pathComponents } from './paths.ts';

export const quietLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** A context with no secrets and a quiet logger. */
export function mockContext(overrides: Partial<ConnectorContext> = {}): ConnectorContext {
  return {
    signal: new AbortController().signal,
    logger: quietLogger,
    secret: (ref) => Promise.reject(new NotFoundError(`no secret ${ref} in the mock context`)),
    ...overrides,
  };
}

interface StoredFile {
  data: Buffer;
  mtimeMs: number;
}

export interface MemorySourceHooks {
  /** Called after each `list()` with its 1-based count, before it returns: change files here. */
  onList?(count: number): void;
  /** Called at each `open`, with how often `open` was called for this path before (0 the first time). Throw to fail it. */
  onOpen?(file: SourceFile, previousOpens: number): void;
  /** Leave out `remove` and `archive`, like a source that cannot do post-delivery actions. */
  withoutPostActions?: boolean;
  /** Chunk size of the streams `open` returns. Default 64 KiB. */
  chunkSize?: number;
  /** Called as each chunk is taken from a stream `open` returned, with its size. */
  onRead?(bytes: number): void;
  /**
   * Lend the chunks (`lendChunks`) from a few reused buffers, as a source that reads into its
   * buffers again does. A released buffer is overwritten at once, so a consumer that still used it
   * would deliver the wrong bytes.
   */
  lend?: boolean;
}

/** What the consumers of a lending memory source did with its chunks (`MemorySourceHooks.lend`). */
export interface LendingRecord {
  lent: number;
  /** Chunks handed back, each once and as the object that was lent. */
  released: number;
  /** Releases of anything else: a subarray, another object, a chunk already handed back. */
  refused: number;
  /** Buffers allocated: fewer than `lent` once chunks come back. */
  allocated: number;
}

export interface MemorySource extends RegisteredSource {
  /** The current files by absolute path. */
  readonly files: Map<string, StoredFile>;
  /** Paths in the order they were opened successfully. */
  readonly opened: string[];
  readonly removed: string[];
  readonly archived: Array<{ path: string; directory: string }>;
  /** Creates or replaces a file; a new mtime by default, like a real write. */
  write(path: string, data: string | Uint8Array, mtimeMs?: number): void;
  /** With `lend`: every stream's chunks together. */
  readonly lending: LendingRecord;
  /** Sessions connected and not yet closed. */
  readonly sessionsOpen: { count: number };
}

const fileScheme = { name: 'file', form: 'path' } as const;

/** `{ paths }`: the memory connectors claim `file` resources, so a host's `local` section governs them as well. */
const memoryPolicy: LocalPolicySection<{ paths: string[] }> = {
  entry: z.strictObject({ paths: z.array(z.string()).min(1) }),
  grant: (entry, claim) => (claim.scheme === 'file' ? { paths: entry.paths } : undefined),
};

let clock = 1_700_000_000_000;
const nextMtime = () => (clock += 1000);

function nameOf(filePath: string): string {
  return pathComponents(filePath).at(-1) ?? '';
}

/**
 * An in-memory source. Its config is `{ path }`, a glob matched with `matchPath`; its claims use
 * the `file` scheme, so the local policy's `sources.local` entries govern it.
 */
export function memorySource(initial: Record<string, string | Uint8Array> = {}, hooks: MemorySourceHooks = {}): MemorySource {
  const files = new Map<string, StoredFile>();
  const opened: string[] = [];
  const removed: string[] = [];
  const archived: Array<{ path: string; directory: string }> = [];
  const write = (filePath: string, data: string | Uint8Array, mtimeMs = nextMtime()) => {
    files.set(normalizePath(filePath), { data: Buffer.from(data), mtimeMs });
  };
  for (const [filePath, data] of Object.entries(initial)) write(filePath, data);
  let lists = 0;
  const openCalls = new Map<string, number>();
  const lending: LendingRecord = { lent: 0, released: 0, refused: 0, allocated: 0 };
  const sessionsOpen = { count: 0 };

  /** A stream of `chunks` copied into reused buffers, lending each one until it is handed back. */
  const lendingStream = (chunks: Buffer[]): Readable => {
    const spare: Buffer[] = [];
    const out = new Set<Buffer>();
    const stream = Readable.from(
      (function* () {
        for (const chunk of chunks) {
          hooks.onRead?.(chunk.length);
          const reused = spare.findIndex((buffer) => buffer.length === chunk.length);
          const buffer = reused >= 0 ? spare.splice(reused, 1)[0] : undefined;
          const into = buffer ?? Buffer.allocUnsafe(chunk.length);
          if (buffer === undefined) lending.allocated += 1;
          chunk.copy(into);
          out.add(into);
          lending.lent += 1;
          yield into;
        }
      })(),
    );
    lendChunks(stream, (chunk) => {
      if (!Buffer.isBuffer(chunk) || !out.delete(chunk)) {
        lending.refused += 1;
        return;
      }
      lending.released += 1;
      chunk.fill(0xee);
      spare.push(chunk);
    });
    return stream;
  };

  const current = (file: SourceFile, pattern: string): StoredFile => {
    if (!matchPath(pattern, file.path)) throw new NotAllowedError(`${file.path} is not selected by this source`);
    const stored = files.get(file.path);
    if (!stored) throw new NotFoundError(`${file.path} does not exist`);
    return stored;
  };
  const unchanged = (file: SourceFile, stored: StoredFile) => {
    if (stored.data.length !== file.size || stored.mtimeMs !== file.mtimeMs) throw new ConflictError(`${file.path} changed since it was listed`);
  };

  const memory = sourceDefinition<{ path: string }, { paths: string[] }>({
    id: 'memory',
    version: 1,
    title: 'In-memory source (tests)',
    config: z.strictObject({ path: z.string() }),
    claims: (config) => [{ action: 'read', scheme: 'file', path: config.path }],
    claimFor: (_config, file) => ({ action: 'read', scheme: 'file', path: file.path }),
    scheme: fileScheme,
    policy: memoryPolicy,
  });
  const definition = defineSource(memory, {
    connect(_ctx, config) {
      sessionsOpen.count += 1;
      let closed = false;
      const session = {
        list() {
          const listed = [...files.entries()]
            .filter(([filePath]) => matchPath(config.path, filePath))
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([filePath, stored]) => ({ path: filePath, name: nameOf(filePath), size: stored.data.length, mtimeMs: stored.mtimeMs }));
          lists += 1;
          hooks.onList?.(lists);
          return Promise.resolve(listed);
        },
        async open(file: SourceFile) {
          const previous = openCalls.get(file.path) ?? 0;
          openCalls.set(file.path, previous + 1);
          hooks.onOpen?.(file, previous);
          const stored = current(file, config.path);
          opened.push(file.path);
          const chunkSize = hooks.chunkSize ?? 65_536;
          const chunks = Array.from({ length: Math.ceil(stored.data.length / chunkSize) }, (_, i) => stored.data.subarray(i * chunkSize, (i + 1) * chunkSize));
          if (hooks.lend) return lendingStream(chunks);
          // A generator runs only when the consumer asks for the next chunk: `onRead` counts what was pulled.
          return Readable.from(
            (function* () {
              for (const chunk of chunks) {
                hooks.onRead?.(chunk.length);
                yield chunk;
              }
            })(),
          );
        },
        close: () => {
          if (!closed) sessionsOpen.count -= 1;
          closed = true;
          return Promise.resolve();
        },
      };
      if (hooks.withoutPostActions) return Promise.resolve(session);
      return Promise.resolve({
        ...session,
        async remove(file: SourceFile) {
          unchanged(file, current(file, config.path));
          files.delete(file.path);
          removed.push(file.path);
        },
        async archive(file: SourceFile, directory: string) {
          const stored = current(file, config.path);
          unchanged(file, stored);
          const target = `${normalizePath(directory)}/${assertSafeName(file.name)}`;
          if (files.has(target)) throw new ConflictError(`${target} exists`);
          files.set(target, stored);
          files.delete(file.path);
          archived.push({ path: file.path, directory });
        },
      });
    },
  });
  return Object.assign(definition, { files, opened, removed, archived, write, lending, sessionsOpen });
}

export interface MemoryDestinationHooks {
  /** Called at each `connect`. Throw to fail it. */
  onConnect?(): void;
  /** Called before each commit with the delivery's name and its 1-based attempt for that name. Throw to fail it. */
  onCommit?(name: string, attempt: number): void;
  /** Each write is acknowledged this long after it arrives: a slow destination. Default 0. */
  writeDelayMs?: number;
  /** Called as each chunk is written, with its size. */
  onWrite?(bytes: number): void;
}

export interface MemoryDestination extends RegisteredDestination {
  /** Committed deliveries by name. */
  readonly delivered: Map<string, Buffer>;
  /** Names of begun deliveries, in order. */
  readonly begun: string[];
  /** How many deliveries were aborted. */
  readonly aborts: { count: number };
  /** The most deliveries that were open at the same time. */
  readonly peakOpen: { count: number };
}

/** An in-memory destination: atomic like a real one (nothing visible before commit, never overwrites). */
export function memoryDestination(hooks: MemoryDestinationHooks = {}): MemoryDestination {
  const delivered = new Map<string, Buffer>();
  const begun: string[] = [];
  const aborts = { count: 0 };
  const peakOpen = { count: 0 };
  let open = 0;
  const memory = destinationDefinition<{ directory: string }, { paths: string[] }>({
    id: 'memory',
    version: 1,
    title: 'In-memory destination (tests)',
    config: z.strictObject({ directory: z.string() }),
    claims: (config) => [{ action: 'write', scheme: 'file', path: config.directory }],
    scheme: fileScheme,
    policy: memoryPolicy,
  });
  const definition = defineDestination(memory, {
    connect(_ctx, config) {
      try {
        hooks.onConnect?.();
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new UnexpectedError(String(error)));
      }
      return Promise.resolve({
        async begin(name: string) {
          assertSafeName(name);
          begun.push(name);
          open += 1;
          peakOpen.count = Math.max(peakOpen.count, open);
          const chunks: Buffer[] = [];
          let state: 'writing' | 'committed' | 'aborted' = 'writing';
          const settle = (next: 'committed' | 'aborted') => {
            if (state === 'writing') open -= 1;
            state = next;
          };
          const stream = new Writable({
            write(chunk: Buffer, _encoding, callback) {
              chunks.push(Buffer.from(chunk));
              hooks.onWrite?.(chunk.length);
              if (hooks.writeDelayMs === undefined) callback();
              else setTimeout(callback, hooks.writeDelayMs);
            },
          });
          return {
            stream,
            commit() {
              if (state !== 'writing') return Promise.reject(new UnexpectedError(`delivery ${name} is ${state}`));
              if (!stream.writableFinished) return Promise.reject(new UnexpectedError(`commit of ${name} before its stream finished`));
              try {
                hooks.onCommit?.(name, begun.filter((n) => n === name).length);
                if (delivered.has(name)) throw new ConflictError(`${name} exists`);
              } catch (error) {
                settle('aborted');
                return Promise.reject(error instanceof Error ? error : new UnexpectedError(String(error)));
              }
              delivered.set(name, Buffer.concat(chunks));
              settle('committed');
              return Promise.resolve({ location: `${config.directory}/${name}` });
            },
            abort() {
              if (state === 'writing') {
                aborts.count += 1;
                settle('aborted');
              }
              stream.destroy();
              return Promise.resolve();
            },
          };
        },
        close: () => Promise.resolve(),
      });
    },
  });
  return Object.assign(definition, { delivered, begun, aborts, peakOpen });
}
