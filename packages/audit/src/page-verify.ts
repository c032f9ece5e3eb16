/**
 * Verifying the trail a page at a time, pages in any order and on any thread, then stitching.
 *
 * A page is whatever the database read in one go: records of any chains, in any order (a scan of
 * the table in its physical order mixes every tenant's chain). A record's own check (its hash
 * recomputed over its content and its `prevHash`) needs nothing but the record, so pages are hashed
 * in parallel. Within a page, each chain's records are sorted by `seq` and cut into runs of
 * consecutive `seq`, each run's `prevHash` equal to the previous record's `hash`, as `ChainVerifier`
 * checks. `ChainRuns` then puts a chain's runs from every page in order and holds each run's first `seq`
 * and `prevHash` to the previous run's last `seq` and `hash`, from the chain's start to its head.
 * Together that is exactly what one `ChainVerifier` over the whole chain checks: no record missing,
 * none twice, none out of place, none edited.
 */
import { hash as digest } from 'node:crypto';
import { AuditValidationError, canonicalJson } from './canonical.ts';
import type { ChainHead } from './chain.ts';

const sha256 = (text: string): string => digest('sha256', text, 'hex');

/** Consecutive records of one chain, verified among themselves. */
export interface ChainRun {
  tenantId: string | null;
  /** The first record's `seq` and `prevHash`, which the run before it must end with. */
  first: { seq: number; prevHash: string };
  last: ChainHead;
  count: number;
}

export type PageSummary = { ok: true; runs: ChainRun[] } | { ok: false; tenantId: string | null; seq: number; reason: string };

/** What a run needs of a record once its hash has been recomputed: where it sits and what it links. */
interface Link {
  seq: number;
  prevHash: string;
  hash: string;
}

const bySeq = (a: Link, b: Link) => a.seq - b.seq;

/**
 * The page wire form `verifyPage` reads: one line a record, lines joined by `PAGE_RECORD_SEPARATOR`,
 * each line's fields joined by `PAGE_FIELD_SEPARATOR`, in this order:
 *
 *   chain     the tenant id, or empty for the system chain
 *   seq       decimal
 *   at        microseconds since the epoch, decimal
 *   prevHash  as stored
 *   hash      as stored
 *   head      `{"action":<action>,"actor":{"id":<actor id>,"type":<actor type>},"at":"`
 *   meta      the meta object as JSON text
 *   outcome   `<outcome>`
 *   tail      `,"sourceIp":<source ip>,"target":<target>`
 *
 * where each `<field>` is that column as JSON (a string escaped as `JSON.stringify` does, or null).
 * These are the fixed parts of `canonicalRecordJson`: the database writes them (PostgreSQL's
 * `to_json` of a text escapes exactly as `JSON.stringify` does), so the verifier rewrites only what
 * the database cannot write canonically: the time, the meta object (key order, numbers) and the
 * fields it links on. The separators are control characters, which JSON text never holds
 * unescaped; a stored hash holding one splits its line into lines of the wrong field count, which
 * fail the page.
 */
export const PAGE_FIELD_SEPARATOR = '\x1f';
export const PAGE_RECORD_SEPARATOR = '\x1e';
const FIELDS = 9;

/**
 * `isoFromMicros` (tuples.ts), exactly, with the text up to the second kept from the record before: a page's
 * records mostly share their second, and a Date for each was a good part of a page's time.
 */
export class IsoTimes {
  #second = Number.NaN;
  #prefix = '';

  iso(micros: number): string {
    const ms = Math.floor(micros / 1000);
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      this.#second = second;
      // "YYYY-MM-DDTHH:MM:SS." (or a six-digit year's form): toISOString always ends in ".mmmZ".
      this.#prefix = new Date(second * 1000).toISOString().slice(0, -4);
    }
    const rest = micros - ms * 1000;
    const millis = ms - second * 1000;
    return `${this.#prefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}${rest === 0 ? '' : String(rest).padStart(3, '0')}Z`;
  }
}

