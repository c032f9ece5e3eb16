import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '@airlock/errors';
import { DataDirLockedError, lockDataDir } from './index.ts';

const options = { name: 'test.lock', command: 'the test', refusal: (holder: { pid: number }) => `held by pid ${holder.pid}` };
const CONTENDERS = 6;
const CHILD_TIMEOUT_MS = 60_000;

/** The pid of a process that has already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid ?? 0;
}

/** Collects a child's stdout lines; resolves once `count` lines arrived. */
function lines(child: ChildProcessWithoutNullStreams, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${count} lines from the child within ${CHILD_TIMEOUT_MS} ms: ${text}`)), CHILD_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const got = text.split('\n').filter((line) => line !== '');
      if (got.length >= count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(text.split('\n').filter((line) => line !== ''));
    });
  });
}

describe('lockDataDir', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-dir-lock-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('lets one process hold the directory and refuses a second with its pid and command', async () => {
    const lock = await lockDataDir(dir, options);
    expect(await readFile(lock.file, 'utf8')).toBe(`${process.pid}\nthe test\n`);
    // A live process other than this one holds it: the parent of this test process.
    await writeFile(lock.file, `${process.ppid}\nairlock serve\n`);
    const refusal = lockDataDir(dir, { ...options, refusal: (holder) => `${holder.command ?? '?'} pid ${holder.pid}` });
    await expect(refusal).rejects.toThrow(DataDirLockedError);
    await expect(lockDataDir(dir, { ...options, refusal: (holder) => `${holder.command ?? '?'} pid ${holder.pid}` })).rejects.toThrow(`airlock serve pid ${process.ppid}`);
    // Not ours any more: release leaves it alone.
    await lock.release();
    expect(await readFile(lock.file, 'utf8')).toBe(`${process.ppid}\nairlock serve\n`);
    expect(await readdir(dir)).toEqual(['test.lock']);
  });

  it('takes over a lock whose process is gone, or that holds no pid', async () => {
    for (const content of [`${await deadPid()}\nairlock serve\n`, 'garbage', '']) {
      await writeFile(path.join(dir, 'test.lock'), content);
      const lock = await lockDataDir(dir, options);
      expect(await readFile(lock.file, 'utf8')).toBe(`${process.pid}\nthe test\n`);
      await lock.release();
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it('is a UserError, so CLIs print it as one line and exit non-zero', async () => {
    await writeFile(path.join(dir, 'test.lock'), `${process.ppid}\n`);
    await expect(lockDataDir(dir, options)).rejects.toThrow(UserError);
  });

  it('[integrity #2] gives a stale lock to exactly one of several processes taking it at the same moment', async () => {
    await writeFile(path.join(dir, 'test.lock'), `${await deadPid()}\nairlock serve\n`);
    const fixture = path.join(import.meta.dirname, 'lock-child.fixture.ts');
    const children = Array.from({ length: CONTENDERS }, () =>
      spawn(process.execPath, ['--import', 'tsx', fixture, dir], { cwd: import.meta.dirname, stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    try {
      const outputs = children.map((child) => lines(child, 2));
      // Every contender is loaded and waiting before any of them starts.
      await Promise.all(children.map((child) => lines(child, 1)));
      for (const child of children) child.stdin.write('go\n');
      const results = (await Promise.all(outputs)).map((got) => got[1] ?? '(no answer)');
      const winners = children.filter((_, i) => results[i] === 'won');
      expect(winners, results.join('\n')).toHaveLength(1);
      const winner = winners[0]?.pid;
      for (const result of results.filter((result) => result !== 'won')) expect(result).toBe(`refused held by pid ${winner}`);
      expect(await readFile(path.join(dir, 'test.lock'), 'utf8')).toBe(`${winner}\nlock-child\n`);
    } finally {
      for (const child of children) child.stdin.end();
      await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)));
    }
    // The winner released it; nothing is left behind.
    expect(await readdir(dir)).toEqual([]);
  });
});
