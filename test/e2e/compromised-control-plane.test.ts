/**
 * compromised-control-plane: a hostile control plane (which holds the real control-plane signing
 * key, or does not) against a real agent process, a real OpenSSH sshd and real gpg. Every attack
 * must fail with nothing read (sshd saw no connection), nothing run (no script marker) and nothing
 * delivered, and with a security event in the agent's own security log. A genuine job runs first,
 * through the same harness, so the evidence checks are shown to move when something does happen.
 * The last line printed is `{ "attacks": N, "prevented": N }`.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditRecord, chainEvent, type ChainLeaf, compareLeaves, GENESIS_HASH, inclusionProof, signTreeCheckpoint } from '@airlock/audit';
import { type AgentKeyPair, encodeKey, generateKeyPair, keyFingerprint, signDetached, signStatement } from '@airlock/identity';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import { gpgDecrypt, startSshd, type TestSshd } from '@airlock/testing';
import { inheritedEnv } from '../src/config.ts';
import { HostileControlPlane } from '../src/hostile-control-plane.ts';
import { array, object, parseJsonLine, string } from '../src/json.ts';
import { type CommandResult, runCommand } from '../src/processes.ts';
import { REPO_ROOT } from '../src/system.ts';
import { chunksOf, installedLayout, manifestOf, markerArtifact, signRelease } from '../src/releases.ts';

const AGENT_BIN = path.join(REPO_ROOT, 'apps/agent/bin/airlock-agent.js');
const AIRLOCK_BIN = path.join(REPO_ROOT, 'apps/control-plane/bin/airlock.js');
const COMMAND_TIMEOUT_MS = 90_000;
const ORDERS = 'id,total\n1,10\n2,20\n';

const ATTACKS = [
  'swapped recipient key',
  'unsigned envelope',
  'replayed envelope',
  'expired envelope',
  'envelope for another agent',
  'wrong control-plane key',
  'widened path',
  'script not in the policy',
  'destination outside the policy',
  'forged receipt',
  'rewritten audit history',
  'truncated audit history',
  'release signed by the control-plane key',
  'tampered release artifact',
  'unsigned downgrade',
] as const;
type Attack = (typeof ATTACKS)[number];
const prevented = new Set<Attack>();

interface SecurityEventView {
  kind: string;
  reason: string;
  runId: string | null;
}

interface Evidence {
  /** sshd's "Connection from" lines: the agent reached the source at all. */
  sshdConnections: number;
  delivered: string[];
  scriptRan: boolean;
  securityEvents: SecurityEventView[];
  /** Security events the control plane has received so far. */
  reported: number;
}

function sign(keys: AgentKeyPair): (message: Uint8Array) => Uint8Array {
  return (message) => signDetached(message, keys.secretKey);
}

