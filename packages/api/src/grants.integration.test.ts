import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { verifyChain } from '@airlock/audit';
import { type AgentKeyPair, encodeKey, generateKeyPair, openStatement, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { createTestDatabase } from '@airlock/testing';
import { createApiKey } from '@airlock/auth';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, listAuditEvents, migrate, signerFromSecretKey } from './index.ts';
import { data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
/** A well-formed SFTP login; these tests never connect. */
const login = { hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp' };

interface Verdict {
  scope: string;
  allowed: boolean;
  grantId: string | null;
  reason: string;
}

describe('control-plane scopes on PostgreSQL', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let admin: Record<string, string>;
  let recipient: string;
  let clock: () => Date = () => new Date();

  const mutate = (path: string, input: unknown) => send(base, path, input, admin, 'POST');
  const query = (path: string, input: unknown) => send(base, path, input, admin, 'GET');

  async function enroll(hostname: string): Promise<{ id: string; keys: AgentKeyPair }> {
    const { token } = data<{ token: string }>(await mutate('enrollment.createToken', { ttlMinutes: 5 }));
    const keys = generateKeyPair();
    const enrolled = data<{ agentId: string }>(
      await send(base, 'enrollment.enroll', { token, publicKey: encodeKey(keys.publicKey), hostname, version: '0.1.0' }, {}, 'POST'),
    );
    return { id: enrolled.agentId, keys };
  }

  async function nextJob(agent: { id: string; keys: AgentKeyPair }) {
    const input = { waitMs: 0 };
    const headers = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: '/trpc/agent.nextJob', body: JSON.stringify(input) });
    const { envelope } = data<{ envelope: unknown }>(await send(base, 'agent.nextJob', input, headers, 'POST'));
    if (envelope === null) return null;
    // Only what the control plane's key signed counts as a job.
    const payload = openStatement('job', envelope, signer.publicKey);
    if (typeof payload !== 'object' || payload === null) throw new Error('the envelope is not signed by the control plane');
    return payload;
  }

  function spec(agentId: string, name: string, path = '/exports/daily/*.csv', extra: Record<string, unknown> = {}) {
    return {
      name,
      agentId,
      source: { connector: 'sftp@1', config: { host: 'files.example.com', port: 2222, ...login, path } },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [recipient],
      ...extra,
    };
  }

  async function grant(input: { agentId?: string; group?: string; scope: string; expiresAt?: string }) {
    return data<{ id: string; scope: string }>(await mutate('grants.add', input));
  }

  async function audit(action: string) {
    return (await listAuditEvents(db, { tenantId: null, action, limit: 1000 })).map((event) => ({ ...event, meta: event.meta as Record<string, unknown> }));
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    admin = { authorization: `Bearer ${boot.key}` };
    const handler = createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => clock(), logger: silent, signer }, { maxBodyBytes: 256 * 1024 });
    ({ server: server, base: base } = await listenOnLoopback(handler));
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  it('denies by default: an agent with no grants gets no integration saved, and the refusal is audited', async () => {
    const agent = await enroll('bare');
    const refused = await mutate('integrations.save', spec(agent.id, 'bare'));
    expect(refused.status).toBe(403);
    expect(refused.body.error?.message).toMatch(/read sftp:\/\/files\.example\.com:2222\/exports\/daily\/\*\.csv: no read grant for this agent/);
    expect(await db.query("SELECT 1 FROM integrations WHERE name = 'bare'")).toHaveLength(0);
    const denied = (await audit('scope-denied')).filter((event) => event.target === 'bare');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ outcome: 'denied', meta: { agentId: agent.id, reason: expect.stringMatching(/no read grant/) } });
  });

  it('allows the save once every required scope is granted, and not before', async () => {
    const agent = await enroll('granted');
    await grant({ agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/**' });
    const halfway = await mutate('integrations.save', spec(agent.id, 'granted'));
    expect(halfway.status).toBe(403);
    expect(halfway.body.error?.message).toMatch(/write file:\/\/\/srv\/out\/\*\*: no write grant/);
    await grant({ agentId: agent.id, scope: 'write file:///srv/out/**' });
    expect((await mutate('integrations.save', spec(agent.id, 'granted'))).status).toBe(200);
  });

  it('refuses sibling prefixes, another port, `..` and an unknown connector', async () => {
    const agent = await enroll('narrow');
    await grant({ agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/**' });
    await grant({ agentId: agent.id, scope: 'write file:///srv/out/**' });
    const sibling = await mutate('integrations.save', spec(agent.id, 'sibling', '/exports-private/*.csv'));
    expect(sibling.status).toBe(403);
    const otherPort = await mutate('integrations.save', { ...spec(agent.id, 'port'), source: { connector: 'sftp@1', config: { host: 'files.example.com', ...login, path: '/exports/a.csv' } } });
    expect(otherPort.status).toBe(403);
    // `..` is bad input to the connector's own schema: refused, naming the field, and still audited as a denial.
    const climbing = await mutate('integrations.save', spec(agent.id, 'climb', '/exports/../etc/passwd'));
    expect(climbing.status).toBe(400);
    expect(climbing.body.error?.message).toMatch(/source\.config\.path: /);
    const sneaky = await mutate('integrations.save', { ...spec(agent.id, 'sneaky'), destination: { connector: 'local@1', config: { directory: '/srv/out/../../etc' } } });
    expect(sneaky.status).toBe(400);
    expect(sneaky.body.error?.message).toMatch(/destination\.config\.directory: /);
    const unknown = await mutate('integrations.save', { ...spec(agent.id, 'ftp'), source: { connector: 'ftp@1', config: { path: '/exports/a' } } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error?.message).toBe('no scope mapping for connector ftp@1');
    const targets = (await audit('scope-denied')).map((event) => event.target);
    expect(targets).toEqual(expect.arrayContaining(['sibling', 'port', 'climb', 'sneaky', 'ftp']));
    expect(await db.query("SELECT 1 FROM integrations WHERE name IN ('sibling', 'port', 'climb', 'sneaky', 'ftp')")).toHaveLength(0);

    const explainSibling = data<Verdict>(await query('grants.explain', { agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports-private/a.csv' }));
    expect(explainSibling).toMatchObject({ allowed: false, grantId: null, reason: expect.stringMatching(/not covered by any of 1 read grant/) });
    const badScope = await query('grants.explain', { agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/../etc' });
    expect(badScope.status).toBe(400);
    expect(badScope.body.error?.message).toMatch(/unsafe path component "\.\."/);
    const badGrant = await mutate('grants.add', { agentId: agent.id, scope: 'read sftp://files.example.com/%2e%2e/etc/**' });
    expect(badGrant.status).toBe(400);
  });

  it('applies group grants to members only, and explains which grant decided', async () => {
    const member = await enroll('member');
    const outsider = await enroll('outsider');
    data(await mutate('groups.create', { name: 'exporters' }));
    expect((await mutate('groups.create', { name: 'exporters' })).status).toBe(409);
    data(await mutate('groups.addAgent', { group: 'exporters', agentId: member.id }));
    const read = await grant({ group: 'exporters', scope: 'read sftp://files.example.com:2222/exports/**' });
    await grant({ group: 'exporters', scope: 'write file:///srv/out/**' });
    expect((await mutate('integrations.save', spec(member.id, 'by-group'))).status).toBe(200);
    expect((await mutate('integrations.save', spec(outsider.id, 'outside'))).status).toBe(403);
    const verdict = data<Verdict>(await query('grants.explain', { agentId: member.id, scope: 'read sftp://files.example.com:2222/exports/x.csv' }));
    expect(verdict).toMatchObject({ allowed: true, grantId: read.id });
    const listed = data<{ id: string }[]>(await query('grants.list', { agentId: member.id }));
    expect(listed.map((row) => row.id)).toContain(read.id);
    expect(data<{ id: string }[]>(await query('grants.list', { agentId: outsider.id }))).toEqual([]);
  });

  it('takes an agent out of a group: the group grants stop applying, the removal is audited, and unknown names are NotFound', async () => {
    const member = await enroll('leaving');
    const stranger = await enroll('never-joined');
    data(await mutate('groups.create', { name: 'leavers' }));
    data(await mutate('groups.addAgent', { group: 'leavers', agentId: member.id }));
    const read = await grant({ group: 'leavers', scope: 'read sftp://files.example.com:2222/leavers/**' });
    const scope = 'read sftp://files.example.com:2222/leavers/x.csv';
    expect(data<Verdict>(await query('grants.explain', { agentId: member.id, scope }))).toMatchObject({ allowed: true, grantId: read.id });

    const removed = data<{ groupId: string; agentId: string }>(await mutate('groups.removeAgent', { group: 'leavers', agentId: member.id }));
    expect(removed.agentId).toBe(member.id);
    expect(data<Verdict>(await query('grants.explain', { agentId: member.id, scope }))).toMatchObject({ allowed: false, grantId: null });
    const groups = data<Array<{ name: string; members: unknown[] }>>(await query('groups.list', undefined));
    expect(groups.find((group) => group.name === 'leavers')?.members).toEqual([]);
    const [event] = (await audit('group-remove-agent')).filter((entry) => entry.target === removed.groupId);
    expect(event).toMatchObject({ outcome: 'success', meta: { group: 'leavers', agentId: member.id, groupScopes: [read.scope] } });

    // A second removal, a stranger, an unknown group or agent: each is NotFound and changes nothing.
    const again = await mutate('groups.removeAgent', { group: 'leavers', agentId: member.id });
    expect(again.status).toBe(404);
    expect(again.body.error?.message).toBe(`agent ${member.id} is not in leavers`);
    expect((await mutate('groups.removeAgent', { group: 'leavers', agentId: stranger.id })).status).toBe(404);
    const noGroup = await mutate('groups.removeAgent', { group: 'no-such-group', agentId: member.id });
    expect(noGroup.status).toBe(404);
    expect(noGroup.body.error?.message).toBe('no agent group named no-such-group');
    const noAgent = await mutate('groups.removeAgent', { group: 'leavers', agentId: '00000000-0000-4000-8000-000000000000' });
    expect(noAgent.status).toBe(404);
    expect(noAgent.body.error?.message).toBe('no agent with that id');
    expect((await audit('group-remove-agent')).filter((entry) => entry.target === removed.groupId)).toHaveLength(1);

    // It can join again afterwards.
    data(await mutate('groups.addAgent', { group: 'leavers', agentId: member.id }));
    expect(data<Verdict>(await query('grants.explain', { agentId: member.id, scope }))).toMatchObject({ allowed: true, grantId: read.id });
  });

  it('denies with an expired grant and says so', async () => {
    const agent = await enroll('expiring');
    const soon = new Date(Date.now() + 60_000).toISOString();
    await grant({ agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/**', expiresAt: soon });
    await grant({ agentId: agent.id, scope: 'write file:///srv/out/**' });
    expect((await mutate('grants.add', { agentId: agent.id, scope: 'list file:///x', expiresAt: '2001-01-01T00:00:00Z' })).status).toBe(400);
    clock = () => new Date(Date.now() + 120_000);
    try {
      const refused = await mutate('integrations.save', spec(agent.id, 'expired'));
      expect(refused.status).toBe(403);
      expect(refused.body.error?.message).toMatch(/the only grants covering it have expired/);
    } finally {
      clock = () => new Date();
    }
  });

  it('fails a queued run whose grant was revoked before dispatch, audits it, and never hands it out', async () => {
    const agent = await enroll('revoked');
    const read = await grant({ agentId: agent.id, scope: 'read sftp://files.example.com:2222/exports/**' });
    await grant({ agentId: agent.id, scope: 'write file:///srv/out/**' });
    const saved = data<{ id: string }>(await mutate('integrations.save', spec(agent.id, 'revoked')));
    const first = data<{ runId: string }>(await mutate('integrations.runNow', { id: saved.id }));
    expect(await nextJob(agent)).toMatchObject({ runId: first.runId });
    await db.query("UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1", [first.runId]);

    const second = data<{ runId: string }>(await mutate('integrations.runNow', { id: saved.id }));
    data(await mutate('grants.revoke', { id: read.id }));
    expect(await nextJob(agent)).toBeNull();
    const [run] = await db.query<{ status: string; error_class: string; claimed_at: Date | null }>('SELECT status, error_class, claimed_at FROM runs WHERE id = $1', [second.runId]);
    expect(run).toEqual({ status: 'failed', error_class: 'not-allowed', claimed_at: null });
    const denied = (await audit('scope-denied')).filter((event) => event.target === second.runId);
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ outcome: 'denied', actor: { type: 'agent', id: agent.id }, meta: { reason: expect.stringMatching(/no read grant/) } });
    expect((await audit('run-dispatch')).filter((event) => event.target === second.runId)).toEqual([]);
  });

  it('records each grant change with the subject scopes before and after', async () => {
    const agent = await enroll('audited');
    const a = await grant({ agentId: agent.id, scope: 'read file:///srv/in/*.csv' });
    const b = await grant({ agentId: agent.id, scope: ' write file:///srv/out/%7Ex/** ' });
    expect(b.scope).toBe('write file:///srv/out/~x/**');
    expect((await mutate('grants.add', { agentId: agent.id, scope: 'read file:///srv/in/*.csv' })).status).toBe(409);
    data(await mutate('grants.revoke', { id: a.id }));
    const adds = (await audit('grant-add')).filter((event) => event.target === a.id || event.target === b.id);
    expect(adds.map((event) => [event.meta['before'], event.meta['after']])).toEqual([
      [[], ['read file:///srv/in/*.csv']],
      [['read file:///srv/in/*.csv'], ['read file:///srv/in/*.csv', 'write file:///srv/out/~x/**']],
    ]);
    const [revoke] = (await audit('grant-revoke')).filter((event) => event.target === a.id);
    expect(revoke?.meta).toMatchObject({
      subject: `agent:${agent.id}`,
      scope: 'read file:///srv/in/*.csv',
      before: ['read file:///srv/in/*.csv', 'write file:///srv/out/~x/**'],
      after: ['write file:///srv/out/~x/**'],
    });
    expect((await mutate('grants.revoke', { id: a.id })).status).toBe(404);
  });

  it('reports unused grants and the narrow grant that would have covered what ran', async () => {
    const agent = await enroll('reported');
    const wide = await grant({ agentId: agent.id, scope: 'read sftp://files.example.com:2222/**' });
    const idle = await grant({ agentId: agent.id, scope: 'execute script:erp-nightly' });
    const write = await grant({ agentId: agent.id, scope: 'write file:///srv/out/**' });
    const saved = data<{ id: string }>(await mutate('integrations.save', spec(agent.id, 'reported', '/exports/*.csv')));
    const { runId } = data<{ runId: string }>(await mutate('integrations.runNow', { id: saved.id }));
    expect(await nextJob(agent)).toMatchObject({ runId });
    await db.query("UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1", [runId]);

    const report = data<{ agents: { agentId: string; runs: number; unused: { grantId: string }[]; used: { grantId: string; suggested: string[] }[] }[] }>(
      await query('reports.leastPrivilege', { days: 30 }),
    );
    const mine = report.agents.find((entry) => entry.agentId === agent.id);
    expect(mine?.runs).toBe(1);
    expect(mine?.unused.map((entry) => entry.grantId)).toEqual([idle.id]);
    expect(mine?.used).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ grantId: wide.id, suggested: ['read sftp://files.example.com:2222/exports/*.csv'] }),
        expect.objectContaining({ grantId: write.id, suggested: ['write file:///srv/out/**'] }),
      ]),
    );
    // Runs older than the window do not count as use.
    await db.query("UPDATE runs SET created_at = now() - interval '40 days' WHERE id = $1", [runId]);
    const older = data<{ agents: { agentId: string; unused: { grantId: string }[] }[] }>(await query('reports.leastPrivilege', { days: 30 }));
    expect(older.agents.find((entry) => entry.agentId === agent.id)?.unused.map((entry) => entry.grantId).sort()).toEqual([wide.id, idle.id, write.id].sort());
    expect((await query('reports.leastPrivilege', { days: 366 })).status).toBe(400);
  });

  it('lets auditors read scopes but not change them, and keeps the chain intact', async () => {
    const [tenant] = await db.query<{ id: string }>("SELECT id FROM tenants WHERE name = 'acme'");
    const auditor = await db.transaction((tx) => createApiKey(tx, { tenantId: tenant?.id ?? '', name: 'aud', role: 'auditor', expiresInDays: 1 }, new Date()));
    const headers = { authorization: `Bearer ${auditor.key}` };
    expect((await send(base, 'grants.list', {}, headers, 'GET')).status).toBe(200);
    const agent = await enroll('auditor-target');
    expect((await send(base, 'grants.add', { agentId: agent.id, scope: 'read file:///x' }, headers, 'POST')).status).toBe(403);
    const records = await listAuditEvents(db, { tenantId: null, limit: 10_000 });
    expect(verifyChain(records)).toMatchObject({ ok: true });
  });
});
