import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant } from '@airlock/api';
import { loadServerConfig } from './config.ts';
import { startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

/** `{"error": {"code", "message"}}` on stderr, and nothing on stdout. */
function jsonError(result: { stdout: string; stderr: string }): { code: string; message: string } {
  expect(result.stdout).toBe('');
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  const parsed = JSON.parse(lines[0] ?? '') as { error: { code: string; message: string } };
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message']);
  return parsed.error;
}

const CLASS_NAME = /\b(TRPCClientError|UserError|ZodError|TypeError|[A-Z][a-z]+Error):/;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

describe('airlock errors a person can act on', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-cli-errors-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('names the URL when the connection is refused, in words and in JSON', async () => {
    const closed = createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const env = { AIRLOCK_URL: `http://127.0.0.1:${port}`, AIRLOCK_API_KEY: 'alk_x' };
    const human = await airlock(['run', 'list'], env);
    expect(human.code).toBe(1);
    expect(human.stderr.trim()).toBe(`airlock: cannot reach http://127.0.0.1:${port}/trpc/runs.list: connection refused (is the server running, and is this the right port?) (ECONNREFUSED)`);
    const json = await airlock(['run', 'list', '--json'], env);
    expect(json.code).toBe(1);
    expect(jsonError(json)).toEqual({ code: 'network-refused', message: expect.stringContaining(`cannot reach http://127.0.0.1:${port}/trpc/runs.list: connection refused`) as unknown });
  });

  it('gives up on a server that never answers and says it timed out', async () => {
    // Accepts the connection and never answers a byte.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    const port = await listen(silent);
    try {
      const result = await airlock(['agent', 'list', '--json'], { AIRLOCK_URL: `http://127.0.0.1:${port}`, AIRLOCK_API_KEY: 'alk_x', AIRLOCK_REQUEST_TIMEOUT_MS: '500' });
      expect(result.code).toBe(1);
      const error = jsonError(result);
      expect(error.code).toBe('network-timeout');
      expect(error.message).toMatch(new RegExp(`^cannot reach http://127\\.0\\.0\\.1:${port}/trpc/agents\\.list: timed out`));
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('exits 2 for a wrong command line, with JSON when asked', async () => {
    const human = await airlock(['run', 'list', '--bogus'], {});
    expect(human.code).toBe(2);
    expect(human.stderr).toMatch(/unknown option '--bogus'/);
    const json = await airlock(['run', 'list', '--bogus', '--json'], {});
    expect(json.code).toBe(2);
    expect(jsonError(json)).toEqual({ code: 'usage', message: "unknown option '--bogus'" });
    const help = await airlock(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit status: 0 ok, 1 failed, 2 usage \(a wrong command line\), 3 refused by policy or permission\./);
  });

  it('exits 3 when refused for permission, 1 for bad input, and never prints a class name', { timeout: 300_000 }, async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'owner', expiresInDays: 1 });
      const owner = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };
      const created = await airlock(['key', 'create', '--name', 'reader', '--role', 'auditor', '--json'], owner);
      expect(created.code).toBe(0);
      const auditor = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: (JSON.parse(created.stdout) as { key: string }).key };

      const refused = await airlock(['token', 'create', '--json'], auditor);
      expect(refused.code).toBe(3);
      expect(jsonError(refused)).toEqual({ code: 'not-allowed', message: 'role auditor lacks agents:enroll' });
      const refusedHuman = await airlock(['token', 'create'], auditor);
      expect(refusedHuman.code).toBe(3);
      expect(refusedHuman.stderr.trim()).toBe('airlock: role auditor lacks agents:enroll');

      const unknownKey = await airlock(['run', 'list', '--json'], { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: 'alk_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' });
      expect(unknownKey.code).toBe(3);
      expect(jsonError(unknownKey).code).toBe('authentication');

      const badInput = await airlock(['run', 'show', 'not-a-run', '--json'], owner);
      expect(badInput.code).toBe(1);
      const error = jsonError(badInput);
      expect(error.code).toMatch(/^(user|not-found)$/);
      for (const text of [refused.stderr, refusedHuman.stderr, unknownKey.stderr, badInput.stderr]) expect(text).not.toMatch(CLASS_NAME);
    } finally {
      await server.close();
    }
  });
});
