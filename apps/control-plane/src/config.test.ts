import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '@airlock/identity';
import { loadAlertKey, loadClientConfig, loadServerConfig, loadSigner } from './config.ts';

describe('control plane config', () => {
  it('has safe defaults: loopback, embedded database, 1 MiB bodies, no TLS, a 5 s scheduler tick', () => {
    const config = loadServerConfig({});
    expect(config).toMatchObject({ host: '127.0.0.1', port: 7443, databaseUrl: undefined, tls: null, maxBodyBytes: 1024 * 1024, schedulerTickMs: 5_000, signingKeyFile: null, checkpointIntervalMs: 60_000 });
    expect(config.dataDir).toMatch(/\.airlock\/control-plane$/);
  });

  it('has rate limits and a batch cap by default, each overridable', () => {
    expect(loadServerConfig({})).toMatchObject({
      maxBatchSize: 16,
      rateLimits: {
        'api-key': { points: 1_200, durationSeconds: 60 },
        session: { points: 1_200, durationSeconds: 60 },
        agent: { points: 600, durationSeconds: 60 },
        ip: { points: 120, durationSeconds: 60 },
      },
    });
    const tight = loadServerConfig({ AIRLOCK_MAX_BATCH_SIZE: '4', AIRLOCK_RATE_LIMIT_IP: '5', AIRLOCK_RATE_LIMIT_WINDOW_SECONDS: '10' });
    expect(tight.maxBatchSize).toBe(4);
    expect(tight.rateLimits.ip).toEqual({ points: 5, durationSeconds: 10 });
    expect(loadServerConfig({ AIRLOCK_RATE_LIMIT_SESSION: '30' }).rateLimits.session).toEqual({ points: 30, durationSeconds: 60 });
    expect(() => loadServerConfig({ AIRLOCK_RATE_LIMIT_AGENT: '0' })).toThrow(/AIRLOCK_RATE_LIMIT_AGENT/);
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

  it('serves the console from AIRLOCK_CONSOLE_DIR, none with `off`, and takes the public URL as an origin', () => {
    expect(loadServerConfig({ AIRLOCK_CONSOLE_DIR: 'build/console' }).consoleDir).toBe(path.resolve('build/console'));
    expect(loadServerConfig({ AIRLOCK_CONSOLE_DIR: 'off' }).consoleDir).toBeNull();
    // The default is apps/console/dist, and only when it holds a build.
    const fallback = loadServerConfig({}).consoleDir;
    if (fallback !== null) expect(fallback).toMatch(/apps\/console\/dist$/);
    expect(loadServerConfig({ AIRLOCK_PUBLIC_URL: 'https://airlock.example.com/some/path' }).publicUrl).toBe('https://airlock.example.com');
    expect(loadServerConfig({}).publicUrl).toBeNull();
    expect(() => loadServerConfig({ AIRLOCK_PUBLIC_URL: 'airlock.example.com' })).toThrow(/AIRLOCK_PUBLIC_URL/);
  });

  it('reads the admin URL and key', () => {
    expect(loadClientConfig({ AIRLOCK_API_KEY: 'alk_x' })).toEqual({ AIRLOCK_URL: 'http://127.0.0.1:7443', AIRLOCK_API_KEY: 'alk_x', AIRLOCK_REQUEST_TIMEOUT_MS: 30_000 });
    expect(() => loadClientConfig({ AIRLOCK_URL: 'nope' })).toThrow(/AIRLOCK_URL/);
  });

  it('generates the signing key once, 0600, in the data directory, and keeps it', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'airlock-key-'));
    try {
      const config = loadServerConfig({ AIRLOCK_DATA_DIR: dataDir });
      await expect(loadSigner(config, { create: false })).rejects.toThrow(/no signing key/);
      const first = await loadSigner(config);
      expect((await stat(path.join(dataDir, 'signing.key'))).mode & 0o777).toBe(0o600);
      expect((await loadSigner(config)).keyId).toBe(first.keyId);
      expect(await readFile(path.join(dataDir, 'signing.key'), 'utf8')).not.toContain(first.keyId);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a key file that is not a 64-byte base64 key whose halves belong together', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-key-'));
    try {
      const file = path.join(dir, 'k');
      const load = () => loadSigner(loadServerConfig({ AIRLOCK_SIGNING_KEY_FILE: file }));
      await writeFile(file, 'not base64!', { mode: 0o600 });
      await expect(load()).rejects.toThrow(/64 bytes/);
      const mixed = Buffer.concat([generateKeyPair().secretKey.slice(0, 32), generateKeyPair().publicKey]);
      await writeFile(file, encodeKey(mixed), { mode: 0o600 });
      await expect(load()).rejects.toThrow(/do not match/);
      const good = generateKeyPair();
      await writeFile(file, encodeKey(good.secretKey), { mode: 0o600 });
      expect((await load()).publicKey).toEqual(good.publicKey);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('has alert defaults (https only, 6 attempts) and reads the alert settings', () => {
    expect(loadServerConfig({}).alerts).toMatchObject({ keyFile: null, webhook: { allowHttp: false, timeoutMs: 10_000 }, maxAttempts: 6 });
    const config = loadServerConfig({ AIRLOCK_ALERT_ALLOW_HTTP: 'true', AIRLOCK_ALERT_BURST_COUNT: '5', AIRLOCK_ALERT_KEY_EXPIRY_DAYS: '3' });
    expect(config.alerts).toMatchObject({ webhook: { allowHttp: true }, thresholds: { burst: { count: 5 }, apiKeyExpiryMs: 3 * 86_400_000 } });
    expect(() => loadServerConfig({ AIRLOCK_ALERT_ALLOW_HTTP: 'yes' })).toThrow(/AIRLOCK_ALERT_ALLOW_HTTP/);
    expect(loadServerConfig({}).alerts.webhook.allowLoopback).toBe(false);
    expect(loadServerConfig({ AIRLOCK_ALERT_ALLOW_LOOPBACK: 'true' }).alerts.webhook.allowLoopback).toBe(true);
  });

  it('generates the alert key once, 0600, and refuses a readable or malformed one', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'airlock-alert-key-'));
    try {
      const config = loadServerConfig({ AIRLOCK_DATA_DIR: dataDir });
      const sealed = (await loadAlertKey(config)).seal('whsec_x', 'row');
      const file = path.join(dataDir, 'alert.key');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await loadAlertKey(config)).open(sealed, 'row')).toBe('whsec_x');
      const explicit = loadServerConfig({ AIRLOCK_ALERT_KEY_FILE: file });
      await chmod(file, 0o644);
      await expect(loadAlertKey(explicit)).rejects.toThrow(/chmod 600/);
      await writeFile(file, 'c2hvcnQ=', { mode: 0o600 });
      await chmod(file, 0o600);
      await expect(loadAlertKey(explicit)).rejects.toThrow(/32 bytes/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
