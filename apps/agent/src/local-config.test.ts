import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { quietLogger } from '@airlock/connector-api/testkit';
import { localFolderSourcePolicy } from '@airlock/connector-local/definition';
import { LocalConfig, type LocalFiles } from './local-config.ts';
import { SecurityLog } from './security-log.ts';

const FINGERPRINT = 'A'.repeat(40);
const policyText = (paths: string[]) => JSON.stringify({ sources: { local: [{ paths }] }, destinations: { local: [{ root: '/out' }] }, recipients: [FINGERPRINT] });
const WIDE = policyText(['/in/**']);
const NARROW = policyText(['/in/a.csv']);
const SECRET_VALUE = 'hunter2-do-not-log';

/** Replaces a file the way editors and config management do: a new file renamed over the old one. */
async function replace(file: string, text: string, mode: number): Promise<void> {
  const temporary = `${file}.new`;
  await writeFile(temporary, text, { mode });
  await chmod(temporary, mode);
  await rename(temporary, file);
}

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The first `sources.local` entry's paths, as the local connector's schema parsed them. */
const localPaths = (config: LocalConfig): string[] | undefined => localFolderSourcePolicy.array().parse(config.current.policy.document.sources['local'])[0]?.paths;

describe('local config', () => {
  let dir: string;
  let files: LocalFiles;
  let securityLog: SecurityLog;
  const deps = () => ({ securityLog, logger: quietLogger });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-local-config-'));
    files = { policyFile: path.join(dir, 'policy.yaml'), secretsFile: path.join(dir, 'secrets.yaml') };
    securityLog = new SecurityLog(dir);
    await replace(files.policyFile, WIDE, 0o644);
    await replace(files.secretsFile, `sftp:\n  password: ${SECRET_VALUE}\n`, 0o600);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses at start a policy writable by group or others, or secrets open to them, naming the file and the mode to set', async () => {
    await chmod(files.policyFile, 0o664);
    await expect(LocalConfig.load(files)).rejects.toThrow(`${files.policyFile} has mode 0664, writable by group or others: set it to 0644 or 0600 (chmod 644 ${files.policyFile})`);
    await chmod(files.policyFile, 0o644);
    await chmod(files.secretsFile, 0o640);
    await expect(LocalConfig.load(files)).rejects.toThrow(`${files.secretsFile} has mode 0640, open to group or others: set it to 0600 (chmod 600 ${files.secretsFile})`);
    await chmod(files.secretsFile, 0o600);
    await expect(LocalConfig.load(files)).resolves.toBeInstanceOf(LocalConfig);
  });

  it('reloads on SIGHUP', async () => {
    const config = await LocalConfig.load(files);
    const stop = config.follow({ ...deps(), debounceMs: 60_000 });
    try {
      const before = config.current.policy.digest;
      await replace(files.policyFile, NARROW, 0o644);
      process.kill(process.pid, 'SIGHUP');
      await eventually(() => config.current.policy.digest !== before);
      expect(localPaths(config)).toEqual(['/in/a.csv']);
    } finally {
      stop();
    }
  });

  it('reloads when a file changes on disk, policy and secrets alike', async () => {
    const config = await LocalConfig.load(files);
    const stop = config.follow({ ...deps(), debounceMs: 20 });
    try {
      await replace(files.policyFile, NARROW, 0o600);
      await eventually(() => localPaths(config)?.length === 1);
      await replace(files.secretsFile, 'sftp:\n  password: rotated\n', 0o600);
      await eventually(async () => (await config.current.secrets('sftp').catch(() => undefined))?.['password'] === 'rotated');
    } finally {
      stop();
    }
  });

  it('refuses an invalid file whole, keeps the last good one and records the event, without the secret values', async () => {
    const config = await LocalConfig.load(files);
    const good = config.current;
    await replace(files.policyFile, 'sources: { local: [{ paths: ["relative/path"] }] }\nunknown: 1\n', 0o644);
    await replace(files.secretsFile, `sftp:\n  password: ${SECRET_VALUE}\n  extra: ${SECRET_VALUE}\nbroken: [${SECRET_VALUE}\n`, 0o600);
    const outcome = await config.reload(deps());
    expect(outcome.status).toBe('refused');
    expect(config.current.policy).toBe(good.policy);
    expect(await config.current.secrets('sftp')).toEqual({ password: SECRET_VALUE });
    const events = await securityLog.read();
    expect(events.map((event) => event.kind)).toEqual(['local-config-refused']);
    expect(events[0]?.reason).toContain(files.policyFile);
    expect(events[0]?.reason).toContain(files.secretsFile);
    expect(JSON.stringify(events)).not.toContain(SECRET_VALUE);
    expect(JSON.stringify(outcome)).not.toContain(SECRET_VALUE);
    // Unchanged since: an unrelated change in the directory does not record it again.
    expect(await config.reload(deps())).toEqual({ status: 'unchanged' });
    expect(await securityLog.read()).toHaveLength(1);
  });

  it('refuses at reload a file whose mode was loosened, and takes it again once fixed', async () => {
    const config = await LocalConfig.load(files);
    const good = config.current.policy;
    await replace(files.policyFile, NARROW, 0o666);
    const refused = await config.reload(deps());
    expect(refused).toEqual({ status: 'refused', problems: [`${files.policyFile} has mode 0666, writable by group or others: set it to 0644 or 0600 (chmod 644 ${files.policyFile})`] });
    expect(config.current.policy).toBe(good);
    await chmod(files.secretsFile, 0o644);
    expect(await config.reload(deps())).toMatchObject({ status: 'refused', problems: [expect.stringContaining('chmod 600')] });
    expect((await securityLog.read()).map((event) => event.kind)).toEqual(['local-config-refused', 'local-config-refused']);
    await chmod(files.policyFile, 0o644);
    expect(await config.reload(deps())).toMatchObject({ status: 'reloaded' });
    expect(localPaths(config)).toEqual(['/in/a.csv']);
  });
});
