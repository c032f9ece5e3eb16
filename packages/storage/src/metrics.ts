/**
 * The control plane's Prometheus metrics (prom-client). Two kinds:
 *
 * - `processMetrics`: counters and histograms this process updates as it works (HTTP and tRPC
 *   requests, audit appends, rate-limit refusals) and Node's own process metrics. Prometheus sums
 *   them over replicas and copes with their reset at a restart.
 * - `createMetrics(db)`: gauges read from the database at scrape time (agents by state, runs by
 *   outcome, bytes delivered, the run queue, alert deliveries, each agent's heartbeat summary) and
 *   the connection pool. They describe the whole deployment, so every replica reports the same
 *   values; dashboards take `max` over instances. The database work is done at most once per
 *   `METRICS_DB_REFRESH_MS`, however often it is scraped.
 *
 * Labels never carry tenant data beyond tenant and agent ids, and never a secret: procedures are
 * the router's own names, codes are tRPC codes or HTTP statuses, limits are the limit's kind.
 * To add a metric: a process metric goes in `processMetrics`; a database one gets its query in
 * `readSnapshot` and its gauge in `createMetrics`. The dashboard (docs/grafana/airlock.json) and its
 * test list every metric it queries.
 */
import { AGENT_LOST_AFTER_MS, AGENT_ONLINE_WITHIN_MS, type HeartbeatSummary, heartbeatSummary, METRICS_DB_REFRESH_MS } from '@airlock/protocol';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from './database.ts';

const processRegistry = new Registry();
collectDefaultMetrics({ register: processRegistry, prefix: 'airlock_' });

