import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHttpHandler, type Database, Dispatcher, migrate, openPglite, signerFromSecretKey } from '@airlock/api';
import { type AgentKeyPair, encodeKey, generateKeyPair, keyRotationProof } from '@airlock/identity';
import { createAgentClient, type ControlPlaneClient } from './control-channel.ts';
import { type AgentIdentity, keyForEnrollment, loadIdentity, savePendingKey, saveIdentity } from './identity-store.ts';
import { type ClientFor, rotateKey, settleKeys } from './key-rotation.ts';

const silent = { warn: () => undefined, error: () => undefined };

describe('agent key rotation against a real control plane (PGlite)', () => {
  let scratch: string;
  let db: Database;
  let server: Server;
  let url: string;
  let tenantId: string;
  let dataDir: string;
  let identity: AgentIdentity;

  const clientsFor = (who: AgentIdentity): ClientFor => (keyPair) => createAgentClient(who.controlPlaneUrl, who.agentId, keyPair);
  const probe = (client: ControlPlaneClient) => client.agent.heartbeat.mutate({ version: '0', hostname: 'test' });
  const serverKey = async () => (await db.query<{ public_key: string }>('SELECT public_key FROM agents WHERE id = $1', [identity.agentId]))[0]?.public_key;
  const keyText = async () => readFile(path.join(dataDir, 'agent.key'), 'utf8');

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'airlock-rotation-'));
    db = await openPglite(path.join(scratch, 'db'));
    await migrate(db);
    const [tenant] = await db.query<{ id: string }>("INSERT INTO tenants (name) VALUES ('rotation') RETURNING id");
    tenantId = tenant?.id ?? '';
    const handler = createHttpHandler(
      { db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer: signerFromSecretKey(generateKeyPair().secretKey) },
      { maxBodyBytes: 64 * 1024 },
    );
    server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server?.close();
    await db?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(scratch, 'agent-'));
    const keyPair = await keyForEnrollment(dataDir);
    const [agent] = await db.query<{ id: string }>("INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, $2, 'h', '0') RETURNING id", [
      tenantId,
      encodeKey(keyPair.publicKey),
    ]);
    identity = { agentId: agent?.id ?? '', tenantId, controlPlaneUrl: url, enrolledAt: new Date().toISOString() };
    await saveIdentity(dataDir, identity);
  });

  it('rotates: the server and the disk hold the new key (0600), nothing pending, and the old key is refused', async () => {
    const { keyPair: old } = await loadIdentity(dataDir);
    const result = await rotateKey(dataDir, identity, old, clientsFor(identity));
    const { keyPair: now } = await loadIdentity(dataDir);
    expect(encodeKey(now.publicKey)).toBe(result.publicKey);
    expect(await serverKey()).toBe(result.publicKey);
    expect((await stat(path.join(dataDir, 'agent.key'))).mode & 0o777).toBe(0o600);
    expect((await readdir(dataDir)).sort()).toEqual(['agent.json', 'agent.key']);
    await expect(probe(clientsFor(identity)(old))).rejects.toThrow(/retired key/);
    await expect(probe(clientsFor(identity)(now))).resolves.toMatchObject({ ok: true });
  });

  it('after a crash between the server accepting and the rename, the next start promotes the pending key', async () => {
    const { keyPair: old } = await loadIdentity(dataDir);
    const next = generateKeyPair();
    await savePendingKey(dataDir, next);
    await clientsFor(identity)(old).agent.rotateKey.mutate(keyRotationProof(next, identity.agentId));
    // "Crash": agent.key still holds the old key, which the server no longer takes.
    const before = await keyText();
    const settled = await settleKeys(dataDir, clientsFor, probe);
    expect(encodeKey(settled.keyPair.publicKey)).toBe(encodeKey(next.publicKey));
    expect(await keyText()).not.toBe(before);
    expect(encodeKey((await loadIdentity(dataDir)).keyPair.publicKey)).toBe(encodeKey(next.publicKey));
    expect(await readdir(dataDir)).not.toContain('agent.key.pending');
  });

  it('after a crash before the server answered, the next start keeps the old key and drops the pending one', async () => {
    const { keyPair: old } = await loadIdentity(dataDir);
    await savePendingKey(dataDir, generateKeyPair());
    const settled = await settleKeys(dataDir, clientsFor, probe);
    expect(encodeKey(settled.keyPair.publicKey)).toBe(encodeKey(old.publicKey));
    expect(await serverKey()).toBe(encodeKey(old.publicKey));
    expect(await readdir(dataDir)).not.toContain('agent.key.pending');
  });

  it('drops the new key when the control plane refuses the rotation, and keeps it when the answer is lost', async () => {
    const { keyPair: old } = await loadIdentity(dataDir);
    await db.query("UPDATE agents SET status = 'revoked' WHERE id = $1", [identity.agentId]);
    await expect(rotateKey(dataDir, identity, old, clientsFor(identity))).rejects.toThrow(/agent revoked/);
    expect(await readdir(dataDir)).not.toContain('agent.key.pending');
    await db.query("UPDATE agents SET status = 'active' WHERE id = $1", [identity.agentId]);

    const unreachable: ClientFor = (keyPair: AgentKeyPair) => createAgentClient('http://127.0.0.1:9', identity.agentId, keyPair);
    await expect(rotateKey(dataDir, identity, old, unreachable)).rejects.toThrow(/outcome unknown/);
    expect(await readdir(dataDir)).toContain('agent.key.pending');
    expect(encodeKey((await loadIdentity(dataDir)).keyPair.publicKey)).toBe(encodeKey(old.publicKey));
  });
});
