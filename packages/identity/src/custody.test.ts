import { describe, expect, it } from 'vitest';
import { encodeKey, followRotations, generateKeyPair, isKeyFingerprint, keyFingerprint, openStatement, signDetached, signStatement, verifyReceipt, verifyReceiptLines } from './index.ts';

const signer = (secretKey: Uint8Array) => (message: Uint8Array) => signDetached(message, secretKey);

describe('control-plane key fingerprint', () => {
  it('is ed25519: and the base64url SHA-256 of the key, and tells keys apart', () => {
    const a = generateKeyPair();
    expect(keyFingerprint(a.publicKey)).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/);
    expect(isKeyFingerprint(keyFingerprint(a.publicKey))).toBe(true);
    expect(keyFingerprint(generateKeyPair().publicKey)).not.toBe(keyFingerprint(a.publicKey));
    expect(isKeyFingerprint('sha256:abc')).toBe(false);
  });
});

describe('signed statements', () => {
  const keys = generateKeyPair();

  it('opens only with the signing key, only in its own domain, and only unaltered', () => {
    const statement = signStatement('job', { runId: 'r1' }, signer(keys.secretKey));
    expect(openStatement('job', statement, keys.publicKey)).toEqual({ runId: 'r1' });
    expect(openStatement('job', statement, generateKeyPair().publicKey)).toBeUndefined();
    // A job envelope cannot pass for a receipt or a rotation, though the same key signed it.
    expect(openStatement('receipt', statement, keys.publicKey)).toBeUndefined();
    expect(openStatement('job', { ...statement, payload: '{"runId":"r2"}' }, keys.publicKey)).toBeUndefined();
    expect(openStatement('job', { payload: statement.payload }, keys.publicKey)).toBeUndefined();
  });
});

describe('key rotations', () => {
  const rotation = (from: { publicKey: Uint8Array }, to: { publicKey: Uint8Array }, signedBy: Uint8Array) =>
    signStatement('rotation', { v: 1, previousKey: encodeKey(from.publicKey), nextKey: encodeKey(to.publicKey), at: new Date().toISOString() }, signer(signedBy));

  it('follows a chain signed step by step from the pin, in any order', () => {
    const [a, b, c] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    expect(followRotations(a.publicKey, [rotation(b, c, b.secretKey), rotation(a, b, a.secretKey)])).toEqual(c.publicKey);
  });

  it('refuses a change the pinned key did not sign', () => {
    const [a, b, attacker] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    expect(followRotations(a.publicKey, [rotation(a, attacker, attacker.secretKey)])).toEqual(a.publicKey);
    // Signed by the pinned key, but for another previous key: not a step from this pin.
    expect(followRotations(a.publicKey, [rotation(b, attacker, a.secretKey)])).toEqual(a.publicKey);
  });
});

describe('receipts', () => {
  it('verify against the agent key only, and only as receipts', () => {
    const agent = generateKeyPair();
    const receipt = {
      v: 1,
      tenantId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      agentId: '7f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      runId: '8f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      integrationId: '9f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      integrationVersion: 1,
      sourcePath: '/exports/a.csv',
      name: 'a.csv.pgp',
      bytesIn: 3,
      plaintextHmac: 'a'.repeat(64),
      ciphertextSha256: 'b'.repeat(64),
      bytesOut: 300,
      recipientFingerprints: ['C'.repeat(40)],
      policyDigest: 'd'.repeat(64),
      startedAt: '2026-01-01T00:00:00.000Z',
      deliveredAt: '2026-01-01T00:00:01.000Z',
    };
    const signed = signStatement('receipt', receipt, signer(agent.secretKey));
    expect(verifyReceipt(signed, agent.publicKey)).toEqual({ ok: true, receipt });
    expect(verifyReceipt(signed, generateKeyPair().publicKey).ok).toBe(false);
    expect(verifyReceipt(signStatement('receipt', { ...receipt, plaintextSha256: 'e'.repeat(64) }, signer(agent.secretKey)), agent.publicKey).ok).toBe(false);

    // An export: blank lines skipped, each other line judged on its own, by its line number.
    const forged = signStatement('receipt', receipt, signer(generateKeyPair().secretKey));
    const lines = verifyReceiptLines([JSON.stringify(signed), '', 'not json', JSON.stringify(forged)].join('\n'), agent.publicKey);
    expect(lines.receipts).toBe(3);
    expect(lines.verified).toEqual([{ line: 1, statement: signed, receipt }]);
    expect(lines.failures.map((failure) => failure.line)).toEqual([3, 4]);
  });
});
