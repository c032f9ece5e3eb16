/**
 * The chains part of a whole-trail verify, fast: each chain is read page by page (keyset on its
 * `(tenant_id, seq)` index, a page as one text, see `RECORD_JSON`), while worker threads hash the
 * pages already read (`openPageVerifier`), several chains at once and several pages of one chain
 * at once. Pages are stitched back in chain order (`ChainStitcher`), and the records that the
 * checkpoints name are matched at the end.
 *
 * It answers only whether each chain holds. A chain that does not is walked again by the caller
 * the plain way, which names the first bad record and why: failures are rare, and their report
 * then reads exactly as it always has.
 */
import { ChainStitcher, type ChainHead, type ChainLeaf, type PageSummary, type PageVerifier } from '@airlock/audit';
import { RECORD_JSON } from './audit-log.ts';
import type { Queryable } from './storage/database.ts';

/** Records per page: large pages cost fewer round trips; a page is one text of about 600 bytes a record. */
export const VERIFY_PAGE_SIZE = 10_000;

/** Chains read at once. Each has its own reads in flight, so even two keep the workers fed. */
const CHAINS_AT_ONCE = 3;

interface PageText {
  text: string;
  count: number;
}

async function readPageText(db: Queryable, tenantId: string | null, afterSeq: number, untilSeq: number): Promise<PageText> {
  const where = tenantId === null ? 'tenant_id IS NULL AND seq > $1 AND seq <= $2' : 'tenant_id = $3 AND seq > $1 AND seq <= $2';
  const params = tenantId === null ? [afterSeq, untilSeq] : [afterSeq, untilSeq, tenantId];
  // The aggregate orders the rows itself: no sort of whole rows below it (which spilled to disk),
  // and each row's JSON is built as it is read.
  const [row] = await db.query<{ r: string | null; n: number }>(
    `SELECT string_agg(${RECORD_JSON}::text, ',' ORDER BY seq) AS r, count(*)::int AS n FROM audit_events WHERE ${where}`,
    params,
  );
  return { text: row?.r ?? '', count: row?.n ?? 0 };
}

/**
 * One chain from the legacy head to `head`, with the records at `claims` (seq to hash) matching:
 * its record count, or null when anything does not hold.
 */
async function verifyOneChain(
  db: Queryable,
  pages: PageVerifier,
  head: ChainLeaf,
  legacy: ChainHead,
  claims: ReadonlyMap<number, string>,
  pageSize: number,
): Promise<number | null> {
  const { tenantId } = head;
  const unmet = new Map(claims);
  const legacyClaim = unmet.get(legacy.seq);
  if (legacyClaim !== undefined) {
    if (legacyClaim !== legacy.hash) return null;
    unmet.delete(legacy.seq);
  }
  const wanted = [...unmet.keys()];
  const stitcher = new ChainStitcher(legacy);
  // Pages being hashed, oldest first; bounded, so memory stays at a few pages a chain.
  const inFlight: Promise<PageSummary>[] = [];
  const limit = Math.max(2, pages.threads + 1);
  let broken = false;
  const settleOldest = async () => {
    const oldest = inFlight.shift();
    if (oldest && !stitcher.add(await oldest)) broken = true;
  };
  // Each page is the range of the next `pageSize` sequence numbers, which an intact chain fills
  // exactly. A range bound, rather than only a LIMIT, keeps the database from reading the rest of
  // the chain for every page (its plan fetches every row in range, then sorts).
  for (let afterSeq = legacy.seq; afterSeq < head.seq && !broken; ) {
    const untilSeq = Math.min(afterSeq + pageSize, head.seq);
    const page = await readPageText(db, tenantId, afterSeq, untilSeq);
    // A missing or extra record: the chain is broken, and the caller's walk says where.
    if (page.count !== untilSeq - afterSeq) return null;
    inFlight.push(pages.verify(page.text, tenantId, wanted));
    // The next read goes out while this page is hashed; a later failure makes its result moot.
    for (const pending of inFlight) pending.catch(() => undefined);
    afterSeq = untilSeq;
    while (inFlight.length >= limit && !broken) await settleOldest();
  }
  while (inFlight.length > 0 && !broken) await settleOldest();
  if (broken) return null;
  const result = stitcher.result();
  if (!result.ok || result.head.seq !== head.seq || result.head.hash !== head.hash) return null;
  for (const [seq, hash] of unmet) {
    if (result.found.get(seq) !== hash) return null;
  }
  return result.count;
}

/**
 * Every chain in `heads`: the records verified in all, or the leaf of a chain that does not hold
 * (the first found; chains still running are left to finish and ignored).
 */
export async function verifyChainsFast(
  db: Queryable,
  pages: PageVerifier,
  heads: readonly ChainLeaf[],
  legacy: ChainHead,
  claims: ReadonlyMap<string | null, ReadonlyMap<number, string>>,
  pageSize: number = VERIFY_PAGE_SIZE,
): Promise<{ ok: true; count: number } | { ok: false; chain: ChainLeaf }> {
  let count = 0;
  let failed: ChainLeaf | null = null;
  let next = 0;
  const walk = async () => {
    while (next < heads.length && failed === null) {
      const head = heads[next];
      next += 1;
      if (!head) continue;
      const verified = await verifyOneChain(db, pages, head, legacy, claims.get(head.tenantId) ?? new Map<number, string>(), pageSize);
      if (verified === null) failed ??= head;
      else count += verified;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CHAINS_AT_ONCE, heads.length) }, walk));
  return failed === null ? { ok: true, count } : { ok: false, chain: failed };
}
