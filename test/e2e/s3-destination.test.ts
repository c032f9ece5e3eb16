/**
 * `s3@1` in the whole system: the control plane on PostgreSQL, an enrolled agent process, OpenSSH as
 * the source, an S3-compatible server (s3rver) as the destination, gpg to read what arrived. The
 * scope and the local policy each refuse an unpinned bucket, and the server sees no request then.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, freePort } from '@airlock/testing';
import { type AirlockSystem, startSystem } from '../src/system.ts';

const BUCKET = 'partner-inbound';
const OTHER_BUCKET = 'not-pinned';

describe('s3@1 destination in the whole system', () => {
  let system: AirlockSystem;
  let server: S3rver;
  let storage: string;
  let endpoint: string;
  let port: number;
  /** Every request s3rver received, as `METHOD path`. */
  const requests: string[] = [];
  let client: S3Client;

  beforeAll(async () => {
    storage = await mkdtemp(path.join(tmpdir(), 'airlock-e2e-s3-'));
    port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    server = new S3rver({ address: '127.0.0.1', port, directory: storage, silent: true, configureBuckets: [{ name: BUCKET }, { name: OTHER_BUCKET }] });
    server.middleware.unshift(async (ctx, next) => {
      requests.push(`${ctx.method} ${ctx.path}`);
      await next();
    });
    await server.run();
    client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    system = await startSystem({
      databaseUrl: await createTestDatabase(inject('postgresUrl')),
      files: { 'alpha.csv': 'id,name\n1,alice\n2,bob\n', 'beta.csv': 'x'.repeat(3 * 1024 * 1024) },
    });
    await system.editAgentFiles({
      policy: (policy) => {
        const destinations = (policy['destinations'] ?? {}) as Record<string, unknown>;
        policy['destinations'] = { ...destinations, s3: [{ endpoint, bucket: BUCKET, prefixes: ['/acme'] }] };
      },
      secrets: { objects: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
    });
  });

  afterAll(async () => {
    client?.destroy();
    await system?.stop();
    await server?.close().catch(() => undefined);
    if (storage) await rm(storage, { recursive: true, force: true });
  });

  const destination = (bucket: string) => ({
    connector: 's3@1',
    config: { endpoint, bucket, prefix: '/acme', credentialRef: 'objects' },
    scope: `write s3://127.0.0.1:${port}/${bucket}/acme/**`,
  });

  it('delivers ciphertext into the pinned bucket that gpg decrypts to each source', async () => {
    const integration = await system.createIntegration({ name: 's3-delivery', destination: destination(BUCKET) });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('succeeded');
    expect((await system.waitForRun(runId)).status).toBe('succeeded');

    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    const keys = (listed.Contents ?? []).map((object) => object.Key ?? '').sort();
    expect(keys).toEqual(['acme/alpha.csv.pgp', 'acme/beta.csv.pgp']);
    for (const key of keys) {
      const body = await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body?.transformToByteArray();
      const file = path.join(system.workDir, path.basename(key));
      await writeFile(file, body ?? new Uint8Array());
      const source = system.sources.find((candidate) => `${candidate.name}.pgp` === path.basename(key));
      expect(await system.decryptFile(file)).toEqual({ sha256: source?.sha256, bytes: source?.bytes });
    }
  });

  it('refuses to save an integration whose bucket has no scope', async () => {
    await expect(system.createIntegration({ name: 's3-unscoped', destination: destination(OTHER_BUCKET), grant: false })).rejects.toThrow(
      /scope|not covered|no write grant/i,
    );
  });

  it('refuses, on the agent and before any request, a bucket the local policy does not pin', async () => {
    const before = requests.length;
    const integration = await system.createIntegration({ name: 's3-unpinned', destination: destination(OTHER_BUCKET) });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('failed');
    expect(agent.report?.errorClass).toBe('policy-violation');
    expect(agent.report?.violationKind).toBe('destination');
    expect((await system.waitForRun(runId)).errorClass).toBe('policy-violation');
    expect(requests.slice(before)).toEqual([]);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: OTHER_BUCKET }));
    expect(listed.Contents ?? []).toEqual([]);
  });
});
