import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConnectorContext, DestinationSession } from '@airlock/connector-api';
import { ConflictError, NotAllowedError, NotFoundError, UnexpectedError, UserError } from '@airlock/errors';
import { localFolderDestination } from './index.ts';

const ctx: ConnectorContext = {
  signal: new AbortController().signal,
  logger: { debug() {}, info() {}, warn() {}, error() {} },
  secret: () => Promise.reject(new Error('no secrets in these tests')),
};

let root: string;
let dir: string;

beforeEach(async () => {
  // realpath: the system temp directory may itself sit behind a symlink.
  root = await realpath(await mkdtemp(path.join(tmpdir(), 'airlock-local-dest-')));
  dir = path.join(root, 'out');
  await mkdir(dir);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function connect(config: Record<string, unknown> = { directory: dir }): Promise<DestinationSession> {
  return localFolderDestination.bind(config).connect(ctx);
}

describe('localFolderDestination config', () => {
  it('normalizes the directory and defaults the mode', () => {
    const config = localFolderDestination.config.parse({ directory: '/srv//out/./' });
    expect(config).toEqual({ directory: '/srv/out', fileMode: 0o640 });
    expect(localFolderDestination.claims({ directory: '/srv/out', fileMode: 0o640 })).toEqual([{ action: 'write', scheme: 'file', path: '/srv/out' }]);
  });

  it.each([
    ['a relative path', { directory: 'out' }],
    ['a parent reference', { directory: '/srv/../etc' }],
    ['an unknown key', { directory: '/srv/out', extra: true }],
    ['a world-writable mode', { directory: '/srv/out', fileMode: 0o666 }],
    ['a mode with special bits', { directory: '/srv/out', fileMode: 0o4640 }],
  ])('refuses %s', (_label, config) => {
    expect(() => localFolderDestination.bind(config)).toThrow(UserError);
  });
});

describe('localFolderDestination', () => {
  it('publishes the file only at commit, with the configured mode and no partial left', async () => {
    const session = await connect({ directory: dir, fileMode: 0o600 });
    const delivery = await session.begin('report.csv.gpg');
    const payload = randomBytes(256 * 1024);
    await pipeline(Readable.from([payload]), delivery.stream);

    const before = await readdir(dir);
    expect(before).not.toContain('report.csv.gpg');
    expect(before).toHaveLength(1);
    expect(before[0]).toMatch(/^\.report\.csv\.gpg\.[0-9a-f]{16}\.airlock-partial$/);

    const { location } = await delivery.commit();
    expect(location).toBe(path.join(dir, 'report.csv.gpg'));
    expect(await readdir(dir)).toEqual(['report.csv.gpg']);
    expect((await readFile(location)).equals(payload)).toBe(true);
    expect((await stat(location)).mode & 0o777).toBe(0o600);
    await session.close();
  });

  it('uses 0640 by default regardless of the umask', async () => {
    const previous = process.umask(0o077);
    try {
      const session = await connect();
      const delivery = await session.begin('a.gpg');
      await pipeline(Readable.from([Buffer.from('x')]), delivery.stream);
      const { location } = await delivery.commit();
      expect((await stat(location)).mode & 0o777).toBe(0o640);
    } finally {
      process.umask(previous);
    }
  });

  it('abort leaves the directory empty, and is idempotent', async () => {
    const session = await connect();
    const delivery = await session.begin('a.gpg');
    delivery.stream.write(Buffer.from('partial'));
    await delivery.abort();
    await delivery.abort();
    expect(await readdir(dir)).toEqual([]);
    await expect(delivery.commit()).rejects.toThrow(UnexpectedError);
  });

  it('a failed transfer leaves nothing behind after abort', async () => {
    const session = await connect();
    const delivery = await session.begin('a.gpg');
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent++ > 3) this.destroy(new Error('upstream failed'));
        else this.push(randomBytes(1024));
      },
    });
    await expect(pipeline(failing, delivery.stream)).rejects.toThrow(/upstream failed/);
    await expect(delivery.commit()).rejects.toThrow();
    await delivery.abort();
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses to publish a stream that was never ended', async () => {
    const session = await connect();
    const delivery = await session.begin('a.gpg');
    delivery.stream.write(Buffer.from('half'));
    await expect(delivery.commit()).rejects.toThrow(UnexpectedError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('never clobbers an existing file', async () => {
    await writeFile(path.join(dir, 'a.gpg'), 'original');
    const session = await connect();
    const delivery = await session.begin('a.gpg');
    await pipeline(Readable.from([Buffer.from('new')]), delivery.stream);
    await expect(delivery.commit()).rejects.toThrow(ConflictError);
    expect(await readdir(dir)).toEqual(['a.gpg']);
    expect(await readFile(path.join(dir, 'a.gpg'), 'utf8')).toBe('original');
    await delivery.abort();
    expect(await readdir(dir)).toEqual(['a.gpg']);
  });

  it('never writes through a symlink at the final name', async () => {
    const outside = path.join(root, 'outside.txt');
    await writeFile(outside, 'keep');
    await symlink(outside, path.join(dir, 'a.gpg'));
    const session = await connect();
    const delivery = await session.begin('a.gpg');
    await pipeline(Readable.from([Buffer.from('new')]), delivery.stream);
    await expect(delivery.commit()).rejects.toThrow(ConflictError);
    expect(await readFile(outside, 'utf8')).toBe('keep');
  });

  it.each(['../x', 'a/b', '..', '.', '', 'a\\b', 'nul\u0000byte', '/etc/passwd'])('refuses the name %j', async (name) => {
    const session = await connect();
    await expect(session.begin(name)).rejects.toThrow(NotAllowedError);
    expect(await readdir(dir)).toEqual([]);
    expect(await readdir(root)).toEqual(['out']);
  });

  it('handles a name at the length limit', async () => {
    const session = await connect();
    const name = 'n'.repeat(255);
    const delivery = await session.begin(name);
    await pipeline(Readable.from([Buffer.from('x')]), delivery.stream);
    await delivery.commit();
    expect(await readdir(dir)).toEqual([name]);
  });

  it('refuses a directory reached through a symlink', async () => {
    const link = path.join(root, 'link');
    await symlink(dir, link);
    await expect(connect({ directory: link })).rejects.toThrow(NotAllowedError);
    await expect(connect({ directory: path.join(link, 'sub') })).rejects.toThrow();
  });

  it('refuses a missing directory and a file', async () => {
    await expect(connect({ directory: path.join(root, 'missing') })).rejects.toThrow(NotFoundError);
    await writeFile(path.join(root, 'file'), '');
    await expect(connect({ directory: path.join(root, 'file') })).rejects.toThrow(UserError);
  });

  it('notices the directory being swapped for a symlink after connect', async () => {
    const session = await connect();
    const elsewhere = path.join(root, 'elsewhere');
    await mkdir(elsewhere);
    await rm(dir, { recursive: true });
    await symlink(elsewhere, dir);
    await expect(session.begin('a.gpg')).rejects.toThrow(NotAllowedError);
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it('close aborts deliveries still pending', async () => {
    const session = await connect();
    const a = await session.begin('a.gpg');
    a.stream.write(Buffer.from('x'));
    await session.begin('b.gpg');
    await session.close();
    expect(await readdir(dir)).toEqual([]);
  });
});
