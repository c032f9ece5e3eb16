import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heartbeatSummary, type RunReport } from '@airlock/protocol';
import { AgentMetrics } from './metrics.ts';

const AGENT_ID = '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d';

function report(status: 'succeeded' | 'failed', bytesOut: number, files: number, reason?: string): RunReport {
  const file = { sourcePath: '/exports/a.csv', bytesIn: 1, bytesOut: 1, plaintextHmac: 'a'.repeat(64), ciphertextSha256: 'b'.repeat(64), durationMs: 1 };
  return {
    runId: '0c6f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
    status,
    startedAt: '2026-12-04T00:00:00.000Z',
    finishedAt: '2026-12-04T00:00:01.000Z',
    bytesIn: bytesOut,
    bytesOut,
    files: Array.from({ length: files }, () => file),
    recipientFingerprints: [],
    skipped: 0,
    deferred: 0,
    ...(reason === undefined ? {} : { reason, errorClass: 'operational' as const }),
  };
}

describe('[operations:metrics] the agent metrics (textfile collector and heartbeat summary)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-agent-metrics-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('[operations:metrics] writes node-exporter textfile metrics and a summary the protocol accepts', async () => {
    const file = path.join(dir, 'airlock-agent.prom');
    const metrics = new AgentMetrics({ agentId: AGENT_ID, version: '1.2.3', proxy: true, file, now: () => new Date('2026-12-04T01:00:00.000Z') });
    metrics.runFinished(report('succeeded', 4096, 2));
    metrics.runFinished(report('failed', 0, 0, 'the SFTP server refused the login\u202E'));
    metrics.setOutboxDepth(1);
    metrics.heartbeatAnswered();
    await metrics.write();
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^# TYPE airlock_agent_runs_total counter$/m);
    expect(text).toMatch(/^airlock_agent_runs_total\{outcome="succeeded"\} 1$/m);
    expect(text).toMatch(/^airlock_agent_runs_total\{outcome="failed"\} 1$/m);
    expect(text).toMatch(/^airlock_agent_delivered_bytes_total 4096$/m);
    expect(text).toMatch(/^airlock_agent_delivered_files_total 2$/m);
    expect(text).toMatch(/^airlock_agent_outbox_depth 1$/m);
    expect(text).toMatch(/^airlock_agent_proxy 1$/m);
    expect(text).toMatch(/^airlock_agent_control_plane_up 1$/m);
    expect(text).toMatch(new RegExp(`^airlock_agent_info\\{agent_id="${AGENT_ID}",version="1.2.3"\\} 1$`, 'm'));
    expect(text).toMatch(/^airlock_agent_last_heartbeat_seconds 1796346000$/m);
    // The textfile collector refuses samples with timestamps, and files without a final newline.
    expect(text.endsWith('\n')).toBe(true);
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) expect(line.split(' '), line).toHaveLength(2);
    // Metadata only: the source path of a delivered file is not in the metrics.
    expect(text).not.toContain('/exports/');

    const summary = heartbeatSummary.parse(metrics.summary());
    expect(summary).toMatchObject({ version: '1.2.3', proxy: true, runs: { succeeded: 1, failed: 1 }, bytesDelivered: 4096, filesDelivered: 2, outboxDepth: 1 });
    expect(summary.lastError).toBe('the SFTP server refused the login');
    metrics.controlPlaneFailed('unreachable');
    expect(metrics.summary().lastError).toBe('control-plane call failed (unreachable)');
  });

  it('[operations:metrics] replaces the file atomically: a reader never sees it partly written, and no temporary file stays', async () => {
    const file = path.join(dir, 'airlock-agent.prom');
    const metrics = new AgentMetrics({ agentId: AGENT_ID, version: '1.2.3', proxy: false, file });
    await metrics.write();
    const complete = (text: string) => text.includes('airlock_agent_info{') && text.includes('airlock_agent_control_plane_up') && text.endsWith('\n');
    let reads = 0;
    let writing = true;
    const reader = (async () => {
      // Bounded by the writes below: 200 rewrites, each read checked whole.
      while (writing) {
        expect(complete(await readFile(file, 'utf8'))).toBe(true);
        reads += 1;
      }
    })();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      metrics.runFinished(report('succeeded', 1000 + i, 1));
      writes.push(metrics.write());
    }
    await Promise.all(writes);
    writing = false;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(await readFile(file, 'utf8')).toMatch(/^airlock_agent_runs_total\{outcome="succeeded"\} 200$/m);
    expect(await readdir(dir)).toEqual(['airlock-agent.prom']);
  });

  it('[operations:metrics] leaves the file readable by the collector\'s user under the unit\'s UMask=0077', async () => {
    const file = path.join(dir, 'airlock-agent.prom');
    const metrics = new AgentMetrics({ agentId: AGENT_ID, version: '1.2.3', proxy: false, file });
    const previous = process.umask(0o077);
    try {
      await metrics.write();
      await metrics.write();
    } finally {
      process.umask(previous);
    }
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });

  it('refuses a file the textfile collector would not read', () => {
    expect(() => new AgentMetrics({ agentId: AGENT_ID, version: '1', proxy: false, file: path.join(dir, 'metrics.txt') })).toThrow(/\.prom/);
  });
});
