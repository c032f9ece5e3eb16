/**
 * Appends to the hash-chained audit trail. An append runs inside the caller's transaction, so a
 * privileged action whose audit record cannot be written is rolled back with it (fail closed).
 */
import { type AuditEventInput, type AuditRecord, assertAuditable, canonicalRecordParts, recordsFromPageText, redactMeta } from '@airlock/audit';
import { type Database, prepared, type Queryable } from './database.ts';
import { processMetrics } from './metrics.ts';

/** Every audited action sends it: prepared, so PostgreSQL parses and plans it once per connection. */
const AUDIT_APPEND = prepared('SELECT seq::text AS seq, prev_hash, hash FROM audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)');

export async function appendAudit(tx: Queryable, event: AuditEventInput, now: Date = new Date()): Promise<AuditRecord> {
  assertAuditable(event.action);
  redactMeta(event.meta);
  const at = now.toISOString();
  const { before, after } = canonicalRecordParts({ ...event, at });
  // One statement: audit_append (migrations 0010, 0015) takes the lock of this event's chain head
  // only, which orders that chain's appends so it has no forks even with several replicas, and
  // hashes as hashEvent does. Other tenants' appends go on in parallel.
  const stopTimer = processMetrics.auditAppendSeconds.startTimer();
  const [row] = await tx.query<{ seq: string; prev_hash: string; hash: string }>(
    AUDIT_APPEND,
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
  // Includes the wait for the chain head's lock: that wait is what an operator needs to see.
  stopTimer();
  if (!row) throw new Error('audit_append returned no row');
  return { ...event, seq: Number(row.seq), at, prevHash: row.prev_hash, hash: row.hash };
}

const COLUMN_COUNT = 12;
// 12 parameters a row; PostgreSQL takes at most 65 535 parameters in one statement.
const ROWS_PER_INSERT = 1_000;

/** The key of a chain's head row: the tenant id, or the nil uuid for the system chain (migration 0015). */
export const SYSTEM_CHAIN = '00000000-0000-0000-0000-000000000000';
export const chainKey = (tenantId: string | null): string => tenantId ?? SYSTEM_CHAIN;

/**
 * Stores records that are already chained and moves each chain's head to its last one, with
 * multi-row parameterized INSERTs. Tests and benchmarks that build long chains write through here.
 * The caller holds the heads' locks, or owns the database outright.
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
  const heads = new Map<string | null, AuditRecord>();
  for (const record of records) heads.set(record.tenantId, record);
  for (const [tenantId, last] of heads) {
    await tx.query(
      `INSERT INTO audit_chain_heads (chain, tenant_id, seq, hash) VALUES ($1, $2, $3, $4)
       ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`,
      [chainKey(tenantId), tenantId, last.seq, last.hash],
    );
  }
}

/**
 * Who did an audited thing, as far as the trail needs to know: the fields of the admin and agent
 * principals that authentication builds. Stated here so the trail does not depend on authentication.
 */
export type AuditPrincipal =
  | { kind: 'agent'; tenantId: string; agentId: string }
  | { kind: 'api-key'; tenantId: string; keyId: string }
  | { kind: 'oauth-client'; tenantId: string; clientRowId: string; clientId: string }
  | { kind: 'user'; tenantId: string; userId: string; email: string };

/** An event done by an authenticated caller: tenant, actor and source address come from the request. */
export function eventBy(
  principal: AuditPrincipal,
  request: { sourceIp: string | null },
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

// `at` is sent as whole microseconds (a JSON number, exact below 2^53) and written out in JavaScript:
// to_char for every row was a good part of the database's time.
export const RECORD_JSON = `json_build_array(seq, tenant_id, (extract(epoch FROM at) * 1000000)::bigint,
  actor_type, actor_id, action, target, outcome, source_ip, meta, prev_hash, hash)`;

/**
 * Runs `SELECT ... FROM audit_events <rest>` and returns its rows as records. The page comes back
 * as one text, the rows' JSON arrays joined in the order the inner query reads them (the index's
 * order, no second sort), and is parsed in one go: reading rows one by one through the driver, or
 * field by field, took longer than verifying them. Should the rows ever arrive out of order, the
 * chain's own checks fail loudly; they cannot make a broken chain pass.
 */
async function queryRecords(db: Queryable, rest: string, params: readonly unknown[]): Promise<AuditRecord[]> {
  const [row] = await db.query<{ r: string | null }>(`SELECT string_agg(r, ',') AS r FROM (SELECT ${RECORD_JSON}::text AS r FROM audit_events ${rest}) page`, params);
  return recordsFromPageText(row?.r ?? '');
}

export interface AuditFilter {
  /** A tenant's chain; null reads every chain's events (tests and whole-trail checks on the server), chain by chain. */
  tenantId: string | null;
  action?: string;
  outcome?: AuditRecord['outcome'];
  /** `type` or `type:id`, e.g. `api-key:3f2c...` or `system`. */
  actor?: string;
  target?: string;
  /** ISO 8601; events at or after `since` and before `until`. */
  since?: string;
  until?: string;
  /** Keyset pagination within a chain: pass the last seq of the previous page. */
  afterSeq?: number;
  limit: number;
}

/** Audit events in chain order: one tenant's chain, or (tenantId null) the system chain first, then each tenant's. */
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
     ORDER BY tenant_id NULLS FIRST, seq LIMIT $10`,
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

/** One chain's records after `afterSeq`, in order: a tenant's, or (null) the system chain. */
export function readChain(db: Queryable, tenantId: string | null, afterSeq: number, limit: number, untilSeq?: number): Promise<AuditRecord[]> {
  return tenantId === null
    ? queryRecords(db, 'WHERE tenant_id IS NULL AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3', [afterSeq, untilSeq ?? Number.MAX_SAFE_INTEGER, limit])
    : queryRecords(db, 'WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4', [tenantId, afterSeq, untilSeq ?? Number.MAX_SAFE_INTEGER, limit]);
}

/**
 * One chain's records from `afterSeq` on, a page at a time (keyset pagination), with the next page
 * already being read while the caller works on the current one. Memory stays at two pages.
 */
export function readChainPages(db: Queryable, tenantId: string | null, options: { afterSeq?: number; untilSeq?: number; pageSize?: number } = {}): AsyncGenerator<AuditRecord[]> {
  const pageSize = options.pageSize ?? 10_000;
  return pagesOf((afterSeq) => readChain(db, tenantId, afterSeq, pageSize, options.untilSeq), pageSize, options.afterSeq ?? 0);
}

/** Legacy records after `afterSeq` up to `untilSeq` (at most the frozen head), in global order. */
export function listLegacy(db: Queryable, afterSeq: number, untilSeq: number, limit: number): Promise<AuditRecord[]> {
  return queryRecords(db, 'WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3', [afterSeq, untilSeq, limit]);
}

/** The legacy global chain's records (migration 0015: every record at or below the frozen head), in global seq order. */
export function readLegacyPages(db: Queryable, legacySeq: number, pageSize = 10_000): AsyncGenerator<AuditRecord[]> {
  return pagesOf((afterSeq) => listLegacy(db, afterSeq, legacySeq, pageSize), pageSize, 0);
}

async function* pagesOf(read: (afterSeq: number) => Promise<AuditRecord[]>, pageSize: number, start: number): AsyncGenerator<AuditRecord[]> {
  let pending = read(start);
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
