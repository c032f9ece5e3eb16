import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AuditRecord, chainEvent, type Checkpoint, signCheckpoint } from '@airlock/audit';
import { quietLogger } from '@airlock/connector-api/testkit';
import { generateKeyPair, signDetached } from '@airlock/identity';
import { SecurityLog } from './security-log.ts';
import { witnessAudit } from './witness.ts';

const controlPlane = generateKeyPair();

function chain(count: number, variant: string): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (let i = 0; i < count; i++) {
    const previous = records.at(-1);
    const input = { tenantId: null, actor: { type: 'system' as const, id: null }, action: 'run-dispatch', target: null, outcome: 'success' as const, sourceIp: null, meta: { variant } };
    records.push(chainEvent(previous ? { seq: previous.seq, hash: previous.hash } : null, input, new Date(Date.UTC(2026, 0, 1, 0, i))));
  }
  return records;
}

function checkpoint(records: AuditRecord[], seq: number, keys = controlPlane): Checkpoint {
  const record = records[seq - 1];
  if (!record) throw new Error(`no record ${seq}`);
  return signCheckpoint(record, new Date(), keys.publicKey, (message) => signDetached(message, keys.secretKey));
}

describe('audit witness', () => {
  let dir: string;
  let log: SecurityLog;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-witness-'));
    log = new SecurityLog(dir);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const round = (records: AuditRecord[], served: Checkpoint | null) =>
    witnessAudit({
      source: { checkpoint: async () => served, segment: async (after, until, limit) => records.filter((r) => r.seq > after && r.seq <= until).slice(0, limit) },
      pin: controlPlane.publicKey,
      dataDir: dir,
      securityLog: log,
      logger: quietLogger,
    });

  it('keeps the first checkpoint, then follows an honest chain as it grows', async () => {
    const honest = chain(2500, 'honest');
    expect(await round(honest, checkpoint(honest, 3))).toEqual({ status: 'first', seq: 3 });
    expect(await round(honest, checkpoint(honest, 3))).toEqual({ status: 'unchanged', seq: 3 });
    // Over several pages of records.
    expect(await round(honest, checkpoint(honest, 2500))).toEqual({ status: 'extended', seq: 2500 });
    expect(await log.read()).toEqual([]);
  });

  it('raises an alert on a rewritten or truncated history, and keeps the last good checkpoint', async () => {
    const honest = chain(5, 'honest');
    await round(honest, checkpoint(honest, 4));
    const rewritten = chain(6, 'rewritten');
    expect(await round(rewritten, checkpoint(rewritten, 6))).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
    expect(await round(rewritten, checkpoint(rewritten, 4))).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
    expect(await round(honest, checkpoint(honest, 2))).toMatchObject({ status: 'alert', kind: 'audit-truncated' });
    // A checkpoint at 5 whose records the control plane no longer serves.
    expect(await round(honest.slice(0, 4), checkpoint(honest, 5))).toMatchObject({ status: 'alert', kind: 'audit-truncated' });
    expect(await round(honest, checkpoint(honest, 5, generateKeyPair()))).toMatchObject({ status: 'alert', kind: 'control-plane-key-mismatch' });
    expect((await log.read()).map((event) => event.kind)).toEqual(['audit-rewritten', 'audit-rewritten', 'audit-truncated', 'audit-truncated', 'control-plane-key-mismatch']);
    // The honest continuation still extends what this witness saw.
    expect(await round(honest, checkpoint(honest, 5))).toEqual({ status: 'extended', seq: 5 });
  });
});
