import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWithin, type SkippedEntry } from '@airlock/connector-api';
import { AuthenticationError, HostKeyMismatchError, NotAllowedError, UserError } from '@airlock/errors';
import { generateSshKeyPair, sshKeygenFingerprint, startSftpServer, startSshd, type TestSshd } from '@airlock/testing';
import { sftpSource } from './index.ts';
import { mockContext, sha256 } from './test-context.ts';

const big = randomBytes(3 * 1024 * 1024 + 17);
let sshd: TestSshd;
let otherPin: string;

beforeAll(async () => {
  sshd = await startSshd({
    files: {
      'exports/a.csv': 'id\n1\n',
      'exports/big.csv': big,
      'exports/notes.txt': 'not selected',
      'exports/sub/c.csv': 'c',
    },
  });
  await symlink(path.join(sshd.root, 'exports', 'a.csv'), path.join(sshd.root, 'exports', 'link.csv'));
  otherPin = await sshKeygenFingerprint(generateSshKeyPair().public);
});

afterAll(async () => {
  await sshd.stop();
});

function sshdConfig(overrides: Record<string, unknown> = {}): unknown {
  return {
    host: sshd.host,
    port: sshd.port,
    hostKey: sshd.hostKeyFingerprint,
    username: sshd.username,
    credentialRef: 'test-sftp',
    path: `${sshd.root}/exports/*.csv`,
    ...overrides,
  };
}

describe('sftp source against OpenSSH', () => {
  it('lists a glob (regular files only, no symlinks) and streams the exact bytes', async () => {
    const ctx = mockContext({ privateKey: sshd.privateKey });
    const session = await sftpSource.bind(sshdConfig()).connect(ctx);
    try {
      const files = await session.list();
      expect(files.map((file) => file.name)).toEqual(['a.csv', 'big.csv']);
      const bigFile = files.find((file) => file.name === 'big.csv');
      expect(bigFile?.size).toBe(big.length);
      if (bigFile === undefined) throw new Error('big.csv missing');
      expect(await sha256(await session.open(bigFile))).toBe(createHash('sha256').update(big).digest('hex'));
    } finally {
      await session.close();
    }
  });

  it('descends with ** and lists a single named file', async () => {
    const ctx = mockContext({ privateKey: sshd.privateKey });
    const recursive = await sftpSource.bind(sshdConfig({ path: `${sshd.root}/exports/**/*.csv` })).connect(ctx);
    try {
      expect((await recursive.list()).map((file) => file.path)).toEqual([
        `${sshd.root}/exports/a.csv`,
        `${sshd.root}/exports/big.csv`,
        `${sshd.root}/exports/sub/c.csv`,
      ]);
    } finally {
      await recursive.close();
    }
    const single = await sftpSource.bind(sshdConfig({ path: `${sshd.root}/exports/a.csv` })).connect(ctx);
    try {
      const files = await single.list();
      expect(files).toMatchObject([{ path: `${sshd.root}/exports/a.csv`, name: 'a.csv', size: 5 }]);
      await expect(single.open({ ...files[0], path: '/etc/passwd', name: 'passwd', size: 0, mtimeMs: 0 })).rejects.toThrow(
        NotAllowedError,
      );
    } finally {
      await single.close();
    }
  });

  it('refuses a server whose host key is not the pinned one', async () => {
    const ctx = mockContext({ privateKey: sshd.privateKey });
    await expect(sftpSource.bind(sshdConfig({ hostKey: otherPin })).connect(ctx)).rejects.toThrow(HostKeyMismatchError);
  });

  it('logs in with a password and maps a wrong password to AuthenticationError', async () => {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const username = await sshd.createSftpUser(password);
    const session = await sftpSource.bind(sshdConfig({ username })).connect(mockContext({ password }));
    try {
      expect((await session.list()).map((file) => file.name)).toEqual(['a.csv', 'big.csv']);
    } finally {
      await session.close();
    }
    const wrong = mockContext({ password: `${password}-wrong` });
    await expect(sftpSource.bind(sshdConfig({ username })).connect(wrong)).rejects.toThrow(AuthenticationError);
    expect(JSON.stringify(wrong.lines)).not.toContain(password);
  });

  it('names the credential, never its values, when the secret has the wrong shape', async () => {
    const ctx = mockContext({ token: 'very-secret-value' });
    const attempt = sftpSource.bind(sshdConfig()).connect(ctx);
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/test-sftp/);
    await expect(attempt).rejects.not.toThrow(/very-secret-value/);
  });

  it('[integrity #14] passes over names that are not UTF-8 (files and directories it would enter) and hands them to the host', async () => {
    const dir = path.join(sshd.root, 'names');
    const raw = (...parts: Array<string | number[]>) => Buffer.concat([Buffer.from(`${dir}/`), ...parts.map((part) => Buffer.from(part))]);
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'ok.csv'), 'ok');
    await writeFile(raw('M', [0xfc], 'ller.csv'), 'not to be read');
    await writeFile(raw([0xfc], '.txt'), 'not selected');
    await mkdir(raw([0xe9]));
    await writeFile(Buffer.concat([raw([0xe9]), Buffer.from('/x.csv')]), 'unreachable');
    await writeFile(path.join(dir, 'sub', 'y.csv'), 'y');
    await writeFile(path.join(dir, 'bad\nname.csv'), 'not to be read');

    const skipped: SkippedEntry[] = [];
    const ctx = { ...mockContext({ privateKey: sshd.privateKey }), skipped: (entry: SkippedEntry) => void skipped.push(entry) };
    const session = await sftpSource.bind(sshdConfig({ path: `${dir}/**/*.csv` })).connect(ctx);
    try {
      expect((await session.list()).map((file) => file.path)).toEqual([`${dir}/ok.csv`, `${dir}/sub/y.csv`]);
      expect(skipped.sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual([
        { directory: dir, name: 'M\uFFFDller.csv', reason: 'name-not-utf8' },
        { directory: dir, name: 'bad%0Aname.csv', reason: 'name-unsafe' },
        { directory: dir, name: '\uFFFD', reason: 'name-not-utf8' },
      ]);
      // The host is told; the connector itself logs nothing more.
      expect(ctx.lines.filter((line) => line.level === 'warn')).toEqual([]);
    } finally {
      await session.close();
    }

    // A host that takes no report still hears of it, in the log.
    const bare = mockContext({ privateKey: sshd.privateKey });
    const single = await sftpSource.bind(sshdConfig({ path: `${dir}/*.csv` })).connect(bare);
    try {
      expect((await single.list()).map((file) => file.name)).toEqual(['ok.csv']);
      const warned = bare.lines.filter((line) => line.level === 'warn').map((line) => line.meta as unknown as SkippedEntry);
      expect(warned.sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual([
        { directory: dir, name: 'M\uFFFDller.csv', reason: 'name-not-utf8' },
        { directory: dir, name: 'bad%0Aname.csv', reason: 'name-unsafe' },
      ]);
    } finally {
      await single.close();
    }
  });
});

