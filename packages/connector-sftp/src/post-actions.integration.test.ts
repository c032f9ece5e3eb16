import { mkdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SourceFile, SourceSession } from '@airlock/connector-api';
import { ConflictError, NotAllowedError, UserError } from '@airlock/errors';
import { startSshd, type TestSshd } from '@airlock/testing';
import { sftpSource } from './index.ts';
import { mockContext } from './test-context.ts';

let sshd: TestSshd;
let session: SourceSession;
const exists = (file: string) => stat(file).then(() => true, () => false);

beforeAll(async () => {
  sshd = await startSshd();
});

afterAll(async () => {
  await sshd.stop();
});

beforeEach(async () => {
  await rm(path.join(sshd.root, 'in'), { recursive: true, force: true });
  await rm(path.join(sshd.root, 'done'), { recursive: true, force: true });
  await mkdir(path.join(sshd.root, 'in'));
  await mkdir(path.join(sshd.root, 'done'));
  for (const name of ['a.csv', 'b.csv', 'c.csv']) await writeFile(path.join(sshd.root, 'in', name), `contents of ${name}\n`);
  session = await sftpSource
    .bind({
      host: sshd.host,
      port: sshd.port,
      hostKey: sshd.hostKeyFingerprint,
      username: sshd.username,
      credentialRef: 'test-sftp',
      path: `${sshd.root}/in/*.csv`,
    })
    .connect(mockContext({ privateKey: sshd.privateKey }));
  return () => session.close();
});

async function listed(name: string): Promise<SourceFile> {
  const file = (await session.list()).find((entry) => entry.name === name);
  if (file === undefined) throw new Error(`${name} is not listed`);
  return file;
}

describe('sftp source post-actions against OpenSSH', () => {
  it('deletes a delivered file, and only the unchanged, selected file it was given', async () => {
    const a = await listed('a.csv');
    await session.remove?.(a);
    expect(await exists(a.path)).toBe(false);

    // Grown since it was listed: left in place.
    const b = await listed('b.csv');
    await writeFile(b.path, 'more bytes than before\n');
    await expect(session.remove?.(b)).rejects.toThrow(ConflictError);
    // Same size, new mtime: left in place too.
    const c = await listed('c.csv');
    await utimes(c.path, new Date(), new Date(c.mtimeMs + 10_000));
    await expect(session.remove?.(c)).rejects.toThrow(ConflictError);
    expect(await exists(b.path)).toBe(true);
    expect(await exists(c.path)).toBe(true);

    // Replaced by a symlink with the same size: lstat sees it is no longer a regular file.
    const again = await listed('c.csv');
    await rm(again.path);
    await symlink(path.join(sshd.root, 'in', 'b.csv'), again.path);
    await expect(session.remove?.(again)).rejects.toThrow(ConflictError);
    expect(await exists(path.join(sshd.root, 'in', 'b.csv'))).toBe(true);

    // A path the selection does not cover, or a name that is not the path's last component.
    await expect(session.remove?.({ ...b, path: `${sshd.root}/elsewhere.csv`, name: 'elsewhere.csv' })).rejects.toThrow(NotAllowedError);
    await expect(session.remove?.({ ...b, name: 'a.csv' })).rejects.toThrow(NotAllowedError);
  });

  it('archives into a real directory without ever replacing a file there', async () => {
    const done = path.join(sshd.root, 'done');
    const a = await listed('a.csv');
    await session.archive?.(a, done);
    expect(await exists(a.path)).toBe(false);
    expect(await readFile(path.join(done, 'a.csv'), 'utf8')).toBe('contents of a.csv\n');

    // An earlier archived b.csv stays as it is, and so does the source.
    await writeFile(path.join(done, 'b.csv'), 'archived yesterday\n');
    const b = await listed('b.csv');
    await expect(session.archive?.(b, done)).rejects.toThrow(ConflictError);
    expect(await readFile(path.join(done, 'b.csv'), 'utf8')).toBe('archived yesterday\n');
    expect(await exists(b.path)).toBe(true);

    // A changed file is not moved.
    const c = await listed('c.csv');
    await writeFile(c.path, 'rewritten while delivered\n');
    await expect(session.archive?.(c, done)).rejects.toThrow(ConflictError);
    expect(await exists(path.join(done, 'c.csv'))).toBe(false);
  });

  it('refuses an archive directory that is missing, a symlink, or inside the selection', async () => {
    const b = await listed('b.csv');
    await expect(session.archive?.(b, path.join(sshd.root, 'missing'))).rejects.toThrow(/does not exist/);
    const link = path.join(sshd.root, 'done-link');
    await rm(link, { force: true });
    await symlink(path.join(sshd.root, 'done'), link);
    await expect(session.archive?.(b, link)).rejects.toThrow(UserError);
    await expect(session.archive?.(b, path.join(sshd.root, 'in'))).rejects.toThrow(/inside the source selection/);
    expect(await exists(b.path)).toBe(true);
    expect(await exists(path.join(sshd.root, 'done', 'b.csv'))).toBe(false);
  });
});
