import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { signerFromSecretKey } from '@airlock/storage';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, DEFAULT_RATE_LIMITS, Dispatcher, migrate, secretBoxFromKey } from './index.ts';
import { type Call, data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);

async function listenOn(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('alert destination test outcomes over HTTP on PostgreSQL', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let admin: Record<string, string>;
  let tenantId: string;

  const post = (path: string, input: unknown): Promise<Call> => send(base, path, input, admin, 'POST');

  async function testDestination(url: string): Promise<{ reply: Call; audited: Record<string, unknown> | undefined }> {
    const created = data<{ id: string }>(await post('alertDestinations.create', { name: `hook-${randomBytes(4).toString('hex')}`, url }));
    const reply = await post('alertDestinations.test', { id: created.id });
    const [row] = await db.query<{ meta: Record<string, unknown> }>(
      "SELECT meta FROM audit_events WHERE tenant_id = $1 AND action = 'alert-destination-test' AND target = $2",
      [tenantId, created.id],
    );
    return { reply, audited: row?.meta };
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 10 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    admin = { authorization: `Bearer ${boot.key}` };
    tenantId = boot.tenantId;
    const handler = createHttpHandler(
      {
        db,
        dispatcher: new Dispatcher(50),
        now: () => new Date(),
        logger: silent,
        signer,
        alerts: { secretBox: secretBoxFromKey(randomBytes(32)), webhook: { timeoutMs: 300, allowLoopback: true } },
      },
      { maxBodyBytes: 256 * 1024, rateLimits: { ...DEFAULT_RATE_LIMITS, ip: { points: 100_000, durationSeconds: 60 } } },
    );
    ({ server, base } = await listenOnLoopback(handler));
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  it('[integrity #23] a closed port answers "could not connect", with no error text or address in the reply or the audit', async () => {
    const closed = createServer();
    const port = await listenOn(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { reply, audited } = await testDestination(`http://127.0.0.1:${port}/hook`);
    expect(data(reply)).toEqual({ ok: false, status: null, error: 'could not connect', durationMs: expect.any(Number) });
    expect(audited?.['error']).toBe('could not connect');
    // The audit keeps the destination's configured origin (the admin's own input), nothing of the failure.
    const { origin, ...rest } = audited ?? {};
    expect(origin).toBe(`http://127.0.0.1:${port}`);
    for (const leak of [String(port), 'ECONNREFUSED', 'connect', '127.0.0.1']) {
      expect(JSON.stringify(reply.body).replace('could not connect', '')).not.toContain(leak);
      expect(JSON.stringify(rest).replace('could not connect', '')).not.toContain(leak);
    }
  });

  it('[integrity #23] a receiver that never answers is "timed out", and one that answers is its HTTP status', async () => {
    const sockets = new Set<Socket>();
    const hung = createServer(() => undefined);
    hung.on('connection', (socket) => sockets.add(socket));
    const answering = createServer((_req, res) => res.writeHead(418).end('internal detail'));
    try {
      const slow = await testDestination(`http://127.0.0.1:${await listenOn(hung)}/hook`);
      expect(data(slow.reply)).toMatchObject({ ok: false, status: null, error: 'timed out' });
      const teapot = await testDestination(`http://127.0.0.1:${await listenOn(answering)}/hook`);
      expect(data(teapot.reply)).toMatchObject({ ok: false, status: 418, error: 'HTTP 418' });
      expect(JSON.stringify(teapot.reply.body)).not.toContain('internal detail');
    } finally {
      for (const socket of sockets) socket.destroy();
      hung.close();
      answering.close();
    }
  });
});
