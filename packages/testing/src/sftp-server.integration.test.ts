import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSftpServer } from './sftp-server.ts';
import { generateSshKeyPair, sshKeygenHostVerifier } from './ssh-keys.ts';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'airlock-sftp-root-'));
  await mkdir(path.join(root, 'exports'));
  await writeFile(path.join(root, 'exports', 'a.csv'), 'id\n1\n');
  await writeFile(path.join(root, 'secret.txt'), 'outside exports');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('startSftpServer', () => {
  it('serves a directory read-only to a password or key, behind its host key', async () => {
    const clientKey = generateSshKeyPair();
    await using server = await startSftpServer({ root, password: 'pw', authorizedKey: clientKey.public });

    const byPassword = new SftpClient('test', {});
    await byPassword.connect({
      host: server.host,
      port: server.port,
      username: 'u',
      password: 'pw',
      hostVerifier: sshKeygenHostVerifier(server.hostKeyFingerprint),
    });
    try {
      expect((await byPassword.list('/exports')).map((entry) => entry.name)).toEqual(['a.csv']);
      expect((await byPassword.get('/exports/a.csv')).toString()).toBe('id\n1\n');
      await expect(byPassword.put(Buffer.from('x'), '/exports/new.csv')).rejects.toThrow();
    } finally {
      await byPassword.end();
    }

    const byKey = new SftpClient('test', {});
    await byKey.connect({
      host: server.host,
      port: server.port,
      username: 'u',
      privateKey: clientKey.private,
      hostVerifier: sshKeygenHostVerifier(server.hostKeyFingerprint),
    });
    try {
      expect((await byKey.get('/exports/a.csv')).toString()).toBe('id\n1\n');
    } finally {
      await byKey.end();
    }
    expect(server.requests).toContainEqual({ op: 'open', path: '/exports/a.csv' });
    expect(server.authAttempts).toBeGreaterThan(0);
  });

  it('clamps client paths to its root', async () => {
    await using server = await startSftpServer({ root: path.join(root, 'exports'), password: 'pw' });
    const client = new SftpClient('test', {});
    await client.connect({ host: server.host, port: server.port, username: 'u', password: 'pw' });
    try {
      // `..` above the served root stays at the root: secret.txt lies outside it.
      await expect(client.get('/../secret.txt')).rejects.toThrow();
      expect((await client.get('/../a.csv')).toString()).toBe('id\n1\n');
    } finally {
      await client.end();
    }
  });

  it('lists hostile names when asked to', async () => {
    await using server = await startSftpServer({
      root,
      password: 'pw',
      hostile: { extraNames: ['../x', '/etc/passwd', '..', 'a/b'] },
    });
    const client = new SftpClient('test', {});
    await client.connect({ host: server.host, port: server.port, username: 'u', password: 'pw' });
    try {
      const names = (await client.list('/exports')).map((entry) => entry.name);
      expect(names).toEqual(expect.arrayContaining(['a.csv', '../x', '/etc/passwd', 'a/b']));
    } finally {
      await client.end();
    }
  });

  it('counts no authentication attempt when the client refuses its host key', async () => {
    await using server = await startSftpServer({ root, password: 'pw' });
    const client = new SftpClient('test', {});
    await expect(
      client.connect({
        host: server.host,
        port: server.port,
        username: 'u',
        password: 'pw',
        hostVerifier: () => false,
      }),
    ).rejects.toThrow(/verification failed/);
    expect(server.authAttempts).toBe(0);
  });

  it('creates, writes and renames only in writable mode, and never replaces a file', async () => {
    await using server = await startSftpServer({ root, password: 'pw', writable: true });
    const client = new SftpClient('test', {});
    const sftp = await client.connect({
      host: server.host,
      port: server.port,
      username: 'u',
      password: 'pw',
      hostVerifier: sshKeygenHostVerifier(server.hostKeyFingerprint),
    });
    try {
      // ssh2-sftp-client's put opens with TRUNC but without EXCL: not the exclusive create we serve.
      await expect(client.put(Buffer.from('x'), '/exports/plain-put.csv')).rejects.toThrow();
      const handle = await new Promise<Buffer>((resolve, reject) =>
        sftp.open('/exports/new.csv', 'wx', (error, value) => (error ? reject(error) : resolve(value))),
      );
      await new Promise<void>((resolve, reject) =>
        sftp.write(handle, Buffer.from('new'), 0, 3, 0, (error) => (error ? reject(error) : resolve())),
      );
      await new Promise<void>((resolve, reject) => sftp.close(handle, (error) => (error ? reject(error) : resolve())));
      await expect(client.rename('/exports/new.csv', '/exports/a.csv')).rejects.toThrow();
      expect(await readFile(path.join(root, 'exports', 'a.csv'), 'utf8')).toBe('id\n1\n');
      await client.rename('/exports/new.csv', '/exports/renamed.csv');
      expect(await readFile(path.join(root, 'exports', 'renamed.csv'), 'utf8')).toBe('new');
      await client.delete('/exports/renamed.csv');
    } finally {
      await client.end();
    }
  });
});
