/**
 * One `airlock-agent run` per data directory. The agent runs its jobs one at a time and the control
 * plane relies on that: when an idle agent asks for work, the runs it still holds are closed as
 * lost. A second process on the same directory (the same agent) would close the first one's run,
 * so it is refused with a clear error. The lock (shared with the control plane's embedded database)
 * is taken over when its process is gone (a crash, a SIGKILL).
 */
import { type DataDirLock, lockDataDir } from '@airlock/data-dir-lock';

export type RunLock = DataDirLock;

export function acquireRunLock(dataDir: string): Promise<RunLock> {
  return lockDataDir(dataDir, {
    name: 'run.lock',
    command: 'airlock-agent run',
    refusal: (holder) => `another airlock-agent run (pid ${holder.pid}) is using ${dataDir}; stop it first, or remove ${holder.file} if no such process is an agent`,
  });
}
