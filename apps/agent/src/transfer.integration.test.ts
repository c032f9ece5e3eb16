import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '@airlock/connector-api';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import type { Job } from '@airlock/protocol';
import { gpgDecrypt, startSftpServer, startSshd, type TestSshd } from '@airlock/testing';
import { builtInConnectors } from './connectors.ts';
import { LocalPolicy } from './policy.ts';
import { runJob } from './transfer.ts';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

function policyFor(server: { port: number; hostKeyFingerprint: string }, readPaths: string[], roots: string[], recipients: string[]): LocalPolicy {
  return LocalPolicy.parse(
    JSON.stringify({
      recipients,
      sources: { sftp: [{ host: '127.0.0.1', port: server.port, hostKey: server.hostKeyFingerprint, paths: readPaths }] },
      destinations: { local: roots.map((root) => ({ root })) },
    }),
  );
}

function job(sourceConfig: Record<string, unknown>, directory: string, recipient: DemoKey): Job {
  return {
    runId: randomUUID(),
    integrationId: randomUUID(),
    integrationVersion: 1,
    spec: {
      name: 'test',
      agentId: randomUUID(),
      source: { connector: 'sftp@1', config: sourceConfig },
      destination: { connector: 'local@1', config: { directory } },
      recipients: [recipient.armoredPublicKey],
    },
  };
}

describe('the data path against real OpenSSH and GnuPG', () => {
  let sshd: TestSshd;
  let work: string;
  let out: string;
  let recipient: DemoKey;
  const files = {
    'exports/a.csv': 'id,name\n1,alice\n',
    'exports/b.csv': randomBytes(3 * 1024 * 1024),
    'exports/skip.txt': 'not selected',
    'private/secret.csv': 'never leaves',
  };
  const secrets = (ref: string) => {
    if (ref !== 'sshd') throw new Error(`unexpected ref ${ref}`);
    return Promise.resolve({ privateKey: sshd.privateKey });
  };
  const sourceConfig = () => ({
    host: '127.0.0.1',
    port: sshd.port,
    hostKey: sshd.hostKeyFingerprint,
    username: sshd.username,
    credentialRef: 'sshd',
    path: `${sshd.root}/exports/*.csv`,
  });

  beforeAll(async () => {
    sshd = await startSshd({ files });
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-agent-'));
    out = path.join(work, 'out');
    await (await import('node:fs/promises')).mkdir(out);
    recipient = await generateDemoKey('Partner', 'partner@example.com');
  });

  afterAll(async () => {
    await sshd.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('streams selected files through OpenPGP into the destination, and gpg decrypts them', async () => {
    const policy = policyFor(sshd, [`${sshd.root}/exports/**`], [out], [recipient.fingerprint]);
    const report = await runJob(job(sourceConfig(), out, recipient), { registry: builtInConnectors(), policy, secrets, logger: quiet });
    expect(report).toMatchObject({ status: 'succeeded', recipientFingerprints: [recipient.fingerprint] });
    expect(report.files.map((f) => path.basename(f.sourcePath))).toEqual(['a.csv', 'b.csv']);
    expect((await readdir(out)).sort()).toEqual(['a.csv.pgp', 'b.csv.pgp']);
    for (const file of report.files) {
      const name = path.basename(file.sourcePath) as 'a.csv' | 'b.csv';
      const plain = files[`exports/${name}`];
      expect(file.plaintextHmac).toMatch(/^[0-9a-f]{64}$/);
      const decrypted = await gpgDecrypt(path.join(out, `${name}.pgp`), recipient.armoredSecretKey);
      expect(decrypted).toEqual({ sha256: sha256(plain), bytes: Buffer.byteLength(plain) });
    }
    expect(report.bytesIn).toBe(report.files.reduce((n, f) => n + f.bytesIn, 0));
  });

  it('delivers SFTP to SFTP: pipelined read, encrypt, pipelined write, no partial file left', async () => {
    const incoming = path.join(sshd.root, 'incoming');
    await (await import('node:fs/promises')).mkdir(incoming);
    const policy = LocalPolicy.parse(
      JSON.stringify({
        recipients: [recipient.fingerprint],
        sources: { sftp: [{ host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, paths: [`${sshd.root}/exports/**`] }] },
        destinations: { sftp: [{ host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, roots: [incoming] }] },
      }),
    );
    const sftpJob = job(sourceConfig(), out, recipient);
    sftpJob.spec.destination = {
      connector: 'sftp@1',
      config: { host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, username: sshd.username, credentialRef: 'sshd', directory: incoming },
    };
    const report = await runJob(sftpJob, { registry: builtInConnectors(), policy, secrets, logger: quiet });
    expect(report).toMatchObject({ status: 'succeeded' });
    expect((await readdir(incoming)).sort()).toEqual(['a.csv.pgp', 'b.csv.pgp']);
    const decrypted = await gpgDecrypt(path.join(incoming, 'b.csv.pgp'), recipient.armoredSecretKey);
    expect(decrypted.sha256).toBe(sha256(files['exports/b.csv']));
  });

  it('refuses a host key other than the pinned one and delivers nothing', async () => {
    const dest = path.join(work, 'wrong-key');
    await (await import('node:fs/promises')).mkdir(dest);
    const wrongPin = `SHA256:${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`;
    const policy = LocalPolicy.parse(
      JSON.stringify({
        recipients: [recipient.fingerprint],
        sources: { sftp: [{ host: '127.0.0.1', port: sshd.port, hostKey: wrongPin, paths: [`${sshd.root}/exports/**`] }] },
        destinations: { local: [{ root: dest }] },
      }),
    );
    const report = await runJob(job({ ...sourceConfig(), hostKey: wrongPin }, dest, recipient), { registry: builtInConnectors(), policy, secrets, logger: quiet });
    expect(report).toMatchObject({ status: 'failed', errorClass: 'host-key-mismatch', files: [] });
    // The reason the control plane will show: which server, what it presented, what is pinned.
    expect(report.reason).toMatch(new RegExp(`^host key mismatch for sftp://127\\.0\\.0\\.1:${sshd.port}: presented SHA256:\\S+, pinned ${wrongPin.replace(/[+/]/g, '\\$&')}$`));
    expect(await readdir(dest)).toEqual([]);
  });

  it('refuses a job outside the local policy before connecting', async () => {
    const policy = policyFor(sshd, [`${sshd.root}/exports/**`], [out], [recipient.fingerprint]);
    let asked = 0;
    const counting = (ref: string) => ((asked += 1), secrets(ref));
    const outside = await runJob(job({ ...sourceConfig(), path: `${sshd.root}/private/*.csv` }, out, recipient), {
      registry: builtInConnectors(),
      policy,
      secrets: counting,
      logger: quiet,
    });
    expect(outside).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'source' } });
    const elsewhere = await runJob(job(sourceConfig(), path.join(work, 'elsewhere'), recipient), {
      registry: builtInConnectors(),
      policy,
      secrets: counting,
      logger: quiet,
    });
    expect(elsewhere).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'destination' } });
    expect(asked).toBe(0);
  });

  it('refuses recipient keys that are not public keys before any byte moves', async () => {
    const policy = policyFor(sshd, [`${sshd.root}/exports/**`], [out], [recipient.fingerprint]);
    const bad = job(sourceConfig(), out, recipient);
    bad.spec.recipients = [recipient.armoredSecretKey.replace('PRIVATE', 'PUBLIC')];
    let asked = 0;
    const report = await runJob(bad, { registry: builtInConnectors(), policy, secrets: (ref) => ((asked += 1), secrets(ref)), logger: quiet });
    expect(report).toMatchObject({ status: 'failed', errorClass: 'recipient-key' });
    expect(asked).toBe(0);
  });
});

