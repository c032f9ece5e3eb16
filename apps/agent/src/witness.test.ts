import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  type ChainHead,
  type ChainLeaf,
  type ChainLink,
  chainEvent,
  compareLeaves,
  GENESIS_HASH,
  inclusionProof,
  signCheckpoint,
  signTreeCheckpoint,
} from '@airlock/audit';
import { quietLogger } from '@airlock/connector-api/testkit';
import { generateKeyPair, signDetached } from '@airlock/identity';
import { SecurityLog } from './security-log.ts';
import { witnessAudit, witnessFile } from './witness.ts';

const controlPlane = generateKeyPair();
const tenantId = randomUUID();
const otherTenant = randomUUID();
const GENESIS: ChainHead = { seq: 0, hash: GENESIS_HASH };

function chain(count: number, variant: string, tenant: string | null = tenantId, after: ChainHead = GENESIS): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (let i = 0; i < count; i++) {
    const previous = records.at(-1);
    const input = { tenantId: tenant, actor: { type: 'system' as const, id: null }, action: 'run-dispatch', target: null, outcome: 'success' as const, sourceIp: null, meta: { variant } };
    const head = previous ? { seq: previous.seq, hash: previous.hash } : after.seq === 0 ? null : after;
    records.push(chainEvent(head, input, new Date(Date.UTC(2026, 0, 1, 0, i))));
  }
  return records;
}

let number = 0;

/** A tree checkpoint over this tenant's head at `seq` and another tenant's, as the control plane serves it to this tenant. */
function served(records: AuditRecord[], seq: number, options: { keys?: typeof controlPlane; legacy?: ChainHead; otherSeq?: number; leafTenant?: string } = {}) {
  const record = records.find((r) => r.seq === seq);
  if (!record) throw new Error(`no record ${seq}`);
  const legacy = options.legacy ?? GENESIS;
  const others = chain(options.otherSeq ?? 7, 'other', otherTenant, legacy);
  const otherHead = others.at(-1);
  if (!otherHead) throw new Error('no other head');
  const mine: ChainLeaf = { tenantId: options.leafTenant ?? tenantId, seq, hash: record.hash };
  const leaves = [mine, { tenantId: otherTenant, seq: otherHead.seq, hash: otherHead.hash }].sort(compareLeaves);
  const index = leaves.indexOf(mine);
  const keys = options.keys ?? controlPlane;
  number += 1;
  const checkpoint = signTreeCheckpoint({ number, leaves, legacy, at: new Date() }, keys.publicKey, (message) => signDetached(message, keys.secretKey));
  return { checkpoint, proof: { leaf: mine, index, proof: inclusionProof(leaves, index) } };
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

  const round = (records: readonly ChainLink[], checkpoint: unknown) =>
    witnessAudit({
      source: { checkpoint: async () => checkpoint, segment: async (after, until, limit) => records.filter((r) => r.seq > after && r.seq <= until).slice(0, limit) },
      pin: controlPlane.publicKey,
      tenantId,
      dataDir: dir,
      securityLog: log,
      logger: quietLogger,
    });

  it('keeps the first checkpoint, then follows its own chain as it grows, whatever the other chains do', async () => {
    const honest = chain(2500, 'honest');
    expect(await round(honest, served(honest, 3))).toEqual({ status: 'first', seq: 3 });
    // Another tenant's chain moved, so the root changed; this chain did not.
    expect(await round(honest, served(honest, 3, { otherSeq: 9 }))).toEqual({ status: 'extended', seq: 3 });
    // Over several pages of records.
    expect(await round(honest, served(honest, 2500))).toEqual({ status: 'extended', seq: 2500 });
    expect(await log.read()).toEqual([]);
  });

  it('raises an alert on a rewritten or truncated history, a foreign or unproven leaf, and keeps the last good checkpoint', async () => {
    const honest = chain(5, 'honest');
    await round(honest, served(honest, 4));
    const rewritten = chain(6, 'rewritten');
    expect(await round(rewritten, served(rewritten, 6))).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
    expect(await round(rewritten, served(rewritten, 4))).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
    expect(await round(honest, served(honest, 2))).toMatchObject({ status: 'alert', kind: 'audit-truncated' });
    // A checkpoint at 5 whose records the control plane no longer serves.
    expect(await round(honest.slice(0, 4), served(honest, 5))).toMatchObject({ status: 'alert', kind: 'audit-truncated' });
    expect(await round(honest, served(honest, 5, { keys: generateKeyPair() }))).toMatchObject({ status: 'alert', kind: 'control-plane-key-mismatch' });
    // Another tenant's leaf, and a leaf the root does not hold.
    expect(await round(honest, served(honest, 5, { leafTenant: otherTenant }))).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
    const forged = served(honest, 5);
    expect(await round(honest, { ...forged, proof: { ...forged.proof, leaf: { ...forged.proof.leaf, seq: 6 } } })).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
    // The chain left out of the checkpoint altogether.
    expect(await round(honest, { ...served(honest, 5), proof: null })).toMatchObject({ status: 'alert', kind: 'audit-truncated' });
    expect((await log.read()).map((event) => event.kind)).toEqual([
      'audit-rewritten',
      'audit-rewritten',
      'audit-truncated',
      'audit-truncated',
      'control-plane-key-mismatch',
      'audit-rewritten',
      'audit-rewritten',
      'audit-truncated',
    ]);
    // The honest continuation still extends what this witness saw.
    expect(await round(honest, served(honest, 5))).toEqual({ status: 'extended', seq: 5 });
  });

  it('crosses from a kept checkpoint of the legacy global chain to the tree checkpoints', async () => {
    // The legacy chain: this tenant's records and another's, interleaved under one sequence.
    const legacy: AuditRecord[] = [];
    for (let i = 0; i < 6; i++) {
      const previous = legacy.at(-1);
      const input = { tenantId: i % 2 ? tenantId : otherTenant, actor: { type: 'system' as const, id: null }, action: 'run-dispatch', target: null, outcome: 'success' as const, sourceIp: null, meta: { i } };
      legacy.push(chainEvent(previous ? { seq: previous.seq, hash: previous.hash } : null, input, new Date(Date.UTC(2025, 0, 1, 0, i))));
    }
    const kept = legacy[2];
    const last = legacy[5];
    if (!kept || !last) throw new Error('short chain');
    const v1 = signCheckpoint({ seq: kept.seq, hash: kept.hash }, new Date(), controlPlane.publicKey, (message) => signDetached(message, controlPlane.secretKey));
    await writeFile(witnessFile(dir), `${JSON.stringify(v1)}\n`);
    const frozen = { seq: last.seq, hash: last.hash };
    const mine = chain(3, 'after', tenantId, frozen);
    // Other tenants' legacy records are served as links only.
    const segment: ChainLink[] = [
      ...legacy.map((r) => (r.tenantId === tenantId ? r : { seq: r.seq, prevHash: r.prevHash, hash: r.hash, withheld: true as const })),
      ...mine,
    ];
    expect(await round(segment, served(mine, 9, { legacy: frozen }))).toEqual({ status: 'extended', seq: 9 });

    // A legacy chain that does not lead to the frozen head the tree checkpoints sign.
    await writeFile(witnessFile(dir), `${JSON.stringify(v1)}\n`);
    const other = { seq: last.seq, hash: 'e'.repeat(64) };
    expect(await round(segment, served(chain(3, 'after', tenantId, other), 9, { legacy: other }))).toMatchObject({ status: 'alert', kind: 'audit-rewritten' });
  });
});