type Failure = Extract<PageSummary, { ok: false }>;
const unreadable = (tenantId: string | null = null, seq = 0): Failure => ({ ok: false, tenantId, seq, reason: 'a page of records could not be read' });

/**
 * Checks one page (`PAGE_FIELD_SEPARATOR`'s format) and cuts it into runs: every record's hash
 * recomputed over `prevHash + '\n' + canonicalRecordJson` of its stored content, as `hashEvent`
 * does, and each run linked record to record. Never throws: unreadable text is a failed page.
 */
export function verifyPage(text: string): PageSummary {
  if (text === '') return { ok: true, runs: [] };
  const times = new IsoTimes();
  const chains = new Map<string, Link[]>();
  const fields: string[] = new Array<string>(FIELDS);
  const end = text.length;
  let lineStart = 0;
  while (lineStart <= end) {
    let lineEnd = text.indexOf(PAGE_RECORD_SEPARATOR, lineStart);
    if (lineEnd < 0) lineEnd = end;
    let from = lineStart;
    for (let i = 0; i < FIELDS - 1; i++) {
      const to = text.indexOf(PAGE_FIELD_SEPARATOR, from);
      if (to < 0 || to > lineEnd) return unreadable();
      fields[i] = text.slice(from, to);
      from = to + 1;
    }
    const last = text.slice(from, lineEnd);
    if (last.includes(PAGE_FIELD_SEPARATOR)) return unreadable();
    const [chain = '', seqText = '', atText = '', prevHash = '', hash = '', head = '', metaText = '', outcome = ''] = fields;
    const tenantId = chain === '' ? null : chain;
    const seq = Number(seqText);
    const micros = Number(atText);
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(micros)) return unreadable(tenantId);
    // Both hashes go into the hashed text unquoted, with no check of their form here: `hash` must
    // equal a fresh hex digest, and every `prevHash` must equal the `hash` before it (here or in
    // `ChainRuns`) or the trusted start, so neither can pass unless it is 64 lowercase hex digits.
    let meta: string;
    try {
      meta = canonicalJson(JSON.parse(metaText) as unknown);
    } catch (error) {
      return { ok: false, tenantId, seq, reason: error instanceof AuditValidationError ? error.message : 'unreadable meta' };
    }
    const hashed = `${prevHash}\n${head}${times.iso(micros)}","meta":${meta},"outcome":${outcome},"prevHash":"${prevHash}","seq":${seq}${last},"tenantId":${tenantId === null ? 'null' : `"${chain}"`}}`;
    if (sha256(hashed) !== hash) return { ok: false, tenantId, seq, reason: 'hash does not match the record (edited)' };
    const link = { seq, prevHash, hash };
    const links = chains.get(chain);
    if (links) links.push(link);
    else chains.set(chain, [link]);
    lineStart = lineEnd + 1;
  }

  const runs: ChainRun[] = [];
  for (const [chain, links] of chains) {
    const tenantId = chain === '' ? null : chain;
    // Rows come in the table's order, which is almost always the chain's: sort only when not.
    for (let i = 1; i < links.length; i++) {
      if (bySeq(links[i - 1] as Link, links[i] as Link) > 0) {
        links.sort(bySeq);
        break;
      }
    }
    let start = 0;
    while (start < links.length) {
      // The first record is trusted for where it starts; `ChainRuns` checks that against the run before.
      const first = links[start] as Link;
      let previous = first;
      let end = start + 1;
      for (; end < links.length; end++) {
        const link = links[end] as Link;
        // A gap (or a repeated seq) ends the run; whether the runs fit together is decided later.
        if (link.seq !== previous.seq + 1) break;
        if (link.prevHash !== previous.hash) return { ok: false, tenantId, seq: link.seq, reason: 'prevHash does not match the previous record' };
        previous = link;
      }
      runs.push({ tenantId, first: { seq: first.seq, prevHash: first.prevHash }, last: { seq: previous.seq, hash: previous.hash }, count: end - start });
      start = end;
    }
  }
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
