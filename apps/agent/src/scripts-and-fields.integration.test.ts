import { createHash, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietLogger } from '@airlock/connector-api/testkit';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import { job as jobSchema, type IntegrationSpecInput, type Job } from '@airlock/protocol';
import { gpgDecrypt } from '@airlock/testing';
import { builtInConnectors } from './connectors.ts';
import { LocalPolicy } from './policy.ts';
import { runJob } from './transfer.ts';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const noSecrets = () => Promise.reject(new Error('no secrets here'));

describe('export scripts and field scopes through the data path, checked with gpg', () => {
  let work: string;
  let out: string;
  let recipient: DemoKey;
  let scriptFile: string;
  let scriptHash: string;
  const marker = () => path.join(work, 'ran');

  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'airlock-scripts-')));
    out = path.join(work, 'out');
    await mkdir(out);
    recipient = await generateDemoKey('Partner', 'partner@example.com');
    scriptFile = path.join(work, 'export.sh');
    const text = `#!/bin/sh\ntouch ${marker()}\nprintf 'id,name,ssn,region\\n1,Alice,123-45-6789,%s\\n2,Bob,987-65-4321,%s\\n' "$1" "$1"\n`;
    await writeFile(scriptFile, text);
    await chmod(scriptFile, 0o755);
    scriptHash = sha256(text);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const policy = (scripts: unknown[]) =>
    LocalPolicy.parse(JSON.stringify({ sources: { script: scripts }, destinations: { local: [{ root: out }] }, recipients: [recipient.fingerprint] }));
  const approved = () => ({ name: 'erp-export', command: scriptFile, sha256: scriptHash, cwd: work, args: ['{region}'], params: { region: { pattern: '[A-Z]{2}' } } });
  const job = (options: Partial<IntegrationSpecInput>): Job =>
    jobSchema.parse({
      runId: randomUUID(),
      integrationId: randomUUID(),
      integrationVersion: 1,
      spec: {
        name: 'erp',
        agentId: randomUUID(),
        source: { connector: 'script@1', config: { name: 'erp-export', params: { region: 'EU' }, outputName: 'customers.csv' } },
        destination: { connector: 'local@1', config: { directory: out } },
        recipients: [recipient.armoredPublicKey],
        fields: { format: 'csv', allow: ['id', 'region'], rules: { id: { type: 'integer' } } },
        ...options,
      },
    });
  const run = (j: Job, scripts: unknown[]) => {
    const p = policy(scripts);
    return runJob(j, { registry: builtInConnectors(), policy: p, secrets: noSecrets, logger: quietLogger });
  };

  it('streams an approved script through the field scope: gpg sees only the granted columns', async () => {
    const report = await run(job({}), [approved()]);
    expect(report).toMatchObject({ status: 'succeeded' });
    const expected = 'id,region\n1,EU\n2,EU\n';
    expect(report.files).toMatchObject([{ sourcePath: '/erp-export', plaintextHmac: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(await gpgDecrypt(path.join(out, 'customers.csv.pgp'), recipient.armoredSecretKey)).toEqual({ sha256: sha256(expected), bytes: expected.length });
    await rm(path.join(out, 'customers.csv.pgp'));
  });

  it('runs the same approved script again on the next run: script output is never skipped as already delivered', async () => {
    const first = await run(job({ fields: undefined }), [approved()]);
    await rm(path.join(out, 'customers.csv.pgp'));
    const second = await run(job({ fields: undefined }), [approved()]);
    expect([first.status, second.status]).toEqual(['succeeded', 'succeeded']);
    await rm(path.join(out, 'customers.csv.pgp'));
  });

  it('refuses a script the local policy does not list, before anything runs', async () => {
    await rm(marker(), { force: true });
    const report = await run(job({}), []);
    expect(report).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'source' } });
    expect(await readdir(work)).not.toContain('ran');
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses a changed script file, parameters outside their schema, and a failing data contract, delivering nothing', async () => {
    await rm(marker(), { force: true });
    const changed = await run(job({}), [{ ...approved(), sha256: sha256('something else') }]);
    expect(changed).toMatchObject({ status: 'failed', errorClass: 'policy-violation' });
    expect(await readdir(work)).not.toContain('ran');
    const badParam = await run(job({ source: { connector: 'script@1', config: { name: 'erp-export', params: { region: 'EU; rm -rf /' } } } }), [approved()]);
    expect(badParam).toMatchObject({ status: 'failed', errorClass: 'user' });
    expect(await readdir(work)).not.toContain('ran');
    const contract = await run(job({ fields: { format: 'csv', allow: ['id'], rules: { ssn: { pattern: '\\d{9}' } } } }), [approved()]);
    expect(contract).toMatchObject({ status: 'failed', errorClass: 'user' });
    expect(await readdir(out)).toEqual([]);
  });

  it('[integrity #4] a malformed CSV fails as a user error, and neither the log nor the report quotes a cell', async () => {
    const source = path.join(work, 'malformed');
    await mkdir(source);
    await writeFile(path.join(source, 'stray-quote.csv'), 'id,secret\n1,SECRET"VALUE\n');
    const logged: string[] = [];
    const record = (level: string) => (meta: Record<string, unknown>, message: string) => void logged.push(JSON.stringify({ level, meta, message }));
    const logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
    const p = LocalPolicy.parse(JSON.stringify({ sources: { local: [{ paths: [`${source}/*.csv`] }] }, destinations: { local: [{ root: out }] }, recipients: [recipient.fingerprint] }));
    const report = await runJob(
      job({ source: { connector: 'local@1', config: { path: `${source}/*.csv` } }, fields: { format: 'csv', allow: ['id'] }, selection: { stableForMs: 0 } }),
      { registry: builtInConnectors(), policy: p, secrets: noSecrets, logger },
    );
    expect(report).toMatchObject({ status: 'failed', errorClass: 'user' });
    expect(logged.join('\n')).toMatch(/row 1, column 2: a quote inside an unquoted field/);
    expect(`${logged.join('\n')}${JSON.stringify(report)}`).not.toMatch(/SECRET|VALUE/);
    expect(await readdir(out)).toEqual([]);
  });

  it('filters a large CSV from a folder on the way to gpg: excluded columns never reach the ciphertext', async () => {
    const source = path.join(work, 'large');
    await mkdir(source);
    const rows = 300_000;
    const lines = (withSecret: boolean) => {
      const parts: string[] = [withSecret ? 'id,name,ssn,amount\n' : 'id,amount\n'];
      for (let i = 1; i <= rows; i++) parts.push(withSecret ? `${i},customer ${i},SSN-${i},${i % 997}\n` : `${i},${i % 997}\n`);
      return parts.join('');
    };
    await writeFile(path.join(source, 'ledger.csv'), lines(true));
    const expected = lines(false);
    const p = LocalPolicy.parse(JSON.stringify({ sources: { local: [{ paths: [`${source}/*.csv`] }] }, destinations: { local: [{ root: out }] }, recipients: [recipient.fingerprint] }));
    const report = await runJob(
      job({
        source: { connector: 'local@1', config: { path: `${source}/*.csv` } },
        fields: { format: 'csv', allow: ['id', 'amount'], rules: { id: { type: 'integer' }, amount: { type: 'integer' } } },
        selection: { stableForMs: 0 },
      }),
      { registry: builtInConnectors(), policy: p, secrets: noSecrets, logger: quietLogger },
    );
    expect(report).toMatchObject({ status: 'succeeded' });
    const decrypted = await gpgDecrypt(path.join(out, 'ledger.csv.pgp'), recipient.armoredSecretKey);
    expect(decrypted).toEqual({ sha256: sha256(expected), bytes: expected.length });
    process.stdout.write(
      `${JSON.stringify({ fieldScopeThroughAgent: { rows, inMiB: +((report.bytesIn) / 2 ** 20).toFixed(1), plaintextOutMiB: +(expected.length / 2 ** 20).toFixed(1), peakRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(1) } })}\n`,
    );
    await rm(path.join(out, 'ledger.csv.pgp'));
  });
});
