import { hash } from 'node:crypto';
import { AuditValidationError, canonicalJson } from './canonical.ts';
import { assertAuditable, type AuditEventInput, redactMeta } from './events.ts';

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

/**
 * A record a witness may not read (another tenant's): its place in the chain, without its content.
 * Only a witness accepts one (`VerifyOptions.allowWithheld`); it checks the links around it, and
 * the record's content is the business of that record's own tenant and of `airlock audit verify`.
 */
export interface WithheldRecord {
  seq: number;
  prevHash: string;
  hash: string;
  withheld: true;
}

export type ChainLink = AuditRecord | WithheldRecord;

export function isWithheld(link: ChainLink): link is WithheldRecord {
  return 'withheld' in link && link.withheld === true;
}

/** The `prevHash` of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

const HEX64 = /^[0-9a-f]{64}$/;

/** The fields a record's hash covers that are known before the chain head is: all but `seq` and `prevHash`. */
export type UnchainedAuditRecord = Omit<UnhashedAuditRecord, 'seq' | 'prevHash'>;

/**
 * `canonicalRecordJson` around the two fields only the chain head decides, split so the database
 * can fill them in while it holds the head lock (migration 0010, `audit_append`):
 * `before + '"' + prevHash + '","seq":' + seq + after`. Keys sort as action, actor, at, meta,
 * outcome, prevHash, seq, sourceIp, target, tenantId, which puts the two side by side.
 */
export function canonicalRecordParts(event: UnchainedAuditRecord): { before: string; after: string } {
  const j = canonicalJson;
  return {
    before:
      `{"action":${j(event.action)},"actor":{"id":${j(event.actor.id)},"type":${j(event.actor.type)}},"at":${j(event.at)},` +
      `"meta":${j(event.meta)},"outcome":${j(event.outcome)},"prevHash":`,
    after: `,"sourceIp":${j(event.sourceIp)},"target":${j(event.target)},"tenantId":${j(event.tenantId)}}`,
  };
}

/**
 * The canonical JSON of every field a record's hash covers (all but `hash`; of `actor` only `type`
 * and `id`), i.e. `canonicalJson` of that object, written field by field in code-unit key order:
 * verification hashes every record of the chain, and the generic walk over the fixed fields was most
 * of its time. The test "writes the same bytes as canonicalJson" holds the two together.
 */
export function canonicalRecordJson(event: UnhashedAuditRecord): string {
  const { before, after } = canonicalRecordParts(event);
  return `${before}${canonicalJson(event.prevHash)},"seq":${canonicalJson(event.seq)}${after}`;
}

/** SHA-256 hex over `prevHash + '\n' + canonicalJson(fields)`. */
export function hashEvent(prevHash: string, event: UnhashedAuditRecord): string {
  return hash('sha256', `${prevHash}\n${canonicalRecordJson(event)}`, 'hex');
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
  /** Accept withheld records (a witness's view of other tenants' events); never for a full verify. */
  allowWithheld?: boolean;
}

/**
 * Checks records one at a time, so a chain read page by page from a database never has to be held
 * in memory: consecutive `seq` (catches deletions and reordering), each `prevHash` equal to the
 * previous `hash` (catches insertions), and each `hash` recomputed over the record (catches edits).
 * Stops at the first bad record.
 */
export class ChainVerifier {
  #expectedSeq: number;
  #prevHash: string;
  #count = 0;
  #head: ChainHead | null;
  #failure: { ok: false; seq: number; reason: string } | null = null;
  readonly #allowWithheld: boolean;

  constructor(options: VerifyOptions = {}) {
    this.#allowWithheld = options.allowWithheld ?? false;
    this.#expectedSeq = options.after ? options.after.seq + 1 : 1;
    this.#prevHash = options.after ? options.after.hash : GENESIS_HASH;
    this.#head = options.after ?? null;
  }

  /** Checks the next record; false once the chain is broken (later records are then ignored). */
  add(record: ChainLink): boolean {
    if (this.#failure) return false;
    const reason = this.#check(record);
    if (reason !== null) {
      this.#failure = { ok: false, seq: Number.isSafeInteger(record.seq) ? record.seq : this.#expectedSeq, reason };
      return false;
    }
    this.#prevHash = record.hash;
    this.#expectedSeq += 1;
    this.#count += 1;
    this.#head = { seq: record.seq, hash: record.hash };
    return true;
  }

  result(): ChainVerification {
    return this.#failure ?? { ok: true, count: this.#count, head: this.#head };
  }

  #check(record: ChainLink): string | null {
    if (!Number.isSafeInteger(record.seq)) return 'seq is not an integer';
    if (record.seq !== this.#expectedSeq) return `expected seq ${this.#expectedSeq}, found ${record.seq}`;
    if (record.prevHash !== this.#prevHash) return 'prevHash does not match the previous record';
    if (!HEX64.test(record.hash)) return 'hash is not 64 lowercase hex digits';
    if (isWithheld(record)) return this.#allowWithheld ? null : 'a withheld record cannot be verified';
    let recomputed: string;
    try {
      recomputed = hashEvent(record.prevHash, record);
    } catch (error) {
      return error instanceof AuditValidationError ? error.message : 'unserializable record';
    }
    return recomputed === record.hash ? null : 'hash does not match the record (edited)';
  }
}

/** Verifies a whole chain (or a segment after `options.after`) held in memory or produced by a generator. */
export function verifyChain(records: Iterable<ChainLink>, options: VerifyOptions = {}): ChainVerification {
  const verifier = new ChainVerifier(options);
  for (const record of records) {
    if (!verifier.add(record)) break;
  }
  return verifier.result();
}
