/**
 * Live progress of a run for the console: bytes read so far (counted as they stream; a retried
 * file counts its latest attempt only), files and ciphertext bytes delivered, sent to the control plane at most once per interval. Best effort:
 * a report that fails is dropped, never retried, and never holds up the transfer. Counters only,
 * never names, paths or contents.
 */
import { pipeline, type Readable } from 'node:stream';
import { chunkReleaser, lendChunks, type Logger, type SourceSession } from '@airlock/connector-api';
import type { FileReport, RunProgress } from '@airlock/protocol';
import { Count } from './byte-count.ts';

export type ProgressSink = (progress: RunProgress) => Promise<unknown>;

/** One report per second at most: enough for a live view, little load on the control plane. */
export const PROGRESS_INTERVAL_MS = 1_000;

export interface RunProgressTracker {
  /** The session with each opened file's bytes counted as they are read. */
  watch(session: SourceSession): SourceSession;
  total(files: number): void;
  fileDone(report: Pick<FileReport, 'bytesOut'>): void;
  stop(): void;
}

const inert: RunProgressTracker = {
  watch: (session) => session,
  total: () => undefined,
  fileDone: () => undefined,
  stop: () => undefined,
};

export function trackProgress(runId: string, sink: ProgressSink | undefined, logger: Logger, intervalMs = PROGRESS_INTERVAL_MS): RunProgressTracker {
  if (!sink) return inert;
  const state = { bytesIn: 0, bytesOut: 0, filesDone: 0, filesTotal: undefined as number | undefined };
  /** Bytes read by each file's latest attempt: a retry starts from byte 0 and replaces the last one's count. */
  const readByFile = new Map<string, number>();
  let sentAt = 0;
  let inFlight = false;
  let dirty = false;
  let stopped = false;

  const send = () => {
    if (stopped || inFlight || !dirty) return;
    dirty = false;
    inFlight = true;
    sentAt = Date.now();
    const snapshot: RunProgress = { runId, bytesIn: state.bytesIn, bytesOut: state.bytesOut, filesDone: state.filesDone };
    if (state.filesTotal !== undefined) snapshot.filesTotal = state.filesTotal;
    sink(snapshot)
      .catch((error: unknown) => logger.debug({ runId, error: error instanceof Error ? error.message : String(error) }, 'progress report dropped'))
      .finally(() => {
        inFlight = false;
      });
  };
  // Changes between ticks are sent by the timer; the first change after a quiet spell goes out at once.
  const timer = setInterval(send, intervalMs);
  timer.unref();
  const changed = () => {
    dirty = true;
    if (Date.now() - sentAt >= intervalMs) send();
  };

  return {
    watch(session) {
      const watched: SourceSession = {
        list: () => session.list(),
        close: () => session.close(),
        open: async (file) => {
          const stream: Readable = await session.open(file);
          const attempt = { bytes: 0 };
          state.bytesIn -= readByFile.get(file.path) ?? 0;
          readByFile.set(file.path, 0);
          const counter = new Count((count) => {
            attempt.bytes += count;
            readByFile.set(file.path, attempt.bytes);
            state.bytesIn += count;
            changed();
          });
          // pipeline carries errors and destruction both ways: destroying the counter destroys the source.
          const counted = pipeline(stream, counter, () => undefined);
          lendChunks(counted, chunkReleaser(stream));
          return counted;
        },
      };
      // Optional post-actions stay optional: present on the wrapper exactly when the session has them.
      const remove = session.remove?.bind(session);
      const archive = session.archive?.bind(session);
      if (remove) watched.remove = remove;
      if (archive) watched.archive = archive;
      return watched;
    },
    total(files) {
      state.filesTotal = files;
      changed();
    },
    fileDone(report) {
      state.filesDone += 1;
      state.bytesOut += report.bytesOut;
      changed();
    },
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
