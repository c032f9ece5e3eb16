/**
 * The wire form of records read as records (listing, one chain's walk): the database sends each
 * record as a JSON array, in the column order below, and a page of them as one text of arrays
 * joined by commas. Parsing a page in one `JSON.parse` is far cheaper than taking rows field by
 * field through a driver. A whole-trail verify reads no records: it hashes the stored columns as
 * PostgreSQL's binary COPY sends them (`verifyPage`).
 */
import type { AuditRecord } from './chain.ts';

/** One record as the database sends it. */
export type AuditTuple = [
  seq: number,
  tenantId: string | null,
  /** Microseconds since the epoch. */
  at: number,
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

/**
 * The ISO 8601 text `chainEvent` and the append path hashed: milliseconds, as `Date#toISOString`
 * writes them. A time with sub-millisecond digits cannot have come from an append; it keeps them,
 * so its hash no longer matches and verification flags it.
 */
export function isoFromMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString();
  const rest = micros - ms * 1000;
  return rest === 0 ? iso : `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`;
}

export function recordFromTuple([seq, tenantId, at, actorType, actorId, action, target, outcome, sourceIp, meta, prevHash, hash]: AuditTuple): AuditRecord {
  return {
    seq,
    tenantId,
    at: isoFromMicros(at),
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

/** A page's text (the tuples joined by commas, or empty) as records. */
export function recordsFromPageText(text: string): AuditRecord[] {
  if (text === '') return [];
  return (JSON.parse(`[${text}]`) as AuditTuple[]).map(recordFromTuple);
}
