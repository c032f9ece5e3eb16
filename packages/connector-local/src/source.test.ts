import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConnectorContext, SkippedEntry, SourceSession } from '@airlock/connector-api';
import { ConflictError, NotAllowedError, UserError } from '@airlock/errors';
import { localFolderSource } from './index.ts';

const ctx: ConnectorContext = {
  signal: new AbortController().signal,
  logger: { debug() {}, info() {}, warn() {}, error() {} },
  secret: () => Promise.reject(new Error('no secrets in these tests')),
};

let root: string;
let src: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(tmpdir(), 'airlock-local-src-')));
  src = path.join(root, 'exports');
  await mkdir(path.join(src, 'nested', 'deeper'), { recursive: true });
  await writeFile(path.join(src, 'a.csv'), 'alpha');
  await writeFile(path.join(src, 'b.csv'), 'bravo');
  await writeFile(path.join(src, 'notes.txt'), 'not selected');
  await writeFile(path.join(src, '.hidden.csv'), 'dot-files are skipped by *');
  await writeFile(path.join(src, 'nested', 'c.csv'), 'charlie');
  await writeFile(path.join(src, 'nested', 'deeper', 'd.csv'), 'delta');
  await writeFile(path.join(root, 'secret.csv'), 'outside the source');
  await symlink(path.join(root, 'secret.csv'), path.join(src, 'link.csv'));
  await mkdir(path.join(root, 'elsewhere'));
  await writeFile(path.join(root, 'elsewhere', 'e.csv'), 'echo');
  await symlink(path.join(root, 'elsewhere'), path.join(src, 'linkdir'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function connect(pattern: string): Promise<SourceSession> {
  return localFolderSource.bind({ path: pattern }).connect(ctx);
}

async function read(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

describe('localFolderSource', () => {
  it('claims the configured pattern and each file by path', () => {
    const config = localFolderSource.config.parse({ path: '/srv//out/*.csv' });
    expect(config).toEqual({ path: '/srv/out/*.csv' });
    expect(localFolderSource.claims(config)).toEqual([{ action: 'read', scheme: 'file', path: '/srv/out/*.csv' }]);
    expect(localFolderSource.claimFor(config, { path: '/srv/out/a.csv', name: 'a.csv', size: 1, mtimeMs: 0 })).toEqual({
      action: 'read',
      scheme: 'file',
      path: '/srv/out/a.csv',
    });
  });

  it.each([{ path: 'exports/*.csv' }, { path: '/srv/../etc/*' }, { path: '/srv', extra: 1 }, {}])('refuses config %j', (config) => {
    expect(() => localFolderSource.bind(config)).toThrow(UserError);
  });

  it('lists a glob: regular files only, no symlinks, no dot-files, sorted', async () => {
    const session = await connect(`${src}/*.csv`);
    const files = await session.list();
    expect(files.map((f) => f.name)).toEqual(['a.csv', 'b.csv']);
    expect(files[0]).toMatchObject({ path: path.join(src, 'a.csv'), size: 5 });
    expect(typeof files[0]?.mtimeMs).toBe('number');
  });

  it('lists ** recursively without entering symlinked directories', async () => {
    const session = await connect(`${src}/**/*.csv`);
    const files = await session.list();
    expect(files.map((f) => path.relative(src, f.path))).toEqual(['a.csv', 'b.csv', 'nested/c.csv', 'nested/deeper/d.csv']);
  });

  it('treats a directory as its direct regular files', async () => {
    const session = await connect(src);
    const files = await session.list();
    expect(files.map((f) => f.name)).toEqual(['a.csv', 'b.csv', 'notes.txt']);
  });

  it('accepts a single file', async () => {
    const session = await connect(path.join(src, 'b.csv'));
    const [file, ...rest] = await session.list();
    expect(rest).toEqual([]);
    if (!file) throw new Error('no file listed');
    expect(await read(await session.open(file))).toBe('bravo');
  });

  it('reads the bytes of a listed file', async () => {
    const session = await connect(`${src}/**/*.csv`);
    const files = await session.list();
    const contents = await Promise.all(files.map(async (f) => read(await session.open(f))));
    expect(contents).toEqual(['alpha', 'bravo', 'charlie', 'delta']);
    await session.close();
  });

  it('refuses to open a file the selection does not cover', async () => {
    const session = await connect(`${src}/*.csv`);
    const forged = [
      { path: path.join(root, 'secret.csv'), name: 'secret.csv', size: 0, mtimeMs: 0 },
      { path: path.join(src, 'notes.txt'), name: 'notes.txt', size: 0, mtimeMs: 0 },
      { path: path.join(src, 'nested', 'c.csv'), name: 'c.csv', size: 0, mtimeMs: 0 },
      { path: `${src}/../secret.csv`, name: 'secret.csv', size: 0, mtimeMs: 0 },
      { path: path.join(src, 'a.csv'), name: 'b.csv', size: 0, mtimeMs: 0 },
    ];
    for (const file of forged) await expect(session.open(file)).rejects.toThrow(NotAllowedError);
  });

  it('refuses a file replaced by a symlink after listing', async () => {
    const session = await connect(`${src}/*.csv`);
    const [first] = await session.list();
    if (!first) throw new Error('no file listed');
    await unlink(first.path);
    await symlink(path.join(root, 'secret.csv'), first.path);
    await expect(session.open(first)).rejects.toThrow(NotAllowedError);
  });

  it('refuses a symlinked configured file', async () => {
    await expect(connect(path.join(src, 'link.csv'))).rejects.toThrow(NotAllowedError);
  });

  it('refuses a base directory reached through a symlink', async () => {
    await expect(connect(`${src}/linkdir/*.csv`)).rejects.toThrow(NotAllowedError);
    const alias = path.join(root, 'alias');
    await symlink(src, alias);
    await expect(connect(`${alias}/*.csv`)).rejects.toThrow(NotAllowedError);
  });

  it('notices the base being swapped for a symlink after connect', async () => {
    const session = await connect(`${src}/*.csv`);
    await rm(src, { recursive: true });
    await symlink(path.join(root, 'elsewhere'), src);
    await expect(session.list()).rejects.toThrow(NotAllowedError);
  });

  it('refuses a glob under a file', async () => {
    await expect(connect(`${src}/a.csv/*`)).rejects.toThrow(UserError);
  });

  it('[integrity #14] passes over names that are not UTF-8 (files and directories it would enter) and hands them to the host', async () => {
    const raw = (...parts: Array<string | number[]>) => Buffer.concat([Buffer.from(`${src}/`), ...parts.map((part) => Buffer.from(part))]);
    await writeFile(raw('M', [0xfc], 'ller.csv'), 'not to be read');
    await writeFile(raw([0xfc], '.txt'), 'not selected');
    await mkdir(raw([0xe9]));
    await writeFile(Buffer.concat([raw([0xe9]), Buffer.from('/x.csv')]), 'unreachable');
    // Valid UTF-8, even with a U+FFFD in it, is an ordinary name when the bytes are at hand.
    await writeFile(path.join(src, 'r\uFFFDsum\u00e9.csv'), 'valid');

    const skipped: SkippedEntry[] = [];
    const session = await localFolderSource.bind({ path: `${src}/**/*.csv` }).connect({ ...ctx, skipped: (entry) => void skipped.push(entry) });
    const files = await session.list();
    expect(files.map((file) => path.relative(src, file.path))).toEqual(['a.csv', 'b.csv', 'nested/c.csv', 'nested/deeper/d.csv', 'r\uFFFDsum\u00e9.csv']);
    expect(skipped.sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual([
      { directory: src, name: '%E9', reason: 'name-not-utf8' },
      { directory: src, name: 'M%FCller.csv', reason: 'name-not-utf8' },
    ]);
    const valid = files.find((file) => file.name === 'r\uFFFDsum\u00e9.csv');
    if (valid === undefined) throw new Error('the valid name was not listed');
    expect(await read(await session.open(valid))).toBe('valid');
    await session.close();
  });

  it('passes over names with control characters or a backslash (files and directories it would enter) and hands them to the host', async () => {
    await writeFile(path.join(src, 'bad\nname.csv'), 'not to be read');
    await writeFile(path.join(src, 'back\\slash.csv'), 'not to be read');
    await writeFile(path.join(src, 'tab\tname.txt'), 'not selected');
    await mkdir(path.join(src, 'sub\u0001dir'));
    await writeFile(path.join(src, 'sub\u0001dir', 'x.csv'), 'unreachable');

    const skipped: SkippedEntry[] = [];
    const session = await localFolderSource.bind({ path: `${src}/**/*.csv` }).connect({ ...ctx, skipped: (entry) => void skipped.push(entry) });
    expect((await session.list()).map((file) => path.relative(src, file.path))).toEqual(['a.csv', 'b.csv', 'nested/c.csv', 'nested/deeper/d.csv']);
    expect(skipped.sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual([
      { directory: src, name: 'back\\slash.csv', reason: 'name-unsafe' },
      { directory: src, name: 'bad%0Aname.csv', reason: 'name-unsafe' },
      { directory: src, name: 'sub%01dir', reason: 'name-unsafe' },
    ]);
    await session.close();
  });
});

describe('post-delivery actions', () => {
  async function listed(session: SourceSession, name: string) {
    const file = (await session.list()).find((f) => f.name === name);
    if (!file) throw new Error(`${name} not listed`);
    return file;
  }

  it('removes a listed, unchanged file, and nothing else', async () => {
    const session = await connect(`${src}/*.csv`);
    await session.remove?.(await listed(session, 'a.csv'));
    expect((await readdir(src)).sort()).toEqual(['.hidden.csv', 'b.csv', 'link.csv', 'linkdir', 'nested', 'notes.txt']);
    await expect(session.remove?.({ path: `${root}/secret.csv`, name: 'secret.csv', size: 18, mtimeMs: 0 })).rejects.toThrow(NotAllowedError);
    await expect(session.remove?.({ path: `${src}/link.csv`, name: 'link.csv', size: 18, mtimeMs: 0 })).rejects.toThrow(ConflictError);
    expect(await readFile(path.join(root, 'secret.csv'), 'utf8')).toBe('outside the source');
  });

  it('leaves a file that changed since it was listed', async () => {
    const session = await connect(`${src}/*.csv`);
    const file = await listed(session, 'a.csv');
    await writeFile(path.join(src, 'a.csv'), 'alpha, appended');
    await expect(session.remove?.(file)).rejects.toThrow(ConflictError);
    await expect(session.archive?.(file, path.join(root, 'elsewhere'))).rejects.toThrow(ConflictError);
    expect(await readFile(path.join(src, 'a.csv'), 'utf8')).toBe('alpha, appended');
  });

  it('archives by moving within the file system, never over an existing file', async () => {
    const archive = path.join(root, 'archive');
    await mkdir(archive);
    await writeFile(path.join(archive, 'b.csv'), 'older b');
    const session = await connect(`${src}/*.csv`);
    await session.archive?.(await listed(session, 'a.csv'), archive);
    expect(await readFile(path.join(archive, 'a.csv'), 'utf8')).toBe('alpha');
    await expect(readFile(path.join(src, 'a.csv'))).rejects.toThrow();
    await expect(session.archive?.(await listed(session, 'b.csv'), archive)).rejects.toThrow(ConflictError);
    expect(await readFile(path.join(archive, 'b.csv'), 'utf8')).toBe('older b');
    expect(await readFile(path.join(src, 'b.csv'), 'utf8')).toBe('bravo');
  });

  it('refuses an archive directory reached through a symlink or inside the selection', async () => {
    const session = await connect(`${src}/**/*.csv`);
    const file = await listed(session, 'a.csv');
    await expect(session.archive?.(file, path.join(src, 'linkdir'))).rejects.toThrow(NotAllowedError);
    await expect(session.archive?.(file, path.join(src, 'nested'))).rejects.toThrow(/inside the source selection/);
    await expect(session.archive?.(file, `${root}/../etc`)).rejects.toThrow(NotAllowedError);
    expect(await readFile(path.join(src, 'a.csv'), 'utf8')).toBe('alpha');
  });
});
