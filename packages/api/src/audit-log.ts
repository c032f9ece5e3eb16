/**
 * Appends to the hash-chained audit trail. An append runs inside the caller's transaction, so a
 * privileged action whose audit record cannot be written is rolled back with it (fail closed).
 */
import { type AuditEventInput, type AuditRecord, assertAuditable, canonicalRecordParts, redactMeta } from '@airlock/audit';
import type { AgentPrincipal } from './auth/agent-auth.ts';
import type { AdminPrincipal } from './auth/principal.ts';
import type { RequestFacts } from './context.ts';
import type { Database, Queryable } from './storage/database.ts';

export async function appendAudit(tx: Queryable, event: AuditEventInput, now: Date = new Date()): Promise<AuditRecord> {
  assertAuditable(event.action);
  redactMeta(event.meta);
  const at = now.toISOString();
  const { before, after } = canonicalRecordParts({ ...event, at });
  // One statement: audit_append (migration 0010) takes the head row lock, which orders appends so
  // the chain has no forks even with several replicas, and hashes as hashEvent does.
  const [row] = await tx.query<{ seq: string; prev_hash: string; hash: string }>(
    'SELECT seq::text AS seq, prev_hash, hash FROM audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
    [
      event.tenantId,
      at,
      event.actor.type,
      event.actor.id,
      event.action,
      event.target,
      event.outcome,
      event.sourceIp,
      JSON.stringify(event.meta),
      before,
      after,
    ],
  );
  if (!row) throw new Error('audit_append returned no row');
  return { ...event, seq: Number(row.seq), at, prevHash: row.prev_hash, hash: row.hash };
}

const COLUMN_COUNT = 12;
// 12 parameters a row; PostgreSQL takes at most 65 535 parameters in one statement.
const ROWS_PER_INSERT = 1_000;

/**
 * Stores records that are already chained and moves the head to the last one, with multi-row
 * parameterized INSERTs. `appendAudit` writes through here; so do tests and benchmarks that build
 * long chains. The caller holds the head lock, or owns the database outright.
 */
export async function writeAuditRecords(tx: Queryable, records: readonly AuditRecord[]): Promise<void> {
  for (let start = 0; start < records.length; start += ROWS_PER_INSERT) {
    const slice = records.slice(start, start + ROWS_PER_INSERT);
    const rows = slice.map((_record, row) => `(${Array.from({ length: COLUMN_COUNT }, (_c, col) => `$${row * COLUMN_COUNT + col + 1}`).join(', ')})`);
    await tx.query(
      `INSERT INTO audit_events (seq, tenant_id, at, actor_type, actor_id, action, target, outcome, source_ip, meta, prev_hash, hash)
       VALUES ${rows.join(', ')}`,
      slice.flatMap((record) => [
        record.seq,
        record.tenantId,
        record.at,
        record.actor.type,
        record.actor.id,
        record.action,
        record.target,
        record.outcome,
        record.sourceIp,
        JSON.stringify(record.meta),
        record.prevHash,
        record.hash,
      ]),
    );
  }
  const last = records.at(-1);
  if (last) await tx.query('UPDATE audit_head SET seq = $1, hash = $2 WHERE singleton', [last.seq, last.hash]);
}

/** An event done by an authenticated caller: tenant, actor and source address come from the request. */
export function eventBy(
  principal: AdminPrincipal | AgentPrincipal,
  request: RequestFacts,
  event: Pick<AuditEventInput, 'action' | 'target' | 'outcome' | 'meta'>,
): AuditEventInput {
  const base = { ...event, tenantId: principal.tenantId, sourceIp: request.sourceIp };
  switch (principal.kind) {
    case 'agent':
      return { ...base, actor: { type: 'agent', id: principal.agentId } };
    case 'api-key':
      return { ...base, actor: { type: 'api-key', id: principal.keyId } };
    case 'oauth-client':
      // The public client_id as well: it is what the consumer's own logs show.
      return { ...base, actor: { type: 'oauth-client', id: principal.clientRowId }, meta: { ...event.meta, clientId: principal.clientId } };
    case 'user':
      // The email as well as the id: the record stays readable after the account is gone.
      return { ...base, actor: { type: 'admin', id: principal.userId }, meta: { ...event.meta, actorEmail: principal.email } };
  }
}

/** Records an event on its own, for refusals where there is no action to roll back. */
export async function recordAudit(db: Database, event: AuditEventInput): Promise<AuditRecord> {
  // One statement is its own transaction: the head lock is released at its commit, a round trip sooner.
  return appendAudit(db, event);
}

