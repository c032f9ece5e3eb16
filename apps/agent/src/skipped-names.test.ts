import { describe, expect, it } from 'vitest';
import type { Logger } from '@airlock/connector-api';
import { MAX_SKIPPED_NAMES } from '@airlock/protocol';
import { skippedNames } from './skipped-names.ts';

function recorder(): Logger & { warnings: Array<{ meta: Record<string, unknown>; message: string }> } {
  const warnings: Array<{ meta: Record<string, unknown>; message: string }> = [];
  const none = () => undefined;
  return { warnings, debug: none, info: none, error: none, warn: (meta, message) => void warnings.push({ meta, message }) };
}

describe('skipped names of a run', () => {
  it('[integrity #14] counts each name once across listings, reports the first ones sorted, and bounds the log', () => {
    const logger = recorder();
    const skipped = skippedNames('run-1', logger);
    expect(skipped.report()).toEqual({});

    const total = MAX_SKIPPED_NAMES + 30;
    const names = Array.from({ length: total }, (_, i) => `f${String(i).padStart(4, '0')}%FC.csv`).reverse();
    // Listed twice, as with a stability check: still one entry and one warning per name.
    for (let listing = 0; listing < 2; listing++) {
      for (const name of names) skipped.add({ directory: '/in', name, reason: 'name-not-utf8' });
    }
    const report = skipped.report().skippedNames;
    expect(report?.count).toBe(total);
    expect(report?.entries).toHaveLength(MAX_SKIPPED_NAMES);
    expect(report?.entries[0]).toEqual({ directory: '/in', name: 'f0000%FC.csv', reason: 'name-not-utf8' });
    expect(report?.entries.at(-1)?.name).toBe(`f${String(MAX_SKIPPED_NAMES - 1).padStart(4, '0')}%FC.csv`);
    expect(logger.warnings).toHaveLength(MAX_SKIPPED_NAMES + 1);
    expect(logger.warnings[0]?.meta).toEqual({ runId: 'run-1', directory: '/in', name: names[0], reason: 'name-not-utf8' });
    expect(logger.warnings.at(-1)?.meta).toEqual({ runId: 'run-1', count: 30 });
  });
});
