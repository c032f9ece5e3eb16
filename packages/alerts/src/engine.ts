/**
 * The alert engine: one per control-plane replica, ticking like the scheduler. Each tick
 * 1. reads audit events after its cursor in each chain and raises alerts by the rules in `rules.ts`;
 * 2. every `checkIntervalMs`, runs the periodic checks: agents not seen for `agentOfflineMs`,
 *    API keys and the served TLS certificate expiring within their warning windows;
 * 3. sends due deliveries from the outbox (`delivery.ts`).
 * Steps 1 and 2 run in one transaction holding the `alert_engine` row, so with several replicas
 * each event is evaluated once and the cursor moves with the alerts it produced; a replica that
 * finds the row locked skips to step 3.
 */
import type { AuditRecord } from '@airlock/audit';
import { type Database, type Queryable, readChain, Ticker } from '@airlock/storage';
import { type DeliveryOptions, type DeliveryOutcome, defaultDeliveryOptions, deliverDue } from './delivery.ts';
import { type AlertCandidate, alertForEvent, burstRules } from './rules.ts';
import type { SecretBox } from './secret-box.ts';
import { type AlertPolicy, defaultAlertPolicy, raiseAlert } from './store.ts';

export interface AlertThresholds {
  /** A burst alert needs at least `count` events of its action within `windowMs`. Defaults 10 and 300_000. */
  burst: { count: number; windowMs: number };
  /** An active agent not seen for this long is offline, in ms. Default 900_000. */
  agentOfflineMs: number;
  /** Warn this long before an API key expires, in ms. Default 7 days. */
  apiKeyExpiryMs: number;
  /** Warn this long before the served TLS certificate expires, in ms. Default 14 days. */
  tlsExpiryMs: number;
}

export const defaultThresholds: AlertThresholds = {
  burst: { count: 10, windowMs: 300_000 },
  agentOfflineMs: 900_000,
  apiKeyExpiryMs: 7 * 86_400_000,
  tlsExpiryMs: 14 * 86_400_000,
};

export interface AlertEngineOptions {
  db: Database;
  /** Opens destination URLs and secrets. */
  secretBox: SecretBox;
  now?: () => Date;
  /** Time between ticks, in ms. Default 5_000. */
  tickMs?: number;
  /** Time between periodic checks, in ms. Default 60_000. */
  checkIntervalMs?: number;
  /** Most audit events one tick evaluates; the rest wait for the next tick. Default 5_000. */
  maxEventsPerTick?: number;
  thresholds?: Partial<AlertThresholds>;
  policy?: Partial<AlertPolicy>;
  delivery?: Partial<DeliveryOptions>;
  /** The certificate this control plane serves, when it serves HTTPS. */
  tlsCertificate?: { validTo: Date; fingerprint256: string } | null;
  logger: { warn(meta: Record<string, unknown>, message: string): void; error(meta: Record<string, unknown>, message: string): void };
}

export interface TickResult {
  /** Audit events evaluated; null when another replica held the engine row. */
  events: number | null;
  raised: AlertCandidate[];
  deliveries: DeliveryOutcome[];
}

