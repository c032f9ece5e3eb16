import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '@airlock/connector-api';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import type { IntegrationSpec, Job } from '@airlock/protocol';
import { gpgDecrypt, startSshd, type TestSshd } from '@airlock/testing';
import { builtInConnectors } from './connectors.ts';
import { LocalPolicy } from './policy.ts';
import { runJob } from './transfer.ts';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');
const contents: Record<string, string> = { 'a.csv': 'id\n1\n', 'b.csv': 'id\n2\n' };

describe('SFTP source post-actions in a run', () => {
  let sshd: TestSshd;
  let work: string;
  let out: string;
  let recipient: DemoKey;
  const drop = () => path.join(sshd.root, 'drop');
  const done = () => path.join(sshd.root, 'done');

  beforeAll(async () => {
    sshd = await startSshd();
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-post-'));
    recipient = await generateDemoKey('Partner', 'partner@example.com');
  });

  afterAll(async () => {
    await sshd.stop();
    await rm(work, { recursive: true, force: true });
  });

  beforeEach(async () => {
    for (const dir of [drop(), done()]) {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir);
    }
    for (const [name, text] of Object.entries(contents)) await writeFile(path.join(drop(), name), text);
    out = path.join(work, randomUUID());
    await mkdir(out);
  });

  function policy(rights: { allowDelete?: boolean; allowArchiveTo?: string[] }): LocalPolicy {
    return LocalPolicy.parse(
      JSON.stringify({
        sources: { sftp: [{ host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, paths: [`${drop()}/*.csv`], ...rights }] },
        destinations: { local: [{ root: out }] },
      }),
    );
  }

  function job(afterDelivery: IntegrationSpec['afterDelivery']): Job {
    return {
      runId: randomUUID(),
      integrationId: randomUUID(),
      integrationVersion: 1,
      spec: {
        name: 'post-actions',
        agentId: randomUUID(),
        source: {
          connector: 'sftp@1',
          config: { host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, username: sshd.username, credentialRef: 'sshd', path: `${drop()}/*.csv` },
        },
        destination: { connector: 'local@1', config: { directory: out } },
        recipients: [recipient.armoredPublicKey],
        selection: { stableForMs: 0 },
        afterDelivery,
      },
    };
  }

  const run = (afterDelivery: IntegrationSpec['afterDelivery'], rights: Parameters<typeof policy>[0]) =>
    runJob(job(afterDelivery), {
      registry: builtInConnectors(),
      policy: policy(rights),
      secrets: async () => ({ privateKey: sshd.privateKey }),
      logger: quiet,
    });

  it('refuses delete and archive the local policy does not grant, before any byte moves', async () => {
    const deleting = await run({ action: 'delete' }, { allowArchiveTo: [done()] });
    expect(deleting).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'source' }, files: [] });
    const archiving = await run({ action: 'archive', archiveDirectory: done() }, { allowDelete: true, allowArchiveTo: [path.join(sshd.root, 'other')] });
    expect(archiving).toMatchObject({ status: 'failed', errorClass: 'policy-violation', files: [] });
    expect(await readdir(out)).toEqual([]);
    expect((await readdir(drop())).sort()).toEqual(['a.csv', 'b.csv']);
  });

  it('deletes each source file once its delivery is committed', async () => {
    const report = await run({ action: 'delete' }, { allowDelete: true });
    expect(report).toMatchObject({ status: 'succeeded' });
    expect(await readdir(drop())).toEqual([]);
    for (const [name, text] of Object.entries(contents)) {
      expect((await gpgDecrypt(path.join(out, `${name}.pgp`), recipient.armoredSecretKey)).sha256).toBe(sha256(text));
    }
  });

  it('archives each delivered file, and leaves in place a file whose delivery failed', async () => {
    // b.csv.pgp is already there: its delivery fails and b.csv must stay where it is.
    await writeFile(path.join(out, 'b.csv.pgp'), 'an earlier delivery');
    const report = await run({ action: 'archive', archiveDirectory: done() }, { allowArchiveTo: [done()] });
    expect(report.status).toBe('failed');
    expect(await readdir(drop())).toEqual(['b.csv']);
    expect(await readdir(done())).toEqual(['a.csv']);

    await rm(path.join(out, 'b.csv.pgp'));
    expect(await run({ action: 'archive', archiveDirectory: done() }, { allowArchiveTo: [done()] })).toMatchObject({ status: 'succeeded' });
    expect(await readdir(drop())).toEqual([]);
    expect((await readdir(done())).sort()).toEqual(['a.csv', 'b.csv']);
  });
});
