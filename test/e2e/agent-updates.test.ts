/**
 * Signed agent updates rolled out by ring, as real processes: `airlock serve` on PostgreSQL, two
 * enrolled agents started the way their systemd unit starts them (the update guard before every
 * start, then `versions/current`, restarted on failure and on 75), and releases published with the
 * `airlock release` / `airlock rollout` commands. The canary ring updates first, the rest after it;
 * a release that exits at start is rolled back by the guard and halts the rollout.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTRPCClient, httpLink } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AppRouter } from '@airlock/api/router';
import { encodeKey, generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { inheritedEnv } from '../src/config.ts';
import { object, parseJsonLine, string } from '../src/json.ts';
import { runCommand } from '../src/processes.ts';
import { agentArtifact, installedLayout, manifestOf, markerArtifact, signRelease, superviseUnit } from '../src/releases.ts';
import { type AirlockSystem, REPO_ROOT, startSystem } from '../src/system.ts';

const AGENT_BIN = path.join(REPO_ROOT, 'apps/agent/bin/airlock-agent.js');
const COMMAND_TIMEOUT_MS = 90_000;
/** Control plane, PostgreSQL and several agent starts through tsx: a loaded machine needs the room. */
const SLOW_MACHINE_MS = 240_000;
const MAX_STARTS = 3;

interface Member {
  readonly id: string;
  readonly dir: string;
}

