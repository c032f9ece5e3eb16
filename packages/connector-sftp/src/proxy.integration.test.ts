import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorContext } from '@airlock/connector-api';
import { AuthenticationError, HostKeyMismatchError } from '@airlock/errors';
import { generateSshKeyPair, sshKeygenFingerprint, startSquid, startSshd, type TestSquid, type TestSshd } from '@airlock/testing';
import { sftpSource } from './index.ts';
import { mockContext, sha256 } from './test-context.ts';

const big = randomBytes(512 * 1024 + 3);
const PROXY_PASSWORD = randomBytes(12).toString('base64url');
let sshd: TestSshd;
let squid: TestSquid;

beforeAll(async () => {
  sshd = await startSshd({ files: { 'exports/big.csv': big } });
  squid = await startSquid({ allowPorts: [sshd.port], username: 'airlock', password: PROXY_PASSWORD });
});

afterAll(async () => {
  await squid?.stop();
  await sshd?.stop();
});

/** A context whose local policy names the proxy for the server, with the proxy credential in its secrets. */
function proxiedContext(proxyPassword: string, hostKey = sshd.hostKeyFingerprint): ConnectorContext & { lines: { message: string }[] } {
  const base = mockContext({ privateKey: sshd.privateKey });
  const policyEntry = { host: sshd.host, port: sshd.port, hostKey, paths: [`${sshd.root}/**`], proxy: { url: squid.url, credential: 'corporate-proxy' } };
  return {
    ...base,
    policy: [policyEntry],
    secret: async (ref): Promise<Readonly<Record<string, string>>> => (ref === 'corporate-proxy' ? { username: 'airlock', password: proxyPassword } : { privateKey: sshd.privateKey }),
  };
}

const config = (hostKey = sshd.hostKeyFingerprint) => ({
  host: sshd.host,
  port: sshd.port,
  hostKey,
  username: sshd.username,
  credentialRef: 'test-sftp',
  path: `${sshd.root}/exports/*.csv`,
});

describe('sftp through an HTTP CONNECT proxy named by the local policy [operations:proxy]', () => {
  it('lists and reads through squid; the access log shows the tunnel', async () => {
    const ctx = proxiedContext(PROXY_PASSWORD);
    const session = await sftpSource.bind(config()).connect(ctx);
    try {
      const [file] = await session.list();
      if (file === undefined) throw new Error('big.csv not listed');
      expect(await sha256(await session.open(file))).toBe(createHash('sha256').update(big).digest('hex'));
    } finally {
      await session.close();
    }
    expect(ctx.lines.some((line) => line.message === 'sftp tunnel opened through the proxy')).toBe(true);
    expect(await squid.accessLog()).toMatch(new RegExp(`TCP_TUNNEL/200 \\d+ CONNECT 127\\.0\\.0\\.1:${sshd.port} airlock `));
  });

  it('still pins the host key inside the tunnel', async () => {
    const otherPin = await sshKeygenFingerprint(generateSshKeyPair().public);
    await expect(sftpSource.bind(config(otherPin)).connect(proxiedContext(PROXY_PASSWORD, otherPin))).rejects.toBeInstanceOf(HostKeyMismatchError);
  });

  it('refuses a wrong proxy password as an authentication failure that names the proxy, not the password', async () => {
    const wrong = `${PROXY_PASSWORD}-wrong`;
    const error: unknown = await sftpSource.bind(config()).connect(proxiedContext(wrong)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as Error).message).toBe(`proxy ${squid.url} refused the credential for 127.0.0.1:${sshd.port} (407 Proxy Authentication Required)`);
    expect((error as Error).message).not.toContain(wrong);
  });

  it('connects directly when the policy names no proxy: the job cannot choose one', async () => {
    const before = (await squid.accessLog()).split('\n').length;
    const ctx = { ...mockContext({ privateKey: sshd.privateKey }), policy: [{ host: sshd.host, port: sshd.port, hostKey: sshd.hostKeyFingerprint, paths: ['/'] }] };
    const session = await sftpSource.bind(config()).connect(ctx);
    await session.close();
    expect((await squid.accessLog()).split('\n').length).toBe(before);
  });
});
