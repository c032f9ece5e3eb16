/**
 * Verifying the trail a page at a time, pages in any order and on any thread, then stitching.
 *
 * A page is whatever the database read in one go: records of any chains, in any order (a scan of
 * the table in its physical order mixes every tenant's chain). A record's own check (its hash
 * recomputed over its content and its `prevHash`) needs nothing but the record, so pages are hashed
 * in parallel. Within a page, each chain's records are cut, in the order they come, into runs of
 * consecutive `seq`, each record's `prevHash` equal to the previous record's `hash`, as
 * `ChainVerifier` checks. `ChainRuns` then puts a chain's runs from every page in `seq` order and
 * holds each run's first `seq` and `prevHash` to the previous run's last `seq` and `hash`, from the
 * chain's start to its head.
 * Together that is exactly what one `ChainVerifier` over the whole chain checks: no record missing,
 * none twice, none out of place, none edited.
 */
import { hash as digest } from 'node:crypto';
import { AuditValidationError, canonicalJson } from './canonical.ts';
import { ByteText, JsonbWriter } from './canonical-bytes.ts';
import type { ChainHead } from './chain.ts';

const sha256 = (bytes: Uint8Array): string => digest('sha256', bytes, 'hex');

/** Consecutive records of one chain, verified among themselves. */
export interface ChainRun {
  tenantId: string | null;
  /** The first record's `seq` and `prevHash`, which the run before it must end with. */
  first: { seq: number; prevHash: string };
  last: ChainHead;
  count: number;
}

export type PageSummary = { ok: true; runs: ChainRun[] } | { ok: false; tenantId: string | null; seq: number; reason: string };

/**
 * The run a chain is in the middle of, while a page is read: where it started, and where its last
 * record's hash sits in the page, so that the next record's `prevHash` is compared byte to byte
 * and no text is made of either until the run ends.
 */
class OpenRun {
  count = 1;
  constructor(
    readonly tenantId: string | null,
    readonly first: { seq: number; prevHash: string },
    public lastSeq: number,
    /** Where the last record's stored hash starts in the page, and its length. */
    public hashAt: number,
    public hashLength: number,
  ) {}

  close(bytes: Buffer): ChainRun {
    return { tenantId: this.tenantId, first: this.first, last: { seq: this.lastSeq, hash: bytes.toString('latin1', this.hashAt, this.hashAt + this.hashLength) }, count: this.count };
  }
}

/** Whether `bytes[at, at + length)` are the code units of `text`, which is ASCII. */
function sameAscii(text: string, bytes: Buffer, at: number, length: number): boolean {
  if (text.length !== length) return false;
  for (let i = 0; i < length; i++) if (text.charCodeAt(i) !== bytes[at + i]) return false;
  return true;
}

/** Whether two stretches of the page hold the same bytes. */
function sameBytes(bytes: Buffer, a: number, aLength: number, b: number, bLength: number): boolean {
  if (aLength !== bLength) return false;
  for (let i = 0; i < aLength; i++) if (bytes[a + i] !== bytes[b + i]) return false;
  return true;
}

/**
 * `isoFromMicros` (tuples.ts), exactly, with the text up to the second kept from the record before: a page's
 * records mostly share their second, and a Date for each was a good part of a page's time.
 */
export class IsoTimes {
  #second = Number.NaN;
  #prefix = '';
  #prefixBytes: Buffer = Buffer.alloc(0);

  #at(micros: number): { millis: number; rest: number } {
    const ms = Math.floor(micros / 1000);
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      this.#second = second;
      // "YYYY-MM-DDTHH:MM:SS." (or a six-digit year's form): toISOString always ends in ".mmmZ".
      this.#prefix = new Date(second * 1000).toISOString().slice(0, -4);
      this.#prefixBytes = Buffer.from(this.#prefix, 'latin1');
    }
    return { millis: ms - second * 1000, rest: micros - ms * 1000 };
  }

  iso(micros: number): string {
    const { millis, rest } = this.#at(micros);
    return `${this.#prefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}${rest === 0 ? '' : String(rest).padStart(3, '0')}Z`;
  }

  /** `iso(micros)`, written to `out` without a string. */
  write(out: ByteText, micros: number): void {
    const { millis, rest } = this.#at(micros);
    out.put(this.#prefixBytes);
    out.digits(millis, 3);
    if (rest !== 0) out.digits(rest, 3);
    out.ascii('Z');
  }
}

