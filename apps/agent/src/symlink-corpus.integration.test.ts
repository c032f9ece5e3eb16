/**
 * Symlinks on local folders: links planted in and around a granted source directory, pointing
 * outside it, at its parent, at each other, at devices. The data path must deliver exactly the
 * real files inside the root, and read nothing through any link.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietLogger } from '@airlock/connector-api/testkit';
import { generateDemoKey } from '@airlock/pgp';
import { job as jobSchema } from '@airlock/protocol';
import { gpgDecrypt } from '@airlock/testing';
import { builtInConnectors } from './connectors.ts';
import { LocalPolicy } from './policy.ts';
import { runJob } from './transfer.ts';

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

describe('symlinks around a granted local folder', () => {
  let work: string;
  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'airlock-symlinks-')));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('delivers only the real files inside the root, through no link', async () => {
    const root = path.join(work, 'in');
    const outside = path.join(work, 'secret');
    const out = path.join(work, 'out');
    for (const dir of [root, outside, out, path.join(root, 'sub')]) await mkdir(dir, { recursive: true });
    await writeFile(path.join(outside, 'passwd.csv'), 'SECRET-OUTSIDE\n');
    await writeFile(path.join(root, 'good.csv'), 'good\n');
    await writeFile(path.join(root, 'sub', 'deep.csv'), 'deep\n');
    const links: Array<[string, string]> = [
      ['to-outside-file.csv', path.join(outside, 'passwd.csv')],
      ['to-outside-dir', outside],
      ['to-parent', '..'],
      ['to-root-abs', '/'],
      ['to-etc-passwd.csv', '/etc/passwd'],
      ['to-self.csv', 'to-self.csv'],
      ['loop-a.csv', 'loop-b.csv'],
      ['loop-b.csv', 'loop-a.csv'],
      ['dangling.csv', path.join(work, 'missing.csv')],
      ['to-good.csv', 'good.csv'],
      ['to-dev-zero.csv', '/dev/zero'],
      ['relative-escape.csv', '../secret/passwd.csv'],
      ['sub-to-outside', '../secret'],
      [path.join('sub', 'up.csv'), '../../secret/passwd.csv'],
      [path.join('sub', 'to-sub-parent'), '..'],
    ];
    for (const [name, target] of links) await symlink(target, path.join(root, name));
    expect(links.length).toBeGreaterThanOrEqual(15);

    const recipient = await generateDemoKey('Partner', 'partner@example.com');
    const policy = LocalPolicy.parse(JSON.stringify({ sources: { local: [{ paths: [`${root}/**`] }] }, destinations: { local: [{ root: out, recipients: [recipient.fingerprint] }] } }));
    const report = await runJob(
      jobSchema.parse({
        runId: randomUUID(),
        integrationId: randomUUID(),
        integrationVersion: 1,
        spec: {
          name: 'symlinks',
          agentId: randomUUID(),
          source: { connector: 'local@1', config: { path: `${root}/**/*.csv` } },
          destination: { connector: 'local@1', config: { directory: out } },
          recipients: [recipient.armoredPublicKey],
          selection: { stableForMs: 0 },
        },
      }),
      { registry: builtInConnectors(), policy, secrets: () => Promise.reject(new Error('none')), logger: quietLogger },
    );
    expect(report.status).toBe('succeeded');
    expect(report.files.map((f) => path.relative(root, f.sourcePath)).sort()).toEqual(['good.csv', path.join('sub', 'deep.csv')]);
    expect((await readdir(out)).sort()).toEqual(['deep.csv.pgp', 'good.csv.pgp']);
    expect(await gpgDecrypt(path.join(out, 'good.csv.pgp'), recipient.armoredSecretKey)).toEqual({ sha256: sha256('good\n'), bytes: 5 });
  });
});