describe('compromised-control-plane', () => {
  let work: string;
  let sshd: TestSshd;
  let hostile: HostileControlPlane;
  let recipient: DemoKey;
  let attacker: DemoKey;
  const controlPlaneKey = generateKeyPair();
  const attackerKey = generateKeyPair();
  /** The release key: the agent pins its public half from a file, as the package installs it. */
  const releaseKey = generateKeyPair();
  let releaseKeyFile: string;
  let releaseMarker: string;
  let installedAgent: string;
  const agentId = randomUUID();
  const tenantId = randomUUID();
  const otherTenantId = randomUUID();
  let agentDir: string;
  let deliveredDir: string;
  let elsewhereDir: string;
  let scriptMarker: string;
  let scriptFile: string;
  /** The control plane's audit chain as it was honestly written. */
  const chain: AuditRecord[] = [];
  let genuineEnvelope: unknown;
  let genuineReceipt: unknown;

  let checkpointNumber = 0;
  /** A tree checkpoint over this tenant's head at `seq` and another tenant's, with this tenant's leaf and path, as the agent is served it. */
  const checkpointAt = (records: readonly AuditRecord[], seq: number, keys: AgentKeyPair = controlPlaneKey) => {
    const record = records.find((candidate) => candidate.seq === seq);
    if (record === undefined) throw new Error(`no record ${seq}`);
    const mine: ChainLeaf = { tenantId, seq, hash: record.hash };
    const leaves = [mine, { tenantId: otherTenantId, seq: 40 + seq, hash: 'c'.repeat(64) }].sort(compareLeaves);
    const index = leaves.indexOf(mine);
    checkpointNumber += 1;
    const checkpoint = signTreeCheckpoint({ number: checkpointNumber, leaves, legacy: { seq: 0, hash: GENESIS_HASH }, at: new Date() }, keys.publicKey, sign(keys));
    return { checkpoint, proof: { leaf: mine, index, proof: inclusionProof(leaves, index) } };
  };

  const buildChain = (count: number, variant: string): AuditRecord[] => {
    const records: AuditRecord[] = [];
    for (let i = 0; i < count; i++) {
      const previous = records.at(-1);
      const input = { tenantId, actor: { type: 'system' as const, id: null }, action: 'run-dispatch', target: `run-${i}`, outcome: 'success' as const, sourceIp: null, meta: { variant } };
      records.push(chainEvent(previous === undefined ? null : { seq: previous.seq, hash: previous.hash }, input, new Date(Date.UTC(2026, 0, 1, 0, i))));
    }
    return records;
  };

  const spec = (overrides: Record<string, unknown> = {}) => ({
    name: 'nightly',
    agentId,
    source: {
      connector: 'sftp@1',
      config: { host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, username: sshd.username, credentialRef: 'sshd', path: `${sshd.root}/exports/*.csv` },
    },
    destination: { connector: 'local@1', config: { directory: deliveredDir } },
    recipients: [recipient.armoredPublicKey],
    selection: { stableForMs: 0 },
    ...overrides,
  });

  const envelope = (overrides: Record<string, unknown> = {}, keys: AgentKeyPair = controlPlaneKey) => {
    const now = Date.now();
    const payload = {
      v: 1,
      tenantId,
      agentId,
      runId: randomUUID(),
      integrationId: randomUUID(),
      integrationVersion: 1,
      spec: spec(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 5 * 60_000).toISOString(),
      nonce: randomUUID().replaceAll('-', ''),
      ...overrides,
    };
    return signStatement('job', payload, sign(keys));
  };

  const agent = (args: readonly string[], dir = agentDir): Promise<CommandResult> =>
    runCommand(process.execPath, [AGENT_BIN, ...args, '--dir', dir], {
      env: { ...inheritedEnv(), AIRLOCK_LOG_LEVEL: 'info', AIRLOCK_AGENT_RELEASE_KEY: releaseKeyFile },
      cwd: work,
      timeoutMs: COMMAND_TIMEOUT_MS,
    });

  /** One `run --once`, with `answer` as what the long-poll hands out (none: an idle round that only witnesses). */
  const runAgent = async (answer?: unknown): Promise<CommandResult> => {
    hostile.behaviour.jobs = answer === undefined ? [] : [answer];
    return agent(['run', '--once', '--idle-timeout', answer === undefined ? '2' : '30', '--json']);
  };

  const securityEvents = async (dir = agentDir): Promise<SecurityEventView[]> => {
    const text = existsSync(path.join(dir, 'security.log')) ? await readFile(path.join(dir, 'security.log'), 'utf8') : '';
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const event = object(JSON.parse(line), 'security event');
        return { kind: string(event, 'kind', 'event'), reason: string(event, 'reason', 'event'), runId: typeof event['runId'] === 'string' ? event['runId'] : null };
      });
  };

  const evidence = async (): Promise<Evidence> => ({
    sshdConnections: (sshd.logs().match(/Connection from /g) ?? []).length,
    delivered: (await readdir(deliveredDir)).sort(),
    scriptRan: existsSync(scriptMarker),
    securityEvents: await securityEvents(),
    reported: hostile.callsTo('custody.reportSecurityEvent').length,
  });

  /** Nothing read, run or delivered since `before`, and a new security event of `kind`, also reported (metadata only). */
  const expectNothingHappened = async (before: Evidence, kind: string): Promise<SecurityEventView[]> => {
    const after = await evidence();
    expect(after.sshdConnections, 'sshd connections').toBe(before.sshdConnections);
    expect(after.delivered, 'delivered files').toEqual(before.delivered);
    expect(await readdir(elsewhereDir), 'files outside the policy').toEqual([]);
    expect(after.scriptRan, 'script ran').toBe(false);
    const added = after.securityEvents.slice(before.securityEvents.length);
    expect(added.map((event) => event.kind)).toContain(kind);
    const reported = hostile.callsTo('custody.reportSecurityEvent').slice(before.reported).map((call) => object(call.input, 'report'));
    expect(reported.map((event) => event['kind'])).toContain(kind);
    // Metadata only: which refusal, when, why, and the run it claimed.
    for (const event of reported) expect(Object.keys(event).every((key) => ['at', 'id', 'kind', 'reason', 'runId'].includes(key))).toBe(true);
    return added;
  };

  const refusedWith = (result: CommandResult): string => {
    expect(result.code, result.stderr).not.toBe(0);
    return string(object(object(parseJsonLine(result.stdout, 'agent output'), 'agent output')['refused'], 'refused'), 'kind', 'refused');
  };

  const violationOf = (result: CommandResult): { errorClass: string; kind: string | null } => {
    expect(result.code, result.stderr).not.toBe(0);
    const report = object(parseJsonLine(result.stdout, 'agent output'), 'agent report');
    expect(report['status']).toBe('failed');
    const violation = report['violation'];
    return { errorClass: string(report, 'errorClass', 'report'), kind: violation === undefined ? null : string(object(violation, 'violation'), 'kind', 'violation') };
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'airlock-compromised-'));
    agentDir = path.join(work, 'agent');
    deliveredDir = path.join(work, 'delivered');
    elsewhereDir = path.join(work, 'elsewhere');
    scriptMarker = path.join(work, 'exfiltrated');
    scriptFile = path.join(work, 'exfiltrate.sh');
    for (const dir of [agentDir, deliveredDir, elsewhereDir]) await mkdir(dir, { mode: 0o700 });
    releaseKeyFile = path.join(work, 'release-key.pub');
    await writeFile(releaseKeyFile, `${encodeKey(releaseKey.publicKey)}\n`, { mode: 0o644 });
    releaseMarker = path.join(work, 'release-ran');
    installedAgent = path.join(work, 'installed-airlock-agent');
    // A script that would leave a marker if it ever ran; the local policy does not list it.
    await writeFile(scriptFile, `#!/bin/sh\ntouch '${scriptMarker}'\ncat /etc/hostname\n`, { mode: 0o755 });
    [recipient, attacker, sshd] = await Promise.all([
      generateDemoKey('Partner', 'partner@example.com'),
      generateDemoKey('Attacker', 'attacker@example.com'),
      startSshd({ files: { 'exports/orders.csv': ORDERS, 'private/payroll.csv': 'name,salary\nalice,100\n' } }),
    ]);
    chain.push(...buildChain(5, 'honest'));
    hostile = await HostileControlPlane.start({
      identityKey: controlPlaneKey.publicKey,
      jobs: [],
      checkpoint: checkpointAt(chain, 3),
      records: chain.slice(0, 3),
      rotations: [],
      enrollment: { agentId, tenantId },
    });

    const enrolled = await agent(['enroll', '--url', hostile.url, '--token', `aet_${'x'.repeat(43)}`, '--control-plane-key', keyFingerprint(controlPlaneKey.publicKey), '--json']);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const keyFile = path.join(work, 'sftp-client.key');
    await writeFile(keyFile, sshd.privateKey, { mode: 0o600 });
    await writeFile(path.join(agentDir, 'secrets.yaml'), YAML.stringify({ sshd: { privateKeyFile: keyFile } }), { mode: 0o600 });
    const policy = {
      sources: { sftp: [{ host: '127.0.0.1', port: sshd.port, hostKey: sshd.hostKeyFingerprint, paths: [`${sshd.root}/exports/**`] }] },
      destinations: { local: [{ root: deliveredDir }] },
      recipients: [recipient.fingerprint],
    };
    await writeFile(path.join(agentDir, 'policy.yaml'), YAML.stringify(policy), { mode: 0o600 });
    await chmod(agentDir, 0o700);
    // Installed as the package does it, so the agent could switch versions if a release were genuine.
    await writeFile(installedAgent, markerArtifact(path.join(work, 'installed-ran')), { mode: 0o755 });
    await installedLayout(agentDir, installedAgent);
  }, 120_000);

  afterAll(async () => {
    await hostile?.stop();
    await sshd?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
    // The summary is the last line this suite prints.
    process.stdout.write(`${JSON.stringify({ attacks: ATTACKS.length, prevented: prevented.size })}\n`);
  });

  it('runs a genuine signed job: sshd is read, gpg decrypts the delivery, the receipt is signed, the audit checkpoint witnessed', async () => {
    const before = await evidence();
    genuineEnvelope = envelope();
    const result = await runAgent({ envelope: genuineEnvelope });
    expect(result.code, result.stderr).toBe(0);
    const after = await evidence();
    expect(after.sshdConnections).toBeGreaterThan(before.sshdConnections);
    expect(after.delivered).toEqual(['orders.csv.pgp']);
    expect(await gpgDecrypt(path.join(deliveredDir, 'orders.csv.pgp'), recipient.armoredSecretKey)).toEqual({ sha256: createHash('sha256').update(ORDERS).digest('hex'), bytes: ORDERS.length });
    expect(after.securityEvents).toEqual([]);
    const report = object(hostile.callsTo('agent.reportRun').at(-1)?.input, 'run report');
    genuineReceipt = object(array(report['files'], 'files')[0], 'file')['receipt'];
    expect(genuineReceipt).toBeDefined();
    expect(JSON.parse(await readFile(path.join(agentDir, 'audit-witness.json'), 'utf8'))).toMatchObject({ proof: { leaf: { tenantId, seq: 3 } } });

    // The honest chain grows: the witness follows it without an alert.
    hostile.behaviour.checkpoint = checkpointAt(chain, 5);
    hostile.behaviour.records = chain;
    await runAgent();
    expect(JSON.parse(await readFile(path.join(agentDir, 'audit-witness.json'), 'utf8'))).toMatchObject({ proof: { leaf: { tenantId, seq: 5 } } });
    expect(await securityEvents()).toEqual([]);
  });

  it('refuses a swapped recipient key (signed by the real control-plane key) before a byte is read', async () => {
    const before = await evidence();
    const { errorClass, kind } = violationOf(await runAgent({ envelope: envelope({ spec: spec({ recipients: [attacker.armoredPublicKey] }) }) }));
    expect({ errorClass, kind }).toEqual({ errorClass: 'policy-violation', kind: 'recipient' });
    await expectNothingHappened(before, 'policy-violation');
    prevented.add('swapped recipient key');
  });

  it('refuses an unsigned envelope', async () => {
    const before = await evidence();
    const bare = { job: { runId: randomUUID(), integrationId: randomUUID(), integrationVersion: 1, spec: spec() } };
    expect(refusedWith(await runAgent(bare))).toBe('envelope-unsigned');
    await expectNothingHappened(before, 'envelope-unsigned');
    prevented.add('unsigned envelope');
  });

  it('refuses a replayed envelope', async () => {
    const before = await evidence();
    expect(refusedWith(await runAgent({ envelope: genuineEnvelope }))).toBe('envelope-replayed');
    await expectNothingHappened(before, 'envelope-replayed');
    prevented.add('replayed envelope');
  });

  it('refuses an expired envelope', async () => {
    const before = await evidence();
    const old = envelope({ issuedAt: new Date(Date.now() - 20 * 60_000).toISOString(), expiresAt: new Date(Date.now() - 10 * 60_000).toISOString() });
    expect(refusedWith(await runAgent({ envelope: old }))).toBe('envelope-expired');
    await expectNothingHappened(before, 'envelope-expired');
    prevented.add('expired envelope');
  });

  it('refuses an envelope for another agent', async () => {
    const before = await evidence();
    const other = randomUUID();
    expect(refusedWith(await runAgent({ envelope: envelope({ agentId: other, spec: spec({ agentId: other }) }) }))).toBe('envelope-other-agent');
    await expectNothingHappened(before, 'envelope-other-agent');
    prevented.add('envelope for another agent');
  });

  it('refuses a wrong control-plane key: at enrollment before the token is sent, and on envelopes, even with a self-signed "rotation"', async () => {
    // Enrollment against a server presenting another key: refused before the token is redeemed.
    const freshDir = path.join(work, 'fresh-agent');
    hostile.behaviour.identityKey = attackerKey.publicKey;
    const enrollsBefore = hostile.callsTo('enrollment.enroll').length;
    const enrolled = await agent(['enroll', '--url', hostile.url, '--token', `aet_${'y'.repeat(43)}`, '--control-plane-key', keyFingerprint(controlPlaneKey.publicKey), '--json'], freshDir);
    hostile.behaviour.identityKey = controlPlaneKey.publicKey;
    expect(enrolled.code).not.toBe(0);
    expect(enrolled.stderr).toContain('not the pinned');
    expect(hostile.callsTo('enrollment.enroll')).toHaveLength(enrollsBefore);
    expect(existsSync(path.join(freshDir, 'agent.json'))).toBe(false);
    expect((await securityEvents(freshDir)).map((event) => event.kind)).toEqual(['control-plane-key-mismatch']);

    // A job signed by another key, with a key change signed only by that key: not followed, refused.
    const before = await evidence();
    const pinBefore = await readFile(path.join(agentDir, 'control-plane-key.json'), 'utf8');
    hostile.behaviour.rotations = [
      signStatement('rotation', { v: 1, previousKey: encodeKey(controlPlaneKey.publicKey), nextKey: encodeKey(attackerKey.publicKey), at: new Date().toISOString() }, sign(attackerKey)),
    ];
    expect(refusedWith(await runAgent({ envelope: envelope({}, attackerKey) }))).toBe('envelope-bad-signature');
    hostile.behaviour.rotations = [];
    expect(await readFile(path.join(agentDir, 'control-plane-key.json'), 'utf8')).toBe(pinBefore);
    await expectNothingHappened(before, 'envelope-bad-signature');
    prevented.add('wrong control-plane key');
  });

  it('set-url moves the agent to a new URL only when the server there presents the pinned key', async () => {
    const identityFile = path.join(agentDir, 'agent.json');
    const before = await readFile(identityFile, 'utf8');
    const elsewhere = hostile.url.replace('127.0.0.1', 'localhost');
    const mismatchesBefore = (await securityEvents()).filter((event) => event.kind === 'control-plane-key-mismatch').length;
    hostile.behaviour.identityKey = attackerKey.publicKey;
    const refused = await agent(['set-url', elsewhere, '--json']);
    hostile.behaviour.identityKey = controlPlaneKey.publicKey;
    expect(refused.code).toBe(3);
    const error = object(object(parseJsonLine(refused.stderr, 'set-url error'), 'set-url error')['error'], 'error');
    expect(error['code']).toBe('policy-violation');
    expect(string(error, 'message', 'error')).toMatch(/presents control-plane key ed25519:\S+, not the pinned ed25519:\S+; the URL was not changed$/);
    expect(await readFile(identityFile, 'utf8')).toBe(before);
    expect((await securityEvents()).filter((event) => event.kind === 'control-plane-key-mismatch')).toHaveLength(mismatchesBefore + 1);

    // Nothing listens there: the error names the URL and the cause, as JSON, and nothing changes.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const address = closed.address();
    const closedPort = typeof address === 'object' && address !== null ? address.port : 0;
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = await agent(['set-url', `http://127.0.0.1:${closedPort}`, '--json']);
    expect(unreachable.code).toBe(1);
    expect(object(parseJsonLine(unreachable.stderr, 'set-url error'), 'set-url error')['error']).toEqual({
      code: 'network-refused',
      message: `cannot reach http://127.0.0.1:${closedPort}/trpc/controlPlane.identity: connection refused (is the server running, and is this the right port?) (ECONNREFUSED)`,
    });
    expect(await readFile(identityFile, 'utf8')).toBe(before);

    const moved = await agent(['set-url', elsewhere, '--json']);
    expect(moved.code).toBe(0);
    expect(object(JSON.parse(await readFile(identityFile, 'utf8')), 'agent.json')['controlPlaneUrl']).toBe(new URL(elsewhere).origin);
    expect((await agent(['set-url', hostile.url])).code).toBe(0);
    expect(object(JSON.parse(await readFile(identityFile, 'utf8')), 'agent.json')['controlPlaneUrl']).toBe(hostile.url);
  });

  it('refuses a widened path', async () => {
    const before = await evidence();
    const widened = spec();
    widened.source.config.path = `${sshd.root}/**`;
    const { errorClass, kind } = violationOf(await runAgent({ envelope: envelope({ spec: widened }) }));
    expect({ errorClass, kind }).toEqual({ errorClass: 'policy-violation', kind: 'source' });
    await expectNothingHappened(before, 'policy-violation');
    prevented.add('widened path');
  });

  it('refuses a script that is not in the policy', async () => {
    const before = await evidence();
    const scripted = spec({ source: { connector: 'script@1', config: { name: 'exfiltrate' } } });
    const { errorClass } = violationOf(await runAgent({ envelope: envelope({ spec: scripted }) }));
    expect(errorClass).toBe('policy-violation');
    await expectNothingHappened(before, 'policy-violation');
    expect(existsSync(scriptFile)).toBe(true);
    prevented.add('script not in the policy');
  });

  it('refuses a destination outside the policy', async () => {
    const before = await evidence();
    const { errorClass, kind } = violationOf(await runAgent({ envelope: envelope({ spec: spec({ destination: { connector: 'local@1', config: { directory: elsewhereDir } } }) }) }));
    expect({ errorClass, kind }).toEqual({ errorClass: 'policy-violation', kind: 'destination' });
    await expectNothingHappened(before, 'policy-violation');
    prevented.add('destination outside the policy');
  });

  it('exposes a forged receipt: offline verification and the agent both refuse it', async () => {
    const before = await evidence();
    const genuine = object(genuineReceipt, 'receipt');
    const payload = object(JSON.parse(string(genuine, 'payload', 'receipt')), 'receipt payload');
    // Claims another ciphertext under the agent's signature; and a receipt the control plane signed itself.
    const altered = { payload: JSON.stringify({ ...payload, ciphertextSha256: 'f'.repeat(64) }), signature: genuine['signature'] };
    const selfSigned = signStatement('receipt', payload, sign(controlPlaneKey));
    const agentKey = string(object(parseJsonLine((await agent(['status', '--json'])).stdout, 'status'), 'status'), 'publicKey', 'status');
    const file = (name: string, receipts: unknown[]) => {
      const target = path.join(work, name);
      return writeFile(target, receipts.map((r) => JSON.stringify(r)).join('\n')).then(() => target);
    };
    const verify = (target: string) =>
      runCommand(process.execPath, [AIRLOCK_BIN, 'receipts', 'verify', '--file', target, '--agent-key', agentKey, '--json'], { env: inheritedEnv(), timeoutMs: COMMAND_TIMEOUT_MS });

    const genuineFile = await file('genuine.jsonl', [genuine]);
    expect((await verify(genuineFile)).code).toBe(0);
    expect((await agent(['receipts', 'check', '--file', genuineFile, '--json'])).code).toBe(0);
    for (const [name, forged] of [['altered.jsonl', altered], ['self-signed.jsonl', selfSigned]] as const) {
      const target = await file(name, [forged]);
      const offline = await verify(target);
      expect(offline.code).toBe(1);
      expect(JSON.parse(offline.stdout)).toMatchObject({ ok: false, failures: [{ line: 1 }] });
      expect((await agent(['receipts', 'check', '--file', target, '--json'])).code).toBe(1);
    }
    const after = await evidence();
    expect(after.sshdConnections).toBe(before.sshdConnections);
    expect(after.delivered).toEqual(before.delivered);
    expect(after.securityEvents.slice(before.securityEvents.length).map((event) => event.kind)).toEqual(['receipt-forged', 'receipt-forged']);
    prevented.add('forged receipt');
  });

  it('detects rewritten audit history', async () => {
    const before = await evidence();
    // The control plane rewrites from record 2 on and signs the result with its real key.
    const rewritten = buildChain(7, 'rewritten');
    hostile.behaviour.records = rewritten;
    hostile.behaviour.checkpoint = checkpointAt(rewritten, 7);
    const result = await runAgent();
    expect(result.stderr).toContain('ALERT');
    await expectNothingHappened(before, 'audit-rewritten');
    expect(JSON.parse(await readFile(path.join(agentDir, 'audit-witness.json'), 'utf8'))).toMatchObject({ proof: { leaf: { seq: 5, hash: chain[4]?.hash } } });
    prevented.add('rewritten audit history');
  });

  it('detects truncated audit history', async () => {
    const before = await evidence();
    hostile.behaviour.records = chain.slice(0, 2);
    hostile.behaviour.checkpoint = checkpointAt(chain, 2);
    const result = await runAgent();
    expect(result.stderr).toContain('ALERT');
    await expectNothingHappened(before, 'audit-truncated');
    prevented.add('truncated audit history');
  });

  /** An update offer as a heartbeat carries it, and the artifact bytes the control plane serves for it. */
  const offerUpdate = (release: unknown, artifact: Buffer, downgrade = false) => {
    hostile.behaviour.update = { rolloutId: randomUUID(), releaseId: randomUUID(), release, downgrade };
    hostile.behaviour.releaseChunks = chunksOf(artifact);
  };

  /** Nothing of the release was run, made executable or switched to, and the refusal was recorded and reported. */
  const expectNothingInstalled = async (before: Evidence, kind: string) => {
    hostile.behaviour.update = undefined;
    expect(existsSync(releaseMarker), 'the release ran').toBe(false);
    expect(await readlink(path.join(agentDir, 'versions', 'current'))).toBe(installedAgent);
    expect((await readdir(path.join(agentDir, 'versions'))).sort(), 'files in versions/').toEqual(['current']);
    await expectNothingHappened(before, kind);
    const refusals = hostile.callsTo('agent.reportUpdate').map((call) => object(call.input, 'update report'));
    expect(refusals.at(-1)).toMatchObject({ status: 'refused' });
  };

  it('[operations:update] refuses a release signed by the control-plane key instead of the release key: nothing downloaded or run', async () => {
    const before = await evidence();
    const artifact = markerArtifact(releaseMarker);
    const chunksBefore = hostile.callsTo('agent.releaseChunk').length;
    offerUpdate(signRelease(manifestOf(artifact, '9.0.0'), controlPlaneKey), artifact);
    const result = await runAgent();
    expect(result.stderr).toContain('update refused');
    expect(hostile.callsTo('agent.releaseChunk')).toHaveLength(chunksBefore);
    await expectNothingInstalled(before, 'update-bad-signature');
    prevented.add('release signed by the control-plane key');
  });

  it('[operations:update] refuses a tampered artifact under a genuine release signature: the download is checked and deleted before anything is executable', async () => {
    const before = await evidence();
    const artifact = markerArtifact(releaseMarker);
    // Same size, one byte changed: only the SHA-256 can tell.
    const tampered = Buffer.from(artifact);
    tampered[tampered.length - 3] = 0x31;
    offerUpdate(signRelease(manifestOf(artifact, '9.0.0'), releaseKey), tampered);
    const result = await runAgent();
    expect(result.stderr).toContain('update refused');
    expect(hostile.callsTo('agent.releaseChunk').length).toBeGreaterThan(0);
    await expectNothingInstalled(before, 'update-artifact-mismatch');
    prevented.add('tampered release artifact');
  });

  it('[operations:update] refuses a downgrade the release key did not sign as one, even when the control plane asks for it', async () => {
    const before = await evidence();
    const artifact = markerArtifact(releaseMarker);
    offerUpdate(signRelease(manifestOf(artifact, '0.0.1'), releaseKey), artifact, true);
    await runAgent();
    await expectNothingInstalled(before, 'update-downgrade');
    prevented.add('unsigned downgrade');
  });

  it('[operations:update] installs a release the release key signed: made executable only after its check, switched to, and the agent exits for a restart', async () => {
    const artifact = markerArtifact(releaseMarker);
    offerUpdate(signRelease(manifestOf(artifact, '9.0.0'), releaseKey), artifact);
    const result = await runAgent();
    hostile.behaviour.update = undefined;
    expect(result.code, result.stderr).toBe(75);
    const installed = path.join(agentDir, 'versions', '9.0.0', 'airlock-agent');
    expect(await readlink(path.join(agentDir, 'versions', 'current'))).toBe(installed);
    expect((await stat(installed)).mode & 0o777).toBe(0o700);
    expect(await readFile(installed)).toEqual(artifact);
    // The agent never starts what it installed (the unit does): the marker appears only when the switched-to file runs.
    expect(existsSync(releaseMarker)).toBe(false);
    const started = await runCommand(path.join(agentDir, 'versions', 'current'), [], { env: inheritedEnv(), timeoutMs: COMMAND_TIMEOUT_MS });
    expect(started.code).toBe(0);
    expect(existsSync(releaseMarker)).toBe(true);
    // Back as installed for any later test.
    await rm(path.join(agentDir, 'versions'), { recursive: true });
    await rm(releaseMarker);
    await installedLayout(agentDir, installedAgent);
  });

  it('follows a key rotation only when the pinned key signed it', async () => {
    hostile.behaviour.records = chain;
    hostile.behaviour.checkpoint = checkpointAt(chain, 5);
    const next = generateKeyPair();
    hostile.behaviour.rotations = [
      signStatement('rotation', { v: 1, previousKey: encodeKey(controlPlaneKey.publicKey), nextKey: encodeKey(next.publicKey), at: new Date().toISOString() }, sign(controlPlaneKey)),
    ];
    await rm(path.join(deliveredDir, 'orders.csv.pgp'));
    const result = await runAgent({ envelope: envelope({}, next) });
    expect(result.code, result.stderr).toBe(0);
    const pin = object(JSON.parse(await readFile(path.join(agentDir, 'control-plane-key.json'), 'utf8')), 'pin');
    expect(pin['fingerprint']).toBe(keyFingerprint(next.publicKey));
    expect((await securityEvents()).map((event) => event.kind)).toContain('control-plane-key-rotated');
    expect(await readdir(deliveredDir)).toEqual(['orders.csv.pgp']);
  });

  it('prevented every attack', () => {
    expect([...prevented].sort()).toEqual([...ATTACKS].sort());
  });
});