describe('sftp source against a hostile server', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'airlock-hostile-'));
    await mkdir(path.join(root, 'exports'));
    await writeFile(path.join(root, 'exports', 'good.csv'), 'good\n');
    await writeFile(path.join(root, 'secret.csv'), 'must never be read');
    await writeFile(path.join(root, 'exports', 'large.csv'), randomBytes(8 * 1024 * 1024));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const hostileConfig = (port: number, hostKey: string): unknown => ({
    host: '127.0.0.1',
    port,
    hostKey,
    username: 'airlock',
    credentialRef: 'hostile',
    path: '/exports/*.csv',
  });

  it('sends no credential to a server with the wrong host key', async () => {
    await using server = await startSftpServer({ root, password: 'pw' });
    const ctx = mockContext({ password: 'pw' });
    await expect(sftpSource.bind(hostileConfig(server.port, otherPin)).connect(ctx)).rejects.toThrow(
      HostKeyMismatchError,
    );
    expect(server.authAttempts).toBe(0);
  });

  it('skips names that would escape the directory and opens nothing outside it', async () => {
    await using server = await startSftpServer({
      root,
      password: 'pw',
      hostile: { extraNames: ['../secret.csv', '/etc/passwd', '..', 'a/b.csv', 'sub/../../escape.csv', '..\\x.csv'] },
    });
    const ctx = mockContext({ password: 'pw' });
    const session = await sftpSource.bind(hostileConfig(server.port, server.hostKeyFingerprint)).connect(ctx);
    try {
      const files = await session.list();
      expect(files.map((file) => file.path)).toEqual(['/exports/good.csv', '/exports/large.csv']);
      const [good] = files;
      if (good === undefined) throw new Error('good.csv missing');
      expect(await sha256(await session.open(good))).toBe(createHash('sha256').update('good\n').digest('hex'));
      await expect(session.open({ ...good, path: '/exports/../secret.csv' })).rejects.toThrow(NotAllowedError);
    } finally {
      await session.close();
    }
    // Each name the selection (`*.csv`) would have taken is reported as printed, never opened.
    // `..` is the parent; `*` takes no name that starts with a dot, and `/etc/passwd` is no CSV.
    const warned = ctx.lines.filter((line) => line.level === 'warn').map((line) => line.meta as unknown as SkippedEntry);
    expect(warned.sort((a, b) => (a.name < b.name ? -1 : 1))).toEqual(
      ['a/b.csv', 'sub/../../escape.csv'].map((name) => ({ directory: '/exports', name, reason: 'name-unsafe' })),
    );
    expect(server.requests.length).toBeGreaterThan(0);
    for (const request of server.requests) expect(isWithin('/exports', request.path)).toBe(true);
    expect(server.requests.filter((request) => request.op === 'open')).toEqual([{ op: 'open', path: '/exports/good.csv' }]);
  });

  it('fails the stream with an OperationalError when the connection drops mid-file', async () => {
    const server = await startSftpServer({ root, password: 'pw' });
    const session = await sftpSource.bind(hostileConfig(server.port, server.hostKeyFingerprint)).connect(mockContext({ password: 'pw' }));
    try {
      const large = (await session.list()).find((file) => file.name === 'large.csv');
      if (large === undefined) throw new Error('large.csv missing');
      const stream = await session.open(large);
      let received = 0;
      const consumed = (async () => {
        for await (const chunk of stream) {
          received += (chunk as Buffer).length;
          if (received > 0) void server.stop();
        }
      })();
      await expect(consumed).rejects.toMatchObject({ name: 'OperationalError', retryable: true });
      expect(received).toBeLessThan(8 * 1024 * 1024);
    } finally {
      await session.close();
      await server.stop();
    }
  });
});