const PAGE = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class AlertEngine {
  readonly #db: Database;
  readonly #box: SecretBox;
  readonly #now: () => Date;
  readonly #ticker: Ticker;
  readonly #checkIntervalMs: number;
  readonly #maxEvents: number;
  readonly #thresholds: AlertThresholds;
  readonly #policy: AlertPolicy;
  readonly #delivery: DeliveryOptions;
  readonly #tls: AlertEngineOptions['tlsCertificate'];
  readonly #logger: AlertEngineOptions['logger'];

  constructor(options: AlertEngineOptions) {
    this.#db = options.db;
    this.#box = options.secretBox;
    this.#now = options.now ?? (() => new Date());
    this.#ticker = new Ticker(() => this.tick(), options.tickMs ?? 5_000, (error: unknown) => this.#logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'alert engine tick failed'));
    this.#checkIntervalMs = options.checkIntervalMs ?? 60_000;
    this.#maxEvents = options.maxEventsPerTick ?? 5_000;
    this.#thresholds = { ...defaultThresholds, ...options.thresholds };
    this.#policy = { ...defaultAlertPolicy, ...options.policy };
    this.#delivery = { ...defaultDeliveryOptions, ...options.delivery };
    this.#tls = options.tlsCertificate ?? null;
    this.#logger = options.logger;
  }

  /** Ticks now and then every `tickMs` until `stop()`. Ticks never overlap within one engine. */
  start(): void {
    this.#ticker.start();
  }

  /** Stops ticking and waits for a tick in progress, so the database can be closed after it. */
  async stop(): Promise<void> {
    await this.#ticker.stop();
  }

  async tick(): Promise<TickResult> {
    const evaluated = await this.evaluate();
    const deliveries = await deliverDue(this.#db, this.#box, this.#delivery, this.#now);
    for (const outcome of deliveries) {
      if (outcome.result === 'failed') this.#logger.warn({ deliveryId: outcome.deliveryId, alertId: outcome.alertId, error: outcome.error }, 'alert delivery given up');
    }
    return { ...evaluated, deliveries };
  }

  /** Steps 1 and 2: new audit events and, when due, the periodic checks. */
  async evaluate(): Promise<Omit<TickResult, 'deliveries'>> {
    return this.#db.transaction(async (tx) => {
      const [state] = await tx.query<{ audit_seq: string; checked_at: Date | null }>(
        'SELECT audit_seq::text AS audit_seq, checked_at FROM alert_engine WHERE singleton FOR UPDATE SKIP LOCKED',
      );
      if (!state) return { events: null, raised: [] };
      const now = this.#now();
      const raised: AlertCandidate[] = [];
      // Each chain from its own cursor: records of one chain commit in seq order, of different
      // chains in no order, so one cursor across chains would pass over a late commit.
      const chains = await tx.query<{ tenant_id: string | null; chain: string; head: string; cursor: string }>(
        `SELECT h.tenant_id, h.chain::text AS chain, h.seq::text AS head, coalesce(c.seq, $1)::text AS cursor
         FROM audit_chain_heads h LEFT JOIN alert_engine_chains c ON c.chain = h.chain
         WHERE h.seq > coalesce(c.seq, $1) ORDER BY h.chain`,
        [state.audit_seq],
      );
      let events = 0;
      for (const chain of chains) {
        if (events >= this.#maxEvents) break;
        let cursor = Number(chain.cursor);
        for (;;) {
          const want = Math.min(PAGE, this.#maxEvents - events);
          const page = await readChain(tx, chain.tenant_id, cursor, want, Number(chain.head));
          for (const record of page) {
            await this.#evaluateEvent(tx, record, raised, now);
            cursor = record.seq;
          }
          events += page.length;
          // Read to the head it had when this tick began: a chain with legacy records only stops there too.
          if (page.length < want) cursor = Number(chain.head);
          if (page.length < want || events >= this.#maxEvents) break;
        }
        await tx.query('INSERT INTO alert_engine_chains (chain, seq) VALUES ($1, $2) ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq', [chain.chain, cursor]);
      }
      const checksDue = state.checked_at === null || now.getTime() - state.checked_at.getTime() >= this.#checkIntervalMs;
      if (checksDue) {
        for (const candidate of await this.#periodic(tx, now)) {
          if ((await raiseAlert(tx, candidate, this.#policy, now)).created) raised.push(candidate);
        }
      }
      await tx.query('UPDATE alert_engine SET checked_at = CASE WHEN $1 THEN $2 ELSE checked_at END WHERE singleton', [checksDue, now]);
      return { events, raised };
    });
  }

  /** An event whose evaluation fails is logged and passed over: one bad event must not stall alerting. */
  async #evaluateEvent(tx: Queryable, record: AuditRecord, raised: AlertCandidate[], now: Date): Promise<void> {
    await tx.query('SAVEPOINT alert_event');
    try {
      for (const candidate of await this.#candidatesFor(tx, record)) {
        if ((await raiseAlert(tx, candidate, this.#policy, now)).created) raised.push(candidate);
      }
      await tx.query('RELEASE SAVEPOINT alert_event');
    } catch (error) {
      await tx.query('ROLLBACK TO SAVEPOINT alert_event');
      this.#logger.error({ seq: record.seq, action: record.action, error: error instanceof Error ? error.message : String(error) }, 'alert rule failed on an audit event');
    }
  }

  async #candidatesFor(tx: Queryable, record: AuditRecord): Promise<AlertCandidate[]> {
    const candidates: AlertCandidate[] = [];
    let integration: string | null = null;
    if (record.action === 'run-complete' && record.outcome === 'failure' && record.target !== null && UUID.test(record.target)) {
      const [run] = await tx.query<{ integration_id: string }>('SELECT integration_id FROM runs WHERE id = $1', [record.target]);
      integration = run?.integration_id ?? null;
    }
    const single = alertForEvent(record, integration);
    if (single) candidates.push(single);
    const rule = burstRules.find((candidate) => candidate.action === record.action);
    if (rule && record.tenantId !== null) {
      const { count, windowMs } = this.#thresholds.burst;
      const at = new Date(record.at);
      const [seen] = await tx.query<{ n: number }>(
        // The constant IN list matches the partial index's predicate, so the planner may use it.
        `SELECT count(*)::int AS n FROM audit_events
         WHERE action IN ('agent-request-refused', 'login-failed') AND action = $1 AND tenant_id = $2 AND at > $3 AND seq <= $4`,
        [record.action, record.tenantId, new Date(at.getTime() - windowMs), record.seq],
      );
      const n = seen?.n ?? 0;
      if (n >= count) {
        candidates.push({
          tenantId: record.tenantId,
          kind: rule.kind,
          severity: rule.severity,
          dedupeKey: `${rule.kind}:${record.tenantId}`,
          target: null,
          summary: rule.describe(n, windowMs),
          details: { action: record.action, countInWindow: n, windowMs, threshold: count, lastAuditSeq: record.seq },
          at,
        });
      }
    }
    return candidates;
  }

  async #periodic(tx: Queryable, now: Date): Promise<AlertCandidate[]> {
    const { agentOfflineMs, apiKeyExpiryMs, tlsExpiryMs } = this.#thresholds;
    const offlineSince = new Date(now.getTime() - agentOfflineMs);
    // An agent back online (or revoked) ends its offline alert.
    await tx.query(
      `UPDATE alerts SET state = 'resolved', resolved_at = $1, resolved_by = 'system:alerts'
       WHERE kind = 'agent-offline' AND state <> 'resolved'
         AND target IN (SELECT id::text FROM agents WHERE status <> 'active' OR coalesce(last_seen_at, enrolled_at) >= $2)`,
      [now, offlineSince],
    );
    const candidates: AlertCandidate[] = [];
    const offline = await tx.query<{ id: string; tenant_id: string; hostname: string; seen: Date }>(
      `SELECT id, tenant_id, hostname, coalesce(last_seen_at, enrolled_at) AS seen FROM agents
       WHERE status = 'active' AND coalesce(last_seen_at, enrolled_at) < $1 ORDER BY id`,
      [offlineSince],
    );
    for (const agent of offline) {
      candidates.push({
        tenantId: agent.tenant_id,
        kind: 'agent-offline',
        severity: 'warning',
        dedupeKey: `agent-offline:${agent.id}`,
        target: agent.id,
        summary: `Agent ${agent.hostname} not seen since ${agent.seen.toISOString()}`,
        details: { agentId: agent.id, hostname: agent.hostname, lastSeenAt: agent.seen.toISOString(), thresholdMs: agentOfflineMs },
        at: now,
        standing: true,
      });
    }
    const keys = await tx.query<{ id: string; tenant_id: string; name: string; prefix: string; expires_at: Date }>(
      `SELECT id, tenant_id, name, prefix, expires_at FROM api_keys
       WHERE revoked_at IS NULL AND expires_at > $1 AND expires_at <= $2 ORDER BY id`,
      [now, new Date(now.getTime() + apiKeyExpiryMs)],
    );
    for (const key of keys) {
      candidates.push({
        tenantId: key.tenant_id,
        kind: 'api-key-expiring',
        severity: 'warning',
        dedupeKey: `api-key-expiring:${key.id}`,
        target: key.id,
        summary: `API key ${key.name} (${key.prefix}) expires at ${key.expires_at.toISOString()}`,
        details: { keyId: key.id, prefix: key.prefix, expiresAt: key.expires_at.toISOString() },
        at: now,
        standing: true,
      });
    }
    const tls = this.#tls;
    if (tls && tls.validTo.getTime() - now.getTime() <= tlsExpiryMs) {
      // The certificate is the whole control plane's: every tenant's admins hear about it.
      const tenants = await tx.query<{ id: string }>('SELECT id FROM tenants ORDER BY id');
      const expired = tls.validTo <= now;
      for (const tenant of tenants) {
        candidates.push({
          tenantId: tenant.id,
          kind: 'tls-certificate-expiring',
          severity: expired ? 'critical' : 'warning',
          dedupeKey: `tls-certificate-expiring:${tls.fingerprint256}`,
          target: tls.fingerprint256,
          summary: `The control plane's TLS certificate ${expired ? 'expired' : 'expires'} at ${tls.validTo.toISOString()}`,
          details: { fingerprint256: tls.fingerprint256, validTo: tls.validTo.toISOString() },
          at: now,
          standing: true,
        });
      }
    }
    return candidates;
  }
}
