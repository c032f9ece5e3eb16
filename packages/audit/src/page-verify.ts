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

/** Thrown by `PageScanner` at text that is not a page of tuples; `verifyPage` turns it into a failed page. */
class Unreadable extends Error {}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * A cursor over a page's text (tuples.ts: each record a JSON array, the arrays joined by commas)
 * that hands out each value as the JSON text it is written in, without parsing it. A string comes
 * back with its quotes and escapes exactly as written: PostgreSQL escapes a text exactly as
 * JSON.stringify does, so that is already the form `canonicalJson` writes it in.
 */
class PageScanner {
  at = 0;
  constructor(readonly text: string) {}

  /** Skips JSON whitespace; true while there is text left. */
  more(): boolean {
    const { text } = this;
    let at = this.at;
    for (let c = text.charCodeAt(at); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = text.charCodeAt(++at));
    this.at = at;
    return at < text.length;
  }

  expect(char: string): void {
    this.more();
    if (this.text[this.at] !== char) throw new Unreadable();
    this.at += 1;
  }

  /** `"..."` or null, as written. */
  stringOrNull(): string {
    this.more();
    if (this.text.charCodeAt(this.at) === QUOTE) return this.string();
    if (this.text.startsWith('null', this.at)) {
      this.at += 4;
      return 'null';
    }
    throw new Unreadable();
  }

  /** A string at the cursor, quotes included, as written. */
  string(): string {
    const { text } = this;
    const start = this.at;
    let end = text.indexOf('"', start + 1);
    for (;;) {
      if (end < 0) throw new Unreadable();
      // Escaped when preceded by an odd number of backslashes.
      let slashes = 0;
      while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes += 1;
      if (slashes % 2 === 0) break;
      end = text.indexOf('"', end + 1);
    }
    this.at = end + 1;
    return text.slice(start, end + 1);
  }

  /** An integer as a number; anything else (a fraction, beyond 2^53) is unreadable here. */
  integer(): number {
    this.more();
    const { text } = this;
    const start = this.at;
    let at = start;
    if (text.charCodeAt(at) === 0x2d) at += 1;
    for (let c = text.charCodeAt(at); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++at));
    const value = Number(text.slice(start, at));
    if (at === start || !Number.isSafeInteger(value)) throw new Unreadable();
    this.at = at;
    return value;
  }

  /** Any JSON value, as written (for JSON.parse to read). */
  value(): string {
    this.more();
    const { text } = this;
    const start = this.at;
    const first = text.charCodeAt(start);
    if (first === QUOTE) return this.string();
    if (first !== 0x7b && first !== 0x5b) {
      // A number or a literal: up to the next separator.
      let at = start;
      for (let c = text.charCodeAt(at); at < text.length && c !== 0x2c && c !== 0x5d && c !== 0x7d && c !== 0x20; c = text.charCodeAt(++at));
      this.at = at;
      return text.slice(start, at);
    }
    let depth = 0;
    let at = start;
    for (;;) {
      if (at >= text.length) throw new Unreadable();
      const c = text.charCodeAt(at);
      if (c === QUOTE) {
        this.at = at;
        this.string();
        at = this.at;
        continue;
      }
      if (c === 0x7b || c === 0x5b) depth += 1;
      else if (c === 0x7d || c === 0x5d) {
        depth -= 1;
        if (depth === 0) break;
      }
      at += 1;
    }
    this.at = at + 1;
    return text.slice(start, at + 1);
  }
}

/** A quoted hash as written, without its quotes; one with escapes is no hash and fails where it is compared. */
const unquoted = (quoted: string): string => quoted.slice(1, -1);

/**
 * Checks one page (tuples.ts: `AuditTuple`s as PostgreSQL writes them) and cuts it into runs: every
 * record's hash recomputed over `prevHash + '\n' + canonicalRecordJson` of its stored content, as
 * `hashEvent` does, and each run linked record to record. The fields that are strings go into the
 * hashed text as the database wrote them; only the time, the meta object (key order, numbers) and
 * `seq` are written anew. No record object is built. Never throws: unreadable text is a failed page.
 */
export function verifyPage(text: string): PageSummary {
  const chains = new Map<string | null, Link[]>();
  const times = new IsoTimes();
  const page = new PageScanner(text);
  let tenantId: string | null = null;
  let seq = 0;
  try {
    let first = true;
    while (page.more()) {
      if (!first) page.expect(',');
      first = false;
      page.expect('[');
      seq = page.integer();
      page.expect(',');
      const tenant = page.stringOrNull();
      tenantId = tenant === 'null' ? null : unquoted(tenant);
      page.expect(',');
      const micros = page.integer();
      page.expect(',');
      const actorType = page.stringOrNull();
      page.expect(',');
      const actorId = page.stringOrNull();
      page.expect(',');
      const action = page.stringOrNull();
      page.expect(',');
      const target = page.stringOrNull();
      page.expect(',');
      const outcome = page.stringOrNull();
      page.expect(',');
      const sourceIp = page.stringOrNull();
      page.expect(',');
      const metaText = page.value();
      page.expect(',');
      const prevQuoted = page.stringOrNull();
      page.expect(',');
      const hashQuoted = page.stringOrNull();
      page.expect(']');
      let meta: string;
      try {
        meta = canonicalJson(JSON.parse(metaText) as unknown);
      } catch (error) {
        return { ok: false, tenantId, seq, reason: error instanceof AuditValidationError ? error.message : 'unreadable meta' };
      }
      // The hashes go in as written, with no check of their form here: `hash` must equal a fresh hex
      // digest, and every `prevHash` must equal the `hash` before it (here or in `ChainRuns`) or the
      // trusted start, so neither can pass unless it is 64 lowercase hex digits.
      const prevHash = unquoted(prevQuoted);
      const hashed = `${prevHash}\n{"action":${action},"actor":{"id":${actorId},"type":${actorType}},"at":"${times.iso(micros)}","meta":${meta},"outcome":${outcome},"prevHash":${prevQuoted},"seq":${seq},"sourceIp":${sourceIp},"target":${target},"tenantId":${tenant}}`;
      const hash = unquoted(hashQuoted);
      if (sha256(hashed) !== hash) return { ok: false, tenantId, seq, reason: 'hash does not match the record (edited)' };
      const link = { seq, prevHash, hash };
      const links = chains.get(tenantId);
      if (links) links.push(link);
      else chains.set(tenantId, [link]);
    }
  } catch (error) {
    if (error instanceof Unreadable) return unreadable(tenantId, seq);
    throw error;
  }

  const runs: ChainRun[] = [];
  for (const [tenantId, links] of chains) {
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
