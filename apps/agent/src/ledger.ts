/**
 * The delivery ledger: which source files this agent has already delivered for an integration, so
 * that a later run does not send them again. One JSON Lines file per integration in
 * `<dataDir>/ledger/<integrationId>.jsonl` (mode 0600), appended and fsynced after each committed
 * delivery. Metadata only: source path, size, mtime and a keyed plaintext digest, never content.
 *
 * The rule: a listed file is skipped when the ledger holds an entry with the same path, size and
 * mtime. A file at a known path with a different size or mtime has changed and is sent again; its
 * new entry supersedes the old one. A damaged line (a crash in the middle of an append) is ignored,
 * which errs towards sending a file twice rather than never.
 */
import { type FileHandle, mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { assertSafeName, type SourceFile } from '@airlock/connector-api';
import { errnoCode } from './files.ts';

const entrySchema = z.strictObject({
  path: z.string().min(1),
  size: z.number().int().nonnegative(),
  mtimeMs: z.number(),
  /** HMAC-SHA256 under the agent's receipt key. */
  plaintextHmac: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** Entries written before plaintext digests were keyed. */
  plaintextSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  deliveredAt: z.iso.datetime(),
  runId: z.string(),
});
export type LedgerEntry = z.infer<typeof entrySchema>;

/** Rewrite the file once it holds this many more lines than live entries. */
const COMPACT_SLACK = 1000;

export class Ledger {
  readonly #entries: Map<string, LedgerEntry>;
  readonly #handle: FileHandle;
  #tail: Promise<void> = Promise.resolve();

  private constructor(entries: Map<string, LedgerEntry>, handle: FileHandle) {
    this.#entries = entries;
    this.#handle = handle;
  }

  static file(dataDir: string, integrationId: string): string {
    return path.join(dataDir, 'ledger', assertSafeName(`${integrationId}.jsonl`));
  }

  static async open(dataDir: string, integrationId: string): Promise<Ledger> {
    const file = Ledger.file(dataDir, integrationId);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const entries = new Map<string, LedgerEntry>();
    let lines = 0;
    const text = await readFile(file, 'utf8').catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return '';
      throw error;
    });
    for (const line of text.split('\n')) {
      if (line === '') continue;
      lines += 1;
      const parsed = entrySchema.safeParse(safeJson(line));
      if (parsed.success) entries.set(parsed.data.path, parsed.data);
    }
    if (lines > entries.size + COMPACT_SLACK) await compact(file, entries);
    return new Ledger(entries, await open(file, 'a', 0o600));
  }

  /** Whether this exact version of the file (path, size, mtime) was delivered before. */
  has(file: Pick<SourceFile, 'path' | 'size' | 'mtimeMs'>): boolean {
    const entry = this.#entries.get(file.path);
    return entry !== undefined && entry.size === file.size && entry.mtimeMs === file.mtimeMs;
  }

  /** Appends an entry and fsyncs it; appends from parallel transfers are serialized. */
  record(entry: LedgerEntry): Promise<void> {
    const line = `${JSON.stringify(entrySchema.parse(entry))}\n`;
    const write = this.#tail.then(async () => {
      await this.#handle.appendFile(line);
      await this.#handle.datasync();
      this.#entries.set(entry.path, entry);
    });
    // A failed append fails its own record() call, not every later one.
    this.#tail = write.catch(() => undefined);
    return write;
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#handle.close();
  }
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Writes the live entries to a temporary file, fsyncs it and renames it over the ledger. */
async function compact(file: string, entries: Map<string, LedgerEntry>): Promise<void> {
  const temp = `${file}.compact`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile([...entries.values()].map((entry) => `${JSON.stringify(entry)}\n`).join(''));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}
