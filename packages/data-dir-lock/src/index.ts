/**
 * One process per data directory. The agent's `run` and the control plane's embedded database
 * (PGlite, which allows one process) both take this lock before they touch their directory.
 *
 * The lock is a file holding the owner's pid and command. It appears with its content complete
 * (written to a private name, then hard-linked into place, which fails if the name exists), so
 * two processes starting at once cannot both create it, and nobody reads a half-written one. A lock
 * whose process is gone (a crash, a SIGKILL) is removed only under a takeover guard and after it
 * is read again, so a process that took it over in the meantime keeps it.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '@airlock/errors';

export interface LockHolder {
  readonly pid: number;
  /** What the holder said it is, e.g. `airlock serve`; null when the file does not say. */
  readonly command: string | null;
  /** The lock file. */
  readonly file: string;
}

export interface DataDirLock {
  readonly file: string;
  /** Removes the lock file if this process still holds it. */
  release(): Promise<void>;
}

export interface DataDirLockOptions {
  /** The lock file's name inside the directory, e.g. `run.lock`. */
  name: string;
  /** This process as a refused one will be told, e.g. `airlock serve`. One line. */
  command: string;
  /** The one-line refusal while a live process holds the lock: say what to do instead. */
  refusal: (holder: LockHolder) => string;
}

/** Another live process holds the directory. */
export class DataDirLockedError extends UserError {
  constructor(
    message: string,
    readonly holder: LockHolder,
  ) {
    super(message);
  }
}

/** Taking a stale lock away can race with another process doing the same: a few rounds settle it. */
const MAX_ATTEMPTS = 100;

function errnoCode(error: unknown): unknown {
  return error instanceof Error ? Reflect.get(error, 'code') : undefined;
}

/** Whether a process with this pid exists (EPERM: it does, under another user). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}

interface LockFile {
  readonly text: string;
  /** Null when the file does not hold a pid (left by something else): it is treated as stale. */
  readonly pid: number | null;
  readonly command: string | null;
}

async function readLock(file: string): Promise<LockFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  const [first = '', second = ''] = text.split('\n');
  const pid = Number(first.trim());
  const command = second.trim();
  return { text, pid: Number.isInteger(pid) && pid > 0 ? pid : null, command: command === '' ? null : command };
}

const heldByOther = (lock: LockFile): lock is LockFile & { pid: number } => lock.pid !== null && lock.pid !== process.pid && isAlive(lock.pid);

/** Creates `file` with `content` in one step; false when it already exists. */
async function create(file: string, content: string): Promise<boolean> {
  const draft = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await writeFile(draft, content, { mode: 0o600, flag: 'wx' });
  try {
    await link(draft, file);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(draft).catch(() => undefined);
  }
}

/**
 * Removes a lock judged stale, unless it changed since it was read. Only the holder of a takeover
 * guard (created the same exclusive way) may remove it, and it reads the lock again first, so two
 * processes taking over the same stale lock cannot both remove it and both win.
 */
async function removeStale(file: string, seen: LockFile): Promise<void> {
  const guard = `${file}.takeover`;
  if (!(await create(guard, `${process.pid}\n`))) {
    // Another process is taking over; a guard whose process died mid-takeover is cleared.
    const holder = await readLock(guard);
    if (holder !== undefined && !heldByOther(holder) && holder.pid !== process.pid) await unlink(guard).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
    return;
  }
  try {
    const current = await readLock(file);
    if (current !== undefined && current.text === seen.text) {
      await unlink(file).catch((error: unknown) => {
        if (errnoCode(error) !== 'ENOENT') throw error;
      });
    }
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

/**
 * Takes `<dir>/<name>` for this process, or throws DataDirLockedError with `refusal` while a live
 * process holds it. A lock whose process is gone, or one that holds no pid, is taken over.
 */
export async function lockDataDir(dir: string, options: DataDirLockOptions): Promise<DataDirLock> {
  const file = path.join(dir, options.name);
  const content = `${process.pid}\n${options.command}\n`;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    if (await create(file, content)) {
      return {
        file,
        release: async () => {
          if ((await readLock(file))?.text === content) await unlink(file).catch(() => undefined);
        },
      };
    }
    const current = await readLock(file);
    if (current === undefined) continue;
    if (heldByOther(current)) {
      const holder: LockHolder = { pid: current.pid, command: current.command, file };
      throw new DataDirLockedError(options.refusal(holder), holder);
    }
    await removeStale(file, current);
  }
  throw new UserError(`could not take ${file}: other processes are taking it at the same time; try again`);
}
