/**
 * The entries a run's source passed over because of their name: each logged once per run (a
 * source may be listed more than once), counted, and the first `MAX_SKIPPED_NAMES` put in the report.
 */
import type { Logger, SkippedEntry } from '@airlock/connector-api';
import { MAX_SKIPPED_NAMES, type RunReport, skippedNameReasons } from '@airlock/protocol';

export interface SkippedNames {
  add(entry: SkippedEntry): void;
  /** The report's `skippedNames`, or nothing when no entry was passed over. */
  report(): Pick<RunReport, 'skippedNames'>;
}

const byPlace = (a: SkippedEntry, b: SkippedEntry) =>
  a.directory < b.directory ? -1 : a.directory > b.directory ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export function skippedNames(runId: string, logger: Logger): SkippedNames {
  const seen = new Map<string, SkippedEntry>();
  let unlogged = 0;
  return {
    add(entry) {
      const key = JSON.stringify([entry.directory, entry.name, entry.reason]);
      if (seen.has(key)) return;
      seen.set(key, { directory: entry.directory, name: entry.name, reason: entry.reason });
      if (seen.size > MAX_SKIPPED_NAMES) {
        unlogged += 1;
        return;
      }
      logger.warn({ runId, ...entry }, `skipped a file, which stays in place: its ${skippedNameReasons[entry.reason]}`);
    },
    report() {
      if (seen.size === 0) return {};
      if (unlogged > 0) logger.warn({ runId, count: unlogged }, 'skipped more files because of their names; the log names only the first ones');
      unlogged = 0;
      const entries = [...seen.values()].sort(byPlace).slice(0, MAX_SKIPPED_NAMES);
      return { skippedNames: { count: seen.size, entries } };
    },
  };
}
