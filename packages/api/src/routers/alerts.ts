/**
 * Alerts and where they are sent: list, acknowledge and resolve alerts; create, list, enable or
 * disable, delete and test webhook destinations. A destination's HMAC secret is generated here and
 * returned once; it and the URL are stored sealed (`alerts/secret-box.ts`), never logged or audited.
 */
import { randomUUID } from 'node:crypto';
import type { TRPCRouterRecord } from '@trpc/server';
import { z } from 'zod';
import { ConflictError, NotFoundError, OperationalError } from '@airlock/errors';
import { byId, createAlertDestinationInput, listAlertsInput, type AlertKind, type AlertSeverity } from '@airlock/protocol';
import {
  ALERT_COLUMNS,
  alertListing,
  alertPayload,
  type AlertRow,
  openDestination,
  originOf,
  parseWebhookUrl,
  sealDestination,
  sendWebhook,
} from '@airlock/alerts';
import { appendAudit, eventBy, type Queryable, recordAudit } from '@airlock/storage';
import { principalRef, randomToken } from '@airlock/auth';
import type { Context } from '../context.ts';
import { procedureFor } from '../trpc.ts';

function alertServices(ctx: Context): NonNullable<Context['alerts']> {
  if (!ctx.alerts) throw new OperationalError('alert destinations are not configured on this control plane (no alert key)');
  return ctx.alerts;
}

interface DestinationRow {
  id: string;
  name: string;
  origin: string;
  url_sealed: string;
  secret_sealed: string;
  kinds: AlertKind[];
  min_severity: AlertSeverity;
  enabled: boolean;
  created_at: Date;
}

function destinationListing(row: DestinationRow) {
  return { id: row.id, name: row.name, origin: row.origin, kinds: row.kinds, minSeverity: row.min_severity, enabled: row.enabled, createdAt: row.created_at.toISOString() };
}

export const alertsRouter = {
  list: procedureFor('alerts:read')
    .input(listAlertsInput)
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.query<AlertRow>(
        `SELECT ${ALERT_COLUMNS} FROM alerts
         WHERE tenant_id = $1 AND ($2::text IS NULL OR ($2 = 'unresolved' AND state <> 'resolved') OR state = $2)
           AND ($3::text IS NULL OR kind = $3)
         ORDER BY last_seen_at DESC, id LIMIT $4`,
        [ctx.admin.tenantId, input.state ?? null, input.kind ?? null, input.limit],
      );
      return rows.map(alertListing);
    }),

  acknowledge: procedureFor('alerts:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; kind: string }>(
          `UPDATE alerts SET state = 'acknowledged', acknowledged_at = $3, acknowledged_by = $4
           WHERE id = $1 AND tenant_id = $2 AND state = 'open' RETURNING id, kind`,
          [input.id, ctx.admin.tenantId, ctx.now(), principalRef(ctx.admin)],
        );
        if (!row) throw await missingOr(tx, ctx.admin.tenantId, input.id, 'only an open alert can be acknowledged');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'alert-acknowledge', target: row.id, outcome: 'success', meta: { kind: row.kind } }));
        return { id: row.id, state: 'acknowledged' as const };
      });
    }),

  resolve: procedureFor('alerts:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; kind: string }>(
          `UPDATE alerts SET state = 'resolved', resolved_at = $3, resolved_by = $4
           WHERE id = $1 AND tenant_id = $2 AND state <> 'resolved' RETURNING id, kind`,
          [input.id, ctx.admin.tenantId, ctx.now(), principalRef(ctx.admin)],
        );
        if (!row) throw await missingOr(tx, ctx.admin.tenantId, input.id, 'the alert is already resolved');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'alert-resolve', target: row.id, outcome: 'success', meta: { kind: row.kind } }));
        return { id: row.id, state: 'resolved' as const };
      });
    }),
} satisfies TRPCRouterRecord;

async function missingOr(tx: Queryable, tenantId: string, id: string, conflict: string): Promise<Error> {
  const found = await tx.query('SELECT 1 FROM alerts WHERE id = $1 AND tenant_id = $2', [id, tenantId]);
  return found.length === 0 ? new NotFoundError('no alert with that id') : new ConflictError(conflict);
}

const DESTINATION_COLUMNS = 'id, name, origin, url_sealed, secret_sealed, kinds, min_severity, enabled, created_at';