type Failure = Extract<PageSummary, { ok: false }>;
const unreadable = (tenantId: string | null = null, seq = 0): Failure => ({ ok: false, tenantId, seq, reason: 'a page of records could not be read' });

/** Thrown by `PageReader` at bytes that are not a page of records; `verifyPage` turns it into a failed page. */
class Unreadable extends Error {}

/** The columns of a page's rows, in order (`PAGE_COLUMNS`). */
const COLUMNS = 12;
/** "PGCOPY\n\xff\r\n\0": the first bytes of PostgreSQL's binary COPY format. */
const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00];
/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), where a binary timestamptz counts from. */
const POSTGRES_EPOCH_MICROS = 946_684_800_000_000;
/** jsonb's binary form: this version byte, then the value as text. */
const JSONB_VERSION = 1;

/**
 * The columns of a page, in the order `verifyPage` reads them: what a stored row holds, sent by
 * PostgreSQL in its binary COPY format (`COPY (SELECT <these> ...) TO STDOUT (FORMAT binary)`).
 * Binary, so that the database sends each value as stored (a uuid as 16 bytes, a time as an
 * integer, jsonb as its text) instead of writing every record out as JSON.
 */
export const PAGE_COLUMNS = ['seq', 'tenant_id', 'at', 'actor_type', 'actor_id', 'action', 'target', 'outcome', 'source_ip', 'meta', 'prev_hash', 'hash'] as const;

/** A cursor over a binary COPY page; every read checks that the bytes are there. */
class PageReader {
  at = 0;
  readonly view: DataView;
  constructor(readonly bytes: Buffer) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(length: number): void {
    if (length < 0 || this.at + length > this.bytes.length) throw new Unreadable();
  }

  int16(): number {
    this.need(2);
    const value = this.view.getInt16(this.at);
    this.at += 2;
    return value;
  }

  int32(): number {
    this.need(4);
    const value = this.view.getInt32(this.at);
    this.at += 4;
    return value;
  }

  /** A field's length: -1 for NULL. */
  field(): number {
    const length = this.int32();
    if (length < -1) throw new Unreadable();
    if (length > 0) this.need(length);
    return length;
  }

  /** A NOT NULL int8 field as a number; beyond 2^53 it is unreadable here. */
  int64(): number {
    if (this.field() !== 8) throw new Unreadable();
    const value = this.view.getInt32(this.at) * 0x1_0000_0000 + this.view.getUint32(this.at + 4);
    this.at += 8;
    if (!Number.isSafeInteger(value)) throw new Unreadable();
    return value;
  }

  /** The header: signature, flags (no OIDs), and an extension area to skip. */
  header(): void {
    this.need(SIGNATURE.length);
    for (const byte of SIGNATURE) if (this.bytes[this.at++] !== byte) throw new Unreadable();
    if (this.int32() !== 0) throw new Unreadable();
    const extension = this.int32();
    this.need(extension);
    this.at += extension;
  }
}

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');
// The fixed parts of a record's canonical JSON (`canonicalRecordJson`), keys in code-unit order.
const OPEN_ACTION = ascii('\n{"action":');
const ACTOR_ID = ascii(',"actor":{"id":');
const ACTOR_TYPE = ascii(',"type":');
const AT = ascii('},"at":"');
const META = ascii('","meta":');
const OUTCOME = ascii(',"outcome":');
const PREV_HASH = ascii(',"prevHash":');
const SEQ = ascii(',"seq":');
const SOURCE_IP = ascii(',"sourceIp":');
const TARGET = ascii(',"target":');
const TENANT_ID = ascii(',"tenantId":');
const NULL = ascii('null');
const CLOSE = ascii('}');

/** The text of a tenant's uuid, by its 16 bytes: a page holds few tenants and many records of each. */
class UuidTexts {
  readonly #bytes: Buffer[] = [];
  readonly #texts: string[] = [];

