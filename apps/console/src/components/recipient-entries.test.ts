import { describe, expect, it } from 'vitest';
import { addRecipientKeys, type RecipientEntry } from './recipient-entries.ts';

const entry = (fingerprint: string): RecipientEntry => ({ armored: `key ${fingerprint}`, fingerprint, algorithm: 'rsa', bits: 3072, expires: null, userIds: [], warnings: [] });
const A = 'A'.repeat(40);
const B = 'B'.repeat(40);
const C = 'C'.repeat(40);

describe('addRecipientKeys', () => {
  it('[integrity #10] adds every key of a file with several keys and names each', () => {
    const result = addRecipientKeys([entry(C)], [entry(A), entry(B)]);
    expect(result.ok && result.next.map((e) => e.fingerprint)).toEqual([C, A, B]);
    expect(result.ok && result.note).toBe(`That file held 2 keys; each is added as its own recipient: ${A.replace(/(.{4})(?=.)/g, '$1 ')}, ${B.replace(/(.{4})(?=.)/g, '$1 ')}.`);
  });

  it('[integrity #10] refuses the whole file when one of its keys is already listed', () => {
    const result = addRecipientKeys([entry(B)], [entry(A), entry(B)]);
    expect(result).toEqual({ ok: false, problem: expect.stringContaining('BBBB BBBB') });
  });

  it('adds a single key without a note', () => {
    expect(addRecipientKeys([], [entry(A)])).toEqual({ ok: true, next: [entry(A)], note: null });
  });
});
