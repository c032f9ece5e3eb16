import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentMetrics } from '@airlock/agent';
import { connectPostgres, createMetrics, type Database, migrate } from '@airlock/storage';
import { createTestDatabase } from '@airlock/testing';
import { metricFamilies } from './prometheus.ts';
import { REPO_ROOT } from './system.ts';

const DASHBOARD = path.join(REPO_ROOT, 'docs', 'grafana', 'airlock.json');

interface Target {
  expr?: unknown;
}
interface Panel {
  title?: unknown;
  targets?: Target[];
}

/** Every PromQL expression of the dashboard: its panels' queries and its template variables'. */
function expressionsOf(dashboard: { panels?: Panel[]; templating?: { list?: Array<{ query?: unknown }> } }): string[] {
  const expressions: string[] = [];
  for (const panel of dashboard.panels ?? []) for (const target of panel.targets ?? []) if (typeof target.expr === 'string') expressions.push(target.expr);
  for (const variable of dashboard.templating?.list ?? []) {
    const query = variable.query;
    if (typeof query === 'object' && query !== null && 'query' in query && typeof query.query === 'string') expressions.push(query.query);
  }
  return expressions;
}

/** The series a histogram or summary exposes under its family's name. */
const SUFFIXES = ['_bucket', '_sum', '_count'];

describe('[operations:metrics] the Grafana dashboard', () => {
  let db: Database;
  let work: string;
  let exported: Map<string, string>;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'airlock-dashboard-'));
    db = connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 2 });
    await migrate(db);
    const controlPlane = await createMetrics(db).text();
    const file = path.join(work, 'agent.prom');
    const agent = new AgentMetrics({ agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', version: '1.0.0', proxy: false, file });
    await agent.write();
    exported = new Map([...metricFamilies(controlPlane), ...metricFamilies(await readFile(file, 'utf8'))]);
  });

  afterAll(async () => {
    await db?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('[operations:metrics] queries only metrics that the control plane or the agent exports', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels?: Panel[] };
    const expressions = expressionsOf(dashboard);
    expect(expressions.length).toBeGreaterThan(20);
    const queried = new Set(expressions.flatMap((expression) => [...expression.matchAll(/\bairlock_[a-z0-9_]+/g)].map((match) => match[0])));
    const missing: string[] = [];
    for (const name of queried) {
      if (exported.has(name)) continue;
      const family = SUFFIXES.filter((suffix) => name.endsWith(suffix)).map((suffix) => name.slice(0, -suffix.length)).find((base) => exported.has(base));
      // A `_bucket` series belongs to a histogram only.
      if (family !== undefined && (exported.get(family) === 'histogram' || !name.endsWith('_bucket'))) continue;
      missing.push(name);
    }
    expect(missing).toEqual([]);
    // Every metric the issue names has a panel.
    for (const name of [
      'airlock_http_requests_total',
      'airlock_trpc_request_duration_seconds_bucket',
      'airlock_agents',
      'airlock_runs',
      'airlock_delivered_bytes',
      'airlock_run_queue_depth',
      'airlock_run_queue_oldest_seconds',
      'airlock_audit_append_duration_seconds_bucket',
      'airlock_rate_limit_refusals_total',
      'airlock_alert_deliveries',
      'airlock_db_pool_connections',
      'airlock_agent_info',
    ]) {
      expect(queried.has(name), name).toBe(true);
    }
  });

  it('[operations:metrics] lays its panels out on the 24-column grid without overlap', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Array<{ title: string; gridPos: { x: number; y: number; w: number; h: number } }> };
    const cells = new Map<string, string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      for (let row = y; row < y + h; row++) {
        for (let column = x; column < x + w; column++) {
          const key = `${row}:${column}`;
          expect(cells.get(key), `${panel.title} overlaps`).toBeUndefined();
          cells.set(key, panel.title);
        }
      }
    }
  });
});
