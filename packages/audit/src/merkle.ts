/**
 * The Merkle tree a checkpoint signs: one leaf per audit chain (a tenant's, or the system chain),
 * committing to that chain's head (tenant, seq, hash). The shape is RFC 6962's (Certificate
 * Transparency): leaves and inner nodes are hashed with different one-byte prefixes, so a leaf can
 * never pass for a node, and a tree of n leaves splits at the largest power of two below n. A
 * tenant holding its own leaf and its audit path checks it against the signed root without
 * seeing any other tenant's head, sequence number or volume.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.ts';

/** One chain's head as a checkpoint commits to it. `tenantId` null is the system chain. */
export interface ChainLeaf {
  readonly tenantId: string | null;
  readonly seq: number;
  readonly hash: string;
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

export function leafHash(leaf: ChainLeaf): Buffer {
  const body = canonicalJson({ hash: leaf.hash, seq: leaf.seq, tenantId: leaf.tenantId });
  return createHash('sha256').update(LEAF).update(`airlock-audit-chain-head\n${body}`, 'utf8').digest();
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

/** Leaves sort by tenant id, the system chain (null) first; each chain appears once. */
export function compareLeaves(a: ChainLeaf, b: ChainLeaf): number {
  const x = a.tenantId ?? '';
  const y = b.tenantId ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The largest power of two strictly below n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function root(hashes: readonly Buffer[]): Buffer {
  if (hashes.length === 0) return createHash('sha256').digest();
  if (hashes.length === 1) return hashes[0] ?? Buffer.alloc(0);
  const k = split(hashes.length);
  return nodeHash(root(hashes.slice(0, k)), root(hashes.slice(k)));
}

/** Hex root over leaves already in `compareLeaves` order. */
export function merkleRoot(leaves: readonly ChainLeaf[]): string {
  return root(leaves.map(leafHash)).toString('hex');
}

function path(index: number, hashes: readonly Buffer[]): Buffer[] {
  if (hashes.length <= 1) return [];
  const k = split(hashes.length);
  return index < k
    ? [...path(index, hashes.slice(0, k)), root(hashes.slice(k))]
    : [...path(index - k, hashes.slice(k)), root(hashes.slice(0, k))];
}

/** The audit path of leaf `index`: sibling hashes from the bottom up, hex. */
export function inclusionProof(leaves: readonly ChainLeaf[], index: number): string[] {
  if (!Number.isSafeInteger(index) || index < 0 || index >= leaves.length) throw new RangeError('leaf index out of range');
  return path(index, leaves.map(leafHash)).map((hash) => hash.toString('hex'));
}

/** RFC 6962 §2.1.1 verification: does `leaf`, at `index` of a tree of `size` leaves, lead to `rootHex` along `proof`? */
export function verifyInclusion(leaf: ChainLeaf, index: number, size: number, proof: readonly string[], rootHex: string): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let hash = leafHash(leaf);
  for (const sibling of proof) {
    if (!/^[0-9a-f]{64}$/.test(sibling)) return false;
    const other = Buffer.from(sibling, 'hex');
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      hash = nodeHash(other, hash);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      hash = nodeHash(hash, other);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hash.toString('hex') === rootHex;
}
