/**
 * `airlock oauth-client` and `airlock requests` against a real control plane (embedded database),
 * run as the real CLI: a client made, used at the token endpoint, listed, disabled, rotated and
 * deleted, and the request log searched and exported.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant } from '@airlock/api';
import { loadServerConfig } from './config.ts';
import { type RunningServer, startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

describe('airlock oauth-client and requests', () => {
  let work: string;
  let server: RunningServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-oauth-cli-'));
    server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent', AIRLOCK_CONSOLE_DIR: 'off' }));
    const { key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
    env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
  }, 120_000);

  afterAll(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  async function token(clientId: string, secret: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${server.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`, 'user-agent': 'erp-sync/2' },
      body: 'grant_type=client_credentials',
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('[identity:oauth] creates, uses, lists, disables, rotates and deletes a client, with the token key made 0600 on first start', async () => {
    const keyFile = await stat(path.join(work, 'db', 'oauth-token.key'));
    expect(keyFile.mode & 0o777).toBe(0o600);
    const metadata = (await (await fetch(`${server.url}/.well-known/oauth-authorization-server`)).json()) as { issuer: string; token_endpoint: string };
    expect(metadata).toMatchObject({ issuer: server.url, token_endpoint: `${server.url}/oauth/token` });

    const created = await airlock(['oauth-client', 'create', '--name', 'erp', '--role', 'operator', '--read-only', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const client = JSON.parse(created.stdout) as { id: string; clientId: string; clientSecret: string };
    expect(client.clientSecret).toMatch(/^alcs_/);
    const issued = await token(client.clientId, client.clientSecret);
    expect(issued.status).toBe(200);
    expect(issued.body['scope']).toBe('agents:read integrations:read runs:read scopes:read alerts:read');

    const listed = await airlock(['oauth-client', 'list'], env);
    expect(listed.stdout).toContain(client.clientId);
    expect(listed.stdout).toContain('read-only');
    expect(listed.stdout).not.toContain(client.clientSecret);

    expect((await airlock(['oauth-client', 'disable', client.id], env)).code).toBe(0);
    expect((await token(client.clientId, client.clientSecret)).body['error']).toBe('invalid_client');
    expect((await airlock(['oauth-client', 'enable', client.id], env)).code).toBe(0);
    const rotated = await airlock(['oauth-client', 'rotate', client.id], env);
    const secret = /client_secret \(shown once\): (\S+)/.exec(rotated.stdout)?.[1] ?? '';
    expect(secret).toMatch(/^alcs_/);
    expect((await token(client.clientId, client.clientSecret)).status).toBe(401);
    expect((await token(client.clientId, secret)).status).toBe(200);

    const badJwks = await airlock(['oauth-client', 'create', '--name', 'x', '--role', 'auditor', '--jwks', path.join(work, 'missing.json')], env);
    expect(badJwks.code).toBe(1);
    const badPermission = await airlock(['oauth-client', 'create', '--name', 'x', '--role', 'auditor', '--permissions', 'agents:read,root'], env);
    expect(badPermission.stderr).toContain('unknown root');

    expect((await airlock(['oauth-client', 'delete', client.id], env)).code).toBe(0);
    expect((await airlock(['oauth-client', 'list', '--json'], env)).stdout.trim()).toBe('[]');
  }, 180_000);

  it('searches the request log and exports it as CSV and JSONL, and sets its retention', async () => {
    const created = JSON.parse((await airlock(['oauth-client', 'create', '--name', 'reports', '--role', 'auditor', '--json'], env)).stdout) as { clientId: string; clientSecret: string };
    expect((await token(created.clientId, created.clientSecret)).status).toBe(200);
    expect((await token(created.clientId, 'wrong')).status).toBe(401);
    // Written off the request path, within a flush period.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const csv = await airlock(['requests', 'list', '--procedure', 'oauth.token', '--format', 'csv'], env);
    expect(csv.code, csv.stderr).toBe(0);
    const lines = csv.stdout.trim().split('\r\n');
    expect(lines[0]).toBe('at,callerType,callerId,procedure,method,status,outcome,latencyMs,sourceIp,userAgent,requestId');
    expect(lines.some((line) => line.includes(',oauth-client,') && line.includes(',200,OK,') && line.includes('erp-sync/2'))).toBe(true);
    const jsonl = await airlock(['requests', 'list', '--caller-type', 'oauth-client', '--format', 'jsonl'], env);
    const rows = jsonl.stdout.trim().split('\n').map((line) => JSON.parse(line) as { callerType: string; procedure: string });
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((row) => row.callerType === 'oauth-client')).toBe(true);
    // A refused token request names no tenant: it is the system's row, not the tenant's.
    const errors = await airlock(['requests', 'list', '--outcome', 'invalid_client', '--json'], env);
    expect(JSON.parse(errors.stdout)).toEqual([]);
    const retention = await airlock(['requests', 'retention', '--days', '7'], env);
    expect(retention.stdout.trim()).toBe('request log kept 7 days');
    expect((await airlock(['requests', 'retention'], env)).stdout.trim()).toBe('request log kept 7 days');
  }, 180_000);
});
