/**
 * `azblob@1` in the whole system: the control plane on PostgreSQL, an enrolled agent process,
 * OpenSSH as the source, Azurite (Microsoft's Blob service emulator) as the destination behind a
 * loopback proxy that counts the bytes sent to it, gpg to read what arrived. The scope and the
 * local policy each refuse an unpinned container, and no byte reaches the service then.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAzurite, type TestAzurite } from '@airlock/connector-azblob/testing';
import { createTestDatabase, type CutProxy, startCutProxy } from '@airlock/testing';
import { type AirlockSystem, startSystem } from '../src/system.ts';

const CONTAINER = 'partner-inbound';
const OTHER_CONTAINER = 'not-pinned';

describe('azblob@1 destination in the whole system', () => {
  let system: AirlockSystem;
  let server: TestAzurite;
  let proxy: CutProxy;
  /** The account's endpoint as the agent reaches it: through the counting proxy. */
  let endpoint: string;

  beforeAll(async () => {
    server = await startAzurite(CONTAINER);
    proxy = await startCutProxy({ targetPort: server.port, direction: 'upload' });
    endpoint = server.endpoint.replace(`:${server.port}/`, `:${proxy.port}/`);
    system = await startSystem({
      databaseUrl: await createTestDatabase(inject('postgresUrl')),
      files: { 'alpha.csv': 'id,name\n1,alice\n2,bob\n', 'beta.csv': 'x'.repeat(3 * 1024 * 1024) },
    });
    await system.editAgentFiles({
      policy: (policy) => {
        const destinations = (policy['destinations'] ?? {}) as Record<string, unknown>;
        policy['destinations'] = { ...destinations, azblob: [{ endpoint, container: CONTAINER, prefixes: ['/acme'] }] };
      },
      secrets: { blobs: { ...server.credentials } },
    });
  });

  afterAll(async () => {
    await system?.stop();
    await proxy?.close();
    await server?.stop();
  });

  const destination = (container: string) => ({
    connector: 'azblob@1',
    // Small blocks, so the 3 MiB file is staged as several blocks.
    config: { endpoint, container, prefix: '/acme', credentialRef: 'blobs', blockSizeBytes: 2 ** 20 },
    scope: `write azblob://127.0.0.1:${proxy.port}${new URL(endpoint).pathname}/${container}/acme/**`,
  });

  it('delivers ciphertext into the pinned container that gpg decrypts to each source', async () => {
    const integration = await system.createIntegration({ name: 'azblob-delivery', destination: destination(CONTAINER) });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('succeeded');
    expect((await system.waitForRun(runId)).status).toBe('succeeded');

    const names = await server.entries();
    expect(names).toEqual(['acme/alpha.csv.pgp', 'acme/beta.csv.pgp']);
    const blocks = await server.client.getBlockBlobClient('acme/beta.csv.pgp').getBlockList('committed');
    expect(blocks.committedBlocks?.length).toBeGreaterThan(1);
    for (const name of names) {
      const file = path.join(system.workDir, path.basename(name));
      await writeFile(file, await server.client.getBlockBlobClient(name).downloadToBuffer());
      const source = system.sources.find((candidate) => `${candidate.name}.pgp` === path.basename(name));
      expect(await system.decryptFile(file)).toEqual({ sha256: source?.sha256, bytes: source?.bytes });
    }
  });

  it('refuses to save an integration whose container has no scope', async () => {
    await expect(system.createIntegration({ name: 'azblob-unscoped', destination: destination(OTHER_CONTAINER), grant: false })).rejects.toThrow(
      /scope|not covered|no write grant/i,
    );
  });

  it('refuses, on the agent and before any request, a container the local policy does not pin', async () => {
    const before = proxy.forwarded.upload;
    const integration = await system.createIntegration({ name: 'azblob-unpinned', destination: destination(OTHER_CONTAINER) });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.report?.status).toBe('failed');
    expect(agent.report?.errorClass).toBe('policy-violation');
    expect(agent.report?.violationKind).toBe('destination');
    expect((await system.waitForRun(runId)).errorClass).toBe('policy-violation');
    expect(proxy.forwarded.upload).toBe(before);
  });
});
