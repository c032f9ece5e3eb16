/**
 * Verifying a chain a page at a time, pages in any order and on any thread, then stitching.
 *
 * A record's own check (its hash recomputed over its content and its `prevHash`) needs nothing
 * but the record, so the pages of one chain can be hashed in parallel. What ties records together
 * is cheap and is checked twice over: inside a page by `ChainVerifier` (consecutive `seq`, each
 * `prevHash` equal to the previous `hash`), and across pages by `ChainStitcher`, which holds every
 * page's first `seq` and `prevHash` to the previous page's last `seq` and `hash`. Together that is
 * exactly what one `ChainVerifier` over the whole chain checks.
 */
import { type ChainHead, ChainVerifier } from './chain.ts';
import { recordsFromPageText } from './tuples.ts';

/** What verifying one page found. */
export type PageSummary =
  | {
      ok: true;
      count: number;
      /** The first record's `seq` and `prevHash`, which the previous page's last record must match; null for an empty page. */
      first: { seq: number; prevHash: string } | null;
      last: ChainHead | null;
      /** `[seq, hash]` of the records at the `seq`s asked for (checkpoint leaves) that are in this page. */
      found: [number, string][];
    }
  | { ok: false; seq: number; reason: string };

/**
 * Checks one page of one chain: every record belongs to `tenantId`, hashes to its `hash`, and
 * links to the record before it in the page. Never throws: malformed text is a failed page.
 */
export function verifyPageText(text: string, tenantId: string | null, wanted: readonly number[]): PageSummary {
  let records;
  try {
    records = recordsFromPageText(text);
  } catch {
    return { ok: false, seq: 0, reason: 'a page of records could not be read' };
  }
  const [head] = records;
  if (!head) return { ok: true, count: 0, first: null, last: null, found: [] };
  // The first record is trusted for where it starts; the stitcher checks that against the page before.
  const chain = new ChainVerifier({ after: { seq: head.seq - 1, hash: head.prevHash } });
  const want = new Set(wanted);
  const found: [number, string][] = [];
  for (const record of records) {
    if (record.tenantId !== tenantId) return { ok: false, seq: record.seq, reason: 'record of another chain' };
    if (!chain.add(record)) {
      const result = chain.result();
      return result.ok ? { ok: false, seq: record.seq, reason: 'unverifiable record' } : result;
    }
    if (want.has(record.seq)) found.push([record.seq, record.hash]);
  }
  const result = chain.result();
  if (!result.ok) return result;
  return { ok: true, count: result.count, first: { seq: head.seq, prevHash: head.prevHash }, last: result.head, found };
}

/** Joins page summaries, in chain order, into the verification of one chain from `after` on. */
export class ChainStitcher {
  #head: ChainHead;
  #count = 0;
  #failure: { ok: false; seq: number; reason: string } | null = null;
  readonly #found = new Map<number, string>();

  constructor(after: ChainHead) {
    this.#head = after;
  }

  /** Adds the next page; false once the chain is broken. */
  add(page: PageSummary): boolean {
    if (this.#failure) return false;
    if (!page.ok) {
      this.#failure = page;
      return false;
    }
    if (!page.first || !page.last) return true;
    if (page.first.seq !== this.#head.seq + 1) {
      this.#failure = { ok: false, seq: page.first.seq, reason: `expected seq ${this.#head.seq + 1}, found ${page.first.seq}` };
      return false;
    }
    if (page.first.prevHash !== this.#head.hash) {
      this.#failure = { ok: false, seq: page.first.seq, reason: 'prevHash does not match the previous record' };
      return false;
    }
    this.#head = page.last;
    this.#count += page.count;
    for (const [seq, hash] of page.found) this.#found.set(seq, hash);
    return true;
  }

  result(): { ok: true; count: number; head: ChainHead; found: ReadonlyMap<number, string> } | { ok: false; seq: number; reason: string } {
    return this.#failure ?? { ok: true, count: this.#count, head: this.#head, found: this.#found };
  }
}
