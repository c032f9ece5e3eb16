/** Writing a contract environment's files into a directory on this host: the pattern stream, streamed, never held. */
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { patternSha256, patternStream, sha256Hex } from './connector-contract.ts';

/** Writes `data`, or that many pattern bytes, to `file`; returns its SHA-256. */
export async function writeContent(file: string, data: Buffer | number): Promise<string> {
  if (typeof data !== 'number') {
    await writeFile(file, data, { mode: 0o644 });
    return sha256Hex(data);
  }
  await pipeline(patternStream(data), createWriteStream(file, { mode: 0o644 }));
  return patternSha256(data);
}

/** New bytes and an mtime a minute later: a file that changed after it was listed. */
export async function changeFile(file: string): Promise<void> {
  await writeFile(file, 'changed after it was listed\n');
  const later = new Date(Date.now() + 60_000);
  await utimes(file, later, later);
}

/** A fresh directory under the system's temporary directory. */
export function scratchDirectory(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `airlock-${prefix}-`));
}

export async function sortedEntries(directory: string): Promise<string[]> {
  return (await readdir(directory)).sort();
}

export async function emptyDirectory(directory: string): Promise<void> {
  for (const name of await readdir(directory)) await rm(path.join(directory, name), { recursive: true, force: true });
}
