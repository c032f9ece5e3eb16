/**
 * Which listed files a run takes. A file still being written must not be sent half-done: with
 * `stableForMs > 0` the source is listed twice, that far apart, and only files whose size and mtime
 * did not change (and that were there both times) are taken; the rest are deferred to a later run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SourceFile, SourceSession } from '@airlock/connector-api';

export async function selectStable(
  session: SourceSession,
  stableForMs: number,
  signal: AbortSignal,
): Promise<{ files: SourceFile[]; deferred: number }> {
  const first = await session.list();
  if (stableForMs === 0 || first.every((file) => file.generated === true)) return { files: first, deferred: 0 };
  await sleep(stableForMs, undefined, { signal });
  const before = new Map(first.map((file) => [file.path, file]));
  const second = await session.list();
  const files = second.filter((file) => {
    const earlier = before.get(file.path);
    return file.generated === true || (earlier !== undefined && earlier.size === file.size && earlier.mtimeMs === file.mtimeMs);
  });
  return { files, deferred: second.length - files.length };
}
