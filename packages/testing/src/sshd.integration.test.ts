import SftpClient from 'ssh2-sftp-client';
import { describe, expect, it } from 'vitest';
import { generateSshKeyPair, sshKeygenFingerprint, sshKeygenHostVerifier } from './ssh-keys.ts';
import { startSshd } from './sshd.ts';


describe('startSshd', () => {
  it('serves files over SFTP to the generated key, behind the pinned host key', async () => {
    await using sshd = await startSshd({ files: { 'exports/a.csv': 'id,name\n1,x\n', 'exports/sub/b.csv': 'b' } });
    expect(sshd.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const client = new SftpClient('test', {});
    await client.connect({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.privateKey,
      hostVerifier: sshKeygenHostVerifier(sshd.hostKeyFingerprint),
    });
    try {
      const names = (await client.list(`${sshd.root}/exports`)).map((entry) => entry.name).sort();
      expect(names).toEqual(['a.csv', 'sub']);
      const content = await client.get(`${sshd.root}/exports/a.csv`);
      expect(content.toString()).toBe('id,name\n1,x\n');
    } finally {
      await client.end();
    }
    expect(sshd.logs()).toContain('Accepted publickey for root');
  });

  it('lets the airlock-sftp user log in with a password', async () => {
    await using sshd = await startSshd({ files: { 'f.txt': 'hello' } });
    const password = 'correct horse battery staple';
    const username = await sshd.createSftpUser(password);
    const client = new SftpClient('test', {});
    await client.connect({
      host: sshd.host,
      port: sshd.port,
      username,
      password,
      hostVerifier: sshKeygenHostVerifier(sshd.hostKeyFingerprint),
    });
    try {
      expect((await client.get(`${sshd.root}/f.txt`)).toString()).toBe('hello');
    } finally {
      await client.end();
    }
  });

  it('comes back after a crash on the same port and host key, accepting the extra authorized key', async () => {
    const other = generateSshKeyPair();
    await using sshd = await startSshd({ files: { 'f.txt': 'again' }, authorizedKeys: [other.public] });
    const login = async (privateKey: string): Promise<string> => {
      const client = new SftpClient('test', {});
      await client.connect({
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        privateKey,
        hostVerifier: sshKeygenHostVerifier(sshd.hostKeyFingerprint),
      });
      try {
        return (await client.get(`${sshd.root}/f.txt`)).toString();
      } finally {
        await client.end();
      }
    };
    expect(sshd.publicKey).toMatch(/^ssh-ed25519 /);
    expect(await login(other.private)).toBe('again');
    await sshd.restart();
    expect(await login(sshd.privateKey)).toBe('again');
    expect(await login(other.private)).toBe('again');
  });

  it('reports the fingerprint ssh-keygen computes', async () => {
    const pair = generateSshKeyPair();
    expect(await sshKeygenFingerprint(pair.public)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
