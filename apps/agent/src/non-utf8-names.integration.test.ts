import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '@airlock/connector-api';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import type { IntegrationSpec, Job } from '@airlock/protocol';
import { gpgDecrypt, startSshd, type TestSshd } from '@airlock/testing';
import { builtInConnectors } from './connectors.ts';
import { LocalPolicy } from './policy.ts';
import { runJob } from './transfer.ts';

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');
const GOOD = 'id\n1\n';
const LATIN1_NAME = Buffer.concat([Buffer.from('M'), Buffer.from([0xfc]), Buffer.from('ller.csv')]);

/** A path whose last component is raw bytes, as a Latin-1 system would have written it. */
const rawPath = (directory: string, name: Buffer) => Buffer.concat([Buffer.from(`${directory}/`), name]);

interface Captured {
  level: string;
  meta: Record<string, unknown>;
  message: string;
}

function capturingLogger(): Logger & { lines: Captured[] } {
  const lines: Captured[] = [];
  const at = (level: string) => (meta: Record<string, unknown>, message: string) => void lines.push({ level, meta, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('file names that are not valid UTF-8', () => {
  let work: string;
  let recipient: DemoKey;

  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'airlock-names-')));
    recipient = await generateDemoKey('Partner', 'partner@example.com');
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  function job(source: IntegrationSpec['source'], out: string, integrationId: string): Job {
    return {
      runId: randomUUID(),
      integrationId,
      integrationVersion: 1,
      spec: {
        name: 'names',
        agentId: randomUUID(),
        source,
        destination: { connector: 'local@1', config: { directory: out } },
        recipients: [recipient.armoredPublicKey],
        // Listed twice: the name is still reported, and warned about, once.
        selection: { stableForMs: 20 },
      },
    };
  }

  it('[integrity #14] local source: skips a file whose name is not UTF-8, reports it, and delivers the rest', async () => {
    const root = path.join(work, 'local');
    const dirs = { in: path.join(root, 'in'), out: path.join(root, 'out'), data: path.join(root, 'agent') };
    for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true });
    await writeFile(path.join(dirs.in, 'a.csv'), GOOD);
    await writeFile(rawPath(dirs.in, LATIN1_NAME), 'not to be read');
    // Under `**`, a directory with such a name cannot be entered: it is reported too, and not failed on.
    await mkdir(rawPath(dirs.in, Buffer.from([0xe9, 0x74, 0xe9])));
    await writeFile(Buffer.concat([rawPath(dirs.in, Buffer.from([0xe9, 0x74, 0xe9])), Buffer.from('/b.csv')]), 'unreachable');
    // Not selected by `*.csv`: not reported.
    await writeFile(rawPath(dirs.in, Buffer.from([0xfc, 0x2e, 0x74, 0x78, 0x74])), 'other');
    // Valid UTF-8 with a line break in it: no safe path component, so reported the same way.
    await writeFile(path.join(dirs.in, 'line\nbreak.csv'), 'not to be read either');

    const policy = LocalPolicy.parse(
      JSON.stringify({
        recipients: [recipient.fingerprint],
        sources: { local: [{ paths: [`${dirs.in}/**`] }] },
        destinations: { local: [{ root: dirs.out }] },
      }),
    );
    const integrationId = randomUUID();
    const source = { connector: 'local@1', config: { path: `${dirs.in}/**/*.csv` } };
    const run = (logger: Logger) =>
      runJob(job(source, dirs.out, integrationId), { registry: builtInConnectors(), policy, secrets: () => Promise.reject(new Error('none')), logger, dataDir: dirs.data });

    const logger = capturingLogger();
    const report = await run(logger);
    expect(report.status).toBe('succeeded');
    expect(report.files.map((file) => file.sourcePath)).toEqual([path.join(dirs.in, 'a.csv')]);
    expect(report.skippedNames).toEqual({
      count: 3,
      entries: [
        { directory: dirs.in, name: 'M%FCller.csv', reason: 'name-not-utf8' },
        { directory: dirs.in, name: '%E9t%E9', reason: 'name-not-utf8' },
        { directory: dirs.in, name: 'line%0Abreak.csv', reason: 'name-unsafe' },
      ].sort((a, b) => (a.name < b.name ? -1 : 1)),
    });
    expect(await readdir(dirs.out)).toEqual(['a.csv.pgp']);
    expect((await gpgDecrypt(path.join(dirs.out, 'a.csv.pgp'), recipient.armoredSecretKey)).sha256).toBe(sha256(GOOD));
    const warnings = logger.lines.filter((line) => line.level === 'warn' && JSON.stringify(line.meta).includes('M%FCller.csv'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.meta).toMatchObject({ directory: dirs.in, name: 'M%FCller.csv', reason: 'name-not-utf8' });
    expect(logger.lines.find((line) => line.meta['name'] === 'line%0Abreak.csv')?.message).toBe(
      'skipped a file, which stays in place: its name has a control character, a slash or a backslash, or normalizes to one or to ..',
    );
    expect(JSON.stringify(logger.lines)).not.toContain('not to be read');

    // The next run is not failed by it either, and says so again.
    const again = await run(capturingLogger());
    expect(again).toMatchObject({ status: 'succeeded', skipped: 1, files: [], skippedNames: { count: 3 } });
  });

  describe('SFTP source against OpenSSH', () => {
    let sshd: TestSshd;
    beforeAll(async () => {
      sshd = await startSshd();
    });
    afterAll(async () => {
      await sshd.stop();
    });

    it('[integrity #14] SFTP source: skips a file whose name is not UTF-8, reports it, and delivers the rest', async () => {
      const drop = path.join(sshd.root, 'drop');
      const out = path.join(work, 'sftp-out');
      const data = path.join(work, 'sftp-agent');
      for (const dir of [drop, out, data]) await mkdir(dir, { recursive: true });
      await writeFile(path.join(drop, 'a.csv'), GOOD);
      await writeFile(rawPath(drop, LATIN1_NAME), 'not to be read');

      const policy = LocalPolicy.parse(
        JSON.stringify({
          sources: { sftp: [{ host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, paths: [`${drop}/*.csv`] }] },
          destinations: { local: [{ root: out }] },
          recipients: [recipient.fingerprint],
        }),
      );
      const source = {
        connector: 'sftp@1',
        config: { host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, username: sshd.username, credentialRef: 'sshd', path: `${drop}/*.csv` },
      };
      const integrationId = randomUUID();
      const run = (logger: Logger) =>
        runJob(job(source, out, integrationId), { registry: builtInConnectors(), policy, secrets: async () => ({ privateKey: sshd.privateKey }), logger, dataDir: data });

      const logger = capturingLogger();
      const report = await run(logger);
    expect(report.status).toBe('succeeded');
      expect(report.files.map((file) => file.sourcePath)).toEqual([`${drop}/a.csv`]);
      // ssh2 hands over names already decoded: the byte itself is lost, only the fact that there was one.
      expect(report.skippedNames).toEqual({ count: 1, entries: [{ directory: drop, name: 'M\uFFFDller.csv', reason: 'name-not-utf8' }] });
      expect(await readdir(out)).toEqual(['a.csv.pgp']);
      expect((await gpgDecrypt(path.join(out, 'a.csv.pgp'), recipient.armoredSecretKey)).sha256).toBe(sha256(GOOD));
      const warnings = logger.lines.filter((line) => line.level === 'warn' && line.meta['reason'] === 'name-not-utf8');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.meta).toMatchObject({ directory: drop, name: 'M\uFFFDller.csv' });

      const again = await run(capturingLogger());
      expect(again).toMatchObject({ status: 'succeeded', skipped: 1, files: [], skippedNames: { count: 1 } });
    });
  });
});
