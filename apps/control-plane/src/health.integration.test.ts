import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestPostgres } from '@airlock/testing';
import { loadServerConfig } from './config.ts';
import { type RunningServer, startServer } from './server.ts';

interface Readiness {
  ready: boolean;
  failed: string[];
  checks: Record<string, string>;
}

async function readiness(base: string): Promise<{ status: number; body: Readiness }> {
  const response = await fetch(`${base}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness };
}

/** Bounded: PostgreSQL restarts within seconds, and the pool reconnects on the next query. */
async function waitForReady(base: string, withinMs: number): Promise<{ status: number; body: Readiness }> {
  const deadline = Date.now() + withinMs;
  let last = await readiness(base);
  while (last.status !== 200 && Date.now() < deadline) {
    await sleep(200);
    last = await readiness(base);
  }
  return last;
}

describe('[operations:metrics] health, readiness and the metrics listener of a control plane on PostgreSQL', () => {
  let postgres: TestPostgres;
  let server: RunningServer;
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-health-'));
    postgres = await startPostgres();
    const databaseUrl = await postgres.createDatabase();
    server = await startServer(
      loadServerConfig({
        DATABASE_URL: databaseUrl,
        AIRLOCK_PORT: '0',
        AIRLOCK_METRICS_PORT: '0',
        AIRLOCK_DATA_DIR: path.join(work, 'data'),
        AIRLOCK_CONSOLE_DIR: 'off',
        AIRLOCK_LOG_LEVEL: 'silent',
        AIRLOCK_DB_QUEUE_TIMEOUT_MS: '1000',
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await postgres?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('[operations:metrics] answers /readyz 503 naming the database while PostgreSQL is stopped, and 200 again after it restarts', async () => {
    const metricsUrl = server.metricsUrl ?? '';
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const base of [server.url, metricsUrl]) {
      const ready = await readiness(base);
      expect(ready.status, base).toBe(200);
      expect(ready.body).toEqual({ ready: true, failed: [], checks: { database: 'ok', migrations: 'ok', signingKey: 'ok' } });
    }

    await postgres.pause();
    try {
      for (const base of [server.url, metricsUrl]) {
        const down = await readiness(base);
        expect(down.status, base).toBe(503);
        expect(down.body.ready).toBe(false);
        expect(down.body.failed).toContain('database');
        expect(down.body.checks['signingKey']).toBe('ok');
        // The reason says what kind of failure, never the driver's message with the server's address.
        expect(JSON.stringify(down.body)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|postgres/);
        // Alive all the same: a liveness probe must not restart a process for its database's outage.
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
      }
    } finally {
      await postgres.resume();
    }

    const back = await waitForReady(server.url, 20_000);
    expect(back.status).toBe(200);
    expect(back.body.ready).toBe(true);
    expect((await waitForReady(metricsUrl, 5_000)).status).toBe(200);
  }, 60_000);

  it('[operations:metrics] is not ready while a migration this build knows is not applied', async () => {
    const [latest] = await server.db.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1');
    if (!latest) throw new Error('no migration applied');
    await server.db.query('DELETE FROM schema_migrations WHERE version = $1', [latest.version]);
    try {
      const pending = await readiness(server.url);
      expect(pending.status).toBe(503);
      expect(pending.body.failed).toEqual(['migrations']);
      expect(pending.body.checks['migrations']).toBe(`1 pending, from ${latest.name}`);
    } finally {
      await server.db.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [latest.version, latest.name]);
    }
    expect((await readiness(server.url)).status).toBe(200);
  });

  it('[operations:metrics] serves /metrics on its own listener only, in Prometheus text format', async () => {
    const onApi = await fetch(`${server.url}/metrics`);
    expect(onApi.status).toBe(404);
    await fetch(`${server.url}/trpc/me.get`);
    const scrape = await fetch(`${server.metricsUrl ?? ''}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await scrape.text();
    expect(text).toMatch(/^# TYPE airlock_http_requests_total counter$/m);
    expect(text).toMatch(/^airlock_http_requests_total\{route="readyz",method="GET",code="503"\} [1-9]/m);
    expect(text).toMatch(/^airlock_db_pool_connections\{state="total"\} \d+$/m);
    expect(text).toMatch(/^airlock_db_pool_max 10$/m);
    expect(text).toMatch(/^airlock_metrics_database_up 1$/m);
    expect((await fetch(`${server.metricsUrl ?? ''}/anything`)).status).toBe(404);
  });
});