describe('signed agent updates, rolled out by ring', () => {
  let system: AirlockSystem;
  let canary: Member;
  let rest: Member;
  let canaryGroupId: string;
  let releaseKeyFile: string;
  let api: ReturnType<typeof createTRPCClient<AppRouter>>;
  const releaseKey = generateKeyPair();

  const agentEnv = (): NodeJS.ProcessEnv => ({
    ...inheritedEnv(),
    AIRLOCK_LOG_LEVEL: 'warn',
    AIRLOCK_AGENT_RELEASE_KEY: releaseKeyFile,
    AIRLOCK_AGENT_UPDATE_MAX_STARTS: String(MAX_STARTS),
  });

  async function enrollAgent(name: string): Promise<Member> {
    const dir = path.join(system.workDir, name);
    await mkdir(dir, { mode: 0o700 });
    const created = object(await system.airlockJson(['token', 'create']), 'airlock token create');
    const enrolled = await runCommand(process.execPath, [AGENT_BIN, 'enroll', '--url', system.controlPlaneUrl, '--control-plane-key', string(created, 'controlPlaneKey', 'token'), '--dir', dir, '--json'], {
      env: { ...agentEnv(), AIRLOCK_ENROLL_TOKEN: string(created, 'token', 'token') },
      cwd: system.workDir,
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
    expect(enrolled.code, enrolled.stderr).toBe(0);
    await copyFile(system.policyFile, path.join(dir, 'policy.yaml'));
    await copyFile(system.secretsFile, path.join(dir, 'secrets.yaml'));
    return { id: string(object(parseJsonLine(enrolled.stdout, 'enroll'), 'enroll'), 'agentId', 'enroll'), dir };
  }

  /** Publishes `artifact` as `version`, signed by the release key, with `airlock release publish`. */
  async function publish(artifact: Buffer, version: string): Promise<string> {
    const artifactFile = path.join(system.workDir, `airlock-agent-${version}`);
    const manifestFile = path.join(system.workDir, `airlock-agent-${version}.manifest.json`);
    await writeFile(artifactFile, artifact, { mode: 0o600 });
    await writeFile(manifestFile, JSON.stringify(signRelease(manifestOf(artifact, version), releaseKey)), { mode: 0o600 });
    const published = object(await system.airlockJson(['release', 'publish', '--manifest', manifestFile, '--artifact', artifactFile]), 'release publish');
    expect(published['state']).toBe('published');
    return string(published, 'id', 'release publish');
  }

  async function rollout(releaseId: string) {
    const rows = await api.rollouts.list.query();
    const found = rows.find((row) => row.releaseId === releaseId);
    if (found === undefined) throw new Error(`no rollout of ${releaseId}`);
    return { ...found, of: (member: Member) => found.agents.find((agent) => agent.agentId === member.id) };
  }

  async function agentVersion(member: Member): Promise<string | undefined> {
    return (await api.agents.list.query()).find((agent) => agent.id === member.id)?.version;
  }

  const unit = (member: Member, done: () => Promise<boolean>) =>
    superviseUnit({ guardBin: AGENT_BIN, dataDir: member.dir, env: agentEnv(), done, maxStarts: MAX_STARTS + 4, timeoutMs: 150_000 });

  beforeAll(async () => {
    system = await startSystem({ databaseUrl: await createTestDatabase(inject('postgresUrl')), files: { 'a.csv': 'id\n1\n' }, sftp: 'in-process', logLevel: 'warn' });
    releaseKeyFile = path.join(system.workDir, 'release-key.pub');
    await writeFile(releaseKeyFile, `${encodeKey(releaseKey.publicKey)}\n`, { mode: 0o644 });
    canary = { id: system.agentId, dir: system.agentDir };
    rest = await enrollAgent('agent-rest');
    // As the package installs them: `current` points at the packaged executable.
    for (const member of [canary, rest]) await installedLayout(member.dir, AGENT_BIN);
    const group = object(await system.airlockJson(['group', 'create', 'canary']), 'group create');
    canaryGroupId = string(group, 'id', 'group create');
    await system.airlock(['group', 'add', 'canary', '--agent', canary.id]);
    const { apiKey } = system.issuedCredentials();
    api = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${system.controlPlaneUrl}/trpc`, headers: { authorization: `Bearer ${apiKey}` } })] });
  }, SLOW_MACHINE_MS);

  afterAll(async () => {
    await system?.stop();
  });

  it('[operations:update] the canary ring updates first, then the rest; each agent switches, restarts and reports its new version', async () => {
    const marker = path.join(system.workDir, 'started-0.2.0');
    const releaseId = await publish(agentArtifact('0.2.0', marker), '0.2.0');
    const created = object(await system.airlockJson(['rollout', 'create', '--release', releaseId, '--canary-group', canaryGroupId]), 'rollout create');
    expect(created).toMatchObject({ canary: 1, rest: 1 });

    // The rest ring is not offered anything while the canary ring is under way: a heartbeat of its
    // agent (`status` sends one) leaves it waiting, where an offer would have marked it offered.
    const status = await runCommand(process.execPath, [AGENT_BIN, 'status', '--dir', rest.dir, '--json'], { env: agentEnv(), cwd: system.workDir, timeoutMs: COMMAND_TIMEOUT_MS });
    expect(status.code, status.stderr).toBe(0);
    expect((await rollout(releaseId)).of(rest)?.state).toBe('waiting');

    const canaryStarts = await unit(canary, async () => (await rollout(releaseId)).of(canary)?.state === 'installed');
    // The packaged version downloaded, switched and exited 75; the unit started 0.2.0, which heartbeated.
    expect(canaryStarts.map((start) => start.code), JSON.stringify(canaryStarts, null, 1)).toEqual([75, expect.anything()]);
    expect(canaryStarts.at(-1)?.stopped).toBe(true);
    expect(await readlink(path.join(canary.dir, 'versions', 'current'))).toBe(path.join(canary.dir, 'versions', '0.2.0', 'airlock-agent'));
    expect(await agentVersion(canary)).toBe('0.2.0');
    expect(existsSync(path.join(canary.dir, 'versions', 'pending.json'))).toBe(false);

    await unit(rest, async () => (await rollout(releaseId)).of(rest)?.state === 'installed');
    expect(await agentVersion(rest)).toBe('0.2.0');
    const done = await rollout(releaseId);
    expect(done.state).toBe('completed');
    expect(done.progress).toMatchObject({ total: 2, installed: 2, failed: 0 });
    expect((await readFile(marker, 'utf8')).trim().split('\n')).toEqual(['0.2.0', '0.2.0']);

    const audit = await api.audit.list.query({ limit: 200 });
    const actions = audit.map((event: { action: string }) => event.action);
    for (const action of ['release-create', 'release-publish', 'rollout-create', 'update-offer', 'agent-update', 'rollout-complete']) expect(actions).toContain(action);
    // Each agent said it was installing once: after the verified download, before the switch.
    const statuses = audit.filter((event: { action: string }) => event.action === 'agent-update').map((event: { meta: unknown }) => Reflect.get(Object(event.meta), 'status'));
    expect(statuses.filter((status: unknown) => status === 'installing')).toHaveLength(2);
  }, SLOW_MACHINE_MS);

  it('[operations:update] a release that exits at start is rolled back by the unit\'s guard, and its failure halts the rollout before the rest ring', async () => {
    const marker = path.join(system.workDir, 'started-broken');
    const releaseId = await publish(markerArtifact(marker, 1), '0.3.0');
    await system.airlockJson(['rollout', 'create', '--release', releaseId, '--canary-group', canaryGroupId, '--halt-at', '0']);
    const previous = await readlink(path.join(canary.dir, 'versions', 'current'));

    const starts = await unit(canary, async () => (await rollout(releaseId)).state === 'halted');
    // 0.2.0 switched (75); the broken release failed at each of its starts; the guard switched back; 0.2.0 reported it.
    expect(starts.map((start) => start.code), JSON.stringify(starts, null, 1)).toEqual([75, 1, 1, 1, expect.anything()]);
    expect(starts.at(-1)?.guard).toMatchObject({ action: 'rolled-back' });
    expect((await readFile(marker, 'utf8')).trim().split('\n')).toHaveLength(MAX_STARTS);
    expect(await readlink(path.join(canary.dir, 'versions', 'current'))).toBe(previous);
    expect(await agentVersion(canary)).toBe('0.2.0');

    const halted = await rollout(releaseId);
    expect(halted.of(canary)).toMatchObject({ state: 'failed' });
    expect(halted.of(canary)?.reason).toMatch(/started 3 times without a heartbeat/);
    expect(halted.of(rest)?.state).toBe('waiting');
    expect(halted.haltedReason).toMatch(/canary ring failed/);
    const audit = await api.audit.list.query({ limit: 200 });
    expect(audit.some((event: { action: string; outcome: string }) => event.action === 'rollout-halt' && event.outcome === 'failure')).toBe(true);
  }, SLOW_MACHINE_MS);
});
