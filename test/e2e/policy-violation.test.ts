/**
 * The local policy is the agent's ceiling even when the control plane asks for more: a job that
 * reads outside the allowed paths, or writes outside the allowed destinations, is refused on the
 * agent before any connection is made, reported as a policy violation and audited.
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@airlock/testing';
import { type AirlockSystem, startSystem } from '../src/system.ts';

// sshd at LogLevel VERBOSE logs every TCP connection and every successful authentication.
const SSHD_CONTACT = /Connection from|Accepted /;

describe('a job outside the local policy', () => {
  let system: AirlockSystem;
  let outside: string;

  beforeAll(async () => {
    system = await startSystem({
      databaseUrl: await createTestDatabase(inject('postgresUrl')),
      files: { 'allowed.csv': 'id\n1\n' },
    });
    outside = path.join(system.workDir, 'outside');
    await mkdir(outside, { mode: 0o700 });
  });

  afterAll(async () => {
    await system?.stop();
  });

  const sshdLogSince = (offset: number): string => system.sftp?.logs().slice(offset) ?? '';

  async function runRefused(options: { name: string; sourcePath?: string; destinationDir?: string }, kind: string): Promise<string> {
    const logOffset = system.sftp?.logs().length ?? 0;
    const integration = await system.createIntegration(options);
    const runId = await system.runNow(integration.id);

    const agent = await system.runAgentOnce();
    expect(agent.code).not.toBe(0);
    expect(agent.report?.status).toBe('failed');
    expect(agent.report?.errorClass).toBe('policy-violation');
    expect(agent.report?.violationKind).toBe(kind);
    expect(agent.report?.files).toEqual([]);

    const run = await system.waitForRun(runId);
    expect(run.status).toBe('failed');
    expect(run.errorClass).toBe('policy-violation');
    expect(run.report?.violationKind).toBe(kind);

    const audit = await system.listAudit();
    const violation = audit.find((event) => event.action === 'policy-violation' && event.target === runId);
    expect(violation?.outcome).toBe('denied');
    expect(audit.find((event) => event.action === 'run-complete' && event.target === runId)?.outcome).toBe('failure');

    // Refused before connecting: sshd never saw the agent, so nothing was read.
    expect(sshdLogSince(logOffset)).not.toMatch(SSHD_CONTACT);
    expect(await system.deliveredNames()).toEqual([]);
    expect(await readdir(outside)).toEqual([]);
    return runId;
  }

  it('refuses a source path the policy does not allow (/etc/*)', async () => {
    await runRefused({ name: 'reads-etc', sourcePath: '/etc/*' }, 'source');
  });

  it('refuses a destination directory the policy does not allow', async () => {
    await runRefused({ name: 'writes-elsewhere', destinationDir: outside }, 'destination');
  });

  it('still runs a job inside the policy, and sshd logs that contact (the check above can fail)', async () => {
    const logOffset = system.sftp?.logs().length ?? 0;
    const integration = await system.createIntegration({ name: 'inside-policy' });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.code).toBe(0);
    expect((await system.waitForRun(runId)).status).toBe('succeeded');
    expect(sshdLogSince(logOffset)).toMatch(SSHD_CONTACT);
    expect(await system.deliveredNames()).toEqual(['allowed.csv.pgp']);
    expect(await readdir(outside)).toEqual([]);
  });
});
