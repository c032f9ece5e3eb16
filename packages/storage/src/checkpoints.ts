/**
 * Signed checkpoints of the audit trail and whole-trail verification against them.
 *
 * Each tenant has its own chain, and events without a tenant have the system chain (migration
 * 0015). A tree checkpoint signs the Merkle root over every chain's head, with the frozen final
 * head of the legacy global chain. The server signs one periodically and `airlock audit
 * checkpoint` on demand; a tenant (its auditors, its agents as witnesses, an offline verify of its
 * export) gets the checkpoint with its own leaf and audit path only. `airlock audit verify` walks
 * the legacy chain against its v1 checkpoints and every chain against every tree checkpoint.
 */
import {
  AuditVerifier,
  type ChainHead,
  type ChainLeaf,
  type ChainProof,
  ChainVerifier,
  type Checkpoint,
  defaultPageThreads,
  compareLeaves,
  inclusionProof,
  keyIdOf,
  merkleRoot,
  openPageVerifier,
  signTreeCheckpoint,
  type TreeCheckpoint,
  treeCheckpointSignedBy,
} from '@airlock/audit';
import { chainKey, readChainPages, readLegacyPages } from './audit-log.ts';
import { verifyChainsFast } from './audit-verify.ts';
import { type Signer, verifierFor } from './signer.ts';
import type { BinaryCopy, Queryable } from './database.ts';

/** Serializes checkpoint signing across replicas, so the log's numbers have no gaps or forks. */
const CHECKPOINT_LOCK = 7_261_015;

interface TreeRow {
  number: string;
  at: Date;
  size: number;
  root: string;
  legacy_seq: string;
  legacy_hash: string;
  key_id: string;
  signature: string;
}

const TREE_COLUMNS = 'number::text AS number, at, size, root, legacy_seq::text AS legacy_seq, legacy_hash, key_id, signature';

function treeFromRow(row: TreeRow): TreeCheckpoint {
  return {
    version: 2,
    number: Number(row.number),
    at: row.at.toISOString(),
    size: row.size,
    root: row.root,
    legacy: { seq: Number(row.legacy_seq), hash: row.legacy_hash },
    keyId: row.key_id,
    signature: row.signature,
  };
}

interface LeafRow {
  tenant_id: string | null;
  seq: string;
  hash: string;
}

const leafFromRow = (row: LeafRow): ChainLeaf => ({ tenantId: row.tenant_id, seq: Number(row.seq), hash: row.hash });

/** The frozen final head of the legacy global chain (seq 0 and the genesis hash when there was none). */
export async function legacyHead(db: Queryable): Promise<ChainHead> {
  const [row] = await db.query<{ seq: string; hash: string }>('SELECT seq::text AS seq, hash FROM audit_head WHERE singleton');
  if (!row) throw new Error('audit head missing: run migrations');
  return { seq: Number(row.seq), hash: row.hash };
}

/** Every chain's current head, in leaf order. Needs the system scope to see every tenant's. */
async function currentLeaves(db: Queryable): Promise<ChainLeaf[]> {
  const rows = await db.query<LeafRow>('SELECT tenant_id, seq::text AS seq, hash FROM audit_chain_heads');
  return rows.map(leafFromRow).sort(compareLeaves);
}

/** The leaves checkpoint `number` signed: per chain, the newest stored leaf at or before it. */
async function leavesAt(db: Queryable, number: number): Promise<ChainLeaf[]> {
  const rows = await db.query<LeafRow>(
    `SELECT DISTINCT ON (chain) tenant_id, seq::text AS seq, hash FROM audit_checkpoint_leaves
     WHERE number <= $1 ORDER BY chain, number DESC`,
    [number],
  );
  return rows.map(leafFromRow).sort(compareLeaves);
}

/**
 * Signs every chain's current head. Returns null while no chain has a record, and the newest
 * checkpoint (`created: false`) when this key already signed exactly these heads. Runs in the
 * system scope: the tree covers every tenant.
 */
