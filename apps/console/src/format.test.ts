import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatFingerprint } from './format.ts';

describe('format', () => {
  it('prints sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(4 * 1024 * 1024)).toBe('4 MiB');
    // The decimal separator is the reader's locale's.
    expect(formatBytes(1536)).toMatch(/^1[.,]5 KiB$/);
  });

  it('prints durations at a readable scale', () => {
    expect(formatDuration(57)).toBe('57 ms');
    expect(formatDuration(4_100)).toBe('4.1 s');
    expect(formatDuration(125_000)).toBe('2 min 5 s');
    expect(formatDuration(3 * 3_600_000 + 60_000)).toBe('3 h 1 min');
  });

  it('groups a fingerprint by four, as GnuPG prints it', () => {
    expect(formatFingerprint('F641760AC136B67726C980B110AE3A439C0359DB')).toBe('F641 760A C136 B677 26C9 80B1 10AE 3A43 9C03 59DB');
  });
});
