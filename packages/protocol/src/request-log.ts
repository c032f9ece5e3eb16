/**
 * The API request log as clients see it: the search input, one row, and the two export formats
 * the console and the CLI share (CSV per RFC 4180, JSON Lines).
 */
import { z } from 'zod';

export const requestCallerTypes = ['user', 'api-key', 'oauth-client', 'agent', 'anonymous'] as const;

export const listRequestsInput = z.strictObject({
  /** Inclusive start and exclusive end, ISO 8601. */
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  callerType: z.enum(requestCallerTypes).optional(),
  callerId: z.string().min(1).max(200).optional(),
  procedure: z.string().regex(/^[\w.()]+$/).max(200).optional(),
  /** `ok`, `error`, or one exact outcome code (`UNAUTHORIZED`, `invalid_client`, ...). */
  outcome: z.string().regex(/^[\w,]+$/).max(200).optional(),
  sourceIp: z.string().min(1).max(100).optional(),
  requestId: z.uuid().optional(),
  /** Paging: only rows older than this row id (the previous page's `nextBefore`). */
  before: z.string().regex(/^\d{1,19}$/).optional(),
  limit: z.number().int().min(1).max(1_000).default(100),
});
export type ListRequestsInput = z.input<typeof listRequestsInput>;

export const requestRetentionInput = z.strictObject({ retentionDays: z.number().int().min(1).max(3_650) });

export interface RequestLogRow {
  id: string;
  at: string;
  callerType: (typeof requestCallerTypes)[number];
  callerId: string | null;
  procedure: string;
  method: string;
  status: number;
  outcome: string;
  latencyMs: number;
  sourceIp: string | null;
  userAgent: string | null;
  requestId: string;
}

const COLUMNS = ['at', 'callerType', 'callerId', 'procedure', 'method', 'status', 'outcome', 'latencyMs', 'sourceIp', 'userAgent', 'requestId'] as const;

function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  // A leading =, +, - or @ would run as a formula in a spreadsheet: quoted with a leading apostrophe.
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n']/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function requestLogCsv(rows: readonly RequestLogRow[], header = true): string {
  const lines = rows.map((row) => COLUMNS.map((column) => csvField(row[column])).join(','));
  return `${[...(header ? [COLUMNS.join(',')] : []), ...lines].join('\r\n')}\r\n`;
}

export function requestLogJsonl(rows: readonly RequestLogRow[]): string {
  return rows.map((row) => `${JSON.stringify(row)}\n`).join('');
}
