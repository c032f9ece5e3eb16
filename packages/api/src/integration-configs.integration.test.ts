import { type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeKey, generateKeyPair } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { createTestDatabase } from '@airlock/testing';
import { bootstrapTenant, connectPostgres, createHttpHandler, type Database, Dispatcher, migrate, signerFromSecretKey } from './index.ts';
import { data, listenOnLoopback, send } from './trpc-http.fixture.ts';

const silent = { warn: () => undefined, error: () => undefined };
const signer = signerFromSecretKey(generateKeyPair().secretKey);
const hostKey = `SHA256:${'A'.repeat(43)}`;

describe('integrations.save validates connector configs with the connectors’ own schemas', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let admin: Record<string, string>;
  let recipient: string;
  let agentId: string;

  const mutate = (path: string, input: unknown) => send(base, path, input, admin, 'POST');

  function spec(name: string, change: { sourceConfig?: Record<string, unknown>; output?: Record<string, unknown> } = {}) {
    return {
      name,
      agentId,
      source: {
        connector: 'sftp@1',
        config: change.sourceConfig ?? { host: 'files.example.com', port: 2222, hostKey, username: 'export', credentialRef: 'erp-sftp', path: '/exports/*.csv' },
      },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [recipient],
      ...(change.output ? { output: change.output } : {}),
    };
  }

  async function saved(name: string): Promise<number> {
    return (await db.query('SELECT 1 FROM integrations WHERE name = $1', [name])).length;
  }

  beforeAll(async () => {
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 5 });
    await migrate(db);
    const boot = await bootstrapTenant(db, { tenant: 'acme', keyName: 'first', expiresInDays: 30 });
    admin = { authorization: `Bearer ${boot.key}` };
    const handler = createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer }, { maxBodyBytes: 256 * 1024 });
    ({ server, base } = await listenOnLoopback(handler));
    recipient = (await generateDemoKey('Partner', 'partner@example.com')).armoredPublicKey;
    const { token } = data<{ token: string }>(await mutate('enrollment.createToken', { ttlMinutes: 5 }));
    const enrolled = data<{ agentId: string }>(
      await send(base, 'enrollment.enroll', { token, publicKey: encodeKey(generateKeyPair().publicKey), hostname: 'configs', version: '0.1.0' }, {}, 'POST'),
    );
    agentId = enrolled.agentId;
    for (const scope of ['read sftp://files.example.com:2222/exports/**', 'write file:///srv/out/**']) {
      data(await mutate('grants.add', { agentId, scope }));
    }
  });

  afterAll(async () => {
    server.close();
    await db.close();
  });

  it('[integrity #3] saves a valid integration', async () => {
    const result = await mutate('integrations.save', spec('valid'));
    expect(result.status).toBe(200);
    expect(await saved('valid')).toBe(1);
  });

  it('[integrity #3] refuses a misspelled credentialRef with a 400 naming the key, and saves nothing', async () => {
    const { credentialRef, ...rest } = spec('typo').source.config;
    const result = await mutate('integrations.save', spec('typo', { sourceConfig: { ...rest, credentialsRef: credentialRef } }));
    expect(result.status).toBe(400);
    expect(result.body.error?.data?.code).toBe('BAD_REQUEST');
    // Both problems, each with its path: the unknown key and the missing one.
    expect(result.body.error?.message).toMatch(/source\.config: .*credentialsRef/);
    expect(result.body.error?.message).toMatch(/source\.config\.credentialRef: /);
    expect(await saved('typo')).toBe(0);
  });

  it('[integrity #3] refuses a source config the agent would refuse, listing every problem', async () => {
    const result = await mutate('integrations.save', spec('loose', { sourceConfig: { host: 'files.example.com', port: 2222, hostKey: 'x', path: '/exports/*.csv' } }));
    expect(result.status).toBe(400);
    for (const field of ['hostKey', 'username', 'credentialRef']) expect(result.body.error?.message).toContain(`source.config.${field}: `);
    expect(await saved('loose')).toBe(0);
  });

  it('[integrity #3] refuses a name template that climbs out of the destination, with a 400 naming the field, and saves nothing', async () => {
    const result = await mutate('integrations.save', spec('climbing-name', { output: { nameTemplate: '../{name}.pgp' } }));
    expect(result.status).toBe(400);
    expect(result.body.error?.message).toMatch(/output\.nameTemplate: /);
    expect(await saved('climbing-name')).toBe(0);
    for (const nameTemplate of ['sub/{name}', '{name}\\x', '.', '{ext}']) {
      const other = await mutate('integrations.save', spec('bad-name', { output: { nameTemplate } }));
      expect({ nameTemplate, status: other.status }).toEqual({ nameTemplate, status: 400 });
    }
    expect(await saved('bad-name')).toBe(0);
    const fine = await mutate('integrations.save', spec('good-name', { output: { nameTemplate: '{stem}-{date}.{ext}.pgp' } }));
    expect(fine.status).toBe(200);
  });
});
