/**
 * One `airlock-agent run` per data directory. The agent runs its jobs one at a time and the control
 * plane relies on that: when an idle agent asks for work, the runs it still holds are closed as
 * lost. A second process on the same directory (the same agent) would close the first one's run,
 * so it is refused with a clear error. The lock file holds the owner's pid; a lock whose process is
 * gone (a crash, a SIGKILL) is taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '@airlock/errors';
import { errnoCode } from './files.ts';

export interface RunLock {
  readonly file: string;
  release(): Promise<void>;
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

async function ownerOf(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export async function acquireRunLock(dataDir: string): Promise<RunLock> {
  const file = path.join(dataDir, 'run.lock');
  // Twice at most: once more after taking a stale lock away.
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const handle = await open(file, 'wx', 0o600);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      return {
        file,
        release: async () => {
          if ((await ownerOf(file)) === process.pid) await unlink(file).catch(() => undefined);
        },
      };
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error;
    }
    const owner = await ownerOf(file);
    if (owner !== null && owner !== process.pid && isAlive(owner)) {
      throw new UserError(`another airlock-agent run (pid ${owner}) is using ${dataDir}; stop it first, or remove ${file} if no such process is an agent`);
    }
    await unlink(file).catch(() => undefined);
  }
  throw new UserError(`could not take ${file}: another airlock-agent run is starting at the same time`);
}
