/**
 * Chunk lending. A source stream may read into the same few buffers again and again instead of a
 * fresh one per read: fresh buffers of a few hundred KiB cost the agent more CPU than the data
 * path's whole cryptography (page faults, returning memory to the system, full collections).
 *
 * A lending stream pushes buffers it means to reuse, and reuses one only after its consumer hands
 * that very chunk back with `release`. The consumer releases a chunk once it has taken every byte it
 * needs and keeps no reference to it, not even a subarray. Stages in between that pass each chunk on
 * unchanged, as the same object, and keep nothing (a byte counter, a hash) may pass the lender on
 * with `lendChunks(stage, chunkReleaser(source))`. Anything that splits, joins, keeps or rewrites
 * chunks must not: the consumer behind it then never releases anything, and the source allocates a
 * fresh buffer for every read, as a source that does not lend always does.
 *
 * A release the source does not recognise (another object, a subarray, a chunk already handed
 * back) changes nothing, so a consumer cannot make a source reuse memory it did not lend.
 */
import type { Readable } from 'node:stream';

export type ChunkRelease = (chunk: Uint8Array) => void;

const lenders = new WeakMap<Readable, ChunkRelease>();

/** Declares that `stream`'s chunks are lent, and how to hand them back; `undefined` declares nothing. */
export function lendChunks(stream: Readable, release: ChunkRelease | undefined): void {
  if (release !== undefined) lenders.set(stream, release);
}

/** How to hand back `stream`'s chunks, when it lends them. */
export function chunkReleaser(stream: Readable): ChunkRelease | undefined {
  return lenders.get(stream);
}