/** Request latencies span a cached read (a millisecond) to a held long-poll (30 s). */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const processMetrics = {
  httpRequests: new Counter({
    name: 'airlock_http_requests_total',
    help: 'HTTP requests by route (trpc, oauth_token, console, healthz, readyz, sso, well_known, not_found), method and status code.',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [processRegistry],
  }),
  httpSeconds: new Histogram({
    name: 'airlock_http_request_duration_seconds',
    help: 'HTTP request latency by route and status code, from the first byte read to the last written.',
    labelNames: ['route', 'code'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [processRegistry],
  }),
  trpcRequests: new Counter({
    name: 'airlock_trpc_requests_total',
    help: 'tRPC calls by procedure and result code (OK or the tRPC error code); each call of a batch counts.',
    labelNames: ['procedure', 'code'] as const,
    registers: [processRegistry],
  }),
  trpcSeconds: new Histogram({
    name: 'airlock_trpc_request_duration_seconds',
    help: 'tRPC call latency by procedure and result code (a batched call is timed with its batch).',
    labelNames: ['procedure', 'code'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [processRegistry],
  }),
  auditAppendSeconds: new Histogram({
    name: 'airlock_audit_append_duration_seconds',
    help: 'Time to append one audit event, including the wait for its chain head.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [processRegistry],
  }),
  rateLimitRefusals: new Counter({
    name: 'airlock_rate_limit_refusals_total',
    help: 'Operations refused by a rate limit, by limit (api-key, oauth-client, session, agent, ip).',
    labelNames: ['limit'] as const,
    registers: [processRegistry],
  }),
};

/** One agent's heartbeat summary as the metrics read it. */
interface AgentSummaryRow {
  agent_id: string;
  tenant_id: string;
  summary: unknown;
  last_seen_at: Date | null;
}

interface Snapshot {
  agents: Array<{ tenant_id: string; state: string; count: string }>;
  runs: Array<{ tenant_id: string; status: string; count: string }>;
  delivered: Array<{ tenant_id: string; bytes: string; files: string }>;
  queue: Array<{ tenant_id: string; depth: string; oldest_seconds: number | null }>;
  deliveries: Array<{ tenant_id: string; state: string; count: string }>;
  summaries: Array<{ agentId: string; tenantId: string; summary: HeartbeatSummary; lastSeenAt: Date | null }>;
}

async function readSnapshot(db: Database, now: Date): Promise<Snapshot> {
  const system = db.forSystem();
  // The state boundaries are the protocol's: the console's "online" and the run-abandoning "lost".
  const agents = await system.query<Snapshot['agents'][number]>(
    `SELECT tenant_id, CASE
       WHEN status = 'revoked' THEN 'revoked'
       WHEN last_seen_at >= $1::timestamptz - make_interval(secs => $2::double precision / 1000) THEN 'online'
       WHEN last_seen_at >= $1::timestamptz - make_interval(secs => $3::double precision / 1000) THEN 'offline'
       ELSE 'lost' END AS state, count(*)::text AS count
     FROM agents GROUP BY 1, 2`,
    [now, AGENT_ONLINE_WITHIN_MS, AGENT_LOST_AFTER_MS],
  );
  const runs = await system.query<Snapshot['runs'][number]>('SELECT tenant_id, status, count(*)::text AS count FROM runs GROUP BY 1, 2');
  // Reports are validated at the door (runReport): bytesOut is a non-negative integer and files an array.
  const delivered = await system.query<Snapshot['delivered'][number]>(
    `SELECT tenant_id, coalesce(sum((report->>'bytesOut')::bigint), 0)::text AS bytes, coalesce(sum(jsonb_array_length(report->'files')), 0)::text AS files
     FROM runs WHERE report IS NOT NULL GROUP BY 1`,
  );
  const queue = await system.query<Snapshot['queue'][number]>(
    `SELECT tenant_id, count(*)::text AS depth, extract(epoch FROM ($1::timestamptz - min(created_at)))::float8 AS oldest_seconds
     FROM runs WHERE status = 'queued' GROUP BY 1`,
    [now],
  );
  const deliveries = await system.query<Snapshot['deliveries'][number]>('SELECT tenant_id, state, count(*)::text AS count FROM alert_deliveries GROUP BY 1, 2');
  const rows = await system.query<AgentSummaryRow>(
    "SELECT s.agent_id, s.tenant_id, s.summary, a.last_seen_at FROM agent_summaries s JOIN agents a ON a.id = s.agent_id WHERE a.status = 'active'",
  );
  const summaries: Snapshot['summaries'] = [];
  for (const row of rows) {
    // Stored from a validated heartbeat; parsed again so a row from an older schema is skipped, not exported half-read.
    const parsed = heartbeatSummary.safeParse(row.summary);
    if (parsed.success) summaries.push({ agentId: row.agent_id, tenantId: row.tenant_id, summary: parsed.data, lastSeenAt: row.last_seen_at });
  }
  return { agents, runs, delivered, queue, deliveries, summaries };
}

export interface Metrics {
  /** The Prometheus text exposition of every metric. */
  text(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  now?: () => Date;
  /** How long a database snapshot is reused (ms). Default `METRICS_DB_REFRESH_MS`. */
  refreshMs?: number;
}

/** The metrics of one control plane over `db`: the process metrics plus the database's gauges. */
export function createMetrics(db: Database, options: MetricsOptions = {}): Metrics {
  const now = options.now ?? (() => new Date());
  const refreshMs = options.refreshMs ?? METRICS_DB_REFRESH_MS;
  const registry = new Registry();
  let last: { at: number; snapshot: Promise<Snapshot | null> } | null = null;
  let good: Snapshot | null = null;
  let up = 0;
  /** Shared by every gauge of one scrape; a failed read keeps the last good values and says so in `airlock_metrics_database_up`. */
  const snapshot = (): Promise<Snapshot | null> => {
    const at = Date.now();
    if (last && at - last.at < refreshMs) return last.snapshot;
    const pending = readSnapshot(db, now()).then(
      (value) => {
        good = value;
        up = 1;
        return value;
      },
      () => {
        up = 0;
        return good;
      },
    );
    last = { at, snapshot: pending };
    return pending;
  };

  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (gauge: Gauge<L>, data: Snapshot) => void) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const data = await snapshot();
        this.reset();
        if (data) fill(this, data);
      },
    });

  new Gauge({
    name: 'airlock_metrics_database_up',
    help: '1 when the last read of the database-derived metrics succeeded; 0 when they are the last good values.',
    registers: [registry],
    async collect() {
      await snapshot();
      this.set(up);
    },
  });
  gauge('airlock_agents', 'Agents by tenant and state (online, offline, lost, revoked).', ['tenant_id', 'state'], (g, data) => {
    for (const row of data.agents) g.set({ tenant_id: row.tenant_id, state: row.state }, Number(row.count));
  });
  gauge('airlock_runs', 'Runs by tenant and outcome (queued, running, succeeded, failed, cancelled), since the database began.', ['tenant_id', 'outcome'], (g, data) => {
    for (const row of data.runs) g.set({ tenant_id: row.tenant_id, outcome: row.status }, Number(row.count));
  });
  gauge('airlock_delivered_bytes', 'Ciphertext bytes delivered, by tenant, as the agents reported them.', ['tenant_id'], (g, data) => {
    for (const row of data.delivered) g.set({ tenant_id: row.tenant_id }, Number(row.bytes));
  });
  gauge('airlock_delivered_files', 'Files delivered, by tenant, as the agents reported them.', ['tenant_id'], (g, data) => {
    for (const row of data.delivered) g.set({ tenant_id: row.tenant_id }, Number(row.files));
  });
  gauge('airlock_run_queue_depth', 'Runs waiting for an agent, by tenant.', ['tenant_id'], (g, data) => {
    for (const row of data.queue) g.set({ tenant_id: row.tenant_id }, Number(row.depth));
  });
  gauge('airlock_run_queue_oldest_seconds', 'Age of the oldest run waiting for an agent, by tenant.', ['tenant_id'], (g, data) => {
    for (const row of data.queue) g.set({ tenant_id: row.tenant_id }, Math.max(0, row.oldest_seconds ?? 0));
  });
  gauge('airlock_alert_deliveries', 'Alert webhook deliveries by tenant and state (pending, delivered, failed, throttled).', ['tenant_id', 'state'], (g, data) => {
    for (const row of data.deliveries) g.set({ tenant_id: row.tenant_id, state: row.state }, Number(row.count));
  });
  const perAgent = ['tenant_id', 'agent_id'] as const;
  gauge('airlock_agent_info', "An active agent's version, from its heartbeat summary (always 1).", [...perAgent, 'version'], (g, data) => {
    for (const s of data.summaries) g.set({ tenant_id: s.tenantId, agent_id: s.agentId, version: s.summary.version }, 1);
  });
  gauge('airlock_agent_runs', 'Runs an agent finished since it started, by outcome, from its heartbeat summary.', [...perAgent, 'outcome'], (g, data) => {
    for (const s of data.summaries) {
      g.set({ tenant_id: s.tenantId, agent_id: s.agentId, outcome: 'succeeded' }, s.summary.runs.succeeded);
      g.set({ tenant_id: s.tenantId, agent_id: s.agentId, outcome: 'failed' }, s.summary.runs.failed);
    }
  });
  const summaryGauge = (name: string, help: string, value: (s: Snapshot['summaries'][number]) => number) =>
    gauge(name, help, perAgent, (g, data) => {
      for (const s of data.summaries) g.set({ tenant_id: s.tenantId, agent_id: s.agentId }, value(s));
    });
  summaryGauge('airlock_agent_delivered_bytes', 'Ciphertext bytes an agent delivered since it started, from its heartbeat summary.', (s) => s.summary.bytesDelivered);
  summaryGauge('airlock_agent_delivered_files', 'Files an agent delivered since it started, from its heartbeat summary.', (s) => s.summary.filesDelivered);
  summaryGauge('airlock_agent_outbox_depth', "Reports waiting in an agent's outbox, from its heartbeat summary.", (s) => s.summary.outboxDepth);
  summaryGauge('airlock_agent_proxy', "1 when an agent's control channel goes through an HTTP proxy.", (s) => (s.summary.proxy ? 1 : 0));
  summaryGauge('airlock_agent_error', '1 when an agent reports a last error since it started (the console shows it).', (s) => (s.summary.lastError === null ? 0 : 1));
  summaryGauge('airlock_agent_start_time_seconds', 'When an agent process started, in Unix seconds.', (s) => Date.parse(s.summary.startedAt) / 1000);
  summaryGauge('airlock_agent_last_seen_seconds', 'When an agent was last heard from, in Unix seconds.', (s) => (s.lastSeenAt ? s.lastSeenAt.getTime() / 1000 : 0));

  new Gauge({
    name: 'airlock_db_pool_connections',
    help: "This replica's database connections by state (total, idle, waiting: requests queued for one).",
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const stats = db.poolStats();
      this.reset();
      if (!stats) return;
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
  new Gauge({
    name: 'airlock_db_pool_max',
    help: "The most connections this replica's pool opens (absent for the embedded database).",
    registers: [registry],
    collect() {
      const stats = db.poolStats();
      this.reset();
      if (stats) this.set(stats.max);
    },
  });

  const merged = Registry.merge([processRegistry, registry]);
  return {
    text: () => merged.metrics(),
    contentType: merged.contentType,
  };
}
