import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant, recordAudit } from '@airlock/api';
import { encodeKey, generateKeyPair, keyFingerprint } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { integrationSpec } from '@airlock/protocol';
import { readIntegrationFile } from './cli.ts';
import { loadServerConfig, loadSigner } from './config.ts';
import { startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

const run = promisify(execFile);

describe('airlock CLI', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-cli-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('bootstraps the first owner key once, with no database surgery', async () => {
    const env = { AIRLOCK_DATA_DIR: path.join(work, 'db') };
    const first = await airlock(['bootstrap', '--tenant', 'acme', '--json'], env);
    expect(first.code).toBe(0);
    const result = JSON.parse(first.stdout) as { key: string; expiresAt: string };
    expect(result.key).toMatch(/^alk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const again = await airlock(['bootstrap', '--tenant', 'acme'], env);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/already has an owner key/);
  });

  it('gives a one-line reason and a non-zero exit for bad config and input', async () => {
    const badPort = await airlock(['migrate'], { AIRLOCK_PORT: 'eighty', AIRLOCK_DATA_DIR: path.join(work, 'db2') });
    expect(badPort).toMatchObject({ code: 1 });
    expect(badPort.stderr).toMatch(/^airlock: configuration: AIRLOCK_PORT/);
    const noKey = await airlock(['run', 'list'], {});
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/AIRLOCK_API_KEY/);
    const unknown = await airlock(['frobnicate'], {});
    expect(unknown.code).not.toBe(0);
    const help = await airlock(['integration', 'create', '--help'], {});
    expect(help.stdout).toMatch(/--file/);
  });

  it('reads integration files in YAML with recipients from files', async () => {
    const key = await generateDemoKey('Partner', 'p@example.com');
    await writeFile(path.join(work, 'partner.asc'), key.armoredPublicKey);
    await writeFile(path.join(work, 'spec.yaml'), 'name: nightly\nrecipients:\n  - file: partner.asc\n');
    const spec = await readIntegrationFile(path.join(work, 'spec.yaml'), '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d');
    expect(spec).toEqual({ name: 'nightly', agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', recipients: [key.armoredPublicKey] });
    await writeFile(path.join(work, 'list.yaml'), '- a\n- b\n');
    await expect(readIntegrationFile(path.join(work, 'list.yaml'))).rejects.toThrow(/expected an object/);
  });

  it('round-trips a schedule, lists the next run, and explains a run-now refused for overlap in one line', async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'schedule-db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { tenantId, key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
      const [agent] = await server.db.query<{ id: string }>(
        "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, 'cli-test-key', 'host-a', '1') RETURNING id",
        [tenantId],
      );
      const partner = await generateDemoKey('Partner', 'p@example.com');
      await writeFile(path.join(work, 'partner.asc'), partner.armoredPublicKey);
      const file = path.join(work, 'scheduled.yaml');
      await writeFile(
        file,
        [
          'name: nightly',
          'source: { connector: local@1, config: { path: /in/*.csv } }',
          'destination: { connector: local@1, config: { directory: /out } }',
          'recipients: [{ file: partner.asc }]',
          'schedule:',
          '  cron: "0 2 1 1 *"',
          '  timezone: Europe/Berlin',
        ].join('\n'),
      );
      const parsed = integrationSpec.parse(await readIntegrationFile(file, agent?.id));
      expect(parsed.schedule).toEqual({ cron: '0 2 1 1 *', timezone: 'Europe/Berlin', missed: 'run-once' });

      const env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
      for (const scope of ['read file:///in/*.csv', 'write file:///out/**']) {
        expect((await airlock(['grant', 'add', '--agent', agent?.id ?? '', scope], env)).code).toBe(0);
      }
      const created = await airlock(['integration', 'create', '-f', file, '--agent', agent?.id ?? '', '--json'], env);
      expect(created.code).toBe(0);
      const { id, nextRunAt } = JSON.parse(created.stdout) as { id: string; nextRunAt: string };
      // 02:00 on 1 January in Berlin is 01:00 UTC.
      expect(nextRunAt).toMatch(/^\d{4}-01-01T01:00:00\.000Z$/);
      const [stored] = await server.db.query<{ spec: { schedule: unknown } }>('SELECT spec FROM integrations WHERE id = $1', [id]);
      expect(stored?.spec.schedule).toEqual({ cron: '0 2 1 1 *', timezone: 'Europe/Berlin', missed: 'run-once' });

      const listed = await airlock(['integration', 'list'], env);
      expect(listed.stdout).toContain(`${id}  nightly  v1  agent ${agent?.id ?? ''}  0 2 1 1 * Europe/Berlin, next run ${nextRunAt}`);

      const first = await airlock(['run', 'now', id, '--json'], env);
      expect(first.code).toBe(0);
      const { runId } = JSON.parse(first.stdout) as { runId: string };
      const second = await airlock(['run', 'now', id], env);
      expect(second.code).toBe(1);
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
      expect(second.stderr.trim()).toBe(`airlock: not queued: a run of this integration is still queued or running (run ${runId})`);

      await writeFile(path.join(work, 'bad-cron.yaml'), 'name: bad\nrecipients: [{ file: partner.asc }]\nsource: { connector: local@1, config: {} }\ndestination: { connector: local@1, config: {} }\nschedule: { cron: "0 0 30 2 *" }\n');
      const bad = await airlock(['integration', 'create', '-f', path.join(work, 'bad-cron.yaml'), '--agent', agent?.id ?? ''], env);
      expect(bad.code).toBe(1);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(bad.stderr).toMatch(/schedule\.cron "0 0 30 2 \*": /);
    } finally {
      await server.close();
    }
  });

  it('[integrity #10] integration create prints every recipient fingerprint of a key file that holds two keys', async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'two-keys-db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { tenantId, key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
      const [agent] = await server.db.query<{ id: string }>(
        "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, 'cli-two-keys', 'host-k', '1') RETURNING id",
        [tenantId],
      );
      const env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
      for (const scope of ['read file:///in/*.csv', 'write file:///out/**']) {
        expect((await airlock(['grant', 'add', '--agent', agent?.id ?? '', scope], env)).code).toBe(0);
      }
      const a = await generateDemoKey('A', 'a@example.com');
      const b = await generateDemoKey('B', 'b@example.com');
      await writeFile(path.join(work, 'team.asc'), `${a.armoredPublicKey}\n${b.armoredPublicKey}`);
      const file = path.join(work, 'team.yaml');
      await writeFile(file, 'name: team\nsource: { connector: local@1, config: { path: /in/*.csv } }\ndestination: { connector: local@1, config: { directory: /out } }\nrecipients: [{ file: team.asc }]\n');
      const created = await airlock(['integration', 'create', '-f', file, '--agent', agent?.id ?? ''], env);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toContain(`recipient ${a.fingerprint}`);
      expect(created.stdout).toContain(`recipient ${b.fingerprint}`);
    } finally {
      await server.close();
    }
  });

  it('grants, explains, revokes and reports scopes, with one-line refusals', async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'grants-db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { tenantId, key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
      const [agent] = await server.db.query<{ id: string }>(
        "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, 'cli-grants-key', 'host-g', '1') RETURNING id",
        [tenantId],
      );
      const agentId = agent?.id ?? '';
      const env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
      const partner = await generateDemoKey('Partner', 'p@example.com');
      await writeFile(path.join(work, 'partner.asc'), partner.armoredPublicKey);
      const file = path.join(work, 'granted.yaml');
      await writeFile(file, 'name: granted\nsource: { connector: local@1, config: { path: /in/daily/a.csv } }\ndestination: { connector: local@1, config: { directory: /out } }\nrecipients: [{ file: partner.asc }]\n');

      const refused = await airlock(['integration', 'create', '-f', file, '--agent', agentId], env);
      // Refused for a missing grant: exit status 3, refused by policy or permission.
      expect(refused.code).toBe(3);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toMatch(/not allowed: read file:\/\/\/in\/daily\/a\.csv: no read grant for this agent/);

      const bad = await airlock(['grant', 'add', '--agent', agentId, 'read file:///in/../etc'], env);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/unsafe path component/);
      expect((await airlock(['group', 'create', 'readers'], env)).code).toBe(0);
      expect((await airlock(['group', 'add', 'readers', '--agent', agentId], env)).code).toBe(0);
      const wide = JSON.parse((await airlock(['grant', 'add', '--group', 'readers', 'read file:///in/**', '--json'], env)).stdout) as { id: string };
      const write = await airlock(['grant', 'add', '--agent', agentId, 'write file:///out/**', '--expires', new Date(Date.now() + 86_400_000).toISOString()], env);
      expect(write.stdout).toMatch(/^grant [0-9a-f-]{36}: write file:\/\/\/out\/\*\* until /);
      const idle = JSON.parse((await airlock(['grant', 'add', '--agent', agentId, 'execute script:erp-nightly', '--json'], env)).stdout) as { id: string };

      const explained = await airlock(['grant', 'explain', '--agent', agentId, 'read file:///in/daily/a.csv', '--json'], env);
      expect(JSON.parse(explained.stdout)).toMatchObject({ allowed: true, grantId: wide.id });
      const denied = await airlock(['grant', 'explain', '--agent', agentId, 'read file:///inbox/a.csv'], env);
      expect(denied).toMatchObject({ code: 1, stdout: expect.stringMatching(/^denied: read file:\/\/\/inbox\/a\.csv: not covered/) });
      const listed = await airlock(['grant', 'list', '--agent', agentId], env);
      expect(listed.stdout).toContain(`${wide.id}  group readers  read file:///in/**`);

      const created = await airlock(['integration', 'create', '-f', file, '--agent', agentId, '--json'], env);
      expect(created.code).toBe(0);
      const { id } = JSON.parse(created.stdout) as { id: string };
      const { runId } = JSON.parse((await airlock(['run', 'now', id, '--json'], env)).stdout) as { runId: string };
      await server.db.query("UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1", [runId]);
      const report = await airlock(['report', 'least-privilege', '--days', '30', '--json'], env);
      const parsed = JSON.parse(report.stdout) as { agents: { agentId: string; unused: { grantId: string }[]; used: { grantId: string; suggested: string[] }[] }[] };
      const mine = parsed.agents.find((entry) => entry.agentId === agentId);
      expect(mine?.unused.map((g) => g.grantId)).toEqual([idle.id]);
      expect(mine?.used.find((g) => g.grantId === wide.id)?.suggested).toEqual(['read file:///in/daily/a.csv']);
      const human = await airlock(['report', 'least-privilege'], env);
      expect(human.stdout).toContain(`  narrow  ${wide.id}  read file:///in/**  ->  read file:///in/daily/a.csv`);

      expect((await airlock(['grant', 'revoke', idle.id], env)).stdout).toBe(`revoked grant ${idle.id}: execute script:erp-nightly\n`);
      expect((await airlock(['grant', 'add', 'read file:///x'], env)).stderr).toMatch(/exactly one of --agent and --group/);

      expect((await airlock(['group', 'remove', 'readers', '--agent', agentId], env)).stdout).toBe(`agent ${agentId} is no longer in readers\n`);
      const again = await airlock(['group', 'remove-agent', 'readers', '--agent', agentId], env);
      expect(again.code).not.toBe(0);
      expect(again.stderr.trim().split('\n')).toHaveLength(1);
      expect(again.stderr).toMatch(new RegExp(`agent ${agentId} is not in readers`));
    } finally {
      await server.close();
    }
  });

  it('serves HTTPS only when given a certificate', async () => {
    const cert = path.join(work, 'cert.pem');
    const keyFile = path.join(work, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', cert]);
    const server = await startServer(
      loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'tls-db'), AIRLOCK_TLS_CERT: cert, AIRLOCK_TLS_KEY: keyFile, AIRLOCK_LOG_LEVEL: 'silent' }),
    );
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = await readFile(cert);
      const status = await new Promise<number>((resolve, reject) => {
        https.get(`${server.url}/healthz`, { ca }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject);
      });
      expect(status).toBe(200);
      await expect(fetch(`${server.url.replace('https', 'http')}/healthz`)).rejects.toThrow();
    } finally {
      await server.close();
    }
  });

  it('refuses to start with a signing key other users can read, and serves the key it was given', async () => {
    const keyFile = path.join(work, 'signing.key');
    await writeFile(keyFile, `${encodeKey(generateKeyPair().secretKey)}\n`, { mode: 0o644 });
    await chmod(keyFile, 0o644);
    const env = { AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'key-db'), AIRLOCK_SIGNING_KEY_FILE: keyFile, AIRLOCK_LOG_LEVEL: 'silent' };
    await expect(startServer(loadServerConfig(env))).rejects.toThrow(/mode 644 .*chmod 600/);
    await chmod(keyFile, 0o600);
    const server = await startServer(loadServerConfig(env));
    try {
      const signer = await loadSigner(loadServerConfig(env));
      const response = await fetch(`${server.url}/trpc/controlPlane.identity`);
      const body = (await response.json()) as { result: { data: { publicKey: string; keyId: string } } };
      expect(body.result.data).toEqual({ publicKey: encodeKey(signer.publicKey), keyId: signer.keyId, fingerprint: keyFingerprint(signer.publicKey) });
    } finally {
      await server.close();
    }
  });

  it('signs checkpoints, verifies the chain, exports it, and verifies the export offline', async () => {
    const dataDir = path.join(work, 'audit-db');
    const env = { AIRLOCK_DATA_DIR: dataDir };
    const boot = await airlock(['bootstrap', '--tenant', 'acme', '--json'], env);
    expect(boot.code).toBe(0);
    const { key } = JSON.parse(boot.stdout) as { key: string };
    const checkpoint = await airlock(['audit', 'checkpoint', '--json'], env);
    expect(JSON.parse(checkpoint.stdout)).toMatchObject({ created: true, checkpoint: { version: 2, number: 1, size: 1 } });
    expect((await stat(path.join(dataDir, 'signing.key'))).mode & 0o777).toBe(0o600);
    const verified = await airlock(['audit', 'verify', '--json'], env);
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, count: 1, chains: 1, checkpoints: 1 });

    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: dataDir, AIRLOCK_LOG_LEVEL: 'silent' }));
    const signer = await loadSigner(loadServerConfig(env));
    const client = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
    const exported = path.join(work, 'audit.jsonl');
    try {
      await recordAudit(server.db, { tenantId: null, actor: { type: 'system', id: 'test' }, action: 'test-event', target: 'x,"y"', outcome: 'denied', sourceIp: null, meta: { n: 1 } });
      const identity = (await (await fetch(`${server.url}/trpc/controlPlane.identity`)).json()) as { result: { data: { publicKey: string } } };
      const publicKey = identity.result.data.publicKey;
      expect(publicKey).toBe(encodeKey(signer.publicKey));

      const file = await airlock(['audit', 'export', '--format', 'jsonl', '--out', exported], client);
      expect(file.code).toBe(0);
      expect((await stat(exported)).mode & 0o777).toBe(0o600);
      const lines = (await readFile(exported, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      // The system chain's event is not this tenant's to export; its checkpoint carries only this tenant's leaf.
      expect(lines.map((line) => line['seq'] ?? 'checkpoint')).toEqual([1, 'checkpoint']);
      expect(lines[1]).toMatchObject({ proof: { leaf: { seq: 1 } } });
      expect(lines[0]).toHaveProperty('hash');
      const offline = await airlock(['audit', 'verify', '--json', '--from-file', exported, '--public-key', publicKey], {});
      expect(offline.code).toBe(0);
      expect(JSON.parse(offline.stdout)).toMatchObject({ ok: true, count: 1, checkpoints: 1 });

      const lines2 = await readFile(exported, 'utf8');
      const tampered = path.join(work, 'tampered.jsonl');
      await writeFile(tampered, lines2.replace('"outcome":"success"', '"outcome":"denied"'));
      const bad = await airlock(['audit', 'verify', '--json', '--from-file', tampered, '--public-key', publicKey], {});
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, seq: 1, reason: expect.stringMatching(/edited/) });
      const wrongKey = await airlock(['audit', 'verify', '--from-file', exported, '--public-key', encodeKey(generateKeyPair().publicKey)], {});
      expect(wrongKey.code).toBe(1);
      expect(wrongKey.stdout).toMatch(/NOT OK .*signature/);

      const csv = await airlock(['audit', 'export', '--format', 'csv', '--actor', 'system:bootstrap', '--since', '2000-01-01T00:00:00Z'], client);
      expect(csv.code).toBe(0);
      const rows = csv.stdout.trim().split('\r\n');
      expect(rows[0]).toBe('seq,at,tenant_id,actor_type,actor_id,action,target,outcome,source_ip,meta,prev_hash,hash');
      expect(rows).toHaveLength(2);
      expect(rows[1]).toMatch(/^1,.*,system,bootstrap,api-key-create,/);
      expect(csv.stdout).not.toContain(key);
    } finally {
      await server.close();
    }
    // The server-side verify sees the whole trail: the tenant's chain and the system chain.
    const whole = await airlock(['audit', 'verify', '--json'], env);
    const wholeResult = JSON.parse(whole.stdout) as { checkpoints: number };
    expect(wholeResult).toMatchObject({ ok: true, count: 2, chains: 2 });
    // Ours, and any the server signed on its own schedule while it ran.
    expect(wholeResult.checkpoints).toBeGreaterThanOrEqual(1);
  });
});
