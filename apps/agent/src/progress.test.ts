import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { SourceFile, SourceSession } from '@airlock/connector-api';
import type { RunProgress } from '@airlock/protocol';
import { trackProgress } from './progress.ts';

const RUN = '00000000-0000-4000-8000-000000000001';
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const file: SourceFile = { path: '/a.csv', name: 'a.csv', size: 10, mtimeMs: 0 };

function session(content: string[], extra: Partial<SourceSession> = {}): SourceSession {
  return { list: async () => [file], open: async () => Readable.from(content.map((part) => Buffer.from(part))), close: async () => undefined, ...extra };
}

describe('trackProgress', () => {
  it('counts bytes as they are read and reports counters only, throttled', async () => {
    const sent: RunProgress[] = [];
    const tracker = trackProgress(RUN, async (progress) => void sent.push(progress), quiet, 50);
    const watched = tracker.watch(session(['hello', ' ', 'world']));
    tracker.total(1);
    expect(await text(await watched.open(file))).toBe('hello world');
    tracker.fileDone({ bytesOut: 42 });
    await sleep(120);
    tracker.stop();
    const last = sent.at(-1);
    expect(last).toEqual({ runId: RUN, bytesIn: 11, bytesOut: 42, filesDone: 1, filesTotal: 1 });
    // Five changes in a burst: one at once, the rest coalesced by the timer.
    expect(sent.length).toBeLessThanOrEqual(3);
    const counters = new Set(['runId', 'bytesIn', 'bytesOut', 'filesDone', 'filesTotal']);
    for (const report of sent) expect(Object.keys(report).filter((key) => !counters.has(key))).toEqual([]);
  });

  it('counts a retried file once: the new attempt replaces the bytes of the last', async () => {
    const sent: RunProgress[] = [];
    const tracker = trackProgress(RUN, async (progress) => void sent.push(progress), quiet, 20);
    const other: SourceFile = { ...file, path: '/b.csv', name: 'b.csv' };
    const watched = tracker.watch(session(['0123456789']));
    await text(await watched.open(other));
    await text(await watched.open(file));
    await text(await watched.open(file));
    await sleep(60);
    tracker.stop();
    expect(sent.at(-1)?.bytesIn).toBe(20);
  });

  it('never lets a failing sink reach the transfer, and sends nothing after stop', async () => {
    let calls = 0;
    const tracker = trackProgress(RUN, async () => {
      calls += 1;
      throw new Error('control plane unreachable');
    }, quiet, 20);
    const watched = tracker.watch(session(['x'.repeat(100)]));
    expect((await text(await watched.open(file))).length).toBe(100);
    await sleep(60);
    tracker.stop();
    const after = calls;
    tracker.fileDone({ bytesOut: 1 });
    await sleep(60);
    expect(after).toBeGreaterThan(0);
    expect(calls).toBe(after);
  });

  it('keeps optional post-actions exactly when the session has them', () => {
    const tracker = trackProgress(RUN, async () => undefined, quiet);
    const withRemove = tracker.watch(session([], { remove: async () => undefined }));
    const without = tracker.watch(session([]));
    tracker.stop();
    expect(withRemove.remove).toBeTypeOf('function');
    expect(without.remove).toBeUndefined();
    expect(without.archive).toBeUndefined();
  });

  it('propagates a source error through the counter', async () => {
    const tracker = trackProgress(RUN, async () => undefined, quiet);
    const failing: SourceSession = session([], {
      open: async () =>
        new Readable({
          read() {
            this.destroy(new Error('connection reset'));
          },
        }),
    });
    await expect(text(await tracker.watch(failing).open(file))).rejects.toThrow('connection reset');
    tracker.stop();
  });

  it('is inert without a sink', () => {
    const tracker = trackProgress(RUN, undefined, quiet);
    const original = session([]);
    expect(tracker.watch(original)).toBe(original);
    tracker.stop();
  });
});
