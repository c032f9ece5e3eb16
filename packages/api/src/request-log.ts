/**
 * The API request log's writer. Requests hand it a finished entry and go on: entries wait in a
 * bounded in-memory queue and are written in batches, one multi-row INSERT at a time, off the
 * request path. When the queue is full (the database is slow or down) new entries are dropped and
 * counted, never waited for; the count is logged (at most once per flush) and readable from
 * `stats()`. An entry holds no body, query string, header other than the user agent, or credential.
 *
 * An agent's successful heartbeats, long-polls and wake-up streams are left out: they are its
 * liveness, most of a fleet's requests, and recorded already where
 * they matter (the agent's last-seen time; a job handed out is audited). Every other agent call,
 * and any of them that fails, is logged.
 */
import { escapeUnprintable, REQUEST_LOG_FLUSH_MS } from '@airlock/protocol';
import type { Database, Queryable } from '@airlock/storage';

export type RequestCallerType = 'user' | 'api-key' | 'oauth-client' | 'agent' | 'anonymous';

export interface RequestLogEntry {
  at: Date;
  tenantId: string | null;
  callerType: RequestCallerType;
  callerId: string | null;
  /** The procedure path(s), comma-separated for a batch; only names the router knows. */
  procedure: string;
  method: string;
  status: number;
  /** `OK`, or the error codes of the request (tRPC codes, or an OAuth error). */
  outcome: string;
  latencyMs: number;
  sourceIp: string | null;
  userAgent: string | null;
  requestId: string;
}

export interface RequestLogOptions {
  /** Most entries waiting to be written; beyond it, entries are dropped. Default 10_000. */
  maxQueue?: number;
  /** Most entries in one INSERT. Default 500. */
  batchSize?: number;
  /** How often the queue is written, at the latest, in ms. Default `REQUEST_LOG_FLUSH_MS`. */
  flushMs?: number;
}

export interface RequestLogStats {
  queued: number;
  written: number;
  /** Entries given up: the queue was full, or their batch failed to write. */
  dropped: number;
}

interface Logger {
  warn(meta: Record<string, unknown>, message: string): void;
}

/** The agent calls that are its liveness (see above). */
const LIVENESS = new Set(['agent.heartbeat', 'agent.nextJob', 'agent.wakeups']);

/** Whether an entry is an agent's successful heartbeat, long-poll or wake-up stream (a batch of only those), which the log leaves out. */
export function isAgentLiveness(entry: Pick<RequestLogEntry, 'callerType' | 'procedure' | 'status' | 'outcome'>): boolean {
  return entry.callerType === 'agent' && entry.status < 400 && entry.outcome === 'OK' && entry.procedure.split(',').every((procedure) => LIVENESS.has(procedure));
}

/** Longest user agent kept; the rest is cut. */
const MAX_USER_AGENT = 256;

export class RequestLogWriter {
  readonly #queue: RequestLogEntry[] = [];
  readonly #maxQueue: number;
  readonly #batchSize: number;
  readonly #timer: NodeJS.Timeout;
  #writing: Promise<void> | null = null;
  #written = 0;
  #dropped = 0;
  #droppedReported = 0;
  #closed = false;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
    options: RequestLogOptions = {},
  ) {
    this.#maxQueue = options.maxQueue ?? 10_000;
    this.#batchSize = options.batchSize ?? 500;
    this.#timer = setInterval(() => void this.flush(), options.flushMs ?? REQUEST_LOG_FLUSH_MS);
    this.#timer.unref();
  }

  /** Queues one entry, unless it is an agent's liveness; never waits and never throws. */
  record(entry: RequestLogEntry): void {
    if (isAgentLiveness(entry)) return;
    if (this.#closed || this.#queue.length >= this.#maxQueue) {
      this.#dropped += 1;
      return;
    }
    this.#queue.push({ ...entry, userAgent: cleanUserAgent(entry.userAgent) });
    if (this.#queue.length >= this.#batchSize && this.#writing === null) void this.flush();
  }

  stats(): RequestLogStats {
    return { queued: this.#queue.length, written: this.#written, dropped: this.#dropped };
  }

  /** Writes everything queued now (one batch after another); resolves when done. Never rejects. */
  async flush(): Promise<void> {
    while (this.#writing !== null) await this.#writing;
    this.#writing = this.#drain().finally(() => {
      this.#writing = null;
    });
    await this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#batchSize);
      try {
        await insertEntries(this.db.forSystem(), batch);
        this.#written += batch.length;
      } catch (error) {
        this.#dropped += batch.length;
        this.logger.warn({ entries: batch.length, error: error instanceof Error ? error.message : String(error) }, 'request log batch not written');
        break;
      }
    }
    if (this.#dropped > this.#droppedReported) {
      this.logger.warn({ dropped: this.#dropped - this.#droppedReported, droppedTotal: this.#dropped }, 'request log entries dropped');
      this.#droppedReported = this.#dropped;
    }
  }

  /** Stops the timer and writes what is queued; later entries are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flush();
  }
}

function cleanUserAgent(value: string | null): string | null {
  if (value === null) return null;
  // Control and bidi characters would forge lines on a terminal that shows the log.
  return escapeUnprintable(value.slice(0, MAX_USER_AGENT));
}

/** One statement for the whole batch: each column goes as one array parameter. */
async function insertEntries(db: Queryable, batch: readonly RequestLogEntry[]): Promise<void> {
  await db.query(
    `INSERT INTO request_log (at, tenant_id, caller_type, caller_id, procedure, method, status, outcome, latency_ms, source_ip, user_agent, request_id)
     SELECT * FROM unnest($1::timestamptz[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::int[], $10::text[], $11::text[], $12::uuid[])`,
    [
      batch.map((e) => e.at),
      batch.map((e) => e.tenantId),
      batch.map((e) => e.callerType),
      batch.map((e) => e.callerId),
      batch.map((e) => e.procedure),
      batch.map((e) => e.method),
      batch.map((e) => e.status),
      batch.map((e) => e.outcome),
      batch.map((e) => Math.max(0, Math.round(e.latencyMs))),
      batch.map((e) => e.sourceIp),
      batch.map((e) => e.userAgent),
      batch.map((e) => e.requestId),
    ],
  );
}

export const DEFAULT_REQUEST_LOG_RETENTION_DAYS = 30;

/** Deletes each tenant's entries older than its retention (rows without a tenant: the default). */
export async function pruneRequestLog(db: Queryable, now: Date): Promise<number> {
  // Per tenant, so each delete is a range of the (tenant_id, at) index rather than a scan of the table.
  const rows = await db.query<{ n: string }>(
    `WITH kept AS (
       SELECT t.id AS tenant_id, coalesce(s.retention_days, $2) AS days FROM tenants t LEFT JOIN request_log_settings s ON s.tenant_id = t.id
     ), gone AS (
       DELETE FROM request_log r USING kept k WHERE r.tenant_id = k.tenant_id AND r.at < $1::timestamptz - make_interval(days => k.days) RETURNING 1
     ), gone_anonymous AS (
       DELETE FROM request_log r WHERE r.tenant_id IS NULL AND r.at < $1::timestamptz - make_interval(days => $2) RETURNING 1
     )
     SELECT ((SELECT count(*) FROM gone) + (SELECT count(*) FROM gone_anonymous))::text AS n`,
    [now, DEFAULT_REQUEST_LOG_RETENTION_DAYS],
  );
  return Number(rows[0]?.n ?? '0');
}
