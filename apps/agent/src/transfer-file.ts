/**
 * One file through the data path: source → [field filter] → sha256 → OpenPGP encrypt (+ sign) → sha256 →
 * destination (temporary name, fsync, rename). One stream with backpressure end to end: plaintext
 * exists only in memory, in flight, and memory does not grow with the file's size.
 */
import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DestinationSession, SourceFile, SourceSession } from '@airlock/connector-api';
import { asOperational, ConflictError } from '@airlock/errors';
import { encryptStream, type EncryptOptions, type RecipientKey } from '@airlock/pgp';
import { fieldFilter, type FieldScope } from '@airlock/field-scopes';
import type { FileReport } from '@airlock/protocol';

/** Counts the bytes that pass, without keeping them. */
class Count extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** Counts and hashes the bytes that pass, without keeping them. */
class Measure extends Count {
  readonly #hash = createHash('sha256');

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.#hash.update(chunk);
    super._transform(chunk, encoding, callback);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

/** The file's size changed while it was read: whatever was read is not the listed file. */
export class SourceChangedError extends ConflictError {}

export interface FileTransfer {
  source: SourceSession;
  destination: DestinationSession;
  file: SourceFile;
  /** The delivered file's name, already rendered and checked. */
  name: string;
  recipients: RecipientKey[];
  encrypt: Pick<EncryptOptions, 'armor' | 'profile' | 'signingKey'>;
  /** Fields that may leave; the rest are dropped here, before encryption. */
  fields?: FieldScope;
  signal: AbortSignal;
}

/**
 * Delivers one file, or leaves nothing under its name: any failure aborts the pending delivery.
 * A retry calls this again and starts from byte 0 into a fresh temporary delivery.
 */
export async function transferFile(t: FileTransfer): Promise<FileReport> {
  const started = Date.now();
  const pending = await t.destination.begin(t.name);
  try {
    const plaintext = await t.source.open(t.file);
    // Only the bytes that go on to encryption are hashed; the raw read is counted.
    const read = new Count();
    const plain = new Measure();
    const cipher = new Measure();
    // The source may already be flowing: its pipeline, and so its error handling, is attached
    // before anything else is awaited, or an early error would be thrown with nobody listening.
    const reading = t.fields
      ? pipeline(plaintext, read, fieldFilter(t.fields), plain, { signal: t.signal })
      : pipeline(plaintext, read, plain, { signal: t.signal });
    reading.catch(() => undefined);
    let ciphertext: Readable;
    try {
      ciphertext = await encryptStream(plain, t.recipients, { ...t.encrypt, filename: t.file.name });
    } catch (error) {
      plaintext.destroy();
      throw error;
    }
    await Promise.all([reading, pipeline(ciphertext, cipher, pending.stream, { signal: t.signal })]);
    // Publishing a file that grew or shrank mid-read would deliver neither version; try again later.
    if (!t.file.generated && read.bytes !== t.file.size) {
      throw new SourceChangedError(`${t.file.path} changed while it was read (${t.file.size} bytes listed, ${read.bytes} read)`);
    }
    await pending.commit();
    return {
      sourcePath: t.file.path,
      bytesIn: read.bytes,
      bytesOut: cipher.bytes,
      plaintextSha256: plain.digest(),
      ciphertextSha256: cipher.digest(),
      durationMs: Date.now() - started,
    };
  } catch (error) {
    await pending.abort();
    throw asOperational(error);
  }
}
