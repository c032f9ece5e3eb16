/**
 * Signed checkpoints of the audit chain: the control plane signs (seq, hash, time) with its Ed25519
 * key, so anyone holding its public key — an auditor's `verify`, or an agent acting as witness —
 * can later prove the chain was not rewritten or cut short behind that point. Signing is injected
 * so this package stays pure.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import { type AuditRecord, type ChainHead, type ChainLink, type ChainVerification, ChainVerifier, verifyChain } from './chain.ts';
import { type ChainLeaf, merkleRoot, verifyInclusion } from './merkle.ts';

export interface Checkpoint {
  readonly version: 1;
  readonly seq: number;
  readonly hash: string;
  readonly at: string;
  /** First 16 hex digits of the SHA-256 of the signing public key. */
  readonly keyId: string;
  /** Base64 Ed25519 signature over `checkpointMessage`. */
  readonly signature: string;
}

export type Sign = (message: Uint8Array) => Uint8Array;
export type Verify = (message: Uint8Array, signature: Uint8Array) => boolean;

export function keyIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

export function checkpointMessage(checkpoint: Omit<Checkpoint, 'signature'>): Uint8Array {
  const { version, seq, hash, at, keyId } = checkpoint;
  return Buffer.from(`airlock-audit-checkpoint\n${canonicalJson({ version, seq, hash, at, keyId })}`, 'utf8');
}

export function signCheckpoint(head: ChainHead, at: Date, publicKey: Uint8Array, sign: Sign): Checkpoint {
  const unsigned = { version: 1 as const, seq: head.seq, hash: head.hash, at: at.toISOString(), keyId: keyIdOf(publicKey) };
  return { ...unsigned, signature: Buffer.from(sign(checkpointMessage(unsigned))).toString('base64') };
}

export function checkpointSignedBy(checkpoint: Checkpoint, publicKey: Uint8Array, verify: Verify): boolean {
  if (checkpoint.version !== 1 || checkpoint.keyId !== keyIdOf(publicKey)) return false;
  return verify(checkpointMessage(checkpoint), Buffer.from(checkpoint.signature, 'base64'));
}

export type AuditVerification =
  | { ok: true; count: number; head: ChainHead | null; checkpoints: number }
  | { ok: false; seq: number; reason: string };

/**
 * The whole chain from genesis, then every checkpoint against it: a checkpoint whose record is
 * missing means the chain was truncated; one whose hash differs means it was rewritten.
 */
export function verifyAudit(
  records: Iterable<AuditRecord>,
  checkpoints: readonly Checkpoint[],
  publicKey: Uint8Array,
  verify: Verify,
): AuditVerification {
  const audit = new AuditVerifier(checkpoints, publicKey, verify);
  for (const record of records) {
    if (!audit.add(record)) break;
  }
  return audit.result();
}

/** `verifyAudit` over pages read one after another (a database cursor), never holding the whole chain. */
export async function verifyAuditPages(
  pages: AsyncIterable<Iterable<AuditRecord>>,
  checkpoints: readonly Checkpoint[],
  publicKey: Uint8Array,
  verify: Verify,
): Promise<AuditVerification> {
  const audit = new AuditVerifier(checkpoints, publicKey, verify);
  for await (const page of pages) {
    for (const record of page) {
      if (!audit.add(record)) return audit.result();
    }
  }
  return audit.result();
}

/** The incremental form of `verifyAudit`: `add` each record in order, then read `result`. */
export class AuditVerifier {
  readonly #chain = new ChainVerifier();
  readonly #checkpoints: readonly Checkpoint[];
  readonly #hashes = new Map<number, string>();
  readonly #publicKey: Uint8Array;
  readonly #verify: Verify;