  text(source: Buffer, start: number): string {
    const bytes = this.#bytes;
    for (let i = 0; i < bytes.length; i++) {
      const known = bytes[i];
      if (!known) continue;
      let same = true;
      for (let b = 0; b < 16 && same; b++) same = known[b] === source[start + b];
      if (same) return this.#texts[i] ?? '';
    }
    const hex = source.toString('hex', start, start + 16);
    const text = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    // A page of many tenants keeps the first few: past those, a lookup would cost more than the text.
    if (bytes.length < 32) {
      bytes.push(Buffer.from(source.subarray(start, start + 16)));
      this.#texts.push(text);
    }
    return text;
  }
}

/**
 * Checks one page (PostgreSQL's binary COPY of `PAGE_COLUMNS`, header to trailer) and cuts it
 * into runs: every record's hash recomputed over `prevHash + '\n' + canonicalRecordJson` of its
 * stored columns, as `hashEvent` does, and each run linked record to record. Texts go into the
 * hashed bytes as they are stored, escaped as JSON; only the time, the meta object (key order,
 * numbers) and `seq` are written anew. No record object is built. Never throws: bytes that are not
 * such a page are a failed page.
 */
export function verifyPage(page: Uint8Array): PageSummary {
  const bytes = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const open = new Map<string | null, OpenRun>();
  const runs: ChainRun[] = [];
  const times = new IsoTimes();
  const uuids = new UuidTexts();
  const out = new ByteText();
  const jsonb = new JsonbWriter(out);
  const reader = new PageReader(bytes);
  let tenantId: string | null = null;
  let seq = 0;
  try {
    reader.header();
    for (;;) {
      const columns = reader.int16();
      if (columns === -1) break;
      if (columns !== COLUMNS) throw new Unreadable();
      seq = reader.int64();
      const tenantLength = reader.field();
      if (tenantLength !== 16 && tenantLength !== -1) throw new Unreadable();
      const tenantAt = reader.at;
      tenantId = tenantLength < 0 ? null : uuids.text(bytes, tenantAt);
      reader.at += Math.max(0, tenantLength);
      const micros = reader.int64() + POSTGRES_EPOCH_MICROS;
      if (!Number.isSafeInteger(micros)) throw new Unreadable();
      // The texts: where each starts and its length (-1 for NULL).
      const actorTypeLength = reader.field();
      const actorTypeAt = reader.at;
      reader.at += Math.max(0, actorTypeLength);
      const actorIdLength = reader.field();
      const actorIdAt = reader.at;
      reader.at += Math.max(0, actorIdLength);
      const actionLength = reader.field();
      const actionAt = reader.at;
      reader.at += Math.max(0, actionLength);
      const targetLength = reader.field();
      const targetAt = reader.at;
      reader.at += Math.max(0, targetLength);
      const outcomeLength = reader.field();
      const outcomeAt = reader.at;
      reader.at += Math.max(0, outcomeLength);
      const sourceIpLength = reader.field();
      const sourceIpAt = reader.at;
      reader.at += Math.max(0, sourceIpLength);
      const metaLength = reader.field();
      const metaAt = reader.at;
      reader.at += Math.max(0, metaLength);
      const prevLength = reader.field();
      const prevAt = reader.at;
      reader.at += Math.max(0, prevLength);
      const hashLength = reader.field();
      const hashAt = reader.at;
      reader.at += Math.max(0, hashLength);
      // prev_hash and hash are NOT NULL; a NULL one is no record.
      if (prevLength < 0 || hashLength < 0) throw new Unreadable();

      if (metaLength >= 0 && (metaLength < 1 || bytes[metaAt] !== JSONB_VERSION)) throw new Unreadable();
      // The hashes go in as stored, with no check of their form here: `hash` must equal a fresh hex
      // digest, and every `prevHash` must equal the `hash` before it (here or in `ChainRuns`) or the
      // trusted start, so neither can pass unless it is 64 lowercase hex digits.
      out.length = 0;
      out.raw(bytes, prevAt, prevLength);
      out.put(OPEN_ACTION);
      out.string(bytes, actionAt, actionLength);
      out.put(ACTOR_ID);
      out.string(bytes, actorIdAt, actorIdLength);
      out.put(ACTOR_TYPE);
      out.string(bytes, actorTypeAt, actorTypeLength);
      out.put(AT);
      times.write(out, micros);
      out.put(META);
      if (metaLength < 0) out.put(NULL);
      else if (!jsonb.write(bytes, metaAt + 1, metaAt + metaLength)) {
        // Not plain enough to write byte to byte: parsed, and written by the definition itself.
        try {
          out.utf8(canonicalJson(JSON.parse(bytes.toString('utf8', metaAt + 1, metaAt + metaLength)) as unknown));
        } catch (error) {
          return { ok: false, tenantId, seq, reason: error instanceof AuditValidationError ? error.message : 'unreadable meta' };
        }
      }
      out.put(OUTCOME);
      out.string(bytes, outcomeAt, outcomeLength);
      out.put(PREV_HASH);
      // As stored, quoted: a `prevHash` that is not hex digits cannot link (see above), so there is
      // nothing in it to escape.
      out.quoted(bytes, prevAt, prevLength);
      out.put(SEQ);
      out.integer(seq);
      out.put(SOURCE_IP);
      out.string(bytes, sourceIpAt, sourceIpLength);
      out.put(TARGET);
      out.string(bytes, targetAt, targetLength);
      out.put(TENANT_ID);
      if (tenantLength < 0) out.put(NULL);
      else out.uuid(bytes, tenantAt);
      out.put(CLOSE);
      if (!sameAscii(sha256(new Uint8Array(out.buffer.buffer, out.buffer.byteOffset, out.length)), bytes, hashAt, hashLength)) {
        return { ok: false, tenantId, seq, reason: 'hash does not match the record (edited)' };
      }
      // Rows come in the table's order, which within a chain is almost always `seq` order: a
      // record that follows its chain's last one extends that run, anything else starts a new run.
      const run = open.get(tenantId);
      if (run && seq === run.lastSeq + 1) {
        if (!sameBytes(bytes, prevAt, prevLength, run.hashAt, run.hashLength)) return { ok: false, tenantId, seq, reason: 'prevHash does not match the previous record' };
        run.lastSeq = seq;
        run.hashAt = hashAt;
        run.hashLength = hashLength;
        run.count += 1;
        continue;
      }
      if (run) runs.push(run.close(bytes));
      open.set(tenantId, new OpenRun(tenantId, { seq, prevHash: bytes.toString('latin1', prevAt, prevAt + prevLength) }, seq, hashAt, hashLength));
    }
    // The trailer ends the page: nothing may follow it.
    if (reader.at !== bytes.length) throw new Unreadable();
  } catch (error) {
    // Anything else thrown while reading (a time no Date can hold) is as unreadable.
    if (error instanceof Unreadable || error instanceof RangeError) return unreadable(tenantId, seq);
    throw error;
  }
  for (const run of open.values()) runs.push(run.close(bytes));
  return { ok: true, runs };
}

/** One chain's runs from every page, checked to join up from `after` to exactly `head`. */
export class ChainRuns {
  readonly #runs: ChainRun[] = [];

  add(run: ChainRun): void {
    this.#runs.push(run);
  }

  /** The records in all, or where the chain does not hold. */
  result(after: ChainHead, head: ChainHead): { ok: true; count: number } | { ok: false; seq: number; reason: string } {
    const runs = this.#runs.sort((a, b) => a.first.seq - b.first.seq);
    let at = after;
    let count = 0;
    for (const run of runs) {
      if (run.first.seq !== at.seq + 1) return { ok: false, seq: run.first.seq, reason: `expected seq ${at.seq + 1}, found ${run.first.seq}` };
      if (run.first.prevHash !== at.hash) return { ok: false, seq: run.first.seq, reason: 'prevHash does not match the previous record' };
      at = run.last;
      count += run.count;
    }
    if (at.seq !== head.seq || at.hash !== head.hash) return { ok: false, seq: at.seq, reason: `the chain ends at ${at.seq}, its head says ${head.seq}` };
    return { ok: true, count };
  }
}
