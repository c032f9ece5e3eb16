import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type AuditRecord, chainEvent, checkpointExtends, checkpointSignedBy, signCheckpoint, verifyAudit, verifyAuditPages } from './index.ts';

const keys = generateKeyPairSync('ed25519');
const publicKey = Buffer.from(keys.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
const signer = (message: Uint8Array) => sign(null, message, keys.privateKey);
const verifier = (message: Uint8Array, signature: Uint8Array) => verify(null, message, keys.publicKey, signature);
const other = generateKeyPairSync('ed25519');
const otherPublic = Buffer.from(other.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');

function chain(length: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (let i = 0; i < length; i++) {
    const previous = records.at(-1);
    records.push(
      chainEvent(previous ? { seq: previous.seq, hash: previous.hash } : null, {
        tenantId: null,
        actor: { type: 'system', id: 'test' },
        action: 'test-event',
        target: String(i),
        outcome: 'success',
        sourceIp: null,
        meta: { i },
      }, new Date(1_700_000_000_000 + i)),
    );
  }
  return records;
}

const at = (records: AuditRecord[], seq: number) => {
  const record = records[seq - 1];
  if (!record) throw new Error(`no record ${seq}`);
  return { seq: record.seq, hash: record.hash };
};

describe('signed checkpoints', () => {
  const records = chain(50);
  const cp20 = signCheckpoint(at(records, 20), new Date(), publicKey, signer);
  const cp50 = signCheckpoint(at(records, 50), new Date(), publicKey, signer);

  it('verify with the signer key only', () => {
    expect(checkpointSignedBy(cp20, publicKey, verifier)).toBe(true);
    expect(checkpointSignedBy(cp20, otherPublic, (m, s) => verify(null, m, other.publicKey, s))).toBe(false);
    expect(checkpointSignedBy({ ...cp20, seq: 21 }, publicKey, verifier)).toBe(false);
  });

  it('accept the intact chain', () => {
    expect(verifyAudit(records, [cp20, cp50], publicKey, verifier)).toMatchObject({ ok: true, count: 50, checkpoints: 2 });
  });

  it('detect truncation behind the last checkpoint', () => {
    expect(verifyAudit(records.slice(0, 45), [cp20, cp50], publicKey, verifier)).toMatchObject({ ok: false, seq: 50, reason: expect.stringMatching(/truncated/) });
  });

  it('detect a chain rewritten from some point on, even when it is internally consistent', () => {
    const rewritten = [...records.slice(0, 10)];
    for (let i = 10; i < 50; i++) {
      const previous = rewritten.at(-1);
      rewritten.push(
        chainEvent(previous ? { seq: previous.seq, hash: previous.hash } : null, {
          tenantId: null, actor: { type: 'system', id: 'forger' }, action: 'test-event', target: String(i), outcome: 'success', sourceIp: null, meta: { i },
        }),
      );
    }
    expect(verifyAudit(rewritten, [], publicKey, verifier)).toMatchObject({ ok: true });
    expect(verifyAudit(rewritten, [cp20, cp50], publicKey, verifier)).toMatchObject({ ok: false, seq: 20, reason: expect.stringMatching(/rewritten/) });
  });

  it('give the same answers page by page', async () => {
    async function* pages(list: AuditRecord[], size: number) {
      for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
    }
    expect(await verifyAuditPages(pages(records, 7), [cp20, cp50], publicKey, verifier)).toEqual(verifyAudit(records, [cp20, cp50], publicKey, verifier));
    expect(await verifyAuditPages(pages(records.slice(0, 45), 7), [cp20, cp50], publicKey, verifier)).toMatchObject({ ok: false, seq: 50 });
    const edited = records.map((r) => (r.seq === 33 ? { ...r, target: 'x' } : r));
    expect(await verifyAuditPages(pages(edited, 7), [cp20, cp50], publicKey, verifier)).toMatchObject({ ok: false, seq: 33, reason: expect.stringMatching(/edited/) });
  });

  it('refuse a forged checkpoint', () => {
    const forged = { ...cp50, hash: 'f'.repeat(64) };
    expect(verifyAudit(records, [forged], publicKey, verifier)).toMatchObject({ ok: false, reason: expect.stringMatching(/signature/) });
  });

  it('let a witness check that a new checkpoint extends the one it kept', () => {
    expect(checkpointExtends(cp20, cp50, records.slice(20, 50))).toEqual({ ok: true });
    expect(checkpointExtends(cp50, cp20, [])).toMatchObject({ ok: false, reason: expect.stringMatching(/went back/) });
    expect(checkpointExtends(cp20, cp50, records.slice(21, 50))).toMatchObject({ ok: false });
    const other50 = { ...cp50, hash: 'a'.repeat(64) };
    expect(checkpointExtends(cp20, other50, records.slice(20, 50))).toMatchObject({ ok: false, reason: expect.stringMatching(/do not lead/) });
  });
});
