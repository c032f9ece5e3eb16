/**
 * The chains part of a whole-trail verify, fast. The table is read once, in its physical order, a
 * range of blocks at a time (a TID range scan: each block is read once, not once for every chain
 * that has a row in it, as paging each chain through its index did), and worker threads hash the
 * pages already read (`openPageVerifier`) while the next ones are read. Every chain's runs are then
 * stitched from the legacy head to the head read at the start (`ChainRuns`), and the records the
 * checkpoints name are matched.
 *
 * It answers only whether each chain holds. A chain that does not is walked again by the caller
 * the plain way, which names the first bad record and why: failures are rare, and their report
 * then reads exactly as it always has.
 */
import { type ChainHead, type ChainLeaf, ChainRuns, PAGE_COLUMNS, type PageSummary, type PageVerifier } from '@airlock/audit';
import { chainKey, SYSTEM_CHAIN } from './audit-log.ts';
import type { BinaryCopy, Queryable, Statement } from './database.ts';

/** Table blocks a page: about 13 records a block, so some 13 000 records and 5 MB of rows. */
export const VERIFY_PAGE_BLOCKS = 1_000;

/**
 * A new page buffer's size, per block of the page: about what a block's rows take in COPY's form
 * (more where a value was stored compressed, and then the buffer grows). Growing costs a copy and
 * fresh memory at every doubling, and fresh memory a page fault for every 4 KiB touched; the
 * buffers of verified pages are reused after.
 */
const PAGE_BYTES_PER_BLOCK = 8_192;

/** Pages read at once; with the pages being hashed, this keeps both cores busy. */
const READS_AT_ONCE = 2;

const tid = (block: number) => `(${block},0)`;

/**
 * The records of the chains in `heads` with `seq` after the legacy head and up to their head, in
 * blocks [from, to): records appended since the heads were read, and chains begun since, are not
 * this verify's business. Joined against the heads as given, so the database filters them. The
 * rows come as they are stored, in PostgreSQL's binary COPY format (`PAGE_COLUMNS`), and go to
 * `verifyPage` unparsed: writing each row out as JSON took the database longer than the rest of
 * the verify. COPY takes no parameters; `SCAN_SETTINGS` sets, as parameters, what `SCAN` reads,
 * each once: a sub-select is evaluated once, before the scan, where `current_setting` in a
 * condition is called again for every row.
 */
const SCAN = `SELECT ${PAGE_COLUMNS.map((column) => `e.${column}`).join(', ')}
  FROM audit_events e JOIN unnest((SELECT current_setting('airlock.scan_chains')::uuid[]), (SELECT current_setting('airlock.scan_heads')::bigint[])) AS h (chain, head_seq)
    ON h.chain = coalesce(e.tenant_id, '${SYSTEM_CHAIN}'::uuid)
  WHERE e.ctid >= (SELECT current_setting('airlock.scan_from')::tid) AND e.ctid < (SELECT current_setting('airlock.scan_to')::tid)
    AND e.seq > (SELECT current_setting('airlock.scan_after')::bigint) AND e.seq <= h.head_seq`;

const SCAN_SETTINGS = `SELECT set_config('airlock.scan_from', $1::tid::text, true), set_config('airlock.scan_to', $2::tid::text, true),
  set_config('airlock.scan_chains', $3::uuid[]::text, true), set_config('airlock.scan_heads', $4::bigint[]::text, true),
  set_config('airlock.scan_after', $5::bigint::text, true)`;

function readBlocks(db: BinaryCopy, from: number, to: number, chains: string[], headSeqs: number[], legacySeq: number, into: ArrayBuffer | undefined): Promise<Uint8Array> {
  const settings: Statement = { text: SCAN_SETTINGS, params: [tid(from), tid(to), chains, headSeqs, legacySeq] };
  return db.copyBinary(SCAN, settings, into);
}

