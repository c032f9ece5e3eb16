import { createServer, type Server } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { schemesOf } from '@airlock/connector-api/definition';
import { mockContext } from '@airlock/connector-api/testkit';
import { PolicyViolationError } from '@airlock/errors';
import { covers, formatScope, parseScope, scopesOfClaims } from '@airlock/scopes';
import { blockChecksum } from './destination.ts';
import { azblobDestination, azblobDestinationDefinition } from './index.ts';

const config = { endpoint: 'https://acme.blob.core.windows.net', container: 'partner-in', prefix: '/inbound', credentialRef: 'blobs' };
const entry = { endpoint: 'https://acme.blob.core.windows.net', container: 'partner-in', prefixes: ['/inbound'], recipients: [] };

describe('azblob@1 definition', () => {
  it('claims the account endpoint and /<container><prefix>, and needs the matching scope', () => {
    const claims = azblobDestinationDefinition.claims(azblobDestinationDefinition.config.parse(config));
    expect(claims).toEqual([{ action: 'write', scheme: 'azblob', authority: 'acme.blob.core.windows.net:443', path: '/partner-in/inbound' }]);
    const scopes = scopesOfClaims(claims, schemesOf([azblobDestinationDefinition]), { below: true });
    expect(scopes.map(formatScope)).toEqual(['write azblob://acme.blob.core.windows.net:443/partner-in/inbound/**']);
  });

  it('a grant for one container does not cover another container, account or host', () => {
    const schemes = schemesOf([azblobDestinationDefinition]);
    const grant = parseScope('write azblob://acme.blob.core.windows.net/partner-in/inbound/**', schemes);
    const needed = (overrides: Record<string, unknown>) =>
      scopesOfClaims(azblobDestinationDefinition.claims(azblobDestinationDefinition.config.parse({ ...config, ...overrides })), schemes, { below: true });
    const coveredBy = (overrides: Record<string, unknown>) => needed(overrides).every((scope) => covers(grant, scope));
    expect(coveredBy({})).toBe(true);
    expect(coveredBy({ container: 'partner-out' })).toBe(false);
    expect(coveredBy({ prefix: '/outbound' })).toBe(false);
    expect(coveredBy({ endpoint: 'https://other.blob.core.windows.net' })).toBe(false);
  });

  it('puts the account in the claimed path when the endpoint names it in the path', () => {
    const parsed = azblobDestinationDefinition.config.parse({ ...config, endpoint: 'http://127.0.0.1:10000/devstoreaccount1/', prefix: '/' });
    expect(parsed.endpoint).toBe('http://127.0.0.1:10000/devstoreaccount1');
    expect(azblobDestinationDefinition.claims(parsed)).toEqual([{ action: 'write', scheme: 'azblob', authority: '127.0.0.1:10000', path: '/devstoreaccount1/partner-in' }]);
  });

  it('refuses plain http off loopback, a deeper path, a query or credentials in the endpoint, and bad names', () => {
    const parse = (overrides: Record<string, unknown>) => azblobDestinationDefinition.config.safeParse({ ...config, ...overrides }).success;
    expect(parse({})).toBe(true);
    expect(parse({ endpoint: 'http://acme.blob.core.windows.net' })).toBe(false);
    expect(parse({ endpoint: 'https://acme.blob.core.windows.net/acct/container' })).toBe(false);
    expect(parse({ endpoint: 'https://acme.blob.core.windows.net/?sv=2024&sig=x' })).toBe(false);
    expect(parse({ endpoint: 'https://user:pw@acme.blob.core.windows.net' })).toBe(false);
    expect(parse({ container: 'Bad_Container' })).toBe(false);
    expect(parse({ container: 'two--dashes' })).toBe(false);
    expect(parse({ credentialRef: undefined })).toBe(false);
    expect(parse({ blockSizeBytes: 1024 })).toBe(false);
    expect(parse({ accountKey: 'inline' })).toBe(false);
  });

  it('takes a shared key or a SAS token as its secret, nothing else', () => {
    const secrets = azblobDestinationDefinition.secrets;
    expect(secrets?.safeParse({ accountName: 'acme', accountKey: 'a2V5' }).success).toBe(true);
    expect(secrets?.safeParse({ sasToken: 'sv=2024-01-01&sp=cw&sig=x' }).success).toBe(true);
    expect(secrets?.safeParse({ accountName: 'acme' }).success).toBe(false);
    expect(secrets?.safeParse({ accessKeyId: 'a', secretAccessKey: 'b' }).success).toBe(false);
  });

  it('grants only the pinned endpoint, and only under the pinned container and prefixes', () => {
    const policy = azblobDestinationDefinition.policy;
    const pinned = policy.entry.parse(entry);
    const claim = { action: 'write', scheme: 'azblob', authority: 'acme.blob.core.windows.net:443', path: '/partner-in/inbound' } as const;
    expect(policy.grant(pinned, claim)).toEqual({ paths: ['/partner-in/inbound'], recipients: [] });
    expect(policy.grant(pinned, { ...claim, authority: 'other.blob.core.windows.net:443' })).toBeUndefined();
    expect(policy.grant(pinned, { ...claim, path: '/other-container/inbound' })?.paths).toEqual(['/partner-in/inbound']);
  });

  it('sends MD5 as is and CRC-64/NVME least significant byte first', async () => {
    // The catalogued check value of CRC-64/NVME for "123456789" is 0xae8b14860a799888.
    const check = Buffer.from('123456789');
    expect(Buffer.from((await blockChecksum('crc64', check)).transactionalContentCrc64 ?? []).toString('hex')).toBe('8898790a86148bae');
    expect(Buffer.from((await blockChecksum('md5', check)).transactionalContentMD5 ?? []).toString('hex')).toBe('25f9e794323b453885f5181f1b624d0b');
    expect(await blockChecksum('none', check)).toEqual({});
  });
});

