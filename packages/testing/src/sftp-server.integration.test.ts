import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { utils } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSftpServer } from './sftp-server.ts';
import { sshKeygenHostVerifier } from './ssh-keys.ts';

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
    const clientKey = utils.generateKeyPairSync('ed25519');
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
});
