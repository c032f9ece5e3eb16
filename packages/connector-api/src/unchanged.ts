/**
 * A source file must be read as it was listed: the host decided on that size and mtime (stability,
 * the ledger, post-delivery actions). A source checks them when it opens the file and passes the
 * stream through `exactLength`, so a file that grows, shrinks or is replaced while it is read fails
 * with `ConflictError` instead of being delivered as something else.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ConflictError } from '@airlock/errors';
import type { SourceFile } from './definition.ts';

/** Throws `ConflictError` when what is there now is not what was listed. */
export function assertAsListed(file: SourceFile, now: { size: number; mtimeMs: number }, where: string): void {
  if (file.generated === true) return;
  if (now.size !== file.size || now.mtimeMs !== file.mtimeMs) {
    throw new ConflictError(`${file.path}${where} changed since it was listed; read again at the next run`);
  }
}

/** Passes the bytes through, and fails with `ConflictError` once more or fewer than the listed size arrive. */
export function exactLength(file: SourceFile, where: string): Transform {
  let seen = 0;
  const changed = () => new ConflictError(`${file.path}${where} changed while it was read`);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length;
      if (file.generated !== true && seen > file.size) callback(changed());
      else callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      callback(file.generated !== true && seen !== file.size ? changed() : null);
    },
  });
}
