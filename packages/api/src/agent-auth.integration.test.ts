import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { AgentKeyCache, bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, type Queryable, signerFromSecretKey } from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };

/** What the requests cost the database: each scoped transaction is BEGIN, the scope's set_config, its statements, COMMIT. */
interface Tally {
  transactions: number;
  statements: string[];
}

/** The database with every scoped transaction and statement counted (all procedure and authentication work runs scoped). */
function counted(db: Database, tally: Tally): Database {
  const countedTx = (tx: Queryable): Queryable => ({
    query: (text, params) => {
      tally.statements.push(text);
      return tx.query(text, params);
    },
  });
  const view = (scoped: Database): Database => ({
    ...scoped,
    query: (text, params) => {
      tally.transactions += 1;
      tally.statements.push(text);
      return scoped.query(text, params);
    },
    transaction: (fn) => {
      tally.transactions += 1;
      return scoped.transaction((tx) => fn(countedTx(tx)));
    },
    forTenant: (tenantId) => view(scoped.forTenant(tenantId)),
    forSystem: () => view(scoped.forSystem()),
    forRequest: (signal) => view(scoped.forRequest(signal)),
  });
  // The unscoped database runs a statement alone, outside any transaction: one round trip.
  const bare = (text: string, params?: readonly unknown[]) => {
    tally.statements.push(text);
    return db.query(text, params);
  };
  return { ...view(db), query: bare as Database['query'], close: () => db.close() };
}

