import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, openStatement, signRequest } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { AGENT_LOST_AFTER_MS, jobEnvelopePayload } from '@airlock/protocol';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, signerFromSecretKey } from './index.ts';
import { Scheduler } from '@airlock/dispatch';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

interface Reply {
  status: number;
  body: { result?: { data: Record<string, unknown> }; error?: { message: string } };
}

describe('integrations that target an agent group', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let tenantId: string;
  let admin: string;
  let recipient: string;

  async function post(path: string, input: unknown, headers: Record<string, string>): Promise<Reply> {
    const response = await fetch(`${base}/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(input) });
    return { status: response.status, body: (await response.json()) as Reply['body'] };
  }
  const asAdmin = (path: string, input: unknown) => post(path, input, { authorization: `Bearer ${admin}` });
  function asAgent(path: string, input: unknown, agent: { id: string; keys: AgentKeyPair }) {
    const headers = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery: `/trpc/${path}`, body: JSON.stringify(input) });
    return post(path, input, headers);
  }
  const nextJob = (agent: { id: string; keys: AgentKeyPair }, idle = false) => asAgent('agent.nextJob', { waitMs: 0, idle }, agent);
  // The job arrives as an envelope signed by the control plane; a test that can't open it sees no job.
  const jobOf = (reply: Reply) => {
    const opened = openStatement('job', reply.body.result?.data['envelope'], signer.publicKey);
    return typeof opened === 'object' && opened !== null && 'runId' in opened && typeof opened.runId === 'string' ? { runId: opened.runId } : null;
  };

  async function addAgent(name: string): Promise<{ id: string; keys: AgentKeyPair }> {
    const keys = generateKeyPair();
    const [row] = await db.query<{ id: string }>('INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, $3, $4) RETURNING id', [
      tenantId,
      encodeKey(keys.publicKey),
      name,
      '0',
    ]);
    return { id: row?.id ?? '', keys };
  }

  /** A group of the given agents, granted what `spec` needs, and a saved integration targeting it. */
  async function groupIntegration(group: string, members: { id: string }[]): Promise<string> {
    expect((await asAdmin('groups.create', { name: group })).status).toBe(200);
    for (const member of members) expect((await asAdmin('groups.addAgent', { group, agentId: member.id })).status).toBe(200);
    const saveSpec = {
      name: `${group}-exports`,
      group,
      source: { connector: 'sftp@1', config: { host: 'files.example.com', port: 2222, hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp', path: '/exports/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [recipient],
    };
    expect((await asAdmin('integrations.save', saveSpec)).status).toBe(403);
    await asAdmin('grants.add', { group, scope: 'read sftp://files.example.com:2222/exports/**' });
    await asAdmin('grants.add', { group, scope: 'write file:///srv/out/**' });
    const saved = await asAdmin('integrations.save', saveSpec);
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    return String(saved.body.result?.data['id']);
  }

  const runRow = async (runId: string) =>
    (await db.query<{ status: string; agent_id: string | null; group_id: string | null }>('SELECT status, agent_id, group_id FROM runs WHERE id = $1', [runId]))[0];

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'groups', keyName: 'first', expiresInDays: 30 });
    tenantId = boot.tenantId;
    admin = boot.key;
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer },
      { maxBodyBytes: 256 * 1024 },
    );
    ({ server: server, base: base } = await listenOnLoopback(handler));
  });

  afterAll(async () => {
    server?.close();
    await db?.close();
  });

  it('sends the run to the healthy member when the other is revoked, and to nobody else', async () => {
    const revoked = await addAgent('revoked');
    const healthy = await addAgent('healthy');
    const integrationId = await groupIntegration('pair', [revoked, healthy]);
    expect((await asAgent('agent.heartbeat', { version: '0', hostname: 'healthy' }, healthy)).status).toBe(200);
    expect((await asAdmin('agents.revoke', { id: revoked.id })).status).toBe(200);

    const queued = await asAdmin('integrations.runNow', { id: integrationId });
    expect(queued.body.result?.data).toMatchObject({ waiting: null });
    const runId = String(queued.body.result?.data['runId']);
    expect(await runRow(runId)).toMatchObject({ status: 'queued', agent_id: null });

    expect((await nextJob(revoked)).status).toBe(401);
    expect(await runRow(runId)).toMatchObject({ status: 'queued' });
    expect(jobOf(await nextJob(healthy))?.runId).toBe(runId);
    expect(await runRow(runId)).toMatchObject({ status: 'running', agent_id: healthy.id });
    const [dispatch] = await db.query<{ actor_id: string; meta: { groupId: string } }>(
      "SELECT actor_id, meta FROM audit_events WHERE action = 'run-dispatch' AND target = $1",
      [runId],
    );
    expect(dispatch?.actor_id).toBe(healthy.id);
    expect(dispatch?.meta.groupId).toBeTruthy();
  });

  it('keeps the run queued with a clear reason while no member is healthy, until one asks for work', async () => {
    const gone = await addAgent('gone');
    const stale = await addAgent('stale');
    const integrationId = await groupIntegration('sleepy', [gone, stale]);
    await asAdmin('agents.revoke', { id: gone.id });
    await db.query("UPDATE agents SET last_seen_at = now() - interval '1 hour' WHERE id = $1", [stale.id]);

    const queued = await asAdmin('integrations.runNow', { id: integrationId });
    expect(queued.status).toBe(200);
    expect(String(queued.body.result?.data['waiting'])).toMatch(/no healthy member of the group \(1 active, none seen in the last 90 s\)/);
    const runId = String(queued.body.result?.data['runId']);
    expect(await runRow(runId)).toMatchObject({ status: 'queued', agent_id: null });
    // The stale member comes back: asking for work makes it healthy, and it takes the run.
    expect(jobOf(await nextJob(stale))?.runId).toBe(runId);
    expect(await runRow(runId)).toMatchObject({ status: 'running', agent_id: stale.id });
  });

  it('gives a group run to exactly one of two members asking at the same moment', async () => {
    const members = [await addAgent('m1'), await addAgent('m2')];
    const integrationId = await groupIntegration('racers', members);
    const runId = String((await asAdmin('integrations.runNow', { id: integrationId })).body.result?.data['runId']);
    const jobs = (await Promise.all(members.map((member) => nextJob(member)))).map(jobOf);
    expect(jobs.filter((job) => job !== null).map((job) => job?.runId)).toEqual([runId]);
  });

  it('[integrity #1] seals a group run for the member that claims it, naming that member in the envelope and its spec', async () => {
    const members = [await addAgent('seal-a'), await addAgent('seal-b')];
    const integrationId = await groupIntegration('sealed', members);
    // Each member in turn takes a run: whichever claims it is the one the envelope is bound to.
    for (const [claimant, other] of [members, [...members].reverse()]) {
      if (claimant === undefined || other === undefined) throw new Error('two members expected');
      const runId = String((await asAdmin('integrations.runNow', { id: integrationId })).body.result?.data['runId']);
      const reply = await nextJob(claimant);
      const envelope = jobEnvelopePayload.parse(openStatement('job', reply.body.result?.data['envelope'], signer.publicKey));
      expect(envelope).toMatchObject({ runId, tenantId, agentId: claimant.id });
      // The agent accepts only a spec naming itself; the group the run came from stays on the run row.
      expect(envelope.spec.agentId).toBe(claimant.id);
      expect(envelope.spec.group).toBeUndefined();
      expect(await runRow(runId)).toMatchObject({ status: 'running', agent_id: claimant.id, group_id: expect.any(String) });
      await db.query("UPDATE runs SET status = 'succeeded', finished_at = now() WHERE id = $1", [runId]);
      expect(jobOf(await nextJob(other))).toBeNull();
    }
  });

  it('fails a queued group run whose group grant was revoked before any member took it', async () => {
    const member = await addAgent('ungranted');
    const integrationId = await groupIntegration('shrinking', [member]);
    const runId = String((await asAdmin('integrations.runNow', { id: integrationId })).body.result?.data['runId']);
    await db.query("DELETE FROM grants WHERE subject_type = 'group' AND subject_id = (SELECT id FROM agent_groups WHERE name = 'shrinking')");
    expect(jobOf(await nextJob(member))).toBeNull();
    expect(await db.query('SELECT status, error_class FROM runs WHERE id = $1', [runId])).toEqual([{ status: 'failed', error_class: 'not-allowed' }]);
  });

  const abandoned = (runId: string) =>
    db.query<{ actor_type: string; actor_id: string; outcome: string; meta: { reason: string } }>(
      "SELECT actor_type, actor_id, outcome, meta FROM audit_events WHERE action = 'run-abandoned' AND target = $1",
      [runId],
    );

  it('closes the run a member lost when it restarts, and the next run goes to whichever member asks', async () => {
    const [crashed, other] = [await addAgent('crashed'), await addAgent('other')];
    const integrationId = await groupIntegration('restarts', [crashed, other]);
    const runId = String((await asAdmin('integrations.runNow', { id: integrationId })).body.result?.data['runId']);
    expect(jobOf(await nextJob(crashed))?.runId).toBe(runId);
    // Not idle (a report still waiting, say): the run stays open.
    expect(jobOf(await nextJob(crashed))).toBeNull();
    expect(await runRow(runId)).toMatchObject({ status: 'running' });
    expect((await asAdmin('integrations.runNow', { id: integrationId })).status).toBe(409);

    // Back after a crash, idle: the lost run is closed, audited, and the integration can run again.
    expect(jobOf(await nextJob(crashed, true))).toBeNull();
    expect(await db.query('SELECT status, error_class FROM runs WHERE id = $1', [runId])).toEqual([{ status: 'failed', error_class: 'operational' }]);
    expect(await abandoned(runId)).toEqual([{ actor_type: 'agent', actor_id: crashed.id, outcome: 'failure', meta: expect.objectContaining({ reason: 'agent-restarted' }) }]);
    const next = String((await asAdmin('integrations.runNow', { id: integrationId })).body.result?.data['runId']);
    expect(next).not.toBe(runId);
    expect(jobOf(await nextJob(other, true))?.runId).toBe(next);
    // Another member's idleness closes nothing of the run it does not hold.
    expect(jobOf(await nextJob(crashed, true))).toBeNull();
    expect(await runRow(next)).toMatchObject({ status: 'running', agent_id: other.id });
  });

  it('closes a run whose agent stays silent, and only that one', async () => {
    const [mute, alive] = [await addAgent('mute'), await addAgent('alive')];
    const quiet = await groupIntegration('quiet', [mute]);
    const busy = await groupIntegration('busy', [alive]);
    const lost = String((await asAdmin('integrations.runNow', { id: quiet })).body.result?.data['runId']);
    const running = String((await asAdmin('integrations.runNow', { id: busy })).body.result?.data['runId']);
    expect(jobOf(await nextJob(mute))?.runId).toBe(lost);
    expect(jobOf(await nextJob(alive))?.runId).toBe(running);
    const later = new Date(Date.now() + AGENT_LOST_AFTER_MS + 60_000);
    // The live agent is still heard of (a keepalive) just before the check; the other is not.
    await db.query('UPDATE agents SET last_seen_at = $1 WHERE id = $2', [new Date(later.getTime() - 60_000), alive.id]);
    const scheduler = new Scheduler({ db, now: () => later, logger: silent });
    const closed = await scheduler.abandonSilentRuns();
    expect(closed.map((run) => run.id)).toContain(lost);
    expect(closed.map((run) => run.id)).not.toContain(running);
    expect(await runRow(lost)).toMatchObject({ status: 'failed' });
    expect(await runRow(running)).toMatchObject({ status: 'running' });
    expect(await abandoned(lost)).toEqual([{ actor_type: 'system', actor_id: 'scheduler', outcome: 'failure', meta: expect.objectContaining({ reason: 'agent-silent' }) }]);
  });
});
