import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type ChainLeaf, compareLeaves, inclusionProof, merkleRoot, verifyInclusion } from './index.ts';

function leaves(n: number): ChainLeaf[] {
  return Array.from({ length: n }, (_, i) => ({ tenantId: i === 0 ? null : randomUUID(), seq: i + 1, hash: i.toString(16).padStart(64, '0') })).sort(compareLeaves);
}

describe('the checkpoint tree', () => {
  it('proves every leaf of trees of 1 to 33 leaves, and nothing else', () => {
    for (let n = 1; n <= 33; n++) {
      const all = leaves(n);
      const root = merkleRoot(all);
      all.forEach((leaf, index) => {
        const proof = inclusionProof(all, index);
        expect(verifyInclusion(leaf, index, n, proof, root)).toBe(true);
        // Another seq, another hash, another place, a shortened path: each fails. (The size is signed with the root.)
        expect(verifyInclusion({ ...leaf, seq: leaf.seq + 1 }, index, n, proof, root)).toBe(false);
        expect(verifyInclusion({ ...leaf, hash: 'f'.repeat(64) }, index, n, proof, root)).toBe(false);
        if (n > 1) expect(verifyInclusion(leaf, (index + 1) % n, n, proof, root)).toBe(false);
        if (proof.length > 0) expect(verifyInclusion(leaf, index, n, proof.slice(1), root)).toBe(false);
      });
    }
  });

  it('commits to the tenant of each leaf: the same head under another tenant is another root', () => {
    const all = leaves(4);
    const [first, ...rest] = all;
    if (!first) throw new Error('no leaf');
    expect(merkleRoot([{ ...first, tenantId: randomUUID() }, ...rest])).not.toBe(merkleRoot(all));
    expect(merkleRoot(all)).toMatch(/^[0-9a-f]{64}$/);
  });
});
