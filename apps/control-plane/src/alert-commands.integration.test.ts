import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant, recordAudit, verifyAlertSignature } from '@airlock/api';
import { loadServerConfig } from './config.ts';
import { type RunningServer, startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

describe('airlock alert (server process with its alert engine, embedded database, loopback webhook)', () => {
  let work: string;
  let server: RunningServer;
  let env: Record<string, string>;
  let tenantId: string;
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  let hookUrl: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-alert-cli-'));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/services/T1/B1/path-credential`;
    server = await startServer(
      loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent', AIRLOCK_ALERT_TICK_MS: '250', AIRLOCK_ALERT_ALLOW_LOOPBACK: 'true' }),
    );
    const boot = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 30 });
    tenantId = boot.tenantId;
    env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: boot.key };
  }, 120_000);

  afterAll(async () => {
    await server.close();
    receiver.closeAllConnections();
    receiver.close();
    await rm(work, { recursive: true, force: true });
  });

  it('adds, lists, tests and removes a webhook; the running server alerts on a denial; alerts are listed, acknowledged and resolved', async () => {
    const urlFile = path.join(work, 'hook-url');
    await writeFile(urlFile, `${hookUrl}\n`, { mode: 0o600 });
    const added = await airlock(['alert', 'webhook', 'add', '--name', 'ops', '--url-file', urlFile, '--min-severity', 'info', '--json'], env);
    expect(added.code, added.stderr).toBe(0);
    const webhook = JSON.parse(added.stdout) as { id: string; signingSecret: string; origin: string };
    expect(webhook.signingSecret).toMatch(/^whsec_/);

    const listed = await airlock(['alert', 'webhook', 'list'], env);
    expect(listed.stdout).toContain(webhook.id);
    expect(listed.stdout).toContain(webhook.origin);
    expect(listed.stdout).not.toContain('path-credential');
    expect(listed.stdout).not.toContain(webhook.signingSecret);

    const refused = await airlock(['alert', 'webhook', 'add', '--name', 'plain', '--url', 'http://hooks.example.com/x'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/must be https/);

    const tested = await airlock(['alert', 'webhook', 'test', webhook.id], env);
    expect(tested.code, tested.stderr).toBe(0);
    expect(tested.stdout).toMatch(/^delivered: HTTP 204/);
    const verify = (index: number) => {
      const request = received[index];
      return Boolean(request) && verifyAlertSignature({
        secret: webhook.signingSecret,
        body: request?.body ?? '',
        timestamp: String(request?.headers['x-airlock-timestamp']),
        signature: String(request?.headers['x-airlock-signature']),
      });
    };
    expect(verify(0)).toBe(true);

    await recordAudit(server.db, {
      tenantId,
      actor: { type: 'api-key', id: 'cli-test' },
      action: 'scope-denied',
      target: 'nightly',
      outcome: 'denied',
      sourceIp: null,
      meta: { reason: 'no read grant for this agent' },
    });
    for (let i = 0; i < 200 && received.length < 2; i += 1) await sleep(100);
    expect(received).toHaveLength(2);
    expect(verify(1)).toBe(true);
    expect(JSON.parse(received[1]?.body ?? '{}')).toMatchObject({ airlock: { alert: { kind: 'scope-denied', target: 'nightly' } } });

    const alerts = await airlock(['alert', 'list', '--state', 'open', '--json'], env);
    const [alert] = JSON.parse(alerts.stdout) as { id: string; kind: string }[];
    expect(alert).toMatchObject({ kind: 'scope-denied' });
    if (!alert) throw new Error('no alert listed');
    expect((await airlock(['alert', 'ack', alert.id], env)).stdout).toMatch(/acknowledged/);
    expect((await airlock(['alert', 'resolve', alert.id], env)).stdout).toMatch(/resolved/);
    expect(JSON.parse((await airlock(['alert', 'list', '--state', 'unresolved', '--json'], env)).stdout)).toEqual([]);

    expect((await airlock(['alert', 'webhook', 'remove', webhook.id], env)).code).toBe(0);
    expect((await airlock(['alert', 'webhook', 'list', '--json'], env)).stdout.trim()).toBe('[]');
  }, 300_000); // a dozen CLI processes, each starting tsx
});
