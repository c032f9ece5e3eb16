import { createHash } from 'node:crypto';
import { AuditValidationError, canonicalJson } from './canonical.ts';
import { assertAuditable, redactMeta } from './events.ts';
import type { AuditEventInput } from './events.ts';

/** One stored audit row. `hash` covers every other field and the previous row's hash. */
export interface AuditRecord extends AuditEventInput {
  /** 1 for the first record of a chain, then consecutive. */
  seq: number;
  /** ISO 8601 time the record was written. */
  at: string;
  prevHash: string;
  hash: string;
}

export type UnhashedAuditRecord = Omit<AuditRecord, 'hash'>;

/** The `prevHash` of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

const HEX64 = /^[0-9a-f]{64}$/;

/** The fields a record's hash covers, picked explicitly so that stray properties are never hashed or ignored by accident. */
function hashedFields(event: UnhashedAuditRecord): Record<keyof UnhashedAuditRecord, unknown> {
  return {
    seq: event.seq,
    at: event.at,
    prevHash: event.prevHash,
    tenantId: event.tenantId,
    actor: { type: event.actor.type, id: event.actor.id },
    action: event.action,
    target: event.target,
    outcome: event.outcome,
    sourceIp: event.sourceIp,
    meta: event.meta,
  };
}

/** SHA-256 hex over `prevHash + '\n' + canonicalJson(fields)`. */
export function hashEvent(prevHash: string, event: UnhashedAuditRecord): string {
  return createHash('sha256')
    .update(`${prevHash}\n${canonicalJson(hashedFields(event))}`, 'utf8')
    .digest('hex');
}

/** Where a chain (or a verified segment of one) ends. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/**
 * Builds the record that follows `head` (or the first record when `head` is null). Validates the
 * action name and meta keys, so nothing unauditable gets a hash.
 */
export function chainEvent(head: ChainHead | null, input: AuditEventInput, at: Date = new Date()): AuditRecord {
  assertAuditable(input.action);
  redactMeta(input.meta);
  const unhashed: UnhashedAuditRecord = {
    ...input,
    seq: head === null ? 1 : head.seq + 1,
    at: at.toISOString(),
    prevHash: head === null ? GENESIS_HASH : head.hash,
  };
  return { ...unhashed, hash: hashEvent(unhashed.prevHash, unhashed) };
}

export type ChainVerification =
  | { ok: true; count: number; head: ChainHead | null }
  | { ok: false; seq: number; reason: string };

export interface VerifyOptions {
  /**
   * Verify a segment that starts after a trusted point (a signed checkpoint) instead of at genesis.
   * A chain that was rewritten from some record onward is internally consistent again; only a
   * checkpoint or a witness's head taken earlier exposes that.
   */
  after?: ChainHead;
}

/**
 * Checks that `records` form an unbroken chain: consecutive `seq` (catches deletions and
 * reordering), each `prevHash` equal to the previous `hash` (catches insertions), and each `hash`
 * recomputed over the record (catches edits). Stops at the first bad record.
 */
export function verifyChain(records: Iterable<AuditRecord>, options: VerifyOptions = {}): ChainVerification {
  let expectedSeq = options.after ? options.after.seq + 1 : 1;
  let prevHash = options.after ? options.after.hash : GENESIS_HASH;
  let count = 0;
  let head: ChainHead | null = options.after ?? null;

  for (const record of records) {
    if (!Number.isSafeInteger(record.seq)) return { ok: false, seq: expectedSeq, reason: 'seq is not an integer' };
    if (record.seq !== expectedSeq) {
      return { ok: false, seq: record.seq, reason: `expected seq ${expectedSeq}, found ${record.seq}` };
    }
    if (record.prevHash !== prevHash) {
      return { ok: false, seq: record.seq, reason: 'prevHash does not match the previous record' };
    }
    if (!HEX64.test(record.hash)) return { ok: false, seq: record.seq, reason: 'hash is not 64 lowercase hex digits' };
    let recomputed: string;
    try {
      recomputed = hashEvent(record.prevHash, record);
    } catch (error) {
      const detail = error instanceof AuditValidationError ? error.message : 'unserializable record';
      return { ok: false, seq: record.seq, reason: detail };
    }
    if (recomputed !== record.hash) {
      return { ok: false, seq: record.seq, reason: 'hash does not match the record (edited)' };
    }
    prevHash = record.hash;
    expectedSeq += 1;
    count += 1;
    head = { seq: record.seq, hash: record.hash };
  }
  return { ok: true, count, head };
}
