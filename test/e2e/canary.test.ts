/**
 * Trust boundaries, checked with a canary: one unique string is both a line of a source file and
 * the SFTP password. After a successful run it must appear nowhere the control plane or the agent
 * keeps anything: the database, the control plane's log, the agent's logs, the agent's data dir
 * (the secrets file the operator wrote excepted), and not in the ciphertext either.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, postgresBinDir } from '@airlock/testing';
import { inheritedEnv } from '../src/config.ts';
import { runCommand } from '../src/processes.ts';
import { type AirlockSystem, startSystem } from '../src/system.ts';

const canary = `canary-${randomBytes(16).toString('hex')}`;

async function walk(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(full)));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

async function filesContaining(files: readonly string[], needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const file of files) if ((await readFile(file)).includes(needle)) found.push(file);
  return found;
}

async function pgDump(databaseUrl: string): Promise<string> {
  let pgDumpBin = 'pg_dump';
  try {
    pgDumpBin = path.join(postgresBinDir(), 'pg_dump');
  } catch {
    // An external server (AIRLOCK_TEST_DATABASE_URL) without local server binaries: use PATH.
  }
  const result = await runCommand(pgDumpBin, ['--no-owner', '--no-privileges', '--dbname', databaseUrl], { env: inheritedEnv(), timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`pg_dump exited with ${String(result.code)}: ${result.stderr.trim()}`);
  return result.stdout;
}

describe('a canary in the file contents and the SFTP password', () => {
  let system: AirlockSystem;
  let databaseUrl: string;
  let runId: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase(inject('postgresUrl'));
    system = await startSystem({
      databaseUrl,
      sftpPassword: canary,
      // The most talkative logs give a leak the most chances to show.
      logLevel: 'trace',
      files: {
        'customers.csv': `id,note\n1,${canary}\n2,plain\n`,
        'orders.csv': 'id,amount\n1,100\n',
      },
    });
    const integration = await system.createIntegration({ name: 'canary' });
    runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.code).toBe(0);
    const run = await system.waitForRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.report?.files).toHaveLength(2);
  });

  afterAll(async () => {
    await system?.stop();
  });

  it('is where it must be: the source file, the secrets file, and (decrypted) the delivery', async () => {
    const source = system.sources.find((file) => file.name === 'customers.csv');
    expect(source).toBeDefined();
    expect(await readFile(source?.path ?? '', 'utf8')).toContain(canary);
    expect(await readFile(system.secretsFile, 'utf8')).toContain(canary);
    expect(system.sftp?.username).toBe('airlock-sftp');
    const decrypted = await system.decryptDelivered();
    expect(decrypted.find((file) => file.source?.name === 'customers.csv')?.sha256).toBe(source?.sha256);
  });

  it('is not in the control plane database', async () => {
    const dump = await pgDump(databaseUrl);
    // The dump is of the right database: it holds the run.
    expect(dump).toContain(runId);
    expect(dump.includes(canary)).toBe(false);
  });

  it('leaves the owner API key and the enrollment token stored only as hashes, and logged nowhere', async () => {
    const { apiKey, enrollToken } = system.issuedCredentials();
    expect(apiKey.length).toBeGreaterThan(20);
    expect(enrollToken).toMatch(/^aet_/);
    const dump = await pgDump(databaseUrl);
    const logs = [system.controlPlaneLog, ...(await system.agentLogFiles())];
    for (const secret of [apiKey, enrollToken]) {
      expect(dump.includes(secret)).toBe(false);
      expect(await filesContaining(logs, secret)).toEqual([]);
      expect(await filesContaining(await walk(system.workDir), secret)).toEqual([]);
    }
  });

  it("is not in the control plane's log", async () => {
    const log = await readFile(system.controlPlaneLog, 'utf8');
    expect(log).toContain('control plane listening');
    expect(log.includes(canary)).toBe(false);
  });

  it("is not in the agent's stdout or stderr", async () => {
    const logs = await system.agentLogFiles();
    expect(logs.length).toBeGreaterThan(0);
    const all = (await Promise.all(logs.map((file) => readFile(file, 'utf8')))).join('\n');
    expect(all).toContain(runId);
    expect(await filesContaining(logs, canary)).toEqual([]);
  });

  it('is in no file the agent wrote, the ciphertext included; only the secrets file the operator wrote', async () => {
    const agentFiles = await walk(system.agentDir);
    expect(agentFiles.map((file) => path.basename(file))).toEqual(expect.arrayContaining(['agent.json', 'agent.key', 'secrets.yaml']));
    expect(await filesContaining(agentFiles, canary)).toEqual([system.secretsFile]);

    const delivered = await walk(system.deliveredDir);
    expect(delivered).toHaveLength(2);
    expect(await filesContaining(delivered, canary)).toEqual([]);

    // And across the whole work dir, only the plaintext source and the secrets file hold it.
    const everything = await walk(system.workDir);
    const source = system.sources.find((file) => file.name === 'customers.csv')?.path;
    expect((await filesContaining(everything, canary)).sort()).toEqual([source, system.secretsFile].sort());
  });
});