describe('a hostile SFTP server', () => {
  it('cannot make the agent read or write outside the configured roots', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'airlock-hostile-'));
    try {
      const served = path.join(work, 'served');
      const out = path.join(work, 'out');
      const fs = await import('node:fs/promises');
      await fs.mkdir(path.join(served, 'exports'), { recursive: true });
      await fs.mkdir(out);
      await writeFile(path.join(served, 'exports', 'good.csv'), 'ok\n');
      await writeFile(path.join(work, 'x.pgp'), 'untouched');
      const password = randomBytes(12).toString('hex');
      const extraNames = ['../x', '/etc/passwd', '..', 'a/b', '../../x.pgp', 'sub/../../escape.csv', '.', 'nul\u0000.csv'];
      await using server = await startSftpServer({ root: served, password, hostile: { extraNames } });
      const recipient = await generateDemoKey('Partner', 'partner@example.com');
      const policy = policyFor(server, ['/exports/**'], [out], [recipient.fingerprint]);
      const report = await runJob(
        job({ host: '127.0.0.1', port: server.port, hostKey: server.hostKeyFingerprint, username: 'u', credentialRef: 'p', path: '/exports/*' }, out, recipient),
        { registry: builtInConnectors(), policy, secrets: async () => ({ password }), logger: quiet },
      );
      expect(report.status).toBe('succeeded');
      expect(report.files.map((f) => f.sourcePath)).toEqual(['/exports/good.csv']);
      expect(await readdir(out)).toEqual(['good.csv.pgp']);
      expect((await fs.readFile(path.join(work, 'x.pgp'), 'utf8'))).toBe('untouched');
      const opened = server.requests.filter((r) => r.op === 'open').map((r) => r.path);
      expect(opened).toEqual(['/exports/good.csv']);
      expect(server.requests.every((r) => r.path === '/exports' || r.path.startsWith('/exports/'))).toBe(true);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
