/**
 * A small pool of worker threads that verify pages of audit records (`verifyPage`), so that a
 * whole-trail verify hashes on every core while the main thread reads the next pages.
 *
 * The workers run `page-worker.ts`. From the sources (tsx, vitest) the worker registers tsx first.
 * A bundle carries it as `page-worker.js` at its root (`PAGE_WORKERS`, passed to `bundleNode`);
 * where a bundle did not include it, the pages are verified on the calling thread instead: slower,
 * never less checked.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type PageSummary, verifyPage } from './page-verify.ts';

/**
 * The worker threads' entry points for a bundle (`bundleNode`'s `workers`): a bundle that can
 * verify the whole trail includes them, so its workers start without tsx.
 */
export const PAGE_WORKERS: Readonly<Record<string, string>> = { 'page-worker': fileURLToPath(new URL('./page-worker.ts', import.meta.url)) };

/** Workers at most: beyond this, the database's reading, not hashing, sets the pace. */
export const MAX_PAGE_WORKERS = 4;

/** A page for a worker: the first `length` bytes of `buffer`, which the worker sends back when done. */
export interface PageTask {
  id: number;
  buffer: ArrayBuffer;
  length: number;
}

export interface PageVerifier {
  /** Worker threads in use; 0 when pages are verified on the calling thread. */
  readonly threads: number;
  /**
   * Verifies a page (`verifyPage`). The page's buffer is the verifier's from then on: moved to a
   * worker, and back, and handed out again by `spare`.
   */
  verify(page: Uint8Array): Promise<PageSummary>;
  /**
   * A buffer of a verified page, free to read the next page into, or undefined. Memory the
   * process has not touched yet costs page faults at first write, which for a whole-trail verify
   * that read every page into a new buffer was seconds; reused buffers are warm.
   */
  spare(): ArrayBuffer | undefined;
  close(): Promise<void>;
}

/** The buffers of verified pages, kept for reuse up to a few. */
class Spares {
  readonly #buffers: ArrayBuffer[] = [];

  put(buffer: ArrayBuffer): void {
    if (this.#buffers.length < 2 * MAX_PAGE_WORKERS + 2) this.#buffers.push(buffer);
  }

  take(): ArrayBuffer | undefined {
    return this.#buffers.pop();
  }
}

/**
 * The threads a whole-trail verify uses by default: one a core, at most `MAX_PAGE_WORKERS`, and
 * none on a single core. The database sends the rows as stored (binary COPY), so it needs far less
 * of a core than hashing does, and the thread that reads the pages only gathers bytes: on two
 * cores, two workers keep both busy while the database works in the gaps.
 */
export function defaultPageThreads(): number {
  const cores = availableParallelism();
  return cores < 2 ? 0 : Math.min(MAX_PAGE_WORKERS, cores);
}

function inThread(): PageVerifier {
  const spares = new Spares();
  return {
    threads: 0,
    verify(page) {
      const summary = verifyPage(page);
      if (page.buffer instanceof ArrayBuffer) spares.put(page.buffer);
      return Promise.resolve(summary);
    },
    spare: () => spares.take(),
    close: () => Promise.resolve(),
  };
}

// Loads the worker's module, through tsx's loader when it is TypeScript.
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(workerData.loader ? import(workerData.loader).then((tsx) => tsx.register()) : Promise.resolve()).then(() => import(workerData.entry));
`;

/**
 * The worker's entry and the loader it needs, or null when there is no worker file to run. In a
 * bundle this code sits in the root file or in a chunk one level below, and the worker at the root.
 */
function workerEntry(): { entry: string; loader: string | null } | null {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) {
    const dir = path.dirname(here);
    const file = [path.join(dir, 'page-worker.js'), path.join(dir, '..', 'page-worker.js')].find((candidate) => existsSync(candidate));
    return file === undefined ? null : { entry: pathToFileURL(file).href, loader: null };
  }
  const file = path.join(path.dirname(here), 'page-worker.ts');
  if (!existsSync(file)) return null;
  try {
    const tsx = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
    const loader = path.join(tsx, 'dist', 'esm', 'api', 'index.mjs');
    return existsSync(loader) ? { entry: pathToFileURL(file).href, loader: pathToFileURL(loader).href } : null;
  } catch {
    return null;
  }
}

interface Pending {
  resolve: (summary: PageSummary) => void;
  reject: (error: Error) => void;
}

class WorkerPool implements PageVerifier {
  readonly threads: number;
  readonly #workers: { worker: Worker; pending: Map<number, Pending> }[] = [];
  readonly #spares = new Spares();
  #nextId = 0;
  #failure: Error | null = null;

  constructor(threads: number, entry: { entry: string; loader: string | null }) {
    this.threads = threads;
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(BOOTSTRAP, { eval: true, workerData: entry });
      const slot = { worker, pending: new Map<number, Pending>() };
      worker.on('message', ({ id, summary, buffer }: { id: number; summary: PageSummary; buffer: ArrayBuffer }) => {
        this.#spares.put(buffer);
        const pending = slot.pending.get(id);
        slot.pending.delete(id);
        pending?.resolve(summary);
      });
      const fail = (error: Error) => {
        this.#failure ??= error;
        for (const pending of slot.pending.values()) pending.reject(error);
        slot.pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`an audit verify worker stopped (exit code ${code})`)));
      this.#workers.push(slot);
    }
  }

  verify(page: Uint8Array): Promise<PageSummary> {
    if (this.#failure) return Promise.reject(this.#failure);
    // The worker with the fewest pages waiting.
    let slot = this.#workers[0];
    for (const candidate of this.#workers) if (slot && candidate.pending.size < slot.pending.size) slot = candidate;
    if (!slot) return Promise.reject(new Error('no audit verify worker'));
    const id = this.#nextId++;
    // Moved, not copied: pages are megabytes each. A page that does not start its buffer is copied first.
    const owned = page.byteOffset === 0 && page.buffer instanceof ArrayBuffer ? page : page.slice();
    const task: PageTask = { id, buffer: owned.buffer as ArrayBuffer, length: owned.byteLength };
    const target = slot;
    return new Promise<PageSummary>((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.worker.postMessage(task, [task.buffer]);
    });
  }

  spare(): ArrayBuffer | undefined {
    return this.#spares.take();
  }

  async close(): Promise<void> {
    this.#failure ??= new Error('the audit verify pool is closed');
    await Promise.all(this.#workers.map(({ worker }) => worker.terminate()));
  }
}

/**
 * Verifiers for pages: `threads` workers (default `defaultPageThreads()`, at most
 * `MAX_PAGE_WORKERS`), or the calling thread for 0 or where no worker can be started.
 */
export function openPageVerifier(options: { threads?: number } = {}): PageVerifier {
  const threads = Math.max(0, Math.min(MAX_PAGE_WORKERS, Math.floor(options.threads ?? defaultPageThreads())));
  const entry = threads > 0 ? workerEntry() : null;
  return entry ? new WorkerPool(threads, entry) : inThread();
}
