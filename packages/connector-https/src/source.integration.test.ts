/**
 * `https@1` against a real TLS endpoint on loopback: each auth method, each way of pinning the
 * certificate, both kinds of pagination, the bounds, Retry-After, and refusals that happen before
 * any connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorContext } from '@airlock/connector-api';
import { mockContext } from '@airlock/connector-api/testkit';
import { type ApiServer, makeCertificates, startApiServer, type TestCertificates } from './https-server.fixture.ts';
import { httpsSource } from './index.ts';

let certs: TestCertificates;
let otherCerts: TestCertificates;
const servers: ApiServer[] = [];

beforeAll(async () => {
  [certs, otherCerts] = await Promise.all([makeCertificates(), makeCertificates()]);
});
afterAll(async () => {
  for (const server of servers) await server.stop();
});

async function serve(options: Parameters<typeof startApiServer>[0] = {}): Promise<ApiServer> {
  const server = await startApiServer(options, certs);
  servers.push(server);
  return server;
}

const pin = (server: ApiServer, extra: Record<string, unknown> = { ca: certs.caPem }) => [{ origin: server.origin, paths: ['/api/**'], ...extra }];

function context(server: ApiServer, secret: Record<string, string> = {}, policy: unknown[] = pin(server)): ConnectorContext {
  return mockContext({ secret: async () => secret, policy });
}

async function pull(server: ApiServer, config: Record<string, unknown>, ctx: ConnectorContext = context(server)): Promise<string> {
  const session = await httpsSource.bind({ endpoint: `${server.origin}/api/records`, records: 'items', auth: 'none', ...config }).connect(ctx);
  try {
    const [file] = await session.list();
    if (!file) throw new Error('nothing listed');
    const chunks: Buffer[] = [];
    for await (const chunk of await session.open(file)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    await session.close();
  }
}

const people = ['{"id":12345678901234567890,"name":"Alice","amount":1.10}', '{"id":2,"name":"Bob \\"B\\"","amount":2e3,"tags":["x","y"]}', '{"id":3,"name":"Żaneta"}'];

describe('https@1 reads pages as JSON Lines', () => {
  it('follows Link headers page by page and keeps every record byte for byte', async () => {
    const server = await serve({ pageSize: 2 });
    server.putRecords('people', people);
    const before = server.requests.length;
    expect(await pull(server, {})).toBe(people.map((record) => `${record}\n`).join(''));
    // One listing request, then the two pages.
    expect(server.requests.slice(before)).toEqual(['GET /api/records', 'GET /api/records', 'GET /api/records?page=2']);
  });

  it('follows a cursor field in pretty-printed pages, one record per line', async () => {
    const server = await serve({ pageSize: 2, pretty: true });
    server.putRecords('people', people);
    const out = await pull(server, { endpoint: `${server.origin}/api/cursor`, records: 'data.items', pagination: { type: 'cursor', field: 'next_cursor', param: 'after' } });
    expect(out.split('\n').slice(0, -1).map((line) => JSON.parse(line) as unknown)).toEqual(people.map((record) => JSON.parse(record) as unknown));
    expect(out).toContain('"id":12345678901234567890');
    expect(out).toContain('"amount":1.10');
    expect(server.requests.at(-1)).toBe('GET /api/cursor?after=2');
  });

  it('fails past maxPages or maxBytes instead of ending short', async () => {
    const server = await serve({ pageSize: 1 });
    server.putRecords('people', people);
    await expect(pull(server, { maxPages: 2 })).rejects.toMatchObject({ name: 'UserError', message: expect.stringMatching(/more than 2 pages/) });
    server.put('big', 64 * 1024);
    await expect(pull(server, { maxBytes: 16 * 1024 })).rejects.toMatchObject({ name: 'UserError', message: expect.stringMatching(/larger than 16384 bytes/) });
  });

  it('refuses a next link off the endpoint origin or path, without requesting it', async () => {
    const server = await serve({ pageSize: 1 });
    server.putRecords('people', people);
    for (const link of [`<https://127.0.0.2:${server.port}/api/records?page=2>; rel="next"`, '</api/other?page=2>; rel="next"']) {
      server.linkOverride = link;
      const before = server.requests.length;
      await expect(pull(server, {})).rejects.toMatchObject({ name: 'PolicyViolationError' });
      expect(server.requests.slice(before)).toEqual(['GET /api/records', 'GET /api/records']);
    }
  });

  it('follows no redirect and reads no body but JSON', async () => {
    const server = await serve();
    server.putRecords('people', people);
    const before = server.requests.length;
    await expect(pull(server, { endpoint: `${server.origin}/api/moved` })).rejects.toMatchObject({ name: 'UserError', message: expect.stringMatching(/302: redirects are not followed/) });
    await expect(pull(server, { endpoint: `${server.origin}/api/text` })).rejects.toMatchObject({ name: 'UserError', message: expect.stringMatching(/"text\/plain", not JSON/) });
    expect(server.requests.slice(before)).toEqual(['GET /api/moved', 'GET /api/text']);
  });

  it('fails with ConflictError when the first page changed between listing and reading, by Last-Modified or by its bytes', async () => {
    for (const validator of ['last-modified', 'none'] as const) {
      const server = await serve({ validator });
      server.putRecords('people', people);
      const session = await httpsSource.bind({ endpoint: `${server.origin}/api/records`, records: 'items', auth: 'none' }).connect(context(server));
      const [file] = await session.list();
      server.change('people');
      await expect(session.open(file ?? { path: '/', name: 'x', size: 0, mtimeMs: 0 })).rejects.toMatchObject({ name: 'ConflictError' });
      await session.close();
    }
  });
});

describe('https@1 waits out rate limits within bounds', () => {
  it('waits as Retry-After asks, then reads', async () => {
    const server = await serve();
    server.putRecords('people', people);
    server.refuseNext(1, 429, '1');
    const started = Date.now();
    expect(await pull(server, {})).toBe(people.map((record) => `${record}\n`).join(''));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('gives up when asked to wait longer than maxRetryWaitMs, or after maxRetries', async () => {
    const server = await serve();
    server.putRecords('people', people);
    server.refuseNext(1, 503, '3600');
    let before = server.requests.length;
    await expect(pull(server, { maxRetryWaitMs: 5_000 })).rejects.toMatchObject({ name: 'OperationalError', message: expect.stringMatching(/asks to wait 3600 s/) });
    expect(server.requests.length - before).toBe(1);
    server.refuseNext(10, 429, '0');
    before = server.requests.length;
    await expect(pull(server, { maxRetries: 2 })).rejects.toMatchObject({ name: 'OperationalError', message: expect.stringMatching(/429 3 times/) });
    expect(server.requests.length - before).toBe(3);
  });
});

describe('https@1 authenticates as configured', () => {
  it('sends Basic credentials from the secret, and reports a refused one as AuthenticationError', async () => {
    const server = await serve({ authorization: `Basic ${Buffer.from('erp:s3cret').toString('base64')}` });
    server.putRecords('people', people);
    const config = { auth: 'basic', credentialRef: 'erp' };
    expect(await pull(server, config, context(server, { username: 'erp', password: 's3cret' }))).toContain('Alice');
    await expect(pull(server, config, context(server, { username: 'erp', password: 'wrong' }))).rejects.toMatchObject({ name: 'AuthenticationError' });
  });

  it('presents the client certificate for mutual TLS, and is refused without it', async () => {
    const server = await serve({ requireClientCertificate: true });
    server.putRecords('people', people);
    const secret = { clientCertificate: certs.clientPem, clientKey: certs.clientKey };
    expect(await pull(server, { clientCertificate: true, credentialRef: 'mtls' }, context(server, secret))).toContain('Alice');
    await expect(pull(server, {})).rejects.toMatchObject({ name: 'AuthenticationError' });
  });
});

describe('https@1 trusts only the pinned certificate', () => {
  it('accepts the pinned fingerprint on a chain the CA bundle verifies', async () => {
    const server = await serve();
    server.putRecords('people', people);
    expect(await pull(server, {}, context(server, {}, pin(server, { ca: certs.caPem, certificateSha256: certs.serverFingerprint })))).toContain('Alice');
  });

  it('refuses another fingerprint, another CA, and an unverifiable chain even when the fingerprint matches', async () => {
    const server = await serve();
    server.putRecords('people', people);
    const refusals = [
      { ca: certs.caPem, certificateSha256: otherCerts.serverFingerprint },
      { ca: otherCerts.caPem },
      // Pinned but not verifiable against the system's roots: verification is never switched off.
      { certificateSha256: certs.serverFingerprint },
    ];
    for (const tls of refusals) {
      const before = server.requests.length;
      await expect(pull(server, {}, context(server, {}, pin(server, tls)))).rejects.toMatchObject({ name: 'HostKeyMismatchError' });
      expect(server.requests.length).toBe(before);
    }
  });
});

describe('https@1 refuses what the local policy does not pin, before any connection', () => {
  it('refuses another path or origin without opening a connection', async () => {
    const server = await serve();
    const before = server.connections.count;
    const bind = (endpoint: string) => httpsSource.bind({ endpoint, records: 'items', auth: 'none' });
    await expect(bind(`${server.origin}/admin/users`).connect(context(server))).rejects.toMatchObject({ name: 'PolicyViolationError' });
    await expect(bind(`https://localhost:${server.port}/api/records`).connect(context(server))).rejects.toMatchObject({ name: 'PolicyViolationError' });
    await expect(bind(`${server.origin}/api/records`).connect(context(server, {}, []))).rejects.toMatchObject({ name: 'PolicyViolationError' });
    expect(server.connections.count).toBe(before);
  });
});
