import { describe, expect, it } from 'vitest';
import { loadClientConfig, loadServerConfig } from './config.ts';

describe('control plane config', () => {
  it('has safe defaults: loopback, embedded database, 1 MiB bodies, no TLS, a 5 s scheduler tick', () => {
    const config = loadServerConfig({});
    expect(config).toMatchObject({ host: '127.0.0.1', port: 7443, databaseUrl: undefined, tls: null, maxBodyBytes: 1024 * 1024, schedulerTickMs: 5_000 });
    expect(config.dataDir).toMatch(/\.airlock\/control-plane$/);
  });

  it('lists every problem at once', () => {
    expect(() => loadServerConfig({ AIRLOCK_PORT: 'http', DATABASE_URL: 'not a url', AIRLOCK_LOG_LEVEL: 'loud' })).toThrow(
      /AIRLOCK_PORT.*DATABASE_URL.*AIRLOCK_LOG_LEVEL|AIRLOCK_PORT.*AIRLOCK_LOG_LEVEL/s,
    );
  });

  it('needs the TLS certificate and key together', () => {
    expect(() => loadServerConfig({ AIRLOCK_TLS_CERT: '/c.pem' })).toThrow(/go together/);
    expect(loadServerConfig({ AIRLOCK_TLS_CERT: '/c.pem', AIRLOCK_TLS_KEY: '/k.pem' }).tls).toEqual({ certFile: '/c.pem', keyFile: '/k.pem' });
  });

  it('reads the admin URL and key', () => {
    expect(loadClientConfig({ AIRLOCK_API_KEY: 'alk_x' })).toEqual({ AIRLOCK_URL: 'http://127.0.0.1:7443', AIRLOCK_API_KEY: 'alk_x' });
    expect(() => loadClientConfig({ AIRLOCK_URL: 'nope' })).toThrow(/AIRLOCK_URL/);
  });
});