/** The stored hash of every record a checkpoint names, by chain key and seq; a seq held twice maps to null. */
async function claimedHashes(db: Queryable, claimed: { chain: string; seq: number }[]): Promise<Map<string, string | null>> {
  const found = new Map<string, string | null>();
  if (claimed.length === 0) return found;
  const rows = await db.query<{ chain: string; seq: string; hash: string }>(
    `SELECT c.chain::text AS chain, e.seq::text AS seq, e.hash FROM unnest($1::uuid[], $2::bigint[]) AS c (chain, seq)
       JOIN audit_events e ON e.tenant_id = c.chain AND e.seq = c.seq
     UNION ALL
     SELECT '00000000-0000-0000-0000-000000000000', e.seq::text, e.hash FROM audit_events e WHERE e.tenant_id IS NULL AND e.seq = ANY($3::bigint[])`,
    [claimed.map((c) => c.chain), claimed.map((c) => c.seq), claimed.filter((c) => c.chain === chainKey(null)).map((c) => c.seq)],
  );
  for (const row of rows) {
    const key = `${row.chain}/${row.seq}`;
    found.set(key, found.has(key) ? null : row.hash);
  }
  return found;
}

/**
 * Every chain in `heads`, from the legacy head to its head, with the records at `claims` (per
 * chain, seq to hash) matching: the records verified in all, or the leaf of a chain that does not
 * hold (the first found).
 */
export async function verifyChainsFast(
  db: Queryable & BinaryCopy,
  pages: PageVerifier,
  heads: readonly ChainLeaf[],
  legacy: ChainHead,
  claims: ReadonlyMap<string | null, ReadonlyMap<number, string>>,
  blocksPerPage: number = VERIFY_PAGE_BLOCKS,
): Promise<{ ok: true; count: number } | { ok: false; chain: ChainLeaf }> {
  const byKey = new Map(heads.map((head) => [chainKey(head.tenantId), head]));
  const runs = new Map(heads.map((head) => [chainKey(head.tenantId), new ChainRuns()]));
  const chains = [...byKey.keys()];
  const headSeqs = chains.map((key) => byKey.get(key)?.seq ?? 0);
  // Read after the heads: every record up to a head was committed before, so it lies below this block.
  const [size] = await db.query<{ blocks: string }>("SELECT (pg_relation_size('audit_events') / current_setting('block_size')::bigint)::text AS blocks");
  const blocks = Number(size?.blocks ?? 0);

  let failed: ChainLeaf | null = null;
  const take = (summary: PageSummary) => {
    if (!summary.ok) {
      failed ??= byKey.get(chainKey(summary.tenantId)) ?? heads[0] ?? null;
      return;
    }
    for (const run of summary.runs) {
      const chain = runs.get(chainKey(run.tenantId));
      if (chain) chain.add(run);
      else failed ??= heads[0] ?? null;
    }
  };
  const hashing = new Set<Promise<void>>();
  const hashingLimit = Math.max(2, 2 * pages.threads);
  let nextBlock = 0;
  const reader = async () => {
    while (nextBlock < blocks && failed === null) {
      const from = nextBlock;
      nextBlock = Math.min(blocks, from + blocksPerPage);
      const into = pages.spare() ?? new ArrayBuffer(blocksPerPage * PAGE_BYTES_PER_BLOCK);
      const page = await readBlocks(db, from, nextBlock, chains, headSeqs, legacy.seq, into);
      const done = pages.verify(page).then(take);
      hashing.add(done);
      void done.finally(() => hashing.delete(done)).catch(() => undefined);
      // Bounded: a few pages wait to be hashed, never the whole table.
      while (hashing.size >= hashingLimit) await Promise.race(hashing);
    }
  };
  await Promise.all(Array.from({ length: READS_AT_ONCE }, reader));
  await Promise.all(hashing);
  if (failed !== null) return { ok: false, chain: failed };

  let count = 0;
  for (const head of heads) {
    const result = runs.get(chainKey(head.tenantId))?.result(legacy, head);
    if (!result?.ok) return { ok: false, chain: head };
    count += result.count;
  }

  // The records the checkpoints name: each a verified record (after the legacy head, at most the
  // head, so within what was just verified) with the named hash; the legacy head itself as a start.
  const claimed: { chain: string; seq: number; hash: string; head: ChainLeaf }[] = [];
  for (const head of heads) {
    for (const [seq, hash] of claims.get(head.tenantId) ?? []) {
      if (seq === legacy.seq && hash === legacy.hash) continue;
      if (seq <= legacy.seq || seq > head.seq) return { ok: false, chain: head };
      claimed.push({ chain: chainKey(head.tenantId), seq, hash, head });
    }
  }
  const stored = await claimedHashes(db, claimed);
  for (const claim of claimed) {
    if (stored.get(`${claim.chain}/${claim.seq}`) !== claim.hash) return { ok: false, chain: claim.head };
  }
  return { ok: true, count };
}