describe('azblob@1 refuses before any connection', () => {
  // A listener that counts connections: the refusals must leave it at zero, the control must not.
  let server: Server | undefined;
  let connections = 0;
  const listen = async () => {
    connections = 0;
    server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return `http://127.0.0.1:${address.port}/acme`;
  };
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });
  const secret = async () => ({ accountName: 'acme', accountKey: 'a2V5' });
  const deliverOne = async (target: Record<string, unknown>, policy: unknown[]) => {
    const session = await azblobDestination.bind(target).connect(mockContext({ secret, policy }));
    const delivery = await session.begin('x.pgp');
    try {
      await pipeline(Readable.from([Buffer.from('ciphertext')]), delivery.stream);
    } finally {
      await delivery.abort();
    }
  };

  it('reaches the server when endpoint and container are pinned (the counter can count)', async () => {
    const endpoint = await listen();
    await expect(deliverOne({ ...config, endpoint, requestTimeoutMs: 1_000 }, [{ ...entry, endpoint }])).rejects.toMatchObject({ name: 'OperationalError' });
    expect(connections).toBeGreaterThan(0);
  });

  it('an endpoint that is not pinned in the local policy', async () => {
    const endpoint = await listen();
    await expect(deliverOne({ ...config, endpoint }, [entry])).rejects.toBeInstanceOf(PolicyViolationError);
    expect(connections).toBe(0);
  });

  it('a container that is not pinned for that endpoint', async () => {
    const endpoint = await listen();
    await expect(deliverOne({ ...config, endpoint }, [{ ...entry, endpoint, container: 'another-container' }])).rejects.toBeInstanceOf(PolicyViolationError);
    expect(connections).toBe(0);
  });

  it('another account on the same host and port', async () => {
    const endpoint = await listen();
    await expect(deliverOne({ ...config, endpoint }, [{ ...entry, endpoint: endpoint.replace(/\/acme$/, '/other') }])).rejects.toBeInstanceOf(PolicyViolationError);
    expect(connections).toBe(0);
  });

  it('http where https was pinned (same host and port)', async () => {
    const endpoint = await listen();
    await expect(deliverOne({ ...config, endpoint }, [{ ...entry, endpoint: endpoint.replace('http:', 'https:') }])).rejects.toBeInstanceOf(PolicyViolationError);
    expect(connections).toBe(0);
  });
});