/** One record as the database sends it: a JSON array, in the column order of `RECORD_JSON`. */
type AuditTuple = [
  seq: number,
  tenantId: string | null,
  at: string,
  actorType: AuditRecord['actor']['type'],
  actorId: string | null,
  action: string,
  target: string | null,
  outcome: AuditRecord['outcome'],
  sourceIp: string | null,
  meta: AuditRecord['meta'],
  prevHash: string,
  hash: string,
];

// `at` is sent as the exact ISO text it was hashed in. A time with sub-millisecond digits cannot
// have come from `appendAudit`; it keeps them, so its hash no longer matches and verify flags it.
const RECORD_JSON = `json_build_array(seq, tenant_id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  actor_type, actor_id, action, target, outcome, source_ip, meta, prev_hash, hash)`;

/**
 * Runs `SELECT ... FROM audit_events <rest>` and returns its rows as records. Each row comes back
 * as one JSON text, and a page is parsed in one go: reading rows field by field through the driver
 * took longer than verifying them. Rows, not one aggregate: `json_agg(... ORDER BY seq)` sorted
 * every page again (on disk, past work_mem), while the rows arrive in the index's order for free.
 */
async function queryRecords(db: Queryable, rest: string, params: readonly unknown[]): Promise<AuditRecord[]> {
  const rows = await db.query<{ r: string }>(`SELECT ${RECORD_JSON}::text AS r FROM audit_events ${rest}`, params);
  const tuples = JSON.parse(`[${rows.map((row) => row.r).join(',')}]`) as AuditTuple[];
  return tuples.map(recordFromTuple);
}

export interface AuditFilter {
  /** Null reads every tenant's events, for whole-chain verification on the server. */
  tenantId: string | null;
  action?: string;
  outcome?: AuditRecord['outcome'];
  /** `type` or `type:id`, e.g. `api-key:3f2c...` or `system`. */
  actor?: string;
  target?: string;
  /** ISO 8601; events at or after `since` and before `until`. */
  since?: string;
  until?: string;
  /** Keyset pagination: pass the last seq of the previous page. */
  afterSeq?: number;
  limit: number;
}

/** Audit events in chain order. */
export async function listAuditEvents(db: Queryable, filter: AuditFilter): Promise<AuditRecord[]> {
  const separator = filter.actor?.indexOf(':') ?? -1;
  const actorType = filter.actor === undefined ? null : separator < 0 ? filter.actor : filter.actor.slice(0, separator);
  const actorId = filter.actor === undefined || separator < 0 ? null : filter.actor.slice(separator + 1);
  return queryRecords(
    db,
    `WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR outcome = $3)
       AND ($4::text IS NULL OR actor_type = $4) AND ($5::text IS NULL OR actor_id = $5) AND ($6::text IS NULL OR target = $6)
       AND ($7::timestamptz IS NULL OR at >= $7) AND ($8::timestamptz IS NULL OR at < $8)
       AND seq > $9
     ORDER BY seq LIMIT $10`,
    [
      filter.tenantId,
      filter.action ?? null,
      filter.outcome ?? null,
      actorType,
      actorId,
      filter.target ?? null,
      filter.since ?? null,
      filter.until ?? null,
      filter.afterSeq ?? 0,
      filter.limit,
    ],
  );
}

/**
 * Every event of every tenant in seq order, a page at a time (keyset pagination), with the next page
 * already being read while the caller works on the current one. Memory stays at two pages.
 */
export async function* readAuditPages(db: Queryable, pageSize = 10_000): AsyncGenerator<AuditRecord[]> {
  const read = (afterSeq: number) => queryRecords(db, 'WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, pageSize]);
  let pending = read(0);
  for (;;) {
    const page = await pending;
    const last = page.at(-1);
    if (!last) return;
    if (page.length === pageSize) {
      pending = read(last.seq);
      // A caller that stops early (at a broken record) never awaits this read; its failure is moot then.
      pending.catch(() => undefined);
    }
    yield page;
    if (page.length < pageSize) return;
  }
}

function recordFromTuple([seq, tenantId, at, actorType, actorId, action, target, outcome, sourceIp, meta, prevHash, hash]: AuditTuple): AuditRecord {
  return {
    seq,
    tenantId,
    at: at.endsWith('000Z') ? `${at.slice(0, -4)}Z` : at,
    actor: { type: actorType, id: actorId },
    action,
    target,
    outcome,
    sourceIp,
    meta,
    prevHash,
    hash,
  };
}