  constructor(checkpoints: readonly Checkpoint[], publicKey: Uint8Array, verify: Verify) {
    this.#checkpoints = [...checkpoints].sort((a, b) => a.seq - b.seq);
    for (const checkpoint of this.#checkpoints) this.#hashes.set(checkpoint.seq, '');
    this.#publicKey = publicKey;
    this.#verify = verify;
  }

  add(record: AuditRecord): boolean {
    if (this.#hashes.has(record.seq)) this.#hashes.set(record.seq, record.hash);
    return this.#chain.add(record);
  }

  result(): AuditVerification {
    const chain: ChainVerification = this.#chain.result();
    if (!chain.ok) return chain;
    for (const checkpoint of this.#checkpoints) {
      if (!checkpointSignedBy(checkpoint, this.#publicKey, this.#verify)) {
        return { ok: false, seq: checkpoint.seq, reason: 'checkpoint signature does not verify' };
      }
      const hash = this.#hashes.get(checkpoint.seq) ?? '';
      if (hash === '') return { ok: false, seq: checkpoint.seq, reason: `truncated: the chain ends at ${chain.head?.seq ?? 0}, before checkpoint ${checkpoint.seq}` };
      if (hash !== checkpoint.hash) return { ok: false, seq: checkpoint.seq, reason: 'rewritten: the record at this checkpoint has another hash' };
    }
    return { ok: true, count: chain.count, head: chain.head, checkpoints: this.#checkpoints.length };
  }
}

/**
 * For a witness: does `next` extend `previous`? `segment` holds the records after `previous` up to
 * and including `next.seq`, as the control plane served them.
 */
export function checkpointExtends(previous: Checkpoint, next: Checkpoint, segment: Iterable<ChainLink>): { ok: true } | { ok: false; reason: string } {
  if (next.seq < previous.seq) return { ok: false, reason: `checkpoint went back from ${previous.seq} to ${next.seq}` };
  if (next.seq === previous.seq) return next.hash === previous.hash ? { ok: true } : { ok: false, reason: `checkpoint ${next.seq} changed its hash` };
  const chain = verifyChain(segment, { after: { seq: previous.seq, hash: previous.hash }, allowWithheld: true });
  if (!chain.ok) return { ok: false, reason: `records after ${previous.seq}: ${chain.reason}` };
  if (chain.head?.seq !== next.seq || chain.head.hash !== next.hash) return { ok: false, reason: `records after ${previous.seq} do not lead to checkpoint ${next.seq}` };
  return { ok: true };
}

/**
 * A checkpoint of every chain at once (per-tenant chains): the signed Merkle root over every
 * chain's head (`merkle.ts`), and the frozen final head of the one global chain that came before
 * (`legacy`; seq 0 and the genesis hash where there was none). Signing `legacy` in every such
 * checkpoint is what keeps the old global chain verifiable past the v1 checkpoints it had: its
 * records after the last of those are covered from the first tree checkpoint on.
 */
export interface TreeCheckpoint {
  readonly version: 2;
  /** Position in the control plane's checkpoint log, 1 for the first; signed, so the log cannot be reordered. */
  readonly number: number;
  readonly at: string;
  /** How many chains the tree has: its leaf count. */
  readonly size: number;
  readonly root: string;
  readonly legacy: ChainHead;
  readonly keyId: string;
  readonly signature: string;
}

export function treeCheckpointMessage(checkpoint: Omit<TreeCheckpoint, 'signature'>): Uint8Array {
  const { version, number, at, size, root, legacy, keyId } = checkpoint;
  const body = canonicalJson({ at, keyId, legacy: { hash: legacy.hash, seq: legacy.seq }, number, root, size, version });
  return Buffer.from(`airlock-audit-tree-checkpoint\n${body}`, 'utf8');
}

export function signTreeCheckpoint(
  fields: { number: number; leaves: readonly ChainLeaf[]; legacy: ChainHead; at: Date },
  publicKey: Uint8Array,
  sign: Sign,
): TreeCheckpoint {
  const unsigned = {
    version: 2 as const,
    number: fields.number,
    at: fields.at.toISOString(),
    size: fields.leaves.length,
    root: merkleRoot(fields.leaves),
    legacy: { seq: fields.legacy.seq, hash: fields.legacy.hash },
    keyId: keyIdOf(publicKey),
  };
  return { ...unsigned, signature: Buffer.from(sign(treeCheckpointMessage(unsigned))).toString('base64') };
}

export function treeCheckpointSignedBy(checkpoint: TreeCheckpoint, publicKey: Uint8Array, verify: Verify): boolean {
  if (checkpoint.version !== 2 || checkpoint.keyId !== keyIdOf(publicKey)) return false;
  return verify(treeCheckpointMessage(checkpoint), Buffer.from(checkpoint.signature, 'base64'));
}

/** One chain's view of a tree checkpoint: its own leaf, where it sits, and the path to the root. */
export interface ChainProof {
  readonly leaf: ChainLeaf;
  readonly index: number;
  readonly proof: readonly string[];
}

/** Signature and inclusion together: the checkpoint is the pinned key's, and it commits to `proof.leaf`. */
export function chainProofHolds(checkpoint: TreeCheckpoint, proof: ChainProof, publicKey: Uint8Array, verify: Verify): boolean {
  return (
    treeCheckpointSignedBy(checkpoint, publicKey, verify) &&
    verifyInclusion(proof.leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)
  );
}
