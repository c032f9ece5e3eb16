import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunReport } from '@airlock/protocol';
import { Outbox } from './outbox.ts';

const report = (): RunReport => ({
  runId: randomUUID(),
  status: 'succeeded',
  startedAt: new Date().toISOString(),
  finishedAt: new Date().toISOString(),
  bytesIn: 1,
  bytesOut: 2,
  files: [],
  recipientFingerprints: [],
  skipped: 0,
  deferred: 0,
});

describe('the report outbox', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-outbox-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('sends reports in order and keeps the rest when sending fails', async () => {
    const outbox = new Outbox(dir);
    const reports = [report(), report(), report()];
    for (const r of reports) {
      await outbox.put(r);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const sent: string[] = [];
    await expect(
      outbox.flush(async (r) => {
        if (sent.length === 1) throw new Error('control plane unreachable');
        sent.push(r.runId);
      }),
    ).rejects.toThrow(/unreachable/);
    expect(sent).toEqual([reports[0]?.runId]);
    // Reports still waiting: the agent is not idle, so its open runs must not be closed as lost.
    expect(await outbox.isEmpty()).toBe(false);
    expect(await outbox.flush(async (r) => void sent.push(r.runId))).toBe(2);
    expect(sent).toEqual(reports.map((r) => r.runId));
    expect(await readdir(path.join(dir, 'outbox'))).toEqual([]);
    expect(await outbox.isEmpty()).toBe(true);
  });

  it('is empty before its directory exists, and a half-written report does not count', async () => {
    const outbox = new Outbox(dir);
    expect(await outbox.isEmpty()).toBe(true);
    await outbox.put(report());
    await outbox.flush(async () => undefined);
    await writeFile(path.join(dir, 'outbox', '.000000000000001-x.json.tmp'), '{');
    expect(await outbox.isEmpty()).toBe(true);
  });

  it('drops a damaged report instead of blocking the queue', async () => {
    const outbox = new Outbox(dir);
    await outbox.put(report());
    await writeFile(path.join(dir, 'outbox', '000000000000000-damaged.json'), '{"runId": "tru');
    const sent: string[] = [];
    expect(await outbox.flush(async (r) => void sent.push(r.runId))).toBe(2);
    expect(sent).toHaveLength(1);
  });
});
