import { type Server } from 'node:http';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { refOf } from '@airlock/connector-api/definition';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { createTestDatabase } from '@airlock/testing';
import { createApiKey } from '@airlock/auth';
import { destinationDefinitions, sourceDefinitions } from '@airlock/dispatch';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, signerFromSecretKey } from './index.ts';
import { data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

const userIDs = [{ name: 'Partner', email: 'partner@example.com' }];

describe('console procedures on PostgreSQL', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let owner: Record<string, string>;
  let auditor: Record<string, string>;
  let agent: { id: string; keys: AgentKeyPair };
  let recipient: string;

  const query = (path: string, input?: unknown, who = owner) => send(base, path, input, who, 'GET');
  const mutate = (path: string, input: unknown, who = owner) => send(base, path, input, who, 'POST');
  const signed = (path: string, input: unknown) =>
    send(base, path, input, signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: `/trpc/${path}`, body: JSON.stringify(input) }), 'POST');

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    owner = { authorization: `Bearer ${boot.key}` };
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer, publicUrl: 'https://airlock.example.com' },
      { maxBodyBytes: 256 * 1024 },
    );
    ({ server: server, base: base } = await listenOnLoopback(handler));
    const [tenant] = await db.query<{ id: string }>("SELECT id FROM tenants WHERE name = 'acme'");
    const key = await createApiKey(db, { tenantId: tenant?.id ?? '', name: 'audit', role: 'auditor', expiresInDays: 1 }, new Date());
    auditor = { authorization: `Bearer ${key.key}` };
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
    // Every test may use this agent, whichever of them run.
    const { token } = data<{ token: string }>(await mutate('enrollment.createToken', { ttlMinutes: 5 }));
    const keys = generateKeyPair();
    const enrolled = data<{ agentId: string }>(
      await send(base, 'enrollment.enroll', { token, publicKey: encodeKey(keys.publicKey), hostname: 'edge-1', version: '0.1.0' }, {}, 'POST'),
    );
    agent = { id: enrolled.agentId, keys };
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  it('creates an enroll token with the one command to run, naming the public URL and the installed data directory', async () => {
    const created = data<{ token: string; controlPlaneKey: string; command: { argv: string[]; text: string } }>(await mutate('enrollment.createToken', { ttlMinutes: 5 }));
    const pin = ['--control-plane-key', created.controlPlaneKey, '--dir', '/var/lib/airlock'];
    expect(created.controlPlaneKey).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/);
    expect(created.command.argv).toEqual(['airlock-agent', 'enroll', '--url', 'https://airlock.example.com', '--token', created.token, ...pin]);
    expect(created.command.text).toBe(`airlock-agent enroll --url https://airlock.example.com --token ${created.token} ${pin.join(' ')}`);
  });

  it('serves each connector config as JSON Schema and checks configs with the zod schema', async () => {
    const connectors = data<Array<{ kind: string; ref: string; configSchema: { properties?: Record<string, unknown>; required?: string[] } }>>(await query('console.connectors'));
    const sftp = connectors.find((c) => c.kind === 'source' && c.ref === 'sftp@1');
    expect(sftp?.configSchema.required).toEqual(expect.arrayContaining(['host', 'hostKey', 'username', 'credentialRef', 'path']));
    expect(Object.keys(sftp?.configSchema.properties ?? {})).toContain('port');
    // The catalog is exactly the registered definitions, so a new connector appears with no change here.
    const registered = [...sourceDefinitions.map((d) => `source:${refOf(d)}`), ...destinationDefinitions.map((d) => `destination:${refOf(d)}`)];
    expect(connectors.map((c) => `${c.kind}:${c.ref}`).sort()).toEqual(registered.sort());
    expect(registered).toEqual(expect.arrayContaining(['destination:local@1', 'destination:sftp@1', 'source:local@1', 'source:script@1', 'source:sftp@1']));

    const checked = data<{ issues: Array<{ path: string; message: string }> }>(
      await query('console.checkConfig', { kind: 'destination', connector: 'local@1', config: { directory: 'relative/dir', extra: 1 } }),
    );
    expect(checked.issues.map((issue) => issue.path).sort()).toEqual(['', 'directory']);
    const fine = data<{ issues: unknown[] }>(await query('console.checkConfig', { kind: 'destination', connector: 'local@1', config: { directory: '/srv/out' } }));
    expect(fine.issues).toEqual([]);
    const unknown = data<{ issues: Array<{ message: string }> }>(await query('console.checkConfig', { kind: 'source', connector: 'ftp@1', config: {} }));
    expect(unknown.issues[0]?.message).toMatch(/no source connector ftp@1/);
  });

  it('inspects recipient keys with the agent policy: facts for a good key, a refusal for weak or expired ones', async () => {
    const good = data<{ ok: boolean; keys: Array<{ fingerprint: string; algorithm: string; expires: string | null }> }>(await mutate('console.inspectRecipient', { armored: recipient }));
    expect(good).toMatchObject({ ok: true, keys: [{ fingerprint: expect.stringMatching(/^[0-9A-F]{40}$/), expires: null, warnings: [] }] });

    const weak = await openpgp.generateKey({ type: 'rsa', rsaBits: 1024, userIDs, config: { v6Keys: false, minRSABits: 1024 } });
    const refusedWeak = data<{ ok: boolean; problem: string }>(await mutate('console.inspectRecipient', { armored: weak.publicKey }));
    expect(refusedWeak).toEqual({ ok: false, problem: expect.stringMatching(/weaker than 2048 bits/) });

    const expiring = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, keyExpirationTime: 1, date: new Date(Date.now() - 60_000), config: { v6Keys: false } });
    const refusedExpired = data<{ ok: boolean; problem: string }>(await mutate('console.inspectRecipient', { armored: expiring.publicKey }));
    expect(refusedExpired).toEqual({ ok: false, problem: expect.stringMatching(/expired/) });
  });

  it('[integrity #10] inspecting a key file lists every key in it, each with its own armored key', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const inspected = data<{ ok: boolean; keys: Array<{ fingerprint: string; armored: string }> }>(
      await mutate('console.inspectRecipient', { armored: `${a.armoredPublicKey}\n${b.armoredPublicKey}` }),
    );
    expect(inspected.ok).toBe(true);
    expect(inspected.keys.map((key) => key.fingerprint)).toEqual([a.fingerprint, b.fingerprint]);
    // Each entry stands alone: inspected again, it is exactly that one key.
    for (const [index, key] of inspected.keys.entries()) {
      const again = data<{ keys: Array<{ fingerprint: string }> }>(await mutate('console.inspectRecipient', { armored: key.armored }));
      expect(again.keys.map((k) => k.fingerprint)).toEqual([[a, b][index]?.fingerprint]);
    }
  });

  it('[integrity #13] inspecting a key that prefers only old ciphers says which cipher it will get', async () => {
    const old = await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs, format: 'object', config: { v6Keys: false } });
    const userID = old.privateKey.users[0]?.userID;
    const selfSignature = old.privateKey.users[0]?.selfCertifications[0];
    const primary = old.privateKey.keyPacket;
    if (!userID || !selfSignature || !(primary instanceof openpgp.SecretKeyPacket)) throw new Error('unexpected key shape');
    // Re-sign the user ID with a 3DES/CAST5-only preference list, as `gpg --edit-key ... setpref 3DES CAST5` does.
    selfSignature.preferredSymmetricAlgorithms = [openpgp.enums.symmetric.tripledes, openpgp.enums.symmetric.cast5];
    // openpgp adds a fresh salt notation to every signature it makes and refuses to sign over an old one.
    selfSignature.rawNotations = selfSignature.rawNotations.filter((notation) => !notation.name.startsWith('salt@'));
    // openpgp's typings leave out the config argument its runtime needs here.
    await Reflect.apply(selfSignature.sign, selfSignature, [primary, { userID, key: primary }, selfSignature.created ?? undefined, false, openpgp.config]);
    const inspected = data<{ ok: boolean; keys: Array<{ warnings: string[] }> }>(await mutate('console.inspectRecipient', { armored: old.privateKey.toPublic().armor() }));
    expect(inspected.ok).toBe(true);
    expect(inspected.keys[0]?.warnings).toEqual([expect.stringMatching(/prefers only 3DES, CAST5.*AES-128/)]);
  });

  it('[integrity #10] saving an integration with a two-key file pins both fingerprints and refuses more keys than a receipt names', async () => {
    await mutate('grants.add', { agentId: agent.id, scope: 'read file:///srv/in/**' });
    await mutate('grants.add', { agentId: agent.id, scope: 'write file:///srv/out/**' });
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const spec = {
      name: 'two-keys',
      agentId: agent.id,
      source: { connector: 'local@1', config: { path: '/srv/in/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [`${a.armoredPublicKey}\n${b.armoredPublicKey}`],
    };
    const saved = data<{ recipientFingerprints: string[] }>(await mutate('integrations.save', spec));
    expect(saved.recipientFingerprints).toEqual([a.fingerprint, b.fingerprint]);
    const same = await mutate('integrations.save', { ...spec, recipients: [...spec.recipients, b.armoredPublicKey] });
    expect(same.status).toBe(400);
    expect(JSON.stringify(same.body)).toMatch(/listed twice/);
    // Seventeen keys in one file: more than a receipt can name, refused before anything is saved.
    const many = await Promise.all(Array.from({ length: 17 }, (_, i) => generateDemoKey(`K${i}`, `k${i}@example.com`)));
    const tooMany = await mutate('integrations.save', { ...spec, recipients: [many.map((key) => key.armoredPublicKey).join('\n')] });
    expect(tooMany.status).toBe(400);
    expect(JSON.stringify(tooMany.body)).toMatch(/17 recipient keys; at most 16/);
  });

  it('tells each caller its own permissions, and refuses an auditor any write', async () => {
    const mine = data<{ role: string; permissions: string[] }>(await query('console.permissions', undefined, auditor));
    expect(mine.role).toBe('auditor');
    expect(mine.permissions).toContain('audit:read');
    expect(mine.permissions).not.toContain('integrations:write');
    expect((await mutate('enrollment.createToken', { ttlMinutes: 5 }, auditor)).status).toBe(403);
    expect((await mutate('agents.revoke', { id: agent.id }, auditor)).status).toBe(403);
  });

  it('shows live progress of a running run and the overview of the day', async () => {
    await mutate('grants.add', { agentId: agent.id, scope: 'read file:///srv/in/**' });
    await mutate('grants.add', { agentId: agent.id, scope: 'write file:///srv/out/**' });
    const spec = { name: 'progress', agentId: agent.id, source: { connector: 'local@1', config: { path: '/srv/in/*.csv' } }, destination: { connector: 'local@1', config: { directory: '/srv/out' } }, recipients: [recipient] };
    const saved = data<{ id: string }>(await mutate('integrations.save', spec));
    const { runId } = data<{ runId: string }>(await mutate('integrations.runNow', { id: saved.id }));
    // Not running yet: refused, nothing recorded.
    expect((await signed('agent.progress', { runId, bytesIn: 10, bytesOut: 0, filesDone: 0 })).status).toBe(404);
    data(await signed('agent.nextJob', { waitMs: 0 }));
    expect(data<{ accepted: boolean }>(await signed('agent.progress', { runId, bytesIn: 4096, bytesOut: 1024, filesDone: 1, filesTotal: 3 })).accepted).toBe(true);
    const run = data<{ status: string; progress: { bytesIn: number; filesTotal: number; at: string } | null }>(await query('runs.get', { id: runId }));
    expect(run.status).toBe('running');
    expect(run.progress).toMatchObject({ bytesIn: 4096, bytesOut: 1024, filesDone: 1, filesTotal: 3, at: expect.any(String) });
    // Counters only: a report carrying anything else is refused by the schema.
    expect((await signed('agent.progress', { runId, bytesIn: 1, bytesOut: 1, filesDone: 1, path: '/srv/in/secret.csv' })).status).toBe(400);

    const finishedAt = new Date().toISOString();
    data(await signed('agent.reportRun', { runId, status: 'succeeded', startedAt: finishedAt, finishedAt, bytesIn: 5000, bytesOut: 6000, files: [], recipientFingerprints: [] }));
    const overview = data<{ agents: { online: number; offline: number }; runs: Record<string, number>; bytesByHour: Array<{ bytes: number }> }>(await query('console.overview'));
    expect(overview.runs['succeeded']).toBe(1);
    expect(overview.bytesByHour).toHaveLength(24);
    expect(overview.bytesByHour.reduce((sum, point) => sum + point.bytes, 0)).toBe(6000);
    expect(overview.agents.online + overview.agents.offline).toBe(1);
    const agents = data<Array<{ id: string; groups: string[]; online: boolean }>>(await query('console.agents'));
    expect(agents).toEqual([expect.objectContaining({ id: agent.id, groups: [] })]);
  });

  it('[integrity #14] stores the names a run skipped with its report, shows them with the run and counts them in the audit', async () => {
    const spec = { name: 'names', agentId: agent.id, source: { connector: 'local@1', config: { path: '/srv/in/*.csv' } }, destination: { connector: 'local@1', config: { directory: '/srv/out' } }, recipients: [recipient] };
    const saved = data<{ id: string }>(await mutate('integrations.save', spec));
    const { runId } = data<{ runId: string }>(await mutate('integrations.runNow', { id: saved.id }));
    data(await signed('agent.nextJob', { waitMs: 0 }));
    const at = new Date().toISOString();
    const skippedNames = { count: 120, entries: [{ directory: '/srv/in', name: 'M%FCller.csv', reason: 'name-not-utf8' }] };
    const report = { runId, status: 'succeeded', startedAt: at, finishedAt: at, bytesIn: 5, bytesOut: 9, files: [], recipientFingerprints: [] };
    // Only the known fields of an entry: anything else is refused and the run stays open.
    const extra = { ...skippedNames, entries: [{ ...skippedNames.entries[0], size: 5 }] };
    expect((await signed('agent.reportRun', { ...report, skippedNames: extra })).status).toBe(400);
    data(await signed('agent.reportRun', { ...report, skippedNames }));

    const run = data<{ status: string; report: { skippedNames?: unknown } | null }>(await query('runs.get', { id: runId }));
    expect(run.status).toBe('succeeded');
    expect(run.report?.skippedNames).toEqual(skippedNames);
    const events = data<Array<{ action: string; target: string; meta: Record<string, unknown> }>>(await query('audit.list', { action: 'run-complete', target: runId }, auditor));
    expect(events.map((event) => event.meta['skippedNames'])).toEqual([120]);
  });

  it('verifies the audit chain for an auditor', async () => {
    const verified = data<Record<string, unknown>>(await query('console.verifyAudit', undefined, auditor));
    expect(verified).toEqual({ ok: true, checkpoints: 0, checkedAt: expect.any(String) });
  });
});
