/**
 * The embedded (PGlite) database is single-process: while `airlock serve` holds its data directory,
 * every other command that would open it is refused with one line saying what to do, and the
 * audit chain the server wrote still verifies once it stops.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@airlock/testing';
import { airlock } from './testing/cli.ts';

const bin = path.resolve(import.meta.dirname, '../bin/airlock.js');
const HEALTH_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
/** Eleven CLI processes, each loading PGlite's WebAssembly, on a machine that may be busy. */
const TEST_TIMEOUT_MS = 300_000;

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function waitForHealth(url: string, server: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + HEALTH_TIMEOUT_MS;
  while (Date.now() < until) {
    if (server.exitCode !== null) throw new Error(`airlock serve exited: ${log()}`);
    const healthy = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (healthy) return;
    await sleep(200);
  }
  throw new Error(`airlock serve was not healthy within ${HEALTH_TIMEOUT_MS} ms: ${log()}`);
}

describe('one process per embedded data directory', () => {
  let work: string;
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-lock-'));
  });

  afterAll(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await exited(server);
    }
    await rm(work, { recursive: true, force: true });
  });

  it('[integrity #2] refuses bootstrap, user list, audit verify and a second serve while the server runs; the chain verifies after', async () => {
    const env = { AIRLOCK_DATA_DIR: path.join(work, 'data'), AIRLOCK_CONSOLE_DIR: 'off', AIRLOCK_LOG_LEVEL: 'warn' };
    const boot = await airlock(['bootstrap', '--tenant', 'acme', '--json'], env);
    expect(boot.code, boot.stderr).toBe(0);
    const { key } = JSON.parse(boot.stdout) as { key: string };

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const serveEnv = { ...env, AIRLOCK_PORT: String(port) };
    let log = '';
    const started = spawn(process.execPath, [bin, 'serve'], { env: { PATH: process.env['PATH'] ?? '', ...serveEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    server = started;
    started.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    started.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    await waitForHealth(url, started, () => log);

    // Each refusal says what to do instead; the part after "stop it first" differs per command.
    const refused: Array<[string[], RegExp]> = [
      [['bootstrap', '--tenant', 'globex'], /bootstrap, then start it again/],
      [['user', 'list', '--tenant', 'acme'], /Users page of the running console/],
      [['audit', 'verify', '--json'], /airlock audit export --out audit\.jsonl.*airlock audit verify --from-file/],
      [['serve'], /its own AIRLOCK_DATA_DIR/],
    ];
    for (const [args, instead] of refused) {
      const result = await airlock(args, { ...env, AIRLOCK_PORT: String(await freePort()) });
      // stderr only: a bootstrap that went through would print a key on stdout.
      const what = `airlock ${args.join(' ')}: ${result.stderr}`;
      expect(result.code, what).not.toBe(0);
      expect(result.stdout === '', `airlock ${args.join(' ')} printed to stdout`).toBe(true);
      const lines = result.stderr.trim().split('\n');
      expect(lines, what).toHaveLength(1);
      expect(lines[0], what).toContain(`in use by airlock serve (pid ${started.pid})`);
      expect(lines[0], what).toMatch(/stop it first/);
      expect(lines[0], what).toMatch(instead);
    }

    // The server was not disturbed: it still answers, with the key bootstrapped before it started.
    const listed = await airlock(['audit', 'list', '--json'], { AIRLOCK_URL: url, AIRLOCK_API_KEY: key });
    expect(listed.code, listed.stderr).toBe(0);
    const actions = (JSON.parse(listed.stdout) as Array<{ action: string }>).map((event) => event.action);
    expect(actions).toContain('api-key-create');

    started.kill('SIGTERM');
    const code = await Promise.race([exited(started), sleep(STOP_TIMEOUT_MS).then(() => 'timeout' as const)]);
    expect(code, log).toBe(0);

    const verified = await airlock(['audit', 'verify', '--json'], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
    // Only one tenant: the refused bootstrap changed nothing.
    const again = await airlock(['bootstrap', '--tenant', 'globex', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect((await airlock(['audit', 'verify', '--json'], env)).code).toBe(0);
  }, TEST_TIMEOUT_MS);
});
