import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ledger } from './ledger.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-ledger-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const entry = (file: string, size: number, mtimeMs: number) => ({
  path: file,
  size,
  mtimeMs,
  plaintextHmac: 'a'.repeat(64),
  deliveredAt: new Date().toISOString(),
  runId: randomUUID(),
});

describe('Ledger', () => {
  it('remembers exact versions across reopening; a changed size or mtime is a new file', async () => {
    const id = randomUUID();
    const ledger = await Ledger.open(dir, id);
    await Promise.all([ledger.record(entry('/in/a', 5, 1000)), ledger.record(entry('/in/b', 7, 2000))]);
    await ledger.close();
    const reopened = await Ledger.open(dir, id);
    expect(reopened.has({ path: '/in/a', size: 5, mtimeMs: 1000 })).toBe(true);
    expect(reopened.has({ path: '/in/a', size: 6, mtimeMs: 1000 })).toBe(false);
    expect(reopened.has({ path: '/in/a', size: 5, mtimeMs: 1001 })).toBe(false);
    expect(reopened.has({ path: '/in/c', size: 5, mtimeMs: 1000 })).toBe(false);
    await reopened.record(entry('/in/a', 6, 3000));
    expect(reopened.has({ path: '/in/a', size: 6, mtimeMs: 3000 })).toBe(true);
    expect(reopened.has({ path: '/in/a', size: 5, mtimeMs: 1000 })).toBe(false);
    await reopened.close();
    expect((await stat(Ledger.file(dir, id))).mode & 0o777).toBe(0o600);
    // Separate integrations keep separate ledgers.
    const other = await Ledger.open(dir, randomUUID());
    expect(other.has({ path: '/in/b', size: 7, mtimeMs: 2000 })).toBe(false);
    await other.close();
  });

  it('ignores a torn last line, and compacts a file full of superseded entries', async () => {
    const id = randomUUID();
    const ledger = await Ledger.open(dir, id);
    for (let i = 0; i < 1100; i++) await ledger.record(entry('/in/a', i, i));
    await ledger.close();
    await appendFile(Ledger.file(dir, id), '{"path":"/in/torn","si');
    const reopened = await Ledger.open(dir, id);
    expect(reopened.has({ path: '/in/a', size: 1099, mtimeMs: 1099 })).toBe(true);
    expect(reopened.has({ path: '/in/a', size: 1, mtimeMs: 1 })).toBe(false);
    await reopened.record(entry('/in/b', 1, 1));
    await reopened.close();
    const lines = (await readFile(Ledger.file(dir, id), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(2);
  });

  it('refuses an integration id that is not a plain name', async () => {
    await expect(Ledger.open(dir, '../escape')).rejects.toThrow(/unsafe/);
  });
});
