/**
 * One file through the data path: source → [field filter] → HMAC-SHA256 → OpenPGP encrypt (+ sign) → sha256 →
 * destination (temporary name, fsync, rename). One stream with backpressure end to end: plaintext
 * exists only in memory, in flight, and memory does not grow with the file's size.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { chunkReleaser, type DestinationSession, type SourceFile, type SourceSession } from '@airlock/connector-api';
import { asOperational, ConflictError } from '@airlock/errors';
import { encryptStream, type EncryptOptions, type RecipientKey } from '@airlock/pgp';
import { DataContractError, fieldFilter, type FieldScope } from '@airlock/field-scopes';
import type { FileReport } from '@airlock/protocol';
import { Count, Measure } from './byte-count.ts';

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
  /** Keys the plaintext digest (HMAC-SHA256), so the report cannot confirm a guess about the file. */
  plaintextKey: Uint8Array;
  signal: AbortSignal;
}

/**
 * Delivers one file, or leaves nothing under its name: any failure aborts the pending delivery.
 * A retry calls this again and starts from byte 0 into a fresh temporary delivery.
 */
export async function transferFile(t: FileTransfer): Promise<FileReport> {
  const started = Date.now();
  const pending = await t.destination.begin(t.name);
  let contractError: DataContractError | undefined;
  try {
    const plaintext = await t.source.open(t.file);
    // Only the bytes that go on to encryption are hashed (keyed); the raw read is counted.
    const read = new Count();
    const plain = new Measure(t.plaintextKey);
    const cipher = new Measure();
    // The source may already be flowing: its pipeline, and so its error handling, is attached
    // before anything else is awaited, or an early error would be thrown with nobody listening.
    const filter = t.fields ? fieldFilter(t.fields) : undefined;
    // A file that breaks its data contract also breaks the encryption that reads it; the run must
    // report the contract (a user error naming row and rule), whichever side fails first.
    filter?.once('error', (error) => {
      if (error instanceof DataContractError) contractError = error;
    });
    const reading = filter
      ? pipeline(plaintext, read, filter, plain, { signal: t.signal })
      : pipeline(plaintext, read, plain, { signal: t.signal });
    reading.catch(() => undefined);
    // Count and Measure pass chunks on unchanged and keep none, so chunks the source lends go back
    // to it once encrypted. A field filter splits and keeps them: nothing is handed back behind one.
    const releaseChunk = filter ? undefined : chunkReleaser(plaintext);
    let ciphertext: Readable;
    try {
      ciphertext = await encryptStream(plain, t.recipients, { ...t.encrypt, filename: t.file.name, releaseChunk });
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
      plaintextHmac: plain.digest(),
      ciphertextSha256: cipher.digest(),
      durationMs: Date.now() - started,
    };
  } catch (error) {
    await pending.abort();
    throw asOperational(contractError ?? error);
  }
}
