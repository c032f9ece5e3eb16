/**
 * Which audit events raise which alerts. Every security event source already writes the audit
 * trail, so reading it is the one place alerts are derived from; to alert on a new event, add a
 * rule here (and its kind in @airlock/protocol's `alertKinds`).
 *
 * - single events: `scope-denied`, `policy-violation`, failed runs (`run-complete` with outcome
 *   failure, except a policy violation, which has its own alert);
 * - bursts: `agent-request-refused` (bad signatures, replays) and `login-failed` at or above a
 *   threshold within a window, per tenant.
 * Events without a tenant (an unknown agent or API key) cannot be routed to a tenant's webhooks
 * and raise nothing.
 */
import type { AuditRecord } from '@airlock/audit';
import { type AlertKind, type AlertSeverity, truncateText } from '@airlock/protocol';

export interface AlertCandidate {
  tenantId: string;
  kind: AlertKind;
  severity: AlertSeverity;
  /** Repeats with the same key within the dedupe window are counted on one alert. */
  dedupeKey: string;
  target: string | null;
  summary: string;
  details: Record<string, string | number | boolean | null>;
  at: Date;
  /** A standing condition (offline, expiring): dedupes onto any unresolved alert, whatever its age. */
  standing?: boolean;
}

export interface BurstRule {
  action: string;
  kind: AlertKind;
  severity: AlertSeverity;
  describe(count: number, windowMs: number): string;
}

/** Each action here must also be in the partial index `audit_events_bursts` (migration 0008) and the engine's count query. */
export const burstRules: readonly BurstRule[] = [
  {
    action: 'agent-request-refused',
    kind: 'bad-signature-burst',
    severity: 'critical',
    describe: (count, windowMs) => `${count} agent requests refused (bad signature, replay or unknown agent) within ${minutes(windowMs)}`,
  },
  {
    action: 'login-failed',
    kind: 'login-failure-burst',
    severity: 'critical',
    describe: (count, windowMs) => `${count} failed logins within ${minutes(windowMs)}`,
  },
];

function minutes(ms: number): string {
  const value = ms / 60_000;
  return value >= 1 ? `${Number(value.toFixed(1))} min` : `${ms / 1000} s`;
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? truncateText(value, 500) : null;
}

function metaOf(record: AuditRecord): Record<string, unknown> {
  const meta: unknown = record.meta;
  return typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? { ...meta } : {};
}

/** The alert a single audit event raises on its own, if any. Bursts are counted by the engine. */
export function alertForEvent(record: AuditRecord, integrationOfRun: string | null): AlertCandidate | null {
  const tenantId = record.tenantId;
  if (tenantId === null) return null;
  const meta = metaOf(record);
  const at = new Date(record.at);
  const actor = record.actor.id === null ? record.actor.type : `${record.actor.type}:${record.actor.id}`;
  const base = { tenantId, at, target: record.target };
  switch (record.action) {
    case 'scope-denied':
      return {
        ...base,
        kind: 'scope-denied',
        severity: 'warning',
        // Refused at dispatch, the target is the run: repeats are per integration, not per run.
        dedupeKey: `scope-denied:${text(meta['integrationId']) ?? record.target ?? ''}`,
        summary: `Scope denied for ${record.target ?? 'an integration'}: ${text(meta['reason']) ?? 'no grant'}`,
        details: { actor, reason: text(meta['reason']), integrationId: text(meta['integrationId']), auditSeq: record.seq },
      };
    case 'policy-violation':
      return {
        ...base,
        kind: 'policy-violation',
        severity: 'critical',
        dedupeKey: `policy-violation:${record.actor.id ?? ''}:${text(meta['kind']) ?? 'unknown'}`,
        summary: `Agent refused a job outside its local policy (${text(meta['kind']) ?? 'unknown'} side), run ${record.target ?? '?'}`,
        details: { actor, violation: text(meta['kind']), runId: record.target, auditSeq: record.seq },
      };
    case 'run-complete': {
      if (record.outcome !== 'failure' || meta['errorClass'] === 'policy-violation') return null;
      const errorClass = text(meta['errorClass']) ?? 'unknown';
      return {
        ...base,
        kind: 'run-failed',
        severity: 'warning',
        target: integrationOfRun ?? record.target,
        dedupeKey: `run-failed:${integrationOfRun ?? record.target ?? ''}`,
        summary: `Run ${record.target ?? '?'} failed (${errorClass})`,
        details: { actor, runId: record.target, integrationId: integrationOfRun, errorClass, auditSeq: record.seq },
      };
    }
    default:
      return null;
  }
}
