import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietLogger } from '@airlock/connector-api/testkit';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import { job as jobSchema, type IntegrationSpecInput, type Job } from '@airlock/protocol';
import { gpgDecrypt } from '@airlock/testing';
import { builtInConnectors } from './connectors.ts';
import { LocalPolicy } from './policy.ts';
import { loadSigningKey } from './signing-key.ts';
import { runJob } from './transfer.ts';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const execFileAsync = promisify(execFile);

/** gpg --decrypt with a status channel; plaintext is hashed as it streams, never written. */
async function gpgDecryptVerify(file: string, keys: string[]): Promise<{ sha256: string; status: string }> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'airlock-gpg-'));
  const env = { ...process.env, GNUPGHOME: home };
  try {
    for (const key of keys) {
      await new Promise<void>((resolve, reject) => {
        const child = execFile('gpg', ['--batch', '--import'], { env }, (error) => (error ? reject(error) : resolve()));
        child.stdin?.end(key);
      });
    }
    return await new Promise((resolve, reject) => {
      const child = spawn('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--status-fd', '2', '--decrypt', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const hash = createHash('sha256');
      let status = '';
      child.stdout.on('data', (chunk: Buffer) => hash.update(chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (status += chunk));
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve({ sha256: hash.digest('hex'), status }) : reject(new Error(`gpg exited ${String(code)}: ${status}`))));
    });
  } finally {
    await execFileAsync('gpgconf', ['--kill', 'all'], { env }).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}

describe('the data path with local folders and real gpg', () => {
  let work: string;
  let recipient: DemoKey;
  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'airlock-local-path-')));
    recipient = await generateDemoKey('Partner', 'partner@example.com');
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function scenario(name: string) {
    const root = path.join(work, name);
    const dirs = { in: path.join(root, 'in'), out: path.join(root, 'out'), done: path.join(root, 'done'), data: path.join(root, 'agent') };
    for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true });
    const policy = LocalPolicy.parse(
      JSON.stringify({
        recipients: [recipient.fingerprint],
        sources: { local: [{ paths: [`${dirs.in}/**`], allowArchiveTo: [dirs.done] }] },
        destinations: { local: [{ root: dirs.out }] },
      }),
    );
    const job = (options: Partial<IntegrationSpecInput>, integrationId = randomUUID()): Job =>
      jobSchema.parse({
        runId: randomUUID(),
        integrationId,
        integrationVersion: 1,
        spec: {
          name,
          agentId: randomUUID(),
          source: { connector: 'local@1', config: { path: `${dirs.in}/*.csv` } },
          destination: { connector: 'local@1', config: { directory: dirs.out } },
          recipients: [recipient.armoredPublicKey],
          ...options,
        },
      });
    const run = (j: Job) => runJob(j, { registry: builtInConnectors(), policy, secrets: () => Promise.reject(new Error('none')), logger: quietLogger, dataDir: dirs.data });
    return { dirs, job, run };
  }

  it('signs and encrypts in parallel; gpg decrypts each file and reports a good signature by the agent key', async () => {
    const { dirs, job, run } = await scenario('signed');
    const contents = { 'a.csv': randomBytes(2 * 1024 * 1024), 'b.csv': 'id,name\n1,alice\n', 'c.csv': randomBytes(300_000) };
    for (const [file, data] of Object.entries(contents)) await writeFile(path.join(dirs.in, file), data);
    const report = await run(job({ output: { sign: true }, concurrency: 3, selection: { stableForMs: 50 } }));
    expect(report).toMatchObject({ status: 'succeeded', skipped: 0, deferred: 0 });
    const signer = await loadSigningKey(dirs.data);
    if (!signer) throw new Error('no signing key was created');
    expect(report.signerFingerprint).toBe(signer.fingerprint);
    expect((await readdir(dirs.out)).sort()).toEqual(['a.csv.pgp', 'b.csv.pgp', 'c.csv.pgp']);
    for (const [file, data] of Object.entries(contents)) {
      const result = await gpgDecryptVerify(path.join(dirs.out, `${file}.pgp`), [recipient.armoredSecretKey, signer.armoredPublicKey]);
      expect(result.sha256).toBe(sha256(data));
      expect(result.status).toMatch(new RegExp(`\\[GNUPG:\\] GOODSIG ${signer.fingerprint.slice(-16)} `));
      expect(result.status).toMatch(new RegExp(`\\[GNUPG:\\] VALIDSIG ${signer.fingerprint} `));
    }
  });

  it('archives delivered files, and a later run sends only new or changed ones', async () => {
    const { dirs, job, run } = await scenario('archived');
    await writeFile(path.join(dirs.in, 'a.csv'), 'first a');
    await writeFile(path.join(dirs.in, 'b.csv'), 'first b');
    const integrationId = randomUUID();
    const options = { output: { nameTemplate: '{stem}-{runId}.{ext}.pgp' }, selection: { stableForMs: 0 } };
    const first = await run(job(options, integrationId));
    expect(first).toMatchObject({ status: 'succeeded', skipped: 0 });
    expect(first.files).toHaveLength(2);

    const kept = await run(job(options, integrationId));
    expect(kept).toMatchObject({ status: 'succeeded', skipped: 2, files: [] });

    await writeFile(path.join(dirs.in, 'b.csv'), 'second b, longer');
    await writeFile(path.join(dirs.in, 'c.csv'), 'new c');
    const archive = { ...options, afterDelivery: { action: 'archive' as const, archiveDirectory: dirs.done } };
    const third = await run(job(archive, integrationId));
    expect(third).toMatchObject({ status: 'succeeded', skipped: 1 });
    expect(third.files.map((f) => path.basename(f.sourcePath))).toEqual(['b.csv', 'c.csv']);
    // a.csv was delivered by the first run; archiving it now is the post-action that run did not ask for.
    expect(await readdir(dirs.in)).toEqual([]);
    expect((await readdir(dirs.done)).sort()).toEqual(['a.csv', 'b.csv', 'c.csv']);
    expect(await readFile(path.join(dirs.done, 'b.csv'), 'utf8')).toBe('second b, longer');
    const delivered = (await readdir(dirs.out)).filter((f) => f.startsWith('b-'));
    expect(delivered).toHaveLength(2);
    const latest = delivered.find((f) => f.includes(third.runId));
    if (!latest) throw new Error('no delivery from the third run');
    expect(await gpgDecrypt(path.join(dirs.out, latest), recipient.armoredSecretKey)).toEqual({ sha256: sha256('second b, longer'), bytes: 16 });
  });

  it('refuses to archive where the policy does not allow, before reading anything', async () => {
    const { dirs, job, run } = await scenario('refused');
    await writeFile(path.join(dirs.in, 'a.csv'), 'a');
    const report = await run(job({ afterDelivery: { action: 'archive', archiveDirectory: path.join(work, 'elsewhere') } }));
    expect(report).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'source' } });
    expect(await readdir(dirs.out)).toEqual([]);
    expect(await readdir(dirs.in)).toEqual(['a.csv']);
  });
});
