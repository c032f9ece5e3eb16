import { describe, expect, it } from 'vitest';
import { claimsOf } from '@airlock/connector-api/definition';
import { httpsSecrets, httpsSourceDefinition, httpsSourcePolicy, outputNameOf } from './definition.ts';

const config = (over: Record<string, unknown> = {}) => ({ endpoint: 'https://erp.internal:8443/api/v2/orders?status=open', credentialRef: 'erp', ...over });

describe('https@1 definition', () => {
  it('claims a read of the endpoint path on its host and port', () => {
    expect(claimsOf(httpsSourceDefinition, config())).toEqual([{ action: 'read', scheme: 'https', authority: 'erp.internal:8443', path: '/api/v2/orders' }]);
    expect(claimsOf(httpsSourceDefinition, config({ endpoint: 'https://erp.internal/api/' }))).toEqual([
      { action: 'read', scheme: 'https', authority: 'erp.internal:443', path: '/api' },
    ]);
  });

  it('refuses http, credentials in the URL, ambiguous paths and a missing credential', () => {
    for (const endpoint of ['http://erp.internal/api', 'https://u:p@erp.internal/api', 'https://erp.internal/api/a%2Fb', 'https://erp.internal/api/a%5cb', 'https://erp.internal/a//b']) {
      expect(() => claimsOf(httpsSourceDefinition, config({ endpoint })), endpoint).toThrow(/invalid https@1 config/);
    }
    // Dot segments, escaped or not, are resolved as the request will resolve them: the claim is what is read.
    expect(claimsOf(httpsSourceDefinition, config({ endpoint: 'https://erp.internal/api/%2e%2e/admin' }))[0]?.path).toBe('/admin');
    expect(() => claimsOf(httpsSourceDefinition, { endpoint: 'https://erp.internal/api' })).toThrow(/credentialRef/);
    expect(claimsOf(httpsSourceDefinition, { endpoint: 'https://erp.internal/api', auth: 'none' })).toHaveLength(1);
    expect(() => claimsOf(httpsSourceDefinition, config({ unknown: 1 }))).toThrow(/invalid https@1 config/);
  });

  it('names the output after the last path segment unless told', () => {
    const parse = (over: Record<string, unknown>) => httpsSourceDefinition.config.parse(config(over)) as Parameters<typeof outputNameOf>[0];
    expect(outputNameOf(parse({}))).toBe('orders.jsonl');
    expect(outputNameOf(parse({ outputName: 'open-orders.jsonl' }))).toBe('open-orders.jsonl');
    expect(() => parse({ outputName: '../x' })).toThrow();
  });

  it('grants the pinned paths of an entry for its own origin only', () => {
    const entry = httpsSourcePolicy.parse({ origin: 'https://erp.internal:8443', paths: ['/api/v2/**'], certificateSha256: 'ab:'.repeat(31) + 'ab' });
    expect(entry.certificateSha256).toBe('AB'.repeat(32));
    const [claim] = claimsOf(httpsSourceDefinition, config());
    if (!claim) throw new Error('no claim');
    expect(httpsSourceDefinition.policy.grant(entry, claim)).toEqual({ paths: ['/api/v2/**'] });
    expect(httpsSourceDefinition.policy.grant(entry, { ...claim, authority: 'erp.internal:443' })).toBeUndefined();
  });

  it('needs a TLS pin in every policy entry, and an origin without a path', () => {
    expect(httpsSourcePolicy.safeParse({ origin: 'https://erp.internal', paths: ['/api/**'] }).success).toBe(false);
    expect(httpsSourcePolicy.safeParse({ origin: 'https://erp.internal/api', paths: ['/api/**'], caFile: '/etc/ca.pem' }).success).toBe(false);
    expect(httpsSourcePolicy.safeParse({ origin: 'https://erp.internal', paths: ['/api/**'], caFile: '/etc/ca.pem' }).success).toBe(true);
  });

  it('takes Basic, Bearer or client-certificate secrets, each complete', () => {
    expect(httpsSecrets.safeParse({ token: 't' }).success).toBe(true);
    expect(httpsSecrets.safeParse({ username: 'u', password: 'p' }).success).toBe(true);
    expect(httpsSecrets.safeParse({ username: 'u' }).success).toBe(false);
    expect(httpsSecrets.safeParse({ clientCertificate: '-----BEGIN CERTIFICATE-----\n', clientKey: '-----BEGIN PRIVATE KEY-----\n' }).success).toBe(true);
    expect(httpsSecrets.safeParse({ clientCertificate: '-----BEGIN CERTIFICATE-----\n' }).success).toBe(false);
    expect(httpsSecrets.safeParse({}).success).toBe(false);
  });
});
