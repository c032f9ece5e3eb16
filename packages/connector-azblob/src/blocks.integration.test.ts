/**
 * What the conformance suite cannot see on Azure: staged blocks that an aborted attempt
 * leaves (the service has no call to drop them) never reach a later attempt's blob; a SAS token
 * works in place of the shared key; a prefix delivers the exact bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockContext } from '@airlock/connector-api/testkit';
import { startAzurite, type TestAzurite } from './azurite.fixture.ts';
import { azblobDestination } from './index.ts';

// Whole buffers compare slowly in `toEqual`; their hashes say the same.
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Every string reachable from `value` through own properties, as one text. */
function reachableText(value: unknown, seen = new Set<unknown>()): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null || seen.has(value)) return '';
  seen.add(value);
  const parts: string[] = [];
  for (const key of Reflect.ownKeys(value)) {
    const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
    parts.push(reachableText(descriptor && 'value' in descriptor ? descriptor.value : undefined, seen));
  }
  if (value instanceof Map) for (const [key, item] of value) parts.push(reachableText(key, seen), reachableText(item, seen));
  return parts.join('\n');
}

describe('azblob@1 against Azurite', () => {
  let server: TestAzurite;
  const policy = (endpoint: string, prefixes = ['/']) => [{ endpoint, container: server.container, prefixes, recipients: [] }];
  const sharedKey = () => mockContext({ secret: async () => ({ ...server.credentials }), policy: policy(server.endpoint) });
  const config = (overrides: Record<string, unknown> = {}) => ({
    endpoint: server.endpoint,
    container: server.container,
    credentialRef: 'blobs',
    blockSizeBytes: 2 ** 20,
    requestTimeoutMs: 5_000,
    ...overrides,
  });

  beforeAll(async () => {
    server = await startAzurite();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('commits only its own blocks after an earlier attempt left blocks staged', async () => {
    {
      const session = await azblobDestination.bind(config()).connect(sharedKey());
      const delivery = await session.begin('retried.pgp');
      // Three full blocks are staged once their write is called back; then the attempt is given up.
      await new Promise<void>((resolve, reject) => delivery.stream.write(randomBytes(3.5 * 2 ** 20), (error) => (error ? reject(error) : resolve())));
      await delivery.abort();
      await session.close();
    }
    const blob = server.client.getBlockBlobClient('retried.pgp');
    const staged = (await blob.getBlockList('uncommitted')).uncommittedBlocks ?? [];
    expect(staged.length).toBeGreaterThan(0);
    expect(await server.entries()).toEqual([]);

    const fresh = randomBytes(2.5 * 2 ** 20);
    const session = await azblobDestination.bind(config()).connect(sharedKey());
    const delivery = await session.begin('retried.pgp');
    await pipeline(Readable.from([fresh]), delivery.stream);
    await delivery.commit();
    await session.close();

    expect(sha256(await blob.downloadToBuffer())).toBe(sha256(fresh));
    const committed = (await blob.getBlockList('committed')).committedBlocks ?? [];
    expect(committed.map((block) => block.size)).toEqual([2 ** 20, 2 ** 20, 0.5 * 2 ** 20]);
    const staleIds = new Set(staged.map((block) => block.name));
    expect(committed.filter((block) => staleIds.has(block.name))).toEqual([]);
  });

  it('delivers under a prefix with a create-and-write SAS token', async () => {
    const sas = generateBlobSASQueryParameters(
      { containerName: server.container, permissions: ContainerSASPermissions.parse('cw'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(server.credentials.accountName, server.credentials.accountKey),
    ).toString();
    const ctx = mockContext({ secret: async () => ({ sasToken: `?${sas}` }), policy: policy(server.endpoint, ['/inbound']) });
    const content = randomBytes(2 ** 20 + 12_345);
    const session = await azblobDestination.bind(config({ prefix: '/inbound/acme' })).connect(ctx);
    const delivery = await session.begin('sas.pgp');
    await pipeline(Readable.from([content]), delivery.stream);
    expect(await delivery.commit()).toEqual({ location: `${server.endpoint}/${server.container}/inbound/acme/sas.pgp` });
    await session.close();
    const got = await server.client.getBlockBlobClient('inbound/acme/sas.pgp').downloadToBuffer();
    expect(sha256(got)).toBe(sha256(content));
  });

  it('refuses with a read-only SAS as a configuration error whose details never hold the signature', async () => {
    const sas = generateBlobSASQueryParameters(
      { containerName: server.container, permissions: ContainerSASPermissions.parse('r'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(server.credentials.accountName, server.credentials.accountKey),
    );
    const ctx = mockContext({ secret: async () => ({ sasToken: sas.toString() }), policy: policy(server.endpoint) });
    const session = await azblobDestination.bind(config()).connect(ctx);
    const delivery = await session.begin('read-only.pgp');
    const failure = await pipeline(Readable.from([randomBytes(1000)]), delivery.stream).then(
      () => undefined,
      (error: unknown) => error,
    );
    await delivery.abort();
    await session.close();
    expect(failure).toMatchObject({ name: 'UserError' });
    const signature = sas.signature;
    expect(signature.length).toBeGreaterThan(10);
    // Everything a logger could reach: every own property, enumerable or not, causes included.
    const shown = reachableText(failure);
    expect(shown).toContain('read-only.pgp');
    for (const spelling of [signature, encodeURIComponent(signature)]) expect(shown).not.toContain(spelling);
    expect(await server.entries()).not.toContain('read-only.pgp');
  });

  it('reports a key the service rejects as a configuration error, and delivers nothing', async () => {
    const ctx = mockContext({ secret: async () => ({ accountName: server.credentials.accountName, accountKey: randomBytes(32).toString('base64') }), policy: policy(server.endpoint) });
    const session = await azblobDestination.bind(config()).connect(ctx);
    const delivery = await session.begin('denied.pgp');
    await expect(pipeline(Readable.from([randomBytes(1000)]), delivery.stream)).rejects.toMatchObject({ name: 'UserError' });
    await delivery.abort();
    await session.close();
    expect(await server.entries()).not.toContain('denied.pgp');
  });
});
