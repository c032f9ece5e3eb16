/** Alert rows: raising with dedupe, the outbox rows a new alert creates (throttled per destination), and reading them back. */
import { type AlertKind, alertSeverities, type AlertSeverity, type AlertState } from '@airlock/protocol';
import type { Queryable } from '@airlock/storage';
import type { AlertView } from './payload.ts';
import type { AlertCandidate } from './rules.ts';

export interface AlertPolicy {
  /** A repeat of a dedupe key within this many ms counts on the existing alert. Default 3_600_000. */
  dedupeWindowMs: number;
  /** At most `maxDeliveries` deliveries per destination per `windowMs`; the rest are recorded as throttled. */
  throttle: { maxDeliveries: number; windowMs: number };
}

export const defaultAlertPolicy: AlertPolicy = { dedupeWindowMs: 3_600_000, throttle: { maxDeliveries: 20, windowMs: 600_000 } };

export interface RaiseResult {
  alertId: string;
  created: boolean;
  deliveries: { pending: number; throttled: number };
}

export async function raiseAlert(tx: Queryable, candidate: AlertCandidate, policy: AlertPolicy, now: Date): Promise<RaiseResult> {
  const since = new Date(candidate.at.getTime() - policy.dedupeWindowMs);
  const [existing] = await tx.query<{ id: string }>(
    `SELECT id FROM alerts WHERE tenant_id = $1 AND dedupe_key = $2 AND state <> 'resolved' AND ($3::boolean OR last_seen_at >= $4)
     ORDER BY last_seen_at DESC LIMIT 1 FOR UPDATE`,
    [candidate.tenantId, candidate.dedupeKey, candidate.standing ?? false, since],
  );
  if (existing) {
    // A standing condition seen again by a periodic check is the same occurrence, not a new one.
    await tx.query(
      `UPDATE alerts SET count = count + CASE WHEN $2 THEN 0 ELSE 1 END, last_seen_at = greatest(last_seen_at, $3),
         summary = $4, details = $5 WHERE id = $1`,
      [existing.id, candidate.standing ?? false, candidate.at, candidate.summary, JSON.stringify(candidate.details)],
    );
    return { alertId: existing.id, created: false, deliveries: { pending: 0, throttled: 0 } };
  }
  const [row] = await tx.query<{ id: string }>(
    `INSERT INTO alerts (tenant_id, kind, severity, dedupe_key, target, summary, details, first_seen_at, last_seen_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
    [candidate.tenantId, candidate.kind, candidate.severity, candidate.dedupeKey, candidate.target, candidate.summary, JSON.stringify(candidate.details), candidate.at],
  );
  if (!row) throw new Error('alert insert returned nothing');
  return { alertId: row.id, created: true, deliveries: await enqueueDeliveries(tx, { ...candidate, alertId: row.id }, policy, now) };
}

async function enqueueDeliveries(
  tx: Queryable,
  alert: { alertId: string; tenantId: string; kind: AlertKind; severity: AlertSeverity },
  policy: AlertPolicy,
  now: Date,
): Promise<RaiseResult['deliveries']> {
  const destinations = await tx.query<{ id: string }>(
    `SELECT id FROM alert_destinations
     WHERE tenant_id = $1 AND enabled AND (cardinality(kinds) = 0 OR $2 = ANY(kinds))
       AND array_position($4::text[], min_severity) <= array_position($4::text[], $3)
     ORDER BY created_at`,
    [alert.tenantId, alert.kind, alert.severity, alertSeverities],
  );
  const result = { pending: 0, throttled: 0 };
  for (const destination of destinations) {
    const [recent] = await tx.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM alert_deliveries WHERE destination_id = $1 AND created_at > $2 AND state <> 'throttled'`,
      [destination.id, new Date(now.getTime() - policy.throttle.windowMs)],
    );
    const throttled = (recent?.n ?? 0) >= policy.throttle.maxDeliveries;
    await tx.query(
      `INSERT INTO alert_deliveries (tenant_id, alert_id, destination_id, state, next_attempt_at, created_at, finished_at, last_error)
       VALUES ($1, $2, $3, $4, $5, $5, $6, $7)`,
      [alert.tenantId, alert.alertId, destination.id, throttled ? 'throttled' : 'pending', now, throttled ? now : null, throttled ? 'throttled: too many deliveries to this destination' : null],
    );
    result[throttled ? 'throttled' : 'pending'] += 1;
  }
  return result;
}

interface AlertRow {
  id: string;
  tenant_id: string;
  kind: AlertKind;
  severity: AlertSeverity;
  state: AlertState;
  target: string | null;
  summary: string;
  details: Record<string, unknown>;
  count: number;
  first_seen_at: Date;
  last_seen_at: Date;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  resolved_at: Date | null;
  resolved_by: string | null;
}

export const ALERT_COLUMNS = `id, tenant_id, kind, severity, state, target, summary, details, count, first_seen_at, last_seen_at,
  acknowledged_at, acknowledged_by, resolved_at, resolved_by`;

export function alertView(row: AlertRow): AlertView {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    kind: row.kind,
    severity: row.severity,
    state: row.state,
    target: row.target,
    summary: row.summary,
    details: row.details,
    count: row.count,
    firstSeenAt: row.first_seen_at.toISOString(),
    lastSeenAt: row.last_seen_at.toISOString(),
  };
}

export function alertListing(row: AlertRow) {
  return {
    ...alertView(row),
    acknowledgedAt: row.acknowledged_at?.toISOString() ?? null,
    acknowledgedBy: row.acknowledged_by,
    resolvedAt: row.resolved_at?.toISOString() ?? null,
    resolvedBy: row.resolved_by,
  };
}

export type { AlertRow };
