import { type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AuditRecord, chainProofHolds, verifyChain } from '@airlock/audit';
import { type AgentKeyPair, encodeKey, followRotations, generateKeyPair, keyFingerprint, signRequest, verifyDetached } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, type ChainCheckpoint, connectPostgres, createCheckpoint, createHttpHandler, type Database, Dispatcher, migrate, recordKeyRotation, signerFromSecretKey } from './index.ts';
import { listenOnLoopback } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

describe('custody endpoints', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let admin: Record<string, string>;
  let agent: { id: string; keys: AgentKeyPair };

  async function request(path: string, options: { input?: unknown; method?: 'GET' | 'POST'; headers?: Record<string, string>; signed?: boolean } = {}) {
    const method = options.method ?? 'POST';
    const body = method === 'POST' ? JSON.stringify(options.input) : '';
    const pathAndQuery = method === 'GET' && options.input !== undefined ? `/trpc/${path}?input=${encodeURIComponent(JSON.stringify(options.input))}` : `/trpc/${path}`;
    const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
    if (options.signed) Object.assign(headers, signRequest(agent.keys, { agentId: agent.id, method, pathAndQuery, body }));
    const response = await fetch(`${base}${pathAndQuery}`, { method, headers, ...(method === 'POST' ? { body } : {}) });
    const json = (await response.json()) as { result?: { data: unknown } };
    if (response.status !== 200) throw new Error(`${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
    return json.result?.data;
  }

  beforeAll(async () => {
    db = await connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    admin = { authorization: `Bearer ${boot.key}` };
    const handler = createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer }, { maxBodyBytes: 256 * 1024 });
    ({ server: server, base: base } = await listenOnLoopback(handler));
    const created = (await request('enrollment.createToken', { input: { ttlMinutes: 5 }, headers: admin })) as { token: string; controlPlaneKey: string };
    // The pin an admin hands the on-prem side is the fingerprint of the key the server presents.
    expect(created.controlPlaneKey).toBe(keyFingerprint(signer.publicKey));
    expect(((await request('controlPlane.identity', { method: 'GET' })) as { fingerprint: string }).fingerprint).toBe(created.controlPlaneKey);
    const keys = generateKeyPair();
    const enrolled = (await request('enrollment.enroll', { input: { token: created.token, publicKey: encodeKey(keys.publicKey), hostname: 'h', version: '1' } })) as { agentId: string };
    agent = { id: enrolled.agentId, keys };
  });

  afterAll(async () => {
    server?.close();
    await db?.close();
  });

  it('stores and audits an agent security event once, however often it is reported', async () => {
    const event = { id: randomUUID(), kind: 'envelope-replayed', at: new Date().toISOString(), runId: randomUUID(), reason: 'the envelope was seen before' };
    await request('custody.reportSecurityEvent', { input: event, signed: true });
    await request('custody.reportSecurityEvent', { input: event, signed: true });
    const listed = (await request('custody.securityEvents', { method: 'GET', input: {}, headers: admin })) as Array<{ id: string; kind: string; agentId: string }>;
    expect(listed).toEqual([expect.objectContaining({ id: event.id, kind: 'envelope-replayed', agentId: agent.id })]);
    const audited = await db.query<{ kind: string }>("SELECT meta->>'kind' AS kind FROM audit_events WHERE action = 'agent-security-event'");
    expect(audited).toEqual([{ kind: 'envelope-replayed' }]);
    await expect(request('custody.reportSecurityEvent', { input: { ...event, id: randomUUID(), plaintext: 'x' }, signed: true })).rejects.toThrow(/400/);
  });

  it("serves a witness the signed checkpoint with its own tenant's leaf, and the records that lead to it", async () => {
    await createCheckpoint(db.forSystem(), signer);
    const first = (await request('custody.checkpoint', { method: 'GET', signed: true })) as ChainCheckpoint;
    await request('custody.reportSecurityEvent', { input: { id: randomUUID(), kind: 'policy-violation', at: new Date().toISOString(), reason: 'x' }, signed: true });
    // Another tenant's and the system chain's appends: nothing of them reaches this witness.
    const other = await bootstrapTenant(db, { tenant: `other-${randomUUID()}`, keyName: 'boot', expiresInDays: 1 });
    await createCheckpoint(db.forSystem(), signer);
    const latest = (await request('custody.checkpoint', { method: 'GET', signed: true })) as ChainCheckpoint;
    const verify = (m: Uint8Array, s: Uint8Array) => verifyDetached(m, s, signer.publicKey);
    if (!first.proof || !latest.proof) throw new Error('no proof');
    expect(latest.checkpoint.number).toBeGreaterThan(first.checkpoint.number);
    expect(latest.proof.leaf.seq).toBe(first.proof.leaf.seq + 1);
    expect(chainProofHolds(latest.checkpoint, latest.proof, signer.publicKey, verify)).toBe(true);
    expect(JSON.stringify(latest)).not.toContain(other.tenantId);
    const segment = (await request('custody.auditSegment', {
      method: 'GET',
      input: { afterSeq: first.proof.leaf.seq, untilSeq: latest.proof.leaf.seq },
      signed: true,
    })) as AuditRecord[];
    expect(verifyChain(segment, { after: first.proof.leaf })).toMatchObject({ ok: true, head: { seq: latest.proof.leaf.seq, hash: latest.proof.leaf.hash } });
  });

  it('serves rotations signed by the key they replace, which agents follow from their pin', async () => {
    const next = generateKeyPair();
    await recordKeyRotation(db, signer, next.publicKey);
    const rotations = (await request('custody.rotations', { method: 'GET' })) as unknown[];
    expect(followRotations(signer.publicKey, rotations)).toEqual(next.publicKey);
    expect(followRotations(generateKeyPair().publicKey, rotations)).not.toEqual(next.publicKey);
  });
});
