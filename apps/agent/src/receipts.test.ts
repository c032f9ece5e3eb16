import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '@airlock/identity';
import type { RunReport } from '@airlock/protocol';
import { checkReceipts, keepReceipts, receiptSigner } from './receipts.ts';
import { SecurityLog } from './security-log.ts';

const identity = { agentId: '00000000-0000-4000-8000-00000000000a', tenantId: '00000000-0000-4000-8000-00000000000b' };

function receiptFields(name: string) {
  return {
    runId: '00000000-0000-4000-8000-000000000001',
    integrationId: '00000000-0000-4000-8000-000000000002',
    integrationVersion: 1,
    sourcePath: `/exports/${name}`,
    name: `${name}.pgp`,
    bytesIn: 10,
    plaintextHmac: 'a'.repeat(64),
    ciphertextSha256: 'b'.repeat(64),
    bytesOut: 20,
    recipientFingerprints: ['C'.repeat(40)],
    policyDigest: 'd'.repeat(64),
    startedAt: '2026-11-23T03:59:00.000Z',
    deliveredAt: '2026-11-23T04:00:00.000Z',
  };
}

describe('checkReceipts', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'airlock-receipts-'));
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('accepts its own receipts signed before a key rotation and flags what it never signed', async () => {
    const before = receiptSigner(identity, generateKeyPair());
    const currentKey = generateKeyPair();
    const current = receiptSigner(identity, currentKey);
    const stranger = receiptSigner(identity, generateKeyPair());
    const old = before.sign(receiptFields('old.csv'));
    const recent = current.sign(receiptFields('new.csv'));
    const report = { files: [{ receipt: old }, { receipt: recent }] } as unknown as RunReport;
    await keepReceipts(dataDir, report);
    const planted = stranger.sign(receiptFields('planted.csv'));
    const unlogged = current.sign(receiptFields('unlogged.csv'));
    const altered = { ...old, payload: old.payload.replace('old.csv.pgp', 'evil.csv.pgp') };
    const exported = path.join(dataDir, 'export.jsonl');
    await writeFile(exported, [old, recent, planted, unlogged, altered].map((r) => JSON.stringify(r)).join('\n'));

    const result = await checkReceipts(dataDir, exported, currentKey.publicKey, new SecurityLog(dataDir));

    expect(result.receipts).toBe(5);
    expect(result.forged.map((f) => f.line)).toEqual([3, 4, 5]);
    expect(result.ok).toBe(false);
    const events = (await readFile(path.join(dataDir, 'security.log'), 'utf8')).trim().split('\n');
    expect(events).toHaveLength(3);
  });
});
