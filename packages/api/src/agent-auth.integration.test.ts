import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentKeyPair, encodeKey, generateKeyPair, signRequest } from '@airlock/identity';
import { type Sql, sqlText } from '@airlock/storage';
import { createTestDatabase } from '@airlock/testing';
import { AgentKeyCache, bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, type Queryable, signerFromSecretKey } from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };

/**
 * What the requests cost the database. Connections pipeline: a scoped statement alone (BEGIN, the
 * scope's set_config, the statement, COMMIT) is one round trip; a transaction's BEGIN and scope
 * travel with its first statement, and its COMMIT is one more. System connections start in the
 * system scope, and a system or unscoped statement alone is one round trip.
 */
interface Tally {
  transactions: number;
  statements: string[];
  roundTrips: number;
}

/** The database with every transaction, statement and round trip counted. */
function counted(db: Database, tally: Tally): Database {
  const countedTx = (tx: Queryable): Queryable => ({
    query: (text, params) => {
      tally.statements.push(sqlText(text));
      tally.roundTrips += 1;
      return tx.query(text, params);
    },
  });
  const view = (scoped: Database, system: boolean): Database => ({
    ...scoped,
    query: (text, params) => {
      if (!system) tally.transactions += 1;
      tally.statements.push(sqlText(text));
      tally.roundTrips += 1;
      return scoped.query(text, params);
    },
    transaction: (fn) => {
      tally.transactions += 1;
      tally.roundTrips += 1;
      return scoped.transaction((tx) => fn(countedTx(tx)));
    },
    forTenant: (tenantId) => view(scoped.forTenant(tenantId), false),
    forSystem: () => view(scoped.forSystem(), true),
    forRequest: (signal) => view(scoped.forRequest(signal), system),
  });
  const bare = (text: Sql, params?: readonly unknown[]) => {
    tally.statements.push(sqlText(text));
    tally.roundTrips += 1;
    return db.query(text, params);
  };
  return { ...view(db, false), query: bare as Database['query'], close: () => db.close() };
}

describe('signed agent requests', () => {
  let db: Database;
  let tenantId: string;
  const tally: Tally = { transactions: 0, statements: [], roundTrips: 0 };
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
    tally.roundTrips = 0;
    const status = await send(base, request);
    return {
      status,
      transactions: tally.transactions,
      statements: tally.statements.length,
      roundTrips: tally.roundTrips,
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

  it('once the key is cached, authenticates and counts in one statement and heartbeats in one transaction, writing last_seen_at once', async () => {
    const agent = await addAgent();
    const first = await measure(replicaA, signedHeartbeat(agent.id, agent.keys));
    // Uncached: the agent's key is read in the transaction that claims the nonce.
    expect(first).toEqual({ status: 200, transactions: 2, statements: 3, roundTrips: 4, lastSeenWrites: 1 });
    const cached = await measure(replicaA, signedHeartbeat(agent.id, agent.keys));
    expect(cached).toEqual({ status: 200, transactions: 1, statements: 2, roundTrips: 2, lastSeenWrites: 1 });
    // The claim counted the request on the agent's shared limit: no statement of its own.
    expect(tally.statements.filter((text) => /airlock_count/.test(text))).toHaveLength(1);
    const [counter] = await db.query<{ points: number }>("SELECT points FROM rate_limit_counters WHERE key LIKE 'agent/%' AND key LIKE $1", [`% ${agent.id}`]);
    expect(counter?.points).toBe(2);
  });

  it('counts each call of a batch against the agent limit, the first in the claim', async () => {
    const agent = await addAgent();
    const body = JSON.stringify({ 0: { version: '0', hostname: 'h' }, 1: { version: '0', hostname: 'h' }, 2: { version: '0', hostname: 'h' } });
    const pathAndQuery = '/trpc/agent.heartbeat,agent.heartbeat,agent.heartbeat?batch=1';
    const headers = signRequest(agent.keys, { agentId: agent.id, method: 'POST', pathAndQuery, body });
    const response = await fetch(`${replicaA}${pathAndQuery}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    expect(response.status).toBe(200);
    const [counter] = await db.query<{ points: number }>("SELECT points FROM rate_limit_counters WHERE key LIKE 'agent/%' AND key LIKE $1", [`% ${agent.id}`]);
    expect(counter?.points).toBe(3);
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
    expect(await measure(replicaA, signedHeartbeat(agent.id, agent.keys))).toMatchObject({ status: 200, statements: 2 });
  });
});
