/**
 * The data path for one job: policy check, recipient check, then for every file
 * source → sha256 → OpenPGP encrypt → sha256 → destination (temporary name, fsync, rename).
 * It is one stream with backpressure end to end: plaintext exists only in memory, in flight,
 * and memory does not grow with the file's size.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type {
  ConnectorContext,
  ConnectorRegistry,
  DestinationSession,
  Logger,
  SourceFile,
  SourceSession,
} from '@airlock/connector-api';
import { assertSafeName } from '@airlock/connector-api';
import { classify } from '@airlock/errors';
import { encryptStream, loadRecipients, type RecipientKey } from '@airlock/pgp';
import type { FileReport, Job, RunReport } from '@airlock/protocol';
import { type LocalPolicy, PolicyRefusal } from './policy.ts';
import type { SecretResolver } from './secrets.ts';

export interface TransferDeps {
  registry: ConnectorRegistry;
  policy: LocalPolicy;
  secrets: SecretResolver;
  logger: Logger;
  signal?: AbortSignal;
  now?: () => Date;
}

/** Counts and hashes the bytes that pass, without keeping them. */
class Measure extends Transform {
  readonly #hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

async function transferFile(
  source: SourceSession,
  destination: DestinationSession,
  file: SourceFile,
  recipients: RecipientKey[],
  signal: AbortSignal,
): Promise<FileReport> {
  const started = Date.now();
  const pending = await destination.begin(assertSafeName(`${file.name}.pgp`));
  try {
    const plaintext = await source.open(file);
    const plain = new Measure();
    const cipher = new Measure();
    const ciphertext = await encryptStream(plain, recipients, { filename: file.name });
    await Promise.all([
      pipeline(plaintext, plain, { signal }),
      pipeline(ciphertext, cipher, pending.stream, { signal }),
    ]);
    await pending.commit();
    return {
      sourcePath: file.path,
      bytesIn: plain.bytes,
      bytesOut: cipher.bytes,
      plaintextSha256: plain.digest(),
      ciphertextSha256: cipher.digest(),
      durationMs: Date.now() - started,
    };
  } catch (error) {
    await pending.abort();
    throw error;
  }
}

export async function runJob(job: Job, deps: TransferDeps): Promise<RunReport> {
  const now = deps.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const logger = deps.logger;
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  const files: FileReport[] = [];
  let recipients: RecipientKey[] = [];
  let sourceSession: SourceSession | undefined;
  let destinationSession: DestinationSession | undefined;
  const base = { runId: job.runId, startedAt };
  try {
    const source = deps.registry.source(job.spec.source.connector, job.spec.source.config);
    const destination = deps.registry.destination(job.spec.destination.connector, job.spec.destination.config);
    // Both keys to the door, before any connection: the local policy decides what may be touched.
    deps.policy.checkSource(source.claims());
    deps.policy.checkDestination(destination.claims());
    recipients = await loadRecipients(job.spec.recipients, now());
    const ctx: ConnectorContext = { signal: controller.signal, logger, secret: deps.secrets };
    destinationSession = await destination.connect(ctx);
    sourceSession = await source.connect(ctx);
    const listed = await sourceSession.list();
    for (const file of listed) deps.policy.checkFile(source.claimFor(file));
    for (const file of listed) {
      files.push(await transferFile(sourceSession, destinationSession, file, recipients, controller.signal));
      logger.info({ runId: job.runId, bytesIn: files.at(-1)?.bytesIn, bytesOut: files.at(-1)?.bytesOut }, 'file delivered');
    }
    return summarize(base, 'succeeded', files, recipients, now);
  } catch (error) {
    const errorClass = classify(error);
    logger.warn({ runId: job.runId, errorClass, error: error instanceof Error ? error.message : String(error) }, 'run failed');
    return {
      ...summarize(base, 'failed', files, recipients, now),
      errorClass,
      ...(error instanceof PolicyRefusal ? { violation: { kind: error.kind } } : {}),
    };
  } finally {
    deps.signal?.removeEventListener('abort', onAbort);
    await sourceSession?.close().catch(() => undefined);
    await destinationSession?.close().catch(() => undefined);
  }
}

function summarize(
  base: { runId: string; startedAt: string },
  status: RunReport['status'],
  files: FileReport[],
  recipients: RecipientKey[],
  now: () => Date,
): RunReport {
  return {
    ...base,
    status,
    finishedAt: now().toISOString(),
    bytesIn: files.reduce((sum, f) => sum + f.bytesIn, 0),
    bytesOut: files.reduce((sum, f) => sum + f.bytesOut, 0),
    files,
    recipientFingerprints: recipients.map((r) => r.fingerprint),
  };
}
