/**
 * Verifying the trail a page at a time, pages in any order and on any thread, then stitching.
 *
 * A page is whatever the database read in one go: records of any chains, in any order (a scan of
 * the table in its physical order mixes every tenant's chain). A record's own check (its hash
 * recomputed over its content and its `prevHash`) needs nothing but the record, so pages are hashed
 * in parallel. Within a page, each chain's records are sorted by `seq` and cut into runs of
 * consecutive `seq`; `ChainVerifier` checks each run (each `prevHash` equal to the previous `hash`).
 * `ChainRuns` then puts a chain's runs from every page in order and holds each run's first `seq`
 * and `prevHash` to the previous run's last `seq` and `hash`, from the chain's start to its head.
 * Together that is exactly what one `ChainVerifier` over the whole chain checks: no record missing,
 * none twice, none out of place, none edited.
 */
import { type AuditRecord, type ChainHead, ChainVerifier } from './chain.ts';
import { recordsFromPageText } from './tuples.ts';

/** Consecutive records of one chain, verified among themselves. */
export interface ChainRun {
  tenantId: string | null;
  /** The first record's `seq` and `prevHash`, which the run before it must end with. */
  first: { seq: number; prevHash: string };
  last: ChainHead;
  count: number;
}

export type PageSummary = { ok: true; runs: ChainRun[] } | { ok: false; tenantId: string | null; seq: number; reason: string };

const bySeq = (a: AuditRecord, b: AuditRecord) => a.seq - b.seq;

/** Checks one page's records and cuts them into runs. Never throws: unreadable text is a failed page. */
export function verifyPageText(text: string): PageSummary {
  let records: AuditRecord[];
  try {
    records = recordsFromPageText(text);
  } catch {
    return { ok: false, tenantId: null, seq: 0, reason: 'a page of records could not be read' };
  }
  const chains = new Map<string | null, AuditRecord[]>();
  for (const record of records) {
    const chain = chains.get(record.tenantId);
    if (chain) chain.push(record);
    else chains.set(record.tenantId, [record]);
  }
  const runs: ChainRun[] = [];
  for (const [tenantId, chain] of chains) {
    // Rows come in the table's order, which is almost always the chain's: sort only when not.
    if (chain.some((record, i) => i > 0 && bySeq(chain[i - 1] as AuditRecord, record) > 0)) chain.sort(bySeq);
    let start = 0;
    while (start < chain.length) {
      const head = chain[start] as AuditRecord;
      // The first record is trusted for where it starts; `ChainRuns` checks that against the run before.
      const verifier = new ChainVerifier({ after: { seq: head.seq - 1, hash: head.prevHash } });
      let end = start;
      for (; end < chain.length; end++) {
        const record = chain[end] as AuditRecord;
        // A gap (or a repeated seq) ends the run; whether the runs fit together is decided later.
        if (end > start && record.seq !== (chain[end - 1] as AuditRecord).seq + 1) break;
        if (!verifier.add(record)) {
          const failure = verifier.result();
          return failure.ok ? { ok: false, tenantId, seq: record.seq, reason: 'unverifiable record' } : { ...failure, tenantId };
        }
      }
      const result = verifier.result();
      if (!result.ok || !result.head) return { ok: false, tenantId, seq: head.seq, reason: 'unverifiable record' };
      runs.push({ tenantId, first: { seq: head.seq, prevHash: head.prevHash }, last: result.head, count: result.count });
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
