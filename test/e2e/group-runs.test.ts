/**
 * An integration that targets an agent group, as real processes: `airlock serve` on PostgreSQL,
 * OpenSSH sshd, and two `airlock-agent` processes enrolled into one group that holds the grants.
 * A run goes to whichever member claims it; that member opens the envelope (sealed for it alone),
 * delivers, and gpg decrypts what it wrote.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, gpgDecrypt } from '@airlock/testing';
import { inheritedEnv } from '../src/config.ts';
import { object, parseJsonLine, string } from '../src/json.ts';
import { type CommandResult, runCommand } from '../src/processes.ts';
import { type AirlockSystem, CREDENTIAL_REF, REPO_ROOT, startSystem } from '../src/system.ts';

const AGENT_BIN = path.join(REPO_ROOT, 'apps/agent/bin/airlock-agent.js');
const GROUP = 'pair';
/** How long a member that gets no job waits before `run --once` gives up. */
const IDLE_SECONDS = 10;
const COMMAND_TIMEOUT_MS = 90_000;
/** Two agents, sshd and a control plane each start a Node process; a loaded machine needs the room. */
const SLOW_MACHINE_MS = 300_000;

interface Member {
  readonly id: string;
  readonly dir: string;
}

describe('a group run with two real agents', () => {
  let system: AirlockSystem;
  let members: Member[];

  const agentEnv = (extra: NodeJS.ProcessEnv = {}) => ({ ...inheritedEnv(), AIRLOCK_LOG_LEVEL: 'warn', ...extra });

  /** Enrolls a second agent into its own data directory, with the same local policy and secrets as the first. */
  async function enrollSecondAgent(): Promise<Member> {
    const dir = path.join(system.workDir, 'agent-b');
    await mkdir(dir, { mode: 0o700 });
    const created = object(await system.airlockJson(['token', 'create']), 'airlock token create');
    const args = ['enroll', '--url', system.controlPlaneUrl, '--control-plane-key', string(created, 'controlPlaneKey', 'token'), '--dir', dir, '--json'];
    // The token goes in the environment, not argv, where `ps` would show it.
    const enrolled = await runCommand(process.execPath, [AGENT_BIN, ...args], {
      env: agentEnv({ AIRLOCK_ENROLL_TOKEN: string(created, 'token', 'token') }),
      cwd: system.workDir,
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
    expect(enrolled.code, enrolled.stderr).toBe(0);
    await copyFile(system.policyFile, path.join(dir, 'policy.yaml'));
    await copyFile(system.secretsFile, path.join(dir, 'secrets.yaml'));
    return { id: string(object(parseJsonLine(enrolled.stdout, 'enroll'), 'enroll'), 'agentId', 'enroll'), dir };
  }

  /** `airlock-agent run --once --json` in the member's data directory. */
  function runOnce(member: Member): Promise<CommandResult> {
    return runCommand(process.execPath, [AGENT_BIN, 'run', '--dir', member.dir, '--once', '--idle-timeout', String(IDLE_SECONDS), '--json'], {
      env: agentEnv(),
      cwd: system.workDir,
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
  }

  /** An integration for the group, delivering into `destinationDir`; the group's grants cover it. */
  async function groupIntegration(name: string, destinationDir: string): Promise<string> {
    const sftp = system.sftp;
    if (sftp === undefined) throw new Error('no SFTP server');
    const spec = {
      name,
      source: {
        connector: 'sftp@1',
        config: { host: sftp.host, port: sftp.port, hostKey: sftp.hostKeyFingerprint, username: sftp.username, credentialRef: CREDENTIAL_REF, path: `${sftp.exportsPath}/*.csv` },
      },
      destination: { connector: 'local@1', config: { directory: destinationDir } },
      recipients: [{ file: path.basename(system.recipientPublicKeyFile) }],
    };
    const file = path.join(system.workDir, `integration-${name}.yaml`);
    await writeFile(file, YAML.stringify(spec), { mode: 0o644 });
    const saved = object(await system.airlockJson(['integration', 'create', '-f', file, '--group', GROUP]), 'integration create');
    return string(saved, 'id', 'integration create');
  }

  async function expectDecrypts(dir: string): Promise<void> {
    const names = (await readdir(dir)).sort();
    expect(names).toEqual(system.sources.map((source) => `${source.name}.pgp`).sort());
    const secretKey = await readFile(system.recipientSecretKeyFile, 'utf8');
    for (const source of system.sources) {
      const plain = await gpgDecrypt(path.join(dir, `${source.name}.pgp`), secretKey);
      expect(plain.sha256).toBe(source.sha256);
    }
  }

  beforeAll(async () => {
    system = await startSystem({
      databaseUrl: await createTestDatabase(inject('postgresUrl')),
      files: { 'members.csv': 'id,name\n1,alpha\n2,beta\n', 'more.csv': 'id\n3\n' },
    });
    members = [{ id: system.agentId, dir: system.agentDir }, await enrollSecondAgent()];
    await system.airlock(['group', 'create', GROUP]);
    for (const member of members) await system.airlock(['group', 'add', GROUP, '--agent', member.id]);
    const sftp = system.sftp;
    if (sftp === undefined) throw new Error('no SFTP server');
    // Only the group holds grants: neither member could run this on its own grants.
    await system.airlock(['grant', 'add', '--group', GROUP, `read sftp://${sftp.host}:${sftp.port}${sftp.exportsPath}/*.csv`]);
    await system.airlock(['grant', 'add', '--group', GROUP, `write file://${system.deliveredDir}/**`]);
  }, SLOW_MACHINE_MS);

  afterAll(async () => {
    await system?.stop();
  });

  it('[integrity #1] a group run is delivered by the member that claims it, and the other member can take the next one', async () => {
    const firstDir = path.join(system.deliveredDir, 'first');
    await mkdir(firstDir, { mode: 0o700 });
    const first = await system.runNow(await groupIntegration('group-first', firstDir));

    // Both members ask for work at once: exactly one takes the run, the other gets nothing.
    const outcomes = await Promise.all(members.map((member) => runOnce(member)));
    const delivered = outcomes.flatMap((outcome, i) => (outcome.code === 0 ? [i] : []));
    expect(delivered, outcomes.map((outcome) => outcome.stdout + outcome.stderr).join('\n')).toHaveLength(1);
    const winner = delivered[0] ?? -1;
    const loser = winner === 0 ? 1 : 0;
    expect(object(parseJsonLine(outcomes[winner]?.stdout ?? '', 'winner'), 'winner')['runId']).toBe(first);
    // The other member saw no job and no envelope it had to refuse.
    expect(outcomes[loser]?.stdout.trim()).toBe('null');
    const firstRun = await system.showRun(first);
    expect(firstRun.status).toBe('succeeded');
    expect(object(await system.airlockJson(['run', 'show', first]), 'run show')['agentId']).toBe(members[winner]?.id);
    await expectDecrypts(firstDir);

    // The member that lost the race runs the next group run on its own.
    const other = members[loser];
    if (other === undefined) throw new Error('two members expected');
    const secondDir = path.join(system.deliveredDir, 'second');
    await mkdir(secondDir, { mode: 0o700 });
    const second = await system.runNow(await groupIntegration('group-second', secondDir));
    const alone = await runOnce(other);
    expect(alone.code, alone.stdout + alone.stderr).toBe(0);
    expect((await system.showRun(second)).status).toBe('succeeded');
    expect(object(await system.airlockJson(['run', 'show', second]), 'run show')['agentId']).toBe(other.id);
    await expectDecrypts(secondDir);

    // Neither member refused an envelope along the way.
    expect(await system.airlockJson(['security-events'])).toEqual([]);
  }, SLOW_MACHINE_MS);
});
