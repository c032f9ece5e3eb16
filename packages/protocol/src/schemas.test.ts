import { describe, expect, it } from 'vitest';
import { canonicalRequest, enrollInput, runReport } from './index.ts';

const report = {
  runId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
  status: 'succeeded',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:00:01.000Z',
  bytesIn: 10,
  bytesOut: 20,
  files: [],
  recipientFingerprints: ['A'.repeat(40)],
};

describe('protocol schemas', () => {
  it('accepts a metadata-only run report', () => {
    expect(runReport.parse(report).status).toBe('succeeded');
  });

  it('refuses any field outside the allowlist', () => {
    expect(runReport.safeParse({ ...report, content: 'row 1' }).success).toBe(false);
    const file = { sourcePath: '/x', bytesIn: 1, bytesOut: 2, plaintextSha256: 'a'.repeat(64), ciphertextSha256: 'b'.repeat(64), durationMs: 1 };
    expect(runReport.safeParse({ ...report, files: [file] }).success).toBe(true);
    expect(runReport.safeParse({ ...report, files: [{ ...file, preview: 'x' }] }).success).toBe(false);
  });

  it('validates enrollment input', () => {
    const good = { token: `aet_${'a'.repeat(43)}`, publicKey: `${'A'.repeat(43)}=`, hostname: 'h', version: '1' };
    expect(enrollInput.safeParse(good).success).toBe(true);
    expect(enrollInput.safeParse({ ...good, token: 'guess' }).success).toBe(false);
  });

  it('puts every signed part on its own line', () => {
    const text = canonicalRequest({ method: 'post', pathAndQuery: '/a?b=1', bodySha256: 'c', created: 5, nonce: 'n', agentId: 'i' });
    expect(text).toBe('airlock-v1\nPOST\n/a?b=1\nc\n5\nn\ni');
  });
});
