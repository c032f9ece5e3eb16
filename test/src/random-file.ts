/**
 * Incompressible test files, fast: AES-256-CTR over zeros is a seeded PRNG stream that runs at
 * memory speed, so a 2 GiB benchmark file takes seconds, and the same seed gives the same bytes.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const CHUNK = 1024 * 1024;

/** A stream of `size` pseudo-random bytes determined by `seed`. */
export function randomStream(size: number, seed: string): Readable {
  const key = createHash('sha256').update(`airlock-random-file:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  let left = size;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const take = Math.min(left, CHUNK);
      left -= take;
      this.push(cipher.update(take === CHUNK ? zeros : zeros.subarray(0, take)));
    },
  });
}

/** Writes `size` pseudo-random bytes to `file` (mode 0644) and returns their SHA-256. */
export async function writeRandomFile(file: string, size: number, seed: string): Promise<string> {
  const hash = createHash('sha256');
  const source = randomStream(size, seed);
  source.on('data', (chunk: Buffer) => hash.update(chunk));
  await pipeline(source, createWriteStream(file, { mode: 0o644, flags: 'wx' }));
  return hash.digest('hex');
}
