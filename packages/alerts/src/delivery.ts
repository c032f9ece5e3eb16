/**
 * The outbox worker. A due delivery is claimed with a lease (attempts + 1, next attempt pushed past
 * the send timeout) in one short transaction, sent outside any transaction, and its result recorded
 * in another, with an audit event per attempt. A crash mid-send leaves the row pending; the lease
 * expires and the next tick (on any replica, after a restart too) sends it again, so delivery is
 * at least once: receivers dedupe on the X-Airlock-Delivery header. Attempts are bounded.
 */
import { appendAudit, type Database, type Queryable } from '@airlock/storage';
import { alertPayload } from './payload.ts';
import type { SecretBox } from './secret-box.ts';
import { ALERT_COLUMNS, type AlertRow, alertView } from './store.ts';
import { type SendResult, sendWebhook, type WebhookOptions } from './webhook.ts';

export interface DeliveryOptions {
  /** Attempts per delivery before it is given up. Default 6. */
  maxAttempts: number;
  /** Delay before retry n is about `baseMs * 2^(n-1)` (half of it jittered), at most `maxMs`. Defaults 10_000 and 3_600_000. */
  backoff: { baseMs: number; maxMs: number };
  /** Deliveries sent per tick, concurrently. Default 10. */
  batchSize: number;
  webhook: WebhookOptions;
}

export const defaultDeliveryOptions: DeliveryOptions = { maxAttempts: 6, backoff: { baseMs: 10_000, maxMs: 3_600_000 }, batchSize: 10, webhook: {} };

export const ALERTS_ACTOR = { type: 'system', id: 'alerts' } as const;

export interface DeliveryOutcome {
  deliveryId: string;
  alertId: string;
  attempt: number;
  result: 'delivered' | 'retry' | 'failed';
  status: number | null;
  error: string | null;
}

interface Claimed {
  id: string;
  tenant_id: string;
  alert_id: string;
  destination_id: string;
  attempts: number;
}

interface DestinationRow {
  id: string;
  origin: string;
  url_sealed: string;
  secret_sealed: string;
  enabled: boolean;
}

export function backoffMs(attempt: number, backoff: DeliveryOptions['backoff'], random: () => number = Math.random): number {
  const full = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(full / 2 + (random() * full) / 2);
}

/** Opens a destination's URL and secret; each is bound to the row id it was sealed for. */
export function openDestination(box: SecretBox, row: Pick<DestinationRow, 'id' | 'url_sealed' | 'secret_sealed'>): { url: string; secret: string } {
  return { url: box.open(row.url_sealed, `alert-destination-url:${row.id}`), secret: box.open(row.secret_sealed, `alert-destination-secret:${row.id}`) };
}

export function sealDestination(box: SecretBox, id: string, plain: { url: string; secret: string }): { urlSealed: string; secretSealed: string } {
  return { urlSealed: box.seal(plain.url, `alert-destination-url:${id}`), secretSealed: box.seal(plain.secret, `alert-destination-secret:${id}`) };
}

export async function deliverDue(db: Database, box: SecretBox, options: DeliveryOptions, now: () => Date): Promise<DeliveryOutcome[]> {
  const at = now();
  // The lease outlasts one send, so a slow receiver is not sent to twice by another replica.
  const lease = new Date(at.getTime() + (options.webhook.timeoutMs ?? 10_000) + 30_000);
  const claimed = await db.query<Claimed>(
    `UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = $2
     WHERE id IN (SELECT id FROM alert_deliveries WHERE state = 'pending' AND next_attempt_at <= $1
                  ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
     RETURNING id, tenant_id, alert_id, destination_id, attempts`,
    [at, lease, options.batchSize],
  );
  return Promise.all(claimed.map((delivery) => deliverOne(db, box, options, now, delivery)));
}

function failed(error: string): SendResult {
  return { ok: false, status: null, error, durationMs: 0 };
}

/** One attempt; `permanent` when retrying cannot help. */
async function attemptDelivery(
  box: SecretBox,
  options: DeliveryOptions,
  now: () => Date,
  delivery: Claimed,
  destination: DestinationRow | undefined,
  alert: AlertRow | undefined,
): Promise<{ result: SendResult; permanent: boolean }> {
  // Claimed before a crash on its last attempt: give it up rather than exceed the bound.
  if (delivery.attempts > options.maxAttempts) return { result: failed('attempts exhausted'), permanent: true };
  if (!destination || !alert) return { result: failed('destination or alert removed'), permanent: true };
  if (!destination.enabled) return { result: failed('destination disabled'), permanent: true };
  let target: { url: string; secret: string };
  try {
    target = openDestination(box, destination);
  } catch {
    return { result: failed('the destination does not open with this control plane\'s alert key'), permanent: true };
  }
  const body = alertPayload(alertView(alert), { id: delivery.id, test: false });
  return { result: await sendWebhook({ ...target, deliveryId: delivery.id }, body, { ...options.webhook, now: now() }), permanent: false };
}

async function deliverOne(db: Database, box: SecretBox, options: DeliveryOptions, now: () => Date, delivery: Claimed): Promise<DeliveryOutcome> {
  const [destination] = await db.query<DestinationRow>(
    'SELECT id, origin, url_sealed, secret_sealed, enabled FROM alert_destinations WHERE id = $1',
    [delivery.destination_id],
  );
  const [alert] = await db.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`, [delivery.alert_id]);
  const { result, permanent } = await attemptDelivery(box, options, now, delivery, destination, alert);
  const attempt = delivery.attempts;
  const final = result.ok || permanent || attempt >= options.maxAttempts;
  const outcome: DeliveryOutcome = {
    deliveryId: delivery.id,
    alertId: delivery.alert_id,
    attempt,
    result: result.ok ? 'delivered' : final ? 'failed' : 'retry',
    status: result.status,
    error: result.ok ? null : result.error,
  };
  const finishedAt = now();
  await db.transaction(async (tx) => {
    await recordAttempt(tx, delivery, outcome, finishedAt, options);
    await appendAudit(tx, {
      tenantId: delivery.tenant_id,
      actor: ALERTS_ACTOR,
      action: result.ok ? 'alert-delivered' : 'alert-delivery-failed',
      target: delivery.alert_id,
      outcome: result.ok ? 'success' : 'failure',
      sourceIp: null,
      meta: {
        deliveryId: delivery.id,
        destinationId: delivery.destination_id,
        origin: destination?.origin ?? null,
        attempt,
        status: result.status,
        durationMs: result.durationMs,
        ...(result.ok ? {} : { error: result.error, final }),
      },
    }, finishedAt);
  });
  return outcome;
}

async function recordAttempt(tx: Queryable, delivery: Claimed, outcome: DeliveryOutcome, at: Date, options: DeliveryOptions): Promise<void> {
  if (outcome.result === 'retry') {
    await tx.query(
      `UPDATE alert_deliveries SET next_attempt_at = $2, last_status = $3, last_error = $4 WHERE id = $1`,
      [delivery.id, new Date(at.getTime() + backoffMs(outcome.attempt, options.backoff)), outcome.status, outcome.error],
    );
    return;
  }
  await tx.query(
    `UPDATE alert_deliveries SET state = $2, finished_at = $3, last_status = $4, last_error = $5 WHERE id = $1`,
    [delivery.id, outcome.result, at, outcome.status, outcome.error],
  );
}
