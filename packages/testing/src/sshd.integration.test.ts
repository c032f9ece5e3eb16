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

  it('reports the fingerprint ssh-keygen computes', async () => {
    const pair = generateSshKeyPair();
    expect(await sshKeygenFingerprint(pair.public)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