export async function createCheckpoint(
  db: Queryable & { transaction?: <T>(fn: (tx: Queryable) => Promise<T>) => Promise<T> },
  signer: Signer,
  now: Date = new Date(),
): Promise<{ checkpoint: TreeCheckpoint; created: boolean } | null> {
  const work = async (tx: Queryable) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [CHECKPOINT_LOCK]);
    // A head row is only written together with its record, so this read sees committed, whole chains.
    const leaves = await currentLeaves(tx);
    if (leaves.length === 0) return null;
    const legacy = await legacyHead(tx);
    const [latest] = await tx.query<TreeRow>(`SELECT ${TREE_COLUMNS} FROM audit_tree_checkpoints WHERE key_id = $1 ORDER BY number DESC LIMIT 1`, [signer.keyId]);
    const root = merkleRoot(leaves);
    if (latest && latest.root === root && latest.size === leaves.length) return { checkpoint: treeFromRow(latest), created: false };
    const [last] = await tx.query<{ number: string | null }>('SELECT max(number)::text AS number FROM audit_tree_checkpoints');
    const number = Number(last?.number ?? 0) + 1;
    const checkpoint = signTreeCheckpoint({ number, leaves, legacy, at: now }, signer.publicKey, (message) => signer.sign(message));
    await tx.query(
      `INSERT INTO audit_tree_checkpoints (number, at, size, root, legacy_seq, legacy_hash, key_id, signature)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [number, checkpoint.at, checkpoint.size, checkpoint.root, legacy.seq, legacy.hash, checkpoint.keyId, checkpoint.signature],
    );
    // Only the chains that moved since the previous checkpoint get a row; the rest carry over.
    const previous = new Map((await leavesAt(tx, number - 1)).map((leaf) => [leaf.tenantId, leaf]));
    for (const leaf of leaves) {
      const before = previous.get(leaf.tenantId);
      if (before?.seq === leaf.seq && before.hash === leaf.hash) continue;
      await tx.query('INSERT INTO audit_checkpoint_leaves (chain, number, tenant_id, seq, hash) VALUES ($1, $2, $3, $4, $5)', [
        chainKey(leaf.tenantId),
        number,
        leaf.tenantId,
        leaf.seq,
        leaf.hash,
      ]);
    }
    return { checkpoint, created: true };
  };
  return db.transaction ? db.transaction(work) : work(db);
}

/** Tree checkpoints, newest first; `beforeNumber` pages backwards. Reveals no chain's head. */
export async function listCheckpoints(db: Queryable, options: { beforeNumber?: number; limit: number; keyId?: string }): Promise<TreeCheckpoint[]> {
  const rows = await db.query<TreeRow>(
    `SELECT ${TREE_COLUMNS} FROM audit_tree_checkpoints
     WHERE ($1::bigint IS NULL OR number < $1) AND ($2::text IS NULL OR key_id = $2) ORDER BY number DESC LIMIT $3`,
    [options.beforeNumber ?? null, options.keyId ?? null, options.limit],
  );
  return rows.map(treeFromRow);
}

/** A checkpoint as one chain sees it: the checkpoint, and that chain's leaf with its audit path (null before its first record). */
export interface ChainCheckpoint {
  checkpoint: TreeCheckpoint;
  proof: ChainProof | null;
}

/**
 * `checkpoints` with the chain of `tenantId` proven in each. `system` must be the system scope:
 * the path is computed from every leaf, and only this chain's leaf and the path leave here.
 */
export async function chainCheckpoints(system: Queryable, tenantId: string | null, checkpoints: readonly TreeCheckpoint[]): Promise<ChainCheckpoint[]> {
  const proven: ChainCheckpoint[] = [];
  for (const checkpoint of checkpoints) {
    const leaves = await leavesAt(system, checkpoint.number);
    const index = leaves.findIndex((leaf) => leaf.tenantId === tenantId);
    const leaf = leaves[index];
    proven.push({ checkpoint, proof: leaf === undefined ? null : { leaf, index, proof: inclusionProof(leaves, index) } });
  }
  return proven;
}

/** The newest checkpoint signed by `keyId`, proven for one chain; null before the first. */
export async function latestChainCheckpoint(system: Queryable, tenantId: string | null, keyId: string): Promise<ChainCheckpoint | null> {
  const [latest] = await listCheckpoints(system, { limit: 1, keyId });
  if (!latest) return null;
  const [proven] = await chainCheckpoints(system, tenantId, [latest]);
  return proven ?? null;
}

/** v1 checkpoints of the legacy global chain, oldest first. */
async function legacyCheckpoints(db: Queryable, keyId: string): Promise<Checkpoint[]> {
  const rows = await db.query<{ seq: string; hash: string; at: Date; key_id: string; signature: string }>(
    'SELECT seq::text AS seq, hash, at, key_id, signature FROM audit_checkpoints WHERE key_id = $1 ORDER BY audit_checkpoints.seq',
    [keyId],
  );
  return rows.map((row) => ({ version: 1, seq: Number(row.seq), hash: row.hash, at: row.at.toISOString(), keyId: row.key_id, signature: row.signature }));
}

export type StoredAuditVerification =
  | {
      ok: true;
      /** Records verified: the legacy chain's and every chain's since. */
      count: number;
      /** Chains verified, the system chain included. */
      chains: number;
      /** Checkpoints of this key that hold: legacy v1 and tree ones. */
      checkpoints: number;
      /** The frozen final head of the legacy global chain. */
      legacy: ChainHead;
    }
  | { ok: false; tenantId?: string | null; seq: number; reason: string };

/** Below this many records to hash, verification stays on the calling thread. */
const IN_THREAD_BELOW = 50_000;

/**
 * The whole trail against every stored checkpoint of `publicKey`: the legacy chain from genesis to
 * its frozen head with its v1 checkpoints, then every chain from that head to its current head, and
 * every tree checkpoint's root rebuilt from its leaves, each leaf matching the record it names.
 * Checkpoints of other keys (a rotated key) are not this key's claims and are left out. Needs the
 * system scope.
 */
export async function verifyStoredAudit(
  db: Queryable & BinaryCopy,
  publicKey: Uint8Array,
  options: {
    /** Records a page when walking one chain (the legacy chain, and a chain that failed). */
    pageSize?: number;
    /** Table blocks a page when reading every chain at once. */
    pageBlocks?: number;
    /** Worker threads that hash pages; 0 hashes on this thread. */
    threads?: number;
  } = {},
): Promise<StoredAuditVerification> {
  const verify = verifierFor(publicKey);
  const keyId = keyIdOf(publicKey);
  const legacy = await legacyHead(db);
  let count = 0;

  // The legacy epoch, exactly as it verified before the chains were split.
  const v1 = await legacyCheckpoints(db, keyId);
  if (legacy.seq > 0 || v1.length > 0) {
    const audit = new AuditVerifier(v1, publicKey, verify);
    for await (const page of readLegacyPages(db, legacy.seq, options.pageSize)) {
      if (!page.every((record) => audit.add(record))) break;
    }
    const result = audit.result();
    if (!result.ok) return { ok: false, seq: result.seq, reason: `legacy chain: ${result.reason}` };
    if (result.head?.seq !== legacy.seq || result.head.hash !== legacy.hash) {
      return { ok: false, seq: result.head?.seq ?? 0, reason: `legacy chain: it ends at ${result.head?.seq ?? 0}, not at its frozen head ${legacy.seq}` };
    }
    count += result.count;
  }

  // Tree checkpoints: signatures and roots, and which record of which chain each leaf names.
  const trees = (await listCheckpoints(db, { limit: 1_000_000, keyId })).reverse();
  const claims = new Map<string | null, Map<number, string>>();
  if (trees.length > 0) {
    const leafRows = await db.query<LeafRow & { number: string }>(
      'SELECT number::text AS number, tenant_id, seq::text AS seq, hash FROM audit_checkpoint_leaves ORDER BY number',
    );
    const current = new Map<string | null, ChainLeaf>();
    let next = 0;
    for (const tree of trees) {
      while (next < leafRows.length && Number(leafRows[next]?.number) <= tree.number) {
        const row = leafRows[next];
        if (row) current.set(row.tenant_id, leafFromRow(row));
        next += 1;
      }
      if (!treeCheckpointSignedBy(tree, publicKey, verify)) return { ok: false, seq: tree.number, reason: `checkpoint ${tree.number}: signature does not verify` };
      if (tree.legacy.seq !== legacy.seq || tree.legacy.hash !== legacy.hash) {
        return { ok: false, seq: tree.number, reason: `checkpoint ${tree.number}: signs another legacy head than the frozen one` };
      }
      const leaves = [...current.values()].sort(compareLeaves);
      if (leaves.length !== tree.size || merkleRoot(leaves) !== tree.root) {
        return { ok: false, seq: tree.number, reason: `checkpoint ${tree.number}: its stored leaves do not give its signed root` };
      }
      for (const leaf of leaves) {
        const seqs = claims.get(leaf.tenantId) ?? new Map<number, string>();
        const claimed = seqs.get(leaf.seq);
        if (claimed !== undefined && claimed !== leaf.hash) return { ok: false, tenantId: leaf.tenantId, seq: leaf.seq, reason: 'two checkpoints name different records at this seq' };
        seqs.set(leaf.seq, leaf.hash);
        claims.set(leaf.tenantId, seqs);
      }
    }
  }

  const heads = await currentLeaves(db);
  for (const tenantId of claims.keys()) {
    if (!heads.some((head) => head.tenantId === tenantId)) return { ok: false, tenantId, seq: 0, reason: 'a checkpointed chain has no head: truncated' };
  }
  // Small trails are hashed on this thread: starting workers would cost more than they save.
  const recordsToVerify = heads.reduce((sum, head) => sum + Math.max(0, head.seq - legacy.seq), 0);
  const pages = openPageVerifier({ threads: options.threads ?? (recordsToVerify < IN_THREAD_BELOW ? 0 : defaultPageThreads()) });
  let fast: Awaited<ReturnType<typeof verifyChainsFast>>;
  try {
    fast = await verifyChainsFast(db, pages, heads, legacy, claims, options.pageBlocks);
  } finally {
    await pages.close();
  }
  if (!fast.ok) {
    // Walked again chain by chain, record by record: that names the first bad record and why, and
    // it alone decides, so that a table rewritten under the scan (VACUUM FULL moves rows between
    // blocks) cannot fail a trail that holds.
    const ordered = [fast.chain, ...heads.filter((head) => head !== fast.chain)];
    let walked = 0;
    for (const head of ordered) {
      const result = await verifyChainAgainst(db, head, legacy, claims.get(head.tenantId) ?? new Map<number, string>(), options.pageSize);
      if (typeof result !== 'number') return result;
      walked += result;
    }
    return { ok: true, count: count + walked, chains: heads.length, checkpoints: v1.length + trees.length, legacy };
  }
  count += fast.count;
  return { ok: true, count, chains: heads.length, checkpoints: v1.length + trees.length, legacy };
}

/** One chain from the legacy head to `head`, with the records the checkpoints name; the count, or where it breaks. */
async function verifyChainAgainst(
  db: Queryable,
  head: ChainLeaf,
  legacy: ChainHead,
  claims: Map<number, string>,
  pageSize: number | undefined,
): Promise<number | Extract<StoredAuditVerification, { ok: false }>> {
  const { tenantId } = head;
  const chain = new ChainVerifier({ after: legacy });
  const unmet = new Map(claims);
  const legacyClaim = unmet.get(legacy.seq);
  if (legacyClaim !== undefined) {
    if (legacyClaim !== legacy.hash) return { ok: false, tenantId, seq: legacy.seq, reason: 'a checkpoint names another start than the legacy head' };
    unmet.delete(legacy.seq);
  }
  const readOptions = pageSize === undefined ? { afterSeq: legacy.seq, untilSeq: head.seq } : { afterSeq: legacy.seq, untilSeq: head.seq, pageSize };
  for await (const page of readChainPages(db, tenantId, readOptions)) {
    for (const record of page) {
      if (record.tenantId !== tenantId || !chain.add(record)) {
        const result = chain.result();
        return { ok: false, tenantId, seq: result.ok ? record.seq : result.seq, reason: result.ok ? 'record of another chain' : result.reason };
      }
      const claimed = unmet.get(record.seq);
      if (claimed !== undefined) {
        if (claimed !== record.hash) return { ok: false, tenantId, seq: record.seq, reason: 'rewritten: the record at this checkpoint has another hash' };
        unmet.delete(record.seq);
      }
    }
  }
  const result = chain.result();
  if (!result.ok) return { ok: false, tenantId, seq: result.seq, reason: result.reason };
  const end: ChainHead = result.head ?? legacy;
  for (const seq of unmet.keys()) {
    return { ok: false, tenantId, seq, reason: `truncated: the chain ends at ${end.seq}, before checkpoint leaf ${seq}` };
  }
  if (end.seq !== head.seq || end.hash !== head.hash) return { ok: false, tenantId, seq: end.seq, reason: `truncated: the chain ends at ${end.seq}, its head says ${head.seq}` };
  return result.count;
}

