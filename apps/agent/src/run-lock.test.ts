import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '@airlock/errors';
import { acquireRunLock } from './run-lock.ts';

/** The pid of a process that has already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid ?? 0;
}

describe('acquireRunLock', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'airlock-lock-'));
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('lets one run hold the data directory and names it to a second', async () => {
    const lock = await acquireRunLock(dataDir);
    expect((await readFile(lock.file, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    // A live process other than this one holds it: the parent of this test process.
    await writeFile(lock.file, `${process.ppid}\n`);
    await expect(acquireRunLock(dataDir)).rejects.toThrow(UserError);
    await expect(acquireRunLock(dataDir)).rejects.toThrow(`pid ${process.ppid}`);
    // Not ours any more: release leaves it alone.
    await lock.release();
    expect((await readFile(lock.file, 'utf8')).trim()).toBe(String(process.ppid));
  });

  it('takes over a lock whose process is gone, or that cannot be read', async () => {
    for (const content of [`${await deadPid()}\n`, 'garbage']) {
      await writeFile(path.join(dataDir, 'run.lock'), content);
      const lock = await acquireRunLock(dataDir);
      expect((await readFile(lock.file, 'utf8')).split('\n')[0]).toBe(String(process.pid));
      await lock.release();
      await expect(readFile(lock.file, 'utf8')).rejects.toThrow();
    }
  });
});
