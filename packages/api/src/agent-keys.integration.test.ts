import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, keyRotationProof, signRequest } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, signerFromSecretKey } from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };

describe('agent key rotation over HTTP', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let tenantId: string;
  let admin: string;

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

  async function signed(path: string, input: unknown, agentId: string, keys: AgentKeyPair) {
    const body = JSON.stringify(input);
    const headers = signRequest(keys, { agentId, method: 'POST', pathAndQuery: `/trpc/${path}`, body });
    const response = await fetch(`${base}/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: response.status, body: (await response.json()) as { result?: { data: Record<string, unknown> }; error?: { message: string } } };
  }

  const heartbeat = (agentId: string, keys: AgentKeyPair) => signed('agent.heartbeat', { version: '0', hostname: 'h' }, agentId, keys);

  async function audit(action: string, target: string) {
    return db.query<{ outcome: string; actor_type: string; meta: Record<string, unknown> }>(
      'SELECT outcome, actor_type, meta FROM audit_events WHERE action = $1 AND target = $2 ORDER BY seq',
      [action, target],
    );
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'rotation', keyName: 'first', expiresInDays: 30 });
    tenantId = boot.tenantId;
    admin = boot.key;
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer: signerFromSecretKey(generateKeyPair().secretKey) },
      { maxBodyBytes: 64 * 1024 },
    );
    ({ server: server, base: base } = await listenOnLoopback(handler));
  });

  afterAll(async () => {
    server?.close();
    await db?.close();
  });

  it('swaps the key: the old key is refused from then on (401, audited as retired), the new one works', async () => {
    const agent = await addAgent('rotating');
    const next = generateKeyPair();
    const rotated = await signed('agent.rotateKey', keyRotationProof(next, agent.id), agent.id, agent.keys);
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    const [row] = await db.query<{ public_key: string; key_rotated_at: Date | null }>('SELECT public_key, key_rotated_at FROM agents WHERE id = $1', [agent.id]);
    expect(row?.public_key).toBe(encodeKey(next.publicKey));
    expect(row?.key_rotated_at).not.toBeNull();
    expect(await audit('agent-key-rotate', agent.id)).toMatchObject([{ outcome: 'success', actor_type: 'agent' }]);

    expect((await heartbeat(agent.id, agent.keys)).status).toBe(401);
    const refused = await db.query<{ reason: string }>(
      "SELECT meta->>'reason' AS reason FROM audit_events WHERE action = 'agent-request-refused' AND actor_id = $1",
      [agent.id],
    );
    expect(refused.map((r) => r.reason)).toEqual(['retired key']);
    expect((await heartbeat(agent.id, next)).status).toBe(200);
    // The old key cannot come back, not even through another rotation.
    const back = await signed('agent.rotateKey', keyRotationProof(agent.keys, agent.id), agent.id, next);
    expect(back.status).toBe(409);
  });

  it('refuses a proof not made by the new key, one for another agent, an expired one, and a key another agent holds', async () => {
    const agent = await addAgent('careful');
    const other = await addAgent('other');
    const next = generateKeyPair();
    const forged = { ...keyRotationProof(generateKeyPair(), agent.id), newPublicKey: encodeKey(next.publicKey) };
    expect((await signed('agent.rotateKey', forged, agent.id, agent.keys)).status).toBe(401);
    expect((await signed('agent.rotateKey', keyRotationProof(next, other.id), agent.id, agent.keys)).status).toBe(401);
    const stale = keyRotationProof(next, agent.id, new Date(Date.now() - 3_600_000));
    expect((await signed('agent.rotateKey', stale, agent.id, agent.keys)).status).toBe(401);
    expect((await signed('agent.rotateKey', keyRotationProof(other.keys, agent.id), agent.id, agent.keys)).status).toBe(409);
    const reasons = (await audit('agent-key-rotate', agent.id)).map((r) => [r.outcome, r.meta['reason']]);
    expect(reasons).toEqual([['denied', 'bad proof'], ['denied', 'bad proof'], ['denied', 'proof expired'], ['denied', 'key in use']]);
    // Nothing changed: the current key still works.
    expect((await heartbeat(agent.id, agent.keys)).status).toBe(200);
  });

  it('lets an admin request a rotation, which the agent sees in its heartbeat until it rotates', async () => {
    const agent = await addAgent('asked');
    expect((await heartbeat(agent.id, agent.keys)).body.result?.data['rotateKey']).toBe(false);
    const response = await fetch(`${base}/trpc/agents.requestKeyRotation`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ id: agent.id }),
    });
    expect(response.status).toBe(200);
    expect((await heartbeat(agent.id, agent.keys)).body.result?.data['rotateKey']).toBe(true);
    const next = generateKeyPair();
    expect((await signed('agent.rotateKey', keyRotationProof(next, agent.id), agent.id, agent.keys)).status).toBe(200);
    expect((await heartbeat(agent.id, next)).body.result?.data['rotateKey']).toBe(false);
  });
});
