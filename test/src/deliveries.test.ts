import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoKey, encryptStream, generateDemoKey, loadRecipients } from '@airlock/pgp';
import type { RunReport } from './agent-job.ts';
import { type ExpectedFile, inspectDeliveries, isTemporaryName } from './deliveries.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// The judge of the fault suite must itself be able to say "wrong": each kind of bad delivery is
// planted here and must be counted.
describe('inspectDeliveries', () => {
  let dir: string;
  let key: DemoKey;
  const plaintext = randomBytes(200_000);
  const expected: ExpectedFile = { finalName: 'data.bin.pgp', plaintextSha256: sha256(plaintext), bytes: plaintext.length };
  let ciphertext: Buffer;

  const encrypt = async (data: Buffer) =>
    buffer(await encryptStream(Readable.from([data]), await loadRecipients([key.armoredPublicKey]), { filename: 'data.bin' }));

  const report = (status: RunReport['status'], ciphertextSha256: string | null): RunReport => ({
    runId: randomUUID(),
    status,
    skipped: 0,
    deferred: 0,
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    bytesIn: 0,
    bytesOut: 0,
    recipientFingerprints: [key.fingerprint],
    files:
      ciphertextSha256 === null
        ? []
        : [{ sourcePath: '/src/data.bin', bytesIn: 0, bytesOut: 0, plaintextHmac: 'c'.repeat(64), ciphertextSha256, durationMs: 1 }],
  });

  beforeAll(async () => {
    key = await generateDemoKey('Judge', 'judge@example.com');
    ciphertext = await encrypt(plaintext);
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const fresh = async (files: Record<string, Buffer>) => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-judge-'));
    for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
    return dir;
  };

  it('accepts a correct, reported delivery', async () => {
    const check = await inspectDeliveries(await fresh({ 'data.bin.pgp': ciphertext }), report('succeeded', sha256(ciphertext)), [expected], key.armoredSecretKey);
    expect(check).toEqual({ finalFiles: 1, partial: 0, corrupt: 0, tempLeftovers: 0, misreported: 0, unreported: 0 });
  });

  it('counts a truncated file under the final name as partial, and its report as misreported', async () => {
    const truncated = ciphertext.subarray(0, ciphertext.length - 1000);
    const check = await inspectDeliveries(await fresh({ 'data.bin.pgp': truncated }), report('succeeded', sha256(truncated)), [expected], key.armoredSecretKey);
    expect(check).toMatchObject({ partial: 1, corrupt: 0, misreported: 1 });
  });

  it('counts other plaintext, and unexpected final names, as corrupt', async () => {
    const other = await encrypt(randomBytes(plaintext.length));
    const check = await inspectDeliveries(await fresh({ 'data.bin.pgp': other, 'stray.pgp': other }), report('failed', null), [expected], key.armoredSecretKey);
    expect(check).toMatchObject({ finalFiles: 2, partial: 0, corrupt: 2, misreported: 0 });
  });

  it('counts temporary files apart, and a success with nothing on disk as misreported', async () => {
    const check = await inspectDeliveries(
      await fresh({ '.data.bin.pgp.0123456789abcdef.airlock-partial': ciphertext }),
      report('succeeded', sha256(ciphertext)),
      [expected],
      key.armoredSecretKey,
    );
    expect(check).toMatchObject({ finalFiles: 0, tempLeftovers: 1, misreported: 1 });
    expect(isTemporaryName('data.bin.pgp')).toBe(false);
  });

  it('notices a correct delivery the report does not list', async () => {
    const check = await inspectDeliveries(await fresh({ 'data.bin.pgp': ciphertext }), report('failed', null), [expected], key.armoredSecretKey);
    expect(check).toMatchObject({ corrupt: 0, misreported: 0, unreported: 1 });
  });
});
