import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant } from '@airlock/api';
import { generateDemoKey } from '@airlock/pgp';
import { loadServerConfig } from './config.ts';
import { startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

describe('airlock admin commands: names, lifecycle, history, tokens', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-admin-cli-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  // About twenty CLI processes in a row: generous for a loaded machine.
  it('names integrations and runs by name, disables, enables, deletes softly, and shows versions', { timeout: 600_000 }, async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { tenantId, key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
      // An agent that never connected: a queued run waits on it.
      const [agent] = await server.db.query<{ id: string }>(
        "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, 'admin-cli-key', 'host-a', '1') RETURNING id",
        [tenantId],
      );
      const agentId = agent?.id ?? '';
      const env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
      const ok = async (args: string[]) => {
        const result = await airlock(args, env);
        expect(result.stderr, args.join(' ')).toBe('');
        expect(result.code, args.join(' ')).toBe(0);
        return result.stdout;
      };
      const json = async <T>(args: string[]) => JSON.parse(await ok([...args, '--json'])) as T;

      const partner = await generateDemoKey('Partner', 'p@example.com');
      await writeFile(path.join(work, 'partner.asc'), partner.armoredPublicKey);
      const spec = (directory: string) =>
        `name: nightly\nsource: { connector: local@1, config: { path: /in/*.csv } }\ndestination: { connector: local@1, config: { directory: ${directory} } }\nrecipients: [{ file: partner.asc }]\n`;
      await writeFile(path.join(work, 'nightly.yaml'), spec('/out'));
      for (const scope of ['read file:///in/*.csv', 'write file:///out/**', 'write file:///out2/**']) await ok(['grant', 'add', '--agent', agentId, scope]);
      const { id } = await json<{ id: string }>(['integration', 'create', '-f', path.join(work, 'nightly.yaml'), '--agent', agentId]);
      await writeFile(path.join(work, 'nightly.yaml'), spec('/out2'));
      expect(await json<{ version: number }>(['integration', 'create', '-f', path.join(work, 'nightly.yaml'), '--agent', agentId])).toMatchObject({ id, version: 2 });

      expect(await json<{ id: string; name: string; version: number }>(['integration', 'show', 'nightly'])).toMatchObject({ id, name: 'nightly', version: 2, disabledAt: null });
      const history = await json<Array<{ version: number; spec: { destination: { config: { directory: string } } } }>>(['integration', 'history', 'nightly']);
      expect(history.map((v) => [v.version, v.spec.destination.config.directory])).toEqual([[2, '/out2'], [1, '/out']]);

      // Queued on an agent never seen: --wait says so instead of waiting in silence, and gives up.
      const waited = await airlock(['run', 'now', 'nightly', '--wait', '--timeout', '1'], env);
      expect(waited.code).toBe(1);
      expect(waited.stderr).toContain(`airlock: agent host-a (${agentId}) has never been seen: the run stays queued until it connects`);
      expect(waited.stderr).toMatch(/^queued$/m);
      expect(waited.stderr).toMatch(/airlock: run [0-9a-f-]{36} still queued after 1 s/);
      const shown = await ok(['run', 'show', 'nightly']);
      expect(shown).toMatch(new RegExp(`^run [0-9a-f-]{36} queued\\n  integration ${id} version 2\\n`));

      expect(await json(['integration', 'disable', 'nightly'])).toMatchObject({ id, disabled: true, cancelledRuns: 1 });
      const refused = await airlock(['run', 'now', 'nightly'], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toBe('airlock: the integration is disabled: enable it first (`airlock integration enable`)');
      expect(await json(['integration', 'enable', id])).toMatchObject({ id, disabled: false });
      expect(await json(['integration', 'delete', 'nightly'])).toMatchObject({ id, deleted: true });

      // Deleted: not listed, not runnable by name, its runs and audit kept, its name free again.
      expect(await json<unknown[]>(['integration', 'list'])).toEqual([]);
      expect((await airlock(['run', 'now', 'nightly'], env)).stderr).toMatch(/no integration named "nightly"/);
      expect(await json<Array<{ integrationId: string; status: string }>>(['run', 'list'])).toEqual([expect.objectContaining({ integrationId: id, status: 'cancelled' })]);
      const actions = (await json<Array<{ action: string; target: string }>>(['audit', 'list'])).filter((e) => e.target === id).map((e) => e.action);
      expect(actions).toEqual(expect.arrayContaining(['integration-save', 'integration-disable', 'integration-enable', 'integration-delete']));
      const again = await json<{ id: string; version: number }>(['integration', 'create', '-f', path.join(work, 'nightly.yaml'), '--agent', agentId]);
      expect(again.id).not.toBe(id);
      expect(again.version).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('lists and revokes enrollment tokens, and prints the installed enroll command', async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'tokens-db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
      const env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
      const created = await airlock(['token', 'create'], env);
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(new RegExp(`^airlock-agent enroll --url ${server.url.replace(/[.]/g, '\\.')} --token aet_\\S+ --control-plane-key ed25519:\\S+ --dir /var/lib/airlock\\n`));
      const listed = await airlock(['token', 'list', '--json'], env);
      const [token] = JSON.parse(listed.stdout) as Array<{ id: string; state: string }>;
      expect(token).toMatchObject({ state: 'usable' });
      expect(listed.stdout).not.toContain('aet_');
      const revoked = await airlock(['token', 'revoke', token?.id ?? ''], env);
      expect(revoked).toMatchObject({ code: 0, stdout: `revoked enrollment token ${token?.id ?? ''}\n` });
      const after = await airlock(['token', 'list'], env);
      expect(after.stdout).toMatch(new RegExp(`^${token?.id ?? ''}  revoked`));
      expect((await airlock(['token', 'revoke', token?.id ?? ''], env)).code).toBe(1);
      const [audited] = await server.db.forSystem().query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'enrollment-token-revoke' AND target = $1", [token?.id]);
      expect(audited?.n).toBe(1);
    } finally {
      await server.close();
    }
  });
});
