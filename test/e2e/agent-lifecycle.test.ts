/**
 * An agent's key and life as real processes: `airlock-agent keys rotate` against `airlock serve`
 * on PostgreSQL (the old key is refused from the next request on, the new one runs a job end to
 * end), a rotation an admin asks a running daemon for, and `airlock agent revoke` on a running
 * daemon (its next request is refused), and a daemon killed mid-run (the restarted daemon closes
 * the run it lost, and the integration runs again).
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keyPairFromSecretKey, signRequest } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { array, object, optionalString, parseJsonLine, string } from '../src/json.ts';
import { type AirlockSystem, startSystem } from '../src/system.ts';

const REFUSAL_TIMEOUT_MS = 30_000;

describe('agent key rotation and revocation with real processes', () => {
  let system: AirlockSystem;

  /** The `agent-request-refused` events of this agent, with their reasons. */
  async function refusals(): Promise<string[]> {
    const events = array(await system.airlockJson(['audit', 'list', '--action', 'agent-request-refused', '--limit', '1000']), 'audit list');
    return events
      .map((event, i) => object(event, `audit[${i}]`))
      .filter((event) => object(event['actor'], 'actor')['id'] === system.agentId)
      .map((event) => optionalString(object(event['meta'], 'meta'), 'reason', 'meta') ?? '');
  }

  async function heartbeatWith(secretKeyText: string): Promise<number> {
    const keys = keyPairFromSecretKey(new Uint8Array(Buffer.from(secretKeyText.trim(), 'base64')));
    const body = JSON.stringify({ version: '0', hostname: 'old-key' });
    const headers = signRequest(keys, { agentId: system.agentId, method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', body });
    const response = await fetch(`${system.controlPlaneUrl}/trpc/agent.heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    await response.arrayBuffer();
    return response.status;
  }

  beforeAll(async () => {
    system = await startSystem({ databaseUrl: await createTestDatabase(inject('postgresUrl')), files: { 'rotate.csv': 'id\n1\n' } });
  });

  afterAll(async () => {
    await system?.stop();
  });

  it('rotates the key without re-enrolling: the old key is refused (401, audited), the new one runs a job', async () => {
    const keyFile = path.join(system.agentDir, 'agent.key');
    const oldKey = await readFile(keyFile, 'utf8');
    expect(await heartbeatWith(oldKey)).toBe(200);

    const rotated = object(parseJsonLine((await system.agentCommand(['keys', 'rotate', '--dir', system.agentDir, '--json'])).stdout, 'keys rotate'), 'keys rotate');
    expect(string(rotated, 'agentId', 'keys rotate')).toBe(system.agentId);
    const newKey = await readFile(keyFile, 'utf8');
    expect(newKey).not.toBe(oldKey);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await readdir(system.agentDir)).filter((name) => name.startsWith('agent.key'))).toEqual(['agent.key']);
    expect((await system.listAudit()).filter((event) => event.action === 'agent-key-rotate').map((event) => event.outcome)).toEqual(['success']);

    expect(await heartbeatWith(oldKey)).toBe(401);
    expect(await refusals()).toEqual(['retired key']);

    const integration = await system.createIntegration({ name: 'after-rotation' });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.code).toBe(0);
    expect(agent.report?.runId).toBe(runId);
    expect((await system.waitForRun(runId)).status).toBe('succeeded');
    expect((await system.decryptDelivered()).map((file) => file.sha256)).toEqual(system.sources.map((source) => source.sha256));
  });

  it('closes the run a killed daemon was in once the daemon is back, and runs the integration again', async () => {
    const destinationDir = path.join(system.deliveredDir, 'crash');
    await mkdir(destinationDir, { mode: 0o700 });
    const integration = await system.createIntegration({ name: 'crash', destinationDir });
    const crashing = system.startAgent();
    const lost = await system.runNow(integration.id);
    // The default stability check holds the run for 2 s after it starts: kill the daemon inside it.
    const until = Date.now() + REFUSAL_TIMEOUT_MS;
    const started = (line: string) => line.includes(lost) && line.includes('run started');
    while (!(await readFile(crashing.logFile, 'utf8')).split('\n').some(started)) {
      if (Date.now() > until) throw new Error('the daemon never started the run');
      await sleep(50);
    }
    process.kill(crashing.pid ?? 0, 'SIGKILL');
    await crashing.exited;
    expect((await system.showRun(lost)).status).toBe('running');

    const back = system.startAgent();
    const closed = await system.waitForRun(lost);
    expect(closed).toMatchObject({ status: 'failed', errorClass: 'operational' });
    const abandoned = array(await system.airlockJson(['audit', 'list', '--action', 'run-abandoned', '--limit', '10']), 'audit list').map((event, i) =>
      object(event, `audit[${i}]`),
    );
    expect(abandoned.map((event) => [event['target'], object(event['meta'], 'meta')['reason']])).toEqual([[lost, 'agent-restarted']]);

    const again = await system.runNow(integration.id);
    expect((await system.waitForRun(again)).status).toBe('succeeded');
    expect(await readdir(destinationDir)).toEqual(['rotate.csv.pgp']);
    await back.stop();
  });

  it('rotates a running daemon\'s key when an admin asks, and refuses its next request once it is revoked', async () => {
    await system.airlock(['agent', 'rotate-key', system.agentId]);
    const daemon = system.startAgent();
    // The daemon's first heartbeat carries the request; it rotates and goes on with the new key.
    const until = Date.now() + REFUSAL_TIMEOUT_MS;
    while ((await system.listAudit()).filter((event) => event.action === 'agent-key-rotate' && event.outcome === 'success').length < 2) {
      if (Date.now() > until) throw new Error('the agent daemon never rotated its key');
      await sleep(250);
    }
    const destinationDir = path.join(system.deliveredDir, 'daemon');
    await mkdir(destinationDir, { mode: 0o700 });
    const runId = await system.runNow((await system.createIntegration({ name: 'daemon-rotated', destinationDir })).id);
    expect((await system.waitForRun(runId)).status).toBe('succeeded');
    expect(await readdir(destinationDir)).toEqual(['rotate.csv.pgp']);
    expect((await readdir(system.agentDir)).filter((name) => name.startsWith('agent.key'))).toEqual(['agent.key']);

    await sleep(500);
    const already = (await refusals()).length;
    await system.airlock(['agent', 'revoke', system.agentId]);
    for (;;) {
      const reasons = (await refusals()).slice(already);
      if (reasons.includes('agent revoked')) break;
      if (Date.now() > until + 2 * REFUSAL_TIMEOUT_MS) throw new Error('the revoked daemon was never refused');
      await sleep(250);
    }
    expect(daemon.isRunning()).toBe(true);
    await daemon.stop();
  });
});
