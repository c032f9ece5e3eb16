/**
 * The whole system as an operator runs it: the control plane on PostgreSQL, OpenSSH, an enrolled
 * agent process, gpg. One integration run moves three files and every layer agrees on what happened.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@airlock/testing';
import { sampleValue } from '../src/prometheus.ts';
import { listeningSocketCount } from '../src/sockets.ts';
import { type AirlockSystem, startSystem } from '../src/system.ts';

describe('whole system: control plane on PostgreSQL, sshd, agent, gpg', () => {
  let system: AirlockSystem;

  beforeAll(async () => {
    system = await startSystem({
      databaseUrl: await createTestDatabase(inject('postgresUrl')),
      files: {
        'alpha.csv': 'id,name\n1,alice\n2,bob\n',
        'beta.csv': randomBytes(2 * 1024 * 1024).toString('base64'),
        'gamma.csv': '',
        'not-selected.txt': 'the integration selects *.csv only',
      },
    });
  });

  afterAll(async () => {
    await system?.stop();
  });

  it('enrolls, runs an integration and delivers ciphertext that gpg decrypts to each source; the metrics show the run', async () => {
    const integration = await system.createIntegration({ name: 'whole-system' });
    const runId = await system.runNow(integration.id);

    const agent = await system.runAgentOnce();
    expect(agent.code).toBe(0);
    expect(agent.report?.runId).toBe(runId);
    expect(agent.report?.status).toBe('succeeded');

    const run = await system.waitForRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.errorClass).toBeNull();
    const csvSources = system.sources.filter((source) => source.name.endsWith('.csv'));
    expect(run.report?.files).toHaveLength(3);
    for (const file of run.report?.files ?? []) {
      const source = csvSources.find((candidate) => path.basename(file.sourcePath) === candidate.name);
      expect(source, file.sourcePath).toBeDefined();
      // Keyed on the agent: the control plane cannot test a guess of the content against it.
      expect(file.plaintextHmac).toMatch(/^[0-9a-f]{64}$/);
      expect(file.plaintextHmac).not.toBe(source?.sha256);
      expect(file.bytesIn).toBe(source?.bytes);
    }

    const delivered = await system.deliveredNames();
    expect(delivered.filter((name) => name.includes('.airlock-partial'))).toEqual([]);
    expect(delivered.sort()).toEqual(csvSources.map((source) => `${source.name}.pgp`).sort());

    const decrypted = await system.decryptDelivered();
    expect(decrypted).toHaveLength(3);
    for (const file of decrypted) {
      expect(file.source, file.ciphertext).toBeDefined();
      expect(file.sha256).toBe(file.source?.sha256);
      const reported = run.report?.files.find((entry) => path.basename(entry.sourcePath) === file.source?.name);
      expect(reported?.ciphertextSha256).toBe(createHash('sha256').update(await readFile(file.ciphertext)).digest('hex'));
    }

    // Every delivered file has a receipt the agent signed, and it verifies offline against the agent's key.
    const receipts = path.join(system.workDir, 'receipts.jsonl');
    await system.airlock(['receipts', 'export', runId, '--out', receipts]);
    const verified = await system.airlock(['receipts', 'verify', '--file', receipts, '--agent-key', await system.agentPublicKey(), '--json']);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, receipts: 3 });

    // The agent's own secret key and the operator's secrets file are readable by their owner only.
    expect((await stat(path.join(system.agentDir, 'agent.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(system.secretsFile)).mode & 0o777).toBe(0o600);

    const runs = await system.listRuns();
    expect(runs.find((listed) => listed.id === runId)?.status).toBe('succeeded');

    const audit = await system.listAudit();
    const actions = audit.map((event) => event.action);
    for (const action of ['api-key-create', 'enrollment-token-create', 'agent-enroll', 'integration-save', 'run-request', 'run-dispatch', 'run-complete']) {
      expect(actions, action).toContain(action);
    }
    expect(audit.find((event) => event.action === 'run-complete' && event.target === runId)?.outcome).toBe('success');
    // The sequence is gap-free and in order: the hash chain has nothing missing.
    expect(audit.map((event) => event.seq)).toEqual(audit.map((_, i) => i + 1));

    // The control plane's metrics agree with the run: one run, succeeded, and the bytes it delivered.
    const deliveredBytes = (run.report?.files ?? []).reduce((sum, file) => sum + file.bytesOut, 0);
    expect(deliveredBytes).toBeGreaterThan(2 * 1024 * 1024);
    const metrics = await system.scrapeMetrics();
    const outcomes = Object.fromEntries(runs.map((listed) => [listed.status, runs.filter((other) => other.status === listed.status).length]));
    expect(outcomes).toEqual({ succeeded: 1 });
    for (const outcome of ['succeeded', 'failed', 'cancelled', 'queued', 'running']) {
      expect(sampleValue(metrics, 'airlock_runs', { outcome }) ?? 0, outcome).toBe(outcomes[outcome] ?? 0);
    }
    expect(sampleValue(metrics, 'airlock_delivered_bytes')).toBe(deliveredBytes);
    expect(sampleValue(metrics, 'airlock_delivered_files')).toBe(3);
    expect(sampleValue(metrics, 'airlock_trpc_requests_total', { procedure: 'agent.reportRun', code: 'OK' })).toBe(1);
    expect(sampleValue(metrics, 'airlock_agents', { state: 'online' })).toBe(1);
    // The agent opened no port for its own: it wrote them for node-exporter's textfile collector.
    const agentMetrics = await readFile(system.agentMetricsFile, 'utf8');
    expect(sampleValue(agentMetrics, 'airlock_agent_runs_total', { outcome: 'succeeded' })).toBe(1);
    expect(sampleValue(agentMetrics, 'airlock_agent_delivered_bytes_total')).toBe(deliveredBytes);
    expect(sampleValue(agentMetrics, 'airlock_agent_info', { agent_id: system.agentId })).toBe(1);
    // Its heartbeat summary is re-exported under its id.
    expect(sampleValue(metrics, 'airlock_agent_info', { agent_id: system.agentId })).toBe(1);
  });

  it('runs as a long-lived agent that connects outward only: no listening socket', async () => {
    const second = path.join(system.deliveredDir, 'second');
    await mkdir(second, { mode: 0o700 });
    const integration = await system.createIntegration({ name: 'daemon-run', destinationDir: second });
    const agent = system.startAgent();
    const runId = await system.runNow(integration.id);
    const run = await system.waitForRun(runId);
    expect(run.status).toBe('succeeded');
    expect((await readdir(second)).sort()).toEqual(['alpha.csv.pgp', 'beta.csv.pgp', 'gamma.csv.pgp']);

    expect(agent.isRunning()).toBe(true);
    expect(agent.pid).toBeDefined();
    // Sampled a few times while it long-polls; the control plane itself shows the check can see a listener.
    for (let i = 0; i < 3; i += 1) {
      expect(await listeningSocketCount(agent.pid ?? -1)).toBe(0);
      await sleep(200);
    }
    expect(await listeningSocketCount(system.controlPlanePid ?? -1)).toBeGreaterThan(0);
    await agent.stop();
    expect(await agent.exited).toBe(0);
  });
});