describe('signed agent requests', () => {
  let db: Database;
  let tenantId: string;
  const tally: Tally = { transactions: 0, statements: [] };
  const servers: Server[] = [];
  let replicaA: string;
  let replicaB: string;

  async function addAgent(): Promise<{ id: string; keys: AgentKeyPair }> {
    const keys = generateKeyPair();
    const [row] = await db.query<{ id: string }>("INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, 'h', '0') RETURNING id", [
      tenantId,
      encodeKey(keys.publicKey),
    ]);
    return { id: row?.id ?? '', keys };
  }

  function signedHeartbeat(agentId: string, keys: AgentKeyPair) {
    const body = JSON.stringify({ version: '0', hostname: 'h' });
    return { body, headers: signRequest(keys, { agentId, method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', body }) };
  }

  async function send(base: string, request: { body: string; headers: Record<string, string> }): Promise<number> {
    const response = await fetch(`${base}/trpc/agent.heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json', ...request.headers }, body: request.body });
    await response.arrayBuffer();
    return response.status;
  }

  async function refusals(agentId: string): Promise<string[]> {
    const rows = await db.query<{ reason: string }>(
      "SELECT meta->>'reason' AS reason FROM audit_events WHERE action = 'agent-request-refused' AND actor_id = $1 ORDER BY seq",
      [agentId],
    );
    return rows.map((row) => row.reason);
  }

  /** What one heartbeat costs, from the tally. */
  async function measure(base: string, request: { body: string; headers: Record<string, string> }) {
    tally.transactions = 0;
    tally.statements = [];
    const status = await send(base, request);
    return {
      status,
      transactions: tally.transactions,
      statements: tally.statements.length,
      // The scope's set_config runs beneath the counted view, so it is added here with BEGIN and COMMIT.
      roundTrips: tally.statements.length + 3 * tally.transactions,
      lastSeenWrites: tally.statements.filter((text) => /last_seen_at\s*=/.test(text)).length,
    };
  }

  beforeAll(async () => {
    const raw = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(raw);
    tenantId = (await bootstrapTenant(raw, { tenant: 'auth', keyName: 'first', expiresInDays: 30 })).tenantId;
    db = counted(raw, tally);
    const signer = signerFromSecretKey(generateKeyPair().secretKey);
    // Two replicas over one database, each with its own key cache.
    for (const agentKeys of [new AgentKeyCache(), new AgentKeyCache()]) {
      const handler = createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer, agentKeys }, { maxBodyBytes: 64 * 1024 });
      const { server, base } = await listenOnLoopback(handler);
      servers.push(server);
      if (replicaA === undefined) replicaA = base;
      else replicaB = base;
    }
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await db?.close();
  });

  it('costs one transaction with one statement once the key is cached, and writes last_seen_at once', async () => {
    const agent = await addAgent();
    const first = await measure(replicaA, signedHeartbeat(agent.id, agent.keys));
    // Each also counts one operation against the agent's shared rate limit: one statement outside any transaction.
    expect(first).toEqual({ status: 200, transactions: 2, statements: 4, roundTrips: 10, lastSeenWrites: 1 });
    const cached = await measure(replicaA, signedHeartbeat(agent.id, agent.keys));
    expect(cached).toEqual({ status: 200, transactions: 2, statements: 3, roundTrips: 9, lastSeenWrites: 1 });
  });

  it('refuses a replay on the cached path, and the replay does not count as being seen', async () => {
    const agent = await addAgent();
    expect(await send(replicaA, signedHeartbeat(agent.id, agent.keys))).toBe(200);
    const request = signedHeartbeat(agent.id, agent.keys);
    expect(await send(replicaA, request)).toBe(200);
    const [before] = await db.query<{ last_seen_at: Date }>('SELECT last_seen_at FROM agents WHERE id = $1', [agent.id]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await send(replicaA, request)).toBe(401);
    expect(await send(replicaB, request)).toBe(401);
    const [after] = await db.query<{ last_seen_at: Date }>('SELECT last_seen_at FROM agents WHERE id = $1', [agent.id]);
    expect(after?.last_seen_at).toEqual(before?.last_seen_at);
    expect(await refusals(agent.id)).toEqual(['replayed', 'replayed']);
  });

  it('refuses the next request after another replica revokes the agent, though this one had its key cached', async () => {
    const agent = await addAgent();
    expect(await send(replicaA, signedHeartbeat(agent.id, agent.keys))).toBe(200);
    await db.forSystem().query("UPDATE agents SET status = 'revoked' WHERE id = $1", [agent.id]);
    expect(await send(replicaA, signedHeartbeat(agent.id, agent.keys))).toBe(401);
    expect(await refusals(agent.id)).toEqual(['agent revoked']);
  });

  it('refuses the retired key and accepts the new one after another replica rotates it', async () => {
    const agent = await addAgent();
    const next = generateKeyPair();
    expect(await send(replicaA, signedHeartbeat(agent.id, agent.keys))).toBe(200);
    await db.forSystem().transaction(async (tx) => {
      await tx.query('INSERT INTO agent_retired_keys (agent_id, tenant_id, public_key, retired_at) VALUES ($1, $2, $3, now())', [agent.id, tenantId, encodeKey(agent.keys.publicKey)]);
      await tx.query('UPDATE agents SET public_key = $2 WHERE id = $1', [agent.id, encodeKey(next.publicKey)]);
    });
    expect(await send(replicaA, signedHeartbeat(agent.id, agent.keys))).toBe(401);
    expect(await send(replicaA, signedHeartbeat(agent.id, next))).toBe(200);
    expect(await send(replicaA, signedHeartbeat(agent.id, next))).toBe(200);
    expect(await refusals(agent.id)).toEqual(['retired key']);
  });

  it('refuses a signature by another key even when the agent is cached, and keeps the agent cached', async () => {
    const agent = await addAgent();
    expect(await send(replicaA, signedHeartbeat(agent.id, agent.keys))).toBe(200);
    expect(await send(replicaA, signedHeartbeat(agent.id, generateKeyPair()))).toBe(401);
    expect(await refusals(agent.id)).toEqual(['bad signature']);
    expect(await measure(replicaA, signedHeartbeat(agent.id, agent.keys))).toMatchObject({ status: 200, statements: 3 });
  });
});
