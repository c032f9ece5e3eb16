import { describe, expect, it } from 'vitest';
import { schemesOf } from '@airlock/connector-api/definition';
import { mockContext } from '@airlock/connector-api/testkit';
import { PolicyViolationError } from '@airlock/errors';
import { formatScope, scopesOfClaims } from '@airlock/scopes';
import { freePort } from '@airlock/testing';
import { s3Destination, s3DestinationDefinition } from './index.ts';

const config = { endpoint: 'https://objects.example.com', bucket: 'partner-in', prefix: '/acme', credentialRef: 'objects' };
const entry = { endpoint: 'https://objects.example.com', bucket: 'partner-in', prefixes: ['/acme'], recipients: [] };

describe('s3@1 definition', () => {
  it('claims the endpoint and /<bucket><prefix>, and needs the matching scope', () => {
    const claims = s3DestinationDefinition.claims(s3DestinationDefinition.config.parse(config));
    expect(claims).toEqual([{ action: 'write', scheme: 's3', authority: 'objects.example.com:443', path: '/partner-in/acme' }]);
    const scopes = scopesOfClaims(claims, schemesOf([s3DestinationDefinition]), { below: true });
    expect(scopes.map(formatScope)).toEqual(['write s3://objects.example.com:443/partner-in/acme/**']);
  });

  it('refuses plain http off loopback, a path in the endpoint, and a bad bucket', () => {
    const parse = (overrides: Record<string, unknown>) => s3DestinationDefinition.config.safeParse({ ...config, ...overrides }).success;
    expect(parse({ endpoint: 'http://objects.example.com' })).toBe(false);
    expect(parse({ endpoint: 'http://127.0.0.1:9000' })).toBe(true);
    expect(parse({ endpoint: 'https://objects.example.com/other-bucket' })).toBe(false);
    expect(parse({ endpoint: 'https://user:pw@objects.example.com' })).toBe(false);
    expect(parse({ bucket: 'Bad_Bucket' })).toBe(false);
    expect(parse({ kmsKeyId: 'k' })).toBe(false);
    expect(parse({ kmsKeyId: 'k', serverSideEncryption: 'aws:kms' })).toBe(true);
  });

  it('grants only the pinned endpoint, and only under the pinned bucket and prefixes', () => {
    const policy = s3DestinationDefinition.policy;
    const pinned = policy.entry.parse(entry);
    const claim = { action: 'write', scheme: 's3', authority: 'objects.example.com:443', path: '/partner-in/acme' } as const;
    expect(policy.grant(pinned, claim)).toEqual({ paths: ['/partner-in/acme'], recipients: [] });
    expect(policy.grant(pinned, { ...claim, authority: 'elsewhere.example.com:443' })).toBeUndefined();
    expect(policy.grant(pinned, { ...claim, path: '/other-bucket/acme' })?.paths).toEqual(['/partner-in/acme']);
  });
});

describe('s3@1 refuses before any connection', () => {
  // Nothing listens here: a connector that tried to connect would fail with a network error instead.
  const unreachable = async () => ({ ...config, endpoint: `http://127.0.0.1:${await freePort()}` });
  const secret = async () => ({ accessKeyId: 'a', secretAccessKey: 'b' });

  it('an endpoint that is not pinned in the local policy', async () => {
    const ctx = mockContext({ secret, policy: [entry] });
    await expect(s3Destination.bind(await unreachable()).connect(ctx)).rejects.toBeInstanceOf(PolicyViolationError);
  });

  it('a bucket that is not pinned for that endpoint', async () => {
    const target = await unreachable();
    const ctx = mockContext({ secret, policy: [{ ...entry, endpoint: target.endpoint, bucket: 'another-bucket' }] });
    await expect(s3Destination.bind(target).connect(ctx)).rejects.toBeInstanceOf(PolicyViolationError);
  });

  it('http where https was pinned (same host and port)', async () => {
    const port = await freePort();
    const ctx = mockContext({ secret, policy: [{ ...entry, endpoint: `https://127.0.0.1:${port}` }] });
    await expect(s3Destination.bind({ ...config, endpoint: `http://127.0.0.1:${port}` }).connect(ctx)).rejects.toBeInstanceOf(PolicyViolationError);
  });
});
