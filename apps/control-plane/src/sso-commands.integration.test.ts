/**
 * `airlock sso` against a real control plane (embedded database), run as the real CLI: a provider
 * created with its secret from standard input and a mapping, the mapping replaced and cleared,
 * the provider updated and deleted, the tenant's sign-in settings shown and changed, each change
 * audited, and bad input refused before anything is sent.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant } from '@airlock/api';
import { loadServerConfig } from './config.ts';
import { type RunningServer, startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

describe('airlock sso', () => {
  let work: string;
  let server: RunningServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-sso-cli-'));
    server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent', AIRLOCK_CONSOLE_DIR: 'off' }));
    const { key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
    env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
  }, 120_000);

  afterAll(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  interface Provider {
    id: string;
    name: string;
    issuer: string;
    roleClaim: string;
    enabled: boolean;
    mappings: Array<{ claimValue: string; role: string }>;
  }

  it('[identity:oidc] manages providers and their group -> role mappings, the secret never on the command line nor shown', async () => {
    const secret = 'oidc-client-secret-canary-7f3a';
    const created = await airlock(
      ['sso', 'provider', 'create', '--name', 'Corporate IdP', '--issuer', 'https://idp.example.com', '--client-id', 'airlock', '--client-secret-file', '-', '--map', 'airlock-admins=admin', '--map', 'ops=team=operator', '--json'],
      env,
      `${secret}\n`,
    );
    expect(created.code, created.stderr).toBe(0);
    const provider = JSON.parse(created.stdout) as Provider;
    expect(provider).toMatchObject({ name: 'Corporate IdP', issuer: 'https://idp.example.com', roleClaim: 'groups', enabled: true });
    // The last `=` separates the role, so a claim value may hold one.
    expect(provider.mappings).toEqual([
      { claimValue: 'airlock-admins', role: 'admin' },
      { claimValue: 'ops=team', role: 'operator' },
    ]);
    expect(created.stdout).not.toContain(secret);

    const listed = await airlock(['sso', 'provider', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('Corporate IdP');
    expect(listed.stdout).toContain('airlock-admins -> admin');
    expect(listed.stdout).not.toContain(secret);

    const replaced = await airlock(['sso', 'mapping', 'set', provider.id, '--map', 'airlock-auditors=auditor', '--json'], env);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout)).toEqual([{ claimValue: 'airlock-auditors', role: 'auditor' }]);
    expect((await airlock(['sso', 'mapping', 'list', provider.id], env)).stdout.trim()).toBe('airlock-auditors -> auditor');
    expect((await airlock(['sso', 'mapping', 'set', provider.id, '--none'], env)).stdout.trim()).toBe('mapping cleared');

    const secretFile = path.join(work, 'new-secret');
    await writeFile(secretFile, 'rotated-oidc-secret\n', { mode: 0o600 });
    const updated = await airlock(['sso', 'provider', 'update', provider.id, '--name', 'Okta', '--role-claim', 'roles', '--client-secret-file', secretFile, '--disable', '--json'], env);
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ id: provider.id, name: 'Okta', roleClaim: 'roles', enabled: false });

    // Refused before anything is sent.
    const badMap = await airlock(['sso', 'mapping', 'set', provider.id, '--map', 'admins=root'], env);
    expect(badMap.code).toBe(1);
    expect(badMap.stderr).toContain('expected <claim value>=<role>');
    const nothing = await airlock(['sso', 'provider', 'update', provider.id], env);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('nothing to change');
    const missingSecret = await airlock(['sso', 'provider', 'create', '--name', 'x', '--issuer', 'https://x.example.com', '--client-id', 'a', '--client-secret-file', path.join(work, 'absent')], env);
    expect(missingSecret.code).toBe(1);
    expect(missingSecret.stderr).toContain('cannot be read');

    expect((await airlock(['sso', 'provider', 'delete', provider.id], env)).code).toBe(0);
    const left = await airlock(['sso', 'provider', 'list', '--json'], env);
    expect(left.stdout.trim()).toBe('[]');

    const audit = await server.db.query<{ action: string }>(`SELECT action FROM audit_events WHERE action LIKE 'sso-%' ORDER BY seq`);
    expect(audit.map((row) => row.action)).toEqual(['sso-provider-create', 'sso-mapping-set', 'sso-mapping-set', 'sso-mapping-set', 'sso-provider-update', 'sso-provider-delete']);
    const sealed = await server.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE meta::text LIKE '%' || $1 || '%'`, [secret]);
    expect(sealed[0]?.n).toBe(0);
  }, 180_000);

  it('[identity:oidc] shows and changes how people sign in', async () => {
    const shown = await airlock(['sso', 'settings', '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual({ localPasswords: true, breakGlassUserId: null, requireSecondFactor: false });

    const required = await airlock(['sso', 'settings', '--require-second-factor', 'on'], env);
    expect(required.code, required.stderr).toBe(0);
    expect(required.stdout).toContain('second factor required for owners and admins: yes');

    // Local passwords stay on until an owner has signed in through a working provider.
    const off = await airlock(['sso', 'settings', '--local-passwords', 'off', '--break-glass', '00000000-0000-4000-8000-000000000000'], env);
    expect(off.code).toBe(1);
    expect(off.stderr).toContain('until an owner has signed in');
    const stray = await airlock(['sso', 'settings', '--break-glass', '00000000-0000-4000-8000-000000000000'], env);
    expect(stray.code).toBe(1);
    expect(stray.stderr).toContain('--break-glass goes with --local-passwords off');
    expect(JSON.parse((await airlock(['sso', 'settings', '--json'], env)).stdout)).toEqual({ localPasswords: true, breakGlassUserId: null, requireSecondFactor: true });
  }, 180_000);
});
