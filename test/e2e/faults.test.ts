/**
 * The agent's data path under faults, CI-sized (see src/faults.ts): the connection cut at seeded
 * random offsets during download, the SFTP server killed mid-file, a full destination disk. Nothing
 * wrong may ever be visible under a final name, and no report may claim what is not on disk.
 * `npm run test:faults` runs the same suite at a larger size; the seed printed here replays a failure.
 */
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runFaultSuite } from '../src/faults.ts';

const DOWNLOAD_CUTS = 20;

describe('faults on the data path', () => {
  it('never leaves a partial, corrupt or misreported delivery', { timeout: 240_000 }, async () => {
    const seed = randomInt(2 ** 31);
    const lines: string[] = [];
    const result = await runFaultSuite({
      seed,
      fileSize: 1024 * 1024,
      downloadCuts: DOWNLOAD_CUTS,
      uploadCuts: 8,
      serverKills: 2,
      diskFull: true,
      caseTimeoutMs: 15_000,
      log: (line) => lines.push(line),
    });
    // The seed and every case go to the output, so a failure names the offset that caused it.
    console.log(`fault suite (seed ${seed}):\n${lines.join('\n')}`);
    for (const skipped of result.skipped) console.warn(`skipped ${skipped.kind}: ${skipped.reason}`);

    expect((result.by_kind['download-cut'] ?? 0) + (result.by_kind['download-cut-once'] ?? 0)).toBe(DOWNLOAD_CUTS);
    expect(result.by_kind['download-cut-once']).toBe(DOWNLOAD_CUTS / 2);
    expect(result.by_kind['server-killed']).toBe(2);
    // A fault that passes (one cut connection, a server that restarts) is ridden out: the retry delivers.
    const mustDeliver = result.results.filter((r) => r.kind.endsWith('-cut-once') || r.kind === 'server-killed');
    expect(mustDeliver.length).toBe(DOWNLOAD_CUTS / 2 + (result.by_kind['upload-cut-once'] ?? 0) + 2);
    expect(mustDeliver.filter((r) => r.status !== 'succeeded' || r.finalFiles !== 1).map((r) => `${r.kind} at ${String(r.at)}: ${r.status}`)).toEqual([]);
    expect(result.results.filter((r) => r.kind !== 'calibration').every((r) => r.status === 'failed' || r.status === 'succeeded')).toBe(true);
    expect(result.bad_outcomes).toBe(0);
    expect(result.uncaught_errors).toEqual([]);
    expect(result.partial_files).toBe(0);
    expect(result.corrupt_files).toBe(0);
    expect(result.misreported).toBe(0);
    // Every aborted delivery removed its own partial file, over a fresh connection if the cut took its own.
    expect(result.temp_leftovers).toBe(0);
    // A cut mid-download fails the run with nothing delivered, unless a retry delivered the whole file.
    expect(result.results.filter((r) => r.kind === 'download-cut' && r.finalFiles > 0 && r.status !== 'succeeded')).toEqual([]);
  });
});
