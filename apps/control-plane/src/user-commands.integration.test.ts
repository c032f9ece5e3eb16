import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from './config.ts';
import { startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

const PASSWORD = 'a long enough console password';

async function login(base: string, email: string, password: string): Promise<{ status: number; cookie: string | undefined }> {
  const response = await fetch(`${base}/trpc/session.login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenant: 'acme', email, password }),
  });
  await response.arrayBuffer();
  return { status: response.status, cookie: response.headers.getSetCookie()[0] };
}

describe('airlock user', () => {
  let work: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-users-'));
    env = { AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent' };
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('creates an account from a piped password, lists it, and unlocks it after a lockout', async () => {
    expect((await airlock(['bootstrap', '--tenant', 'acme', '--json'], env)).code).toBe(0);
    const created = await airlock(['user', 'create', '--tenant', 'acme', '--email', 'Ops@Acme.test', '--role', 'admin', '--password-stdin', '--json'], env, `${PASSWORD}\n`);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ email: 'ops@acme.test', role: 'admin', disabled: false });
    expect(created.stdout + created.stderr).not.toContain(PASSWORD);

    const withoutStdin = await airlock(['user', 'create', '--tenant', 'acme', '--email', 'x@acme.test', '--role', 'admin'], env);
    expect(withoutStdin.code).toBe(1);
    expect(withoutStdin.stderr).toMatch(/--password-stdin/);
    const short = await airlock(['user', 'create', '--tenant', 'acme', '--email', 'y@acme.test', '--role', 'admin', '--password-stdin'], env, 'short\n');
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/at least 12 characters/);

    const listed = await airlock(['user', 'list', '--tenant', 'acme', '--json'], env);
    expect((JSON.parse(listed.stdout) as { email: string }[]).map((u) => u.email)).toEqual(['ops@acme.test']);

    // The account logs in to a real server with the production scrypt cost; five bad guesses lock it.
    let server = await startServer(loadServerConfig({ ...env, AIRLOCK_PORT: '0' }));
    try {
      expect(await login(server.url, 'ops@acme.test', PASSWORD)).toMatchObject({ status: 200, cookie: expect.stringMatching(/^airlock_session=/) });
      for (let i = 0; i < 5; i += 1) expect((await login(server.url, 'ops@acme.test', 'not the password')).status).toBe(401);
      expect((await login(server.url, 'ops@acme.test', PASSWORD)).status).toBe(401);
    } finally {
      await server.close();
    }
    const unlocked = await airlock(['user', 'unlock', '--tenant', 'acme', '--email', 'OPS@acme.test'], env);
    expect(unlocked).toMatchObject({ code: 0, stdout: 'unlocked ops@acme.test\n' });
    server = await startServer(loadServerConfig({ ...env, AIRLOCK_PORT: '0' }));
    try {
      expect((await login(server.url, 'ops@acme.test', PASSWORD)).status).toBe(200);
    } finally {
      await server.close();
    }
    // Each CLI run opens the embedded database in a new process: slow on a busy machine.
  }, 300_000);
});