export const alertDestinationsRouter = {
  list: procedureFor('alerts:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<DestinationRow>(`SELECT ${DESTINATION_COLUMNS} FROM alert_destinations WHERE tenant_id = $1 ORDER BY created_at, id`, [ctx.admin.tenantId]);
    return rows.map(destinationListing);
  }),

  /** Returns the HMAC secret once; it cannot be read back, only replaced by a new destination. */
  create: procedureFor('alerts:write')
    .input(createAlertDestinationInput)
    .mutation(async ({ ctx, input }) => {
      const { secretBox, webhook } = alertServices(ctx);
      const url = parseWebhookUrl(input.url, webhook);
      const id = randomUUID();
      const secret = `whsec_${randomToken(32)}`;
      const sealed = sealDestination(secretBox, id, { url: url.href, secret });
      return ctx.db.transaction(async (tx) => {
        const [taken] = await tx.query('SELECT 1 FROM alert_destinations WHERE tenant_id = $1 AND name = $2', [ctx.admin.tenantId, input.name]);
        if (taken) throw new ConflictError(`an alert destination named ${JSON.stringify(input.name)} exists`);
        const [row] = await tx.query<DestinationRow>(
          `INSERT INTO alert_destinations (id, tenant_id, name, origin, url_sealed, secret_sealed, kinds, min_severity, enabled, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${DESTINATION_COLUMNS}`,
          [id, ctx.admin.tenantId, input.name, originOf(url), sealed.urlSealed, sealed.secretSealed, input.kinds, input.minSeverity, input.enabled, ctx.now()],
        );
        if (!row) throw new Error('destination insert returned nothing');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, {
          action: 'alert-destination-create',
          target: id,
          outcome: 'success',
          meta: { name: input.name, origin: row.origin, kinds: input.kinds, minSeverity: input.minSeverity, enabled: input.enabled },
        }));
        return { ...destinationListing(row), signingSecret: secret };
      });
    }),

  setEnabled: procedureFor('alerts:write')
    .input(byId.extend({ enabled: z.boolean() }))
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<DestinationRow>(
          `UPDATE alert_destinations SET enabled = $3 WHERE id = $1 AND tenant_id = $2 RETURNING ${DESTINATION_COLUMNS}`,
          [input.id, ctx.admin.tenantId, input.enabled],
        );
        if (!row) throw new NotFoundError('no alert destination with that id');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'alert-destination-update', target: row.id, outcome: 'success', meta: { enabled: input.enabled } }));
        return destinationListing(row);
      });
    }),

  /** Removes the destination and its pending deliveries. */
  delete: procedureFor('alerts:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string; name: string; origin: string }>(
          'DELETE FROM alert_destinations WHERE id = $1 AND tenant_id = $2 RETURNING id, name, origin',
          [input.id, ctx.admin.tenantId],
        );
        if (!row) throw new NotFoundError('no alert destination with that id');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'alert-destination-delete', target: row.id, outcome: 'success', meta: { name: row.name, origin: row.origin } }));
        return { id: row.id };
      });
    }),

  /** Sends a signed test alert now, once, and reports what the receiver answered. */
  test: procedureFor('alerts:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      const { secretBox, webhook } = alertServices(ctx);
      const [row] = await ctx.db.query<DestinationRow>(`SELECT ${DESTINATION_COLUMNS} FROM alert_destinations WHERE id = $1 AND tenant_id = $2`, [input.id, ctx.admin.tenantId]);
      if (!row) throw new NotFoundError('no alert destination with that id');
      const target = openDestination(secretBox, row);
      const now = ctx.now();
      const deliveryId = randomUUID();
      const body = alertPayload(
        {
          id: randomUUID(),
          tenantId: ctx.admin.tenantId,
          kind: 'test',
          severity: 'info',
          state: 'open',
          target: row.id,
          summary: `Test alert for destination ${row.name}`,
          details: {},
          count: 1,
          firstSeenAt: now.toISOString(),
          lastSeenAt: now.toISOString(),
        },
        { id: deliveryId, test: true },
      );
      const result = await sendWebhook({ ...target, deliveryId }, body, { ...webhook, now });
      await recordAudit(ctx.db, eventBy(ctx.admin, ctx.request, {
        action: 'alert-destination-test',
        target: row.id,
        outcome: result.ok ? 'success' : 'failure',
        meta: { deliveryId, origin: row.origin, status: result.status, durationMs: result.durationMs, error: result.ok ? null : result.error },
      }));
      return result.ok ? { ok: true as const, status: result.status, durationMs: result.durationMs } : { ok: false as const, status: result.status, error: result.error, durationMs: result.durationMs };
    }),
} satisfies TRPCRouterRecord;
