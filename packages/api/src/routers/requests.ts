/**
 * The API request log, read side: search a tenant's requests (filters, time range, paging newest
 * first) and set how long they are kept. Export (CSV, JSONL) is the client's: the console and
 * `airlock requests list` page through `list` and format with @airlock/protocol's helpers.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { listRequestsInput, requestRetentionInput, type RequestLogRow } from '@airlock/protocol';
import { appendAudit, eventBy } from '@airlock/storage';
import { DEFAULT_REQUEST_LOG_RETENTION_DAYS, type RequestCallerType } from '../request-log.ts';
import { procedureFor } from '../trpc.ts';

interface Row {
  id: string;
  at: Date;
  caller_type: RequestCallerType;
  caller_id: string | null;
  procedure: string;
  method: string;
  status: number;
  outcome: string;
  latency_ms: number;
  source_ip: string | null;
  user_agent: string | null;
  request_id: string;
}

export const requestsRouter = {
  list: procedureFor('requests:read')
    .input(listRequestsInput)
    .query(async ({ ctx, input }): Promise<{ rows: RequestLogRow[]; nextBefore: string | null }> => {
      const rows = await ctx.db.query<Row>(
        `SELECT id::text AS id, at, caller_type, caller_id, procedure, method, status, outcome, latency_ms, source_ip, user_agent, request_id
         FROM request_log
         WHERE tenant_id = $1
           AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3)
           AND ($4::text IS NULL OR caller_type = $4) AND ($5::text IS NULL OR caller_id = $5)
           AND ($6::text IS NULL OR procedure = $6 OR procedure LIKE $6 || ',%' OR procedure LIKE '%,' || $6 OR procedure LIKE '%,' || $6 || ',%')
           AND ($7::text IS NULL OR ($7 = 'ok' AND outcome = 'OK') OR ($7 = 'error' AND outcome <> 'OK') OR outcome = $7)
           AND ($8::text IS NULL OR source_ip = $8) AND ($9::uuid IS NULL OR request_id = $9)
           AND ($10::bigint IS NULL OR id < $10)
         ORDER BY id DESC LIMIT $11`,
        [
          ctx.admin.tenantId,
          input.from ?? null,
          input.to ?? null,
          input.callerType ?? null,
          input.callerId ?? null,
          input.procedure ?? null,
          input.outcome ?? null,
          input.sourceIp ?? null,
          input.requestId ?? null,
          input.before ?? null,
          input.limit,
        ],
      );
      const out = rows.map((row) => ({
        id: row.id,
        at: row.at.toISOString(),
        callerType: row.caller_type,
        callerId: row.caller_id,
        procedure: row.procedure,
        method: row.method,
        status: row.status,
        outcome: row.outcome,
        latencyMs: row.latency_ms,
        sourceIp: row.source_ip,
        userAgent: row.user_agent,
        requestId: row.request_id,
      }));
      return { rows: out, nextBefore: out.length === input.limit ? (out.at(-1)?.id ?? null) : null };
    }),

  retention: procedureFor('requests:read').query(async ({ ctx }) => {
    const [row] = await ctx.db.query<{ retention_days: number }>('SELECT retention_days FROM request_log_settings WHERE tenant_id = $1', [ctx.admin.tenantId]);
    return { retentionDays: row?.retention_days ?? DEFAULT_REQUEST_LOG_RETENTION_DAYS, isDefault: row === undefined };
  }),

  setRetention: procedureFor('requests:write')
    .input(requestRetentionInput)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [previous] = await tx.query<{ retention_days: number }>('SELECT retention_days FROM request_log_settings WHERE tenant_id = $1', [ctx.admin.tenantId]);
        await tx.query(
          `INSERT INTO request_log_settings (tenant_id, retention_days, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET retention_days = EXCLUDED.retention_days, updated_at = EXCLUDED.updated_at`,
          [ctx.admin.tenantId, input.retentionDays, ctx.now()],
        );
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'request-log-retention-set',
            target: ctx.admin.tenantId,
            outcome: 'success',
            meta: { retentionDays: input.retentionDays, previousDays: previous?.retention_days ?? DEFAULT_REQUEST_LOG_RETENTION_DAYS },
          }),
        );
        return { retentionDays: input.retentionDays };
      });
    }),
} satisfies TRPCRouterRecord;
