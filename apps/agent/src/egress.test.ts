import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchNamingFailures, forPerson } from '@airlock/errors';
import { openEgress } from './control-channel.ts';
import { bypassesProxy, proxyFor, proxySettingsFromEnv, proxySettingsSchema, redactProxyUrl } from './egress.ts';
import { loadAgentConfig } from './config.ts';

const bypass = (url: string, noProxy: string) => bypassesProxy(new URL(url), noProxy);

describe('egress settings as curl reads them [operations:proxy]', () => {
  it('prefers the lowercase variables, picks the proxy by scheme and falls back to ALL_PROXY', () => {
    expect(proxySettingsFromEnv({ HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128', NO_PROXY: 'a', no_proxy: 'b' })).toEqual({
      https: 'http://lower:3128',
      noProxy: 'b',
    });
    expect(proxySettingsFromEnv({ HTTP_PROXY: 'http://p:1' })).toEqual({ http: 'http://p:1' });
    expect(proxySettingsFromEnv({ ALL_PROXY: 'http://all:1', http_proxy: 'http://h:1' })).toEqual({ https: 'http://all:1', http: 'http://h:1' });
    expect(proxySettingsFromEnv({ https_proxy: '' })).toEqual({});
    const settings = { https: 'http://s:1', http: 'http://h:1', noProxy: 'internal.example' };
    expect(proxyFor(new URL('https://cp.example.com'), settings)).toBe('http://s:1');
    expect(proxyFor(new URL('http://cp.example.com'), settings)).toBe('http://h:1');
    expect(proxyFor(new URL('https://cp.internal.example'), settings)).toBeUndefined();
    // An https control plane never falls back to the http proxy: curl does not.
    expect(proxyFor(new URL('https://cp.example.com'), { http: 'http://h:1' })).toBeUndefined();
  });

  it('matches NO_PROXY by host, domain, wildcard, port, IP and CIDR range', () => {
    expect(bypass('https://cp.example.com', '*')).toBe(true);
    expect(bypass('https://cp.example.com', 'example.com')).toBe(true);
    expect(bypass('https://example.com', '.example.com')).toBe(true);
    expect(bypass('https://cp.example.com', '*.example.com')).toBe(true);
    expect(bypass('https://cp.example.com.', 'EXAMPLE.com')).toBe(true);
    expect(bypass('https://badexample.com', 'example.com')).toBe(false);
    expect(bypass('https://cp.example.com', 'other.org, example.net')).toBe(false);
    expect(bypass('https://cp.example.com:8443', 'example.com:8443')).toBe(true);
    expect(bypass('https://cp.example.com', 'example.com:8443')).toBe(false);
    expect(bypass('https://cp.example.com', 'example.com:443')).toBe(true);
    expect(bypass('http://10.1.2.3:9000', '10.1.2.3')).toBe(true);
    expect(bypass('http://10.1.2.3:9000', '10.1.2.4')).toBe(false);
    expect(bypass('http://10.1.2.3:9000', '10.0.0.0/8')).toBe(true);
    expect(bypass('http://11.1.2.3:9000', '10.0.0.0/8')).toBe(false);
    expect(bypass('http://[::1]:9000', '::1')).toBe(true);
    expect(bypass('http://[::1]:9000', '[::1]:9000')).toBe(true);
    expect(bypass('http://[fd00::5]:9000', 'fd00::/8')).toBe(true);
    expect(bypass('http://[fe80::5]:9000', 'fd00::/8')).toBe(false);
    // `*` counts only alone; inside a list it is no wildcard.
    expect(bypass('https://cp.example.com', '*, other.org')).toBe(false);
    expect(bypass('https://cp.example.com', '')).toBe(false);
  });

  it('keeps a proxy credential out of agent.json and out of every shown URL', () => {
    const refused = proxySettingsSchema.safeParse({ https: 'http://user:s3cret@proxy.example:3128' });
    expect(refused.success).toBe(false);
    expect(JSON.stringify(refused.error?.issues)).not.toContain('s3cret');
    expect(proxySettingsSchema.safeParse({ https: 'http://proxy.example:3128', credential: 'corporate-proxy' }).success).toBe(true);
    expect(redactProxyUrl('http://user:s3cret@proxy.example:3128/')).toBe('http://proxy.example:3128');
  });

  it('reads the proxy variables once, with the config, and names the credential entry', () => {
    const config = loadAgentConfig({ dir: '/tmp/agent' }, { https_proxy: 'http://p:3128', no_proxy: 'localhost', AIRLOCK_AGENT_PROXY_CREDENTIAL: 'corporate-proxy' });
    expect(config.proxyFromEnv).toEqual({ https: 'http://p:3128', noProxy: 'localhost', credential: 'corporate-proxy' });
  });
});

describe('the proxy credential from secrets.yaml [operations:proxy]', () => {
  it('is accepted as a secrets entry, sent as Basic, and a misshapen one is refused without its value', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-egress-'));
    const secretsFile = path.join(dir, 'secrets.yaml');
    const seen: Array<string | undefined> = [];
    // A plain-HTTP proxy refusing every CONNECT with 407, recording the credential it was offered.
    const proxy = createServer();
    proxy.on('connect', (req, socket) => {
      seen.push(req.headers['proxy-authorization']);
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const address = proxy.address();
    const proxyUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    try {
      await writeFile(secretsFile, 'corporate-proxy:\n  username: airlock\n  password: "p4ss word"\n', { mode: 0o600 });
      const egress = await openEgress('https://cp.example.test', { proxy: { https: proxyUrl, credential: 'corporate-proxy' } }, { proxyFromEnv: {}, secretsFile });
      expect(egress.proxy).toBe(proxyUrl);
      const error: unknown = await fetchNamingFailures(egress.fetch)('https://cp.example.test/trpc/agent.heartbeat').catch((e: unknown) => e);
      await egress.close();
      expect(seen).toEqual([`Basic ${Buffer.from('airlock:p4ss word').toString('base64')}`]);
      expect(forPerson(error)).toMatchObject({ code: 'network-proxy-auth', exitCode: 1 });
      expect(forPerson(error).message).not.toContain('p4ss');

      await writeFile(secretsFile, 'corporate-proxy:\n  user: airlock\n  password: "p4ss word"\n', { mode: 0o600 });
      const refused: unknown = await openEgress('https://cp.example.test', { proxy: { https: proxyUrl, credential: 'corporate-proxy' } }, { proxyFromEnv: {}, secretsFile }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).not.toContain('p4ss');
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
