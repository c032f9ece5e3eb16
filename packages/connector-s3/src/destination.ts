/**
 * `s3@1`: delivers into an S3-compatible bucket with a multipart upload written while the
 * ciphertext streams. Each part is cut at `partSizeBytes` and uploaded before the stream takes more
 * (at most one part held, one in flight: memory stays bounded whatever the file's size), with its
 * checksum for the server to verify. Nothing is visible before `CompleteMultipartUpload`, which
 * `commit` alone sends; `abort` sends `AbortMultipartUpload`, over a fresh connection if the old one
 * was cut.
 *
 * No overwrite: `commit` first checks that the key is free (`HeadObject`), then completes with
 * `If-None-Match: *`, which AWS S3 and most compatible servers honour atomically. A server that
 * ignores the header leaves only the window between the check and the completion.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { assertSafeName, type ConnectorContext, type DestinationRuntime, type DestinationSession, partWritable, type PendingDelivery } from '@airlock/connector-api';
import { ConflictError, OperationalError, PolicyViolationError, UnexpectedError, UserError } from '@airlock/errors';
import { type S3DestinationConfig, type S3DestinationPolicy, s3Secrets } from './definition.ts';

/** The HTTP status of an SDK error, if the server answered. */
function statusOf(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

/** One place for what an S3 failure means to the host: bad config, a conflict, or a transient fault. */
function s3Error(what: string, where: string, error: unknown): Error {
  if (error instanceof ConflictError || error instanceof UserError || error instanceof OperationalError) return error;
  const status = statusOf(error);
  const name = error instanceof Error ? error.name : 'error';
  if (status === 412) return new ConflictError(`${where} already exists; left as it was`, { cause: error });
  if (status === 401 || status === 403) return new UserError(`${what} ${where}: access denied (${name})`, { cause: error });
  if (status === 404) return new UserError(`${what} ${where}: not found (${name})`, { cause: error });
  if (status !== undefined && status < 500 && status !== 408 && status !== 429) return new UserError(`${what} ${where}: refused with ${status} (${name})`, { cause: error });
  return new OperationalError(`${what} ${where} failed (${name}); retryable`, { cause: error });
}

function checksumOf(algorithm: S3DestinationConfig['checksumAlgorithm'], part: Buffer): { ChecksumSHA256: string } | { ChecksumCRC32: string } {
  if (algorithm === 'SHA256') return { ChecksumSHA256: createHash('sha256').update(part).digest('base64') };
  const value = Buffer.alloc(4);
  value.writeUInt32BE(crc32(part));
  return { ChecksumCRC32: value.toString('base64') };
}

class S3Delivery implements PendingDelivery {
  readonly stream: Writable;
  readonly #parts: CompletedPart[] = [];
  #state: 'writing' | 'committing' | 'committed' | 'aborted' = 'writing';
  #abort: Promise<void> | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly config: S3DestinationConfig,
    private readonly ctx: ConnectorContext,
    private readonly key: string,
    private readonly uploadId: string,
    private readonly onSettled: (delivery: S3Delivery) => void,
  ) {
    // One part held while it uploads: the writer waits, so memory stays bounded whatever the file's size.
    // A multipart upload has at least one part; an empty delivery is one empty part.
    this.stream = partWritable({ partBytes: config.partSizeBytes, send: (part) => this.#uploadPart(part), emptyPart: true });
  }

  get #where(): string {
    return `s3://${this.config.bucket}/${this.key}`;
  }

  async #uploadPart(body: Buffer): Promise<void> {
    const PartNumber = this.#parts.length + 1;
    const checksum = checksumOf(this.config.checksumAlgorithm, body);
    try {
      const result = await this.client.send(
        new UploadPartCommand({ Bucket: this.config.bucket, Key: this.key, UploadId: this.uploadId, PartNumber, Body: body, ContentLength: body.length, ...checksum }),
        { abortSignal: this.ctx.signal },
      );
      this.#parts.push({ PartNumber, ETag: result.ETag, ...checksum });
    } catch (error) {
      throw s3Error(`uploading part ${PartNumber} of`, this.#where, error);
    }
  }

  async commit(): Promise<{ location: string }> {
    if (this.#state !== 'writing') throw new UnexpectedError(`delivery ${this.#where} is ${this.#state}`);
    if (!this.stream.writableFinished) throw new UnexpectedError(`commit of ${this.#where} before its stream finished`);
    this.#state = 'committing';
    try {
      await this.#refuseExisting();
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.config.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          MultipartUpload: { Parts: this.#parts },
          IfNoneMatch: '*',
        }),
        { abortSignal: this.ctx.signal },
      );
      this.#state = 'committed';
      this.onSettled(this);
      return { location: this.#where };
    } catch (error) {
      this.#state = 'writing';
      await this.abort();
      throw s3Error('completing', this.#where, error);
    }
  }

  async #refuseExisting(): Promise<void> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.key }), { abortSignal: this.ctx.signal });
    } catch (error) {
      if (statusOf(error) === 404) return;
      throw s3Error('checking', this.#where, error);
    }
    throw new ConflictError(`${this.#where} already exists; left as it was`);
  }

  abort(): Promise<void> {
    // Tried once, and shared: a second abort, or one after a failed commit, waits for the first.
    this.#abort ??= this.#abortOnce();
    return this.#abort;
  }

  async #abortOnce(): Promise<void> {
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    this.stream.destroy();
    try {
      // Not bound to the job's signal: a cancelled job must still give up its upload.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: this.key, UploadId: this.uploadId }));
    } catch (error) {
      if (statusOf(error) !== 404) {
        // Metadata only. A bucket lifecycle rule for incomplete multipart uploads removes what is left.
        this.ctx.logger.warn({ bucket: this.config.bucket, key: this.key, errorName: error instanceof Error ? error.name : 'error' }, 'could not abort the multipart upload');
      }
    } finally {
      this.onSettled(this);
    }
  }
}

/** The key a delivery named `name` gets under the configured prefix. */
function keyFor(config: S3DestinationConfig, name: string): string {
  const prefix = config.prefix === '/' ? '' : `${config.prefix.slice(1)}/`;
  return `${prefix}${assertSafeName(name)}`;
}

/** The endpoint's exact origin (scheme included) and bucket must be pinned in the local policy. */
function checkPinned(config: S3DestinationConfig, policy: readonly S3DestinationPolicy[]): void {
  const origin = new URL(config.endpoint).origin;
  if (!policy.some((entry) => new URL(entry.endpoint).origin === origin && entry.bucket === config.bucket)) {
    throw new PolicyViolationError(`s3 endpoint ${origin} with bucket ${config.bucket} is not pinned in the local policy`);
  }
}

async function credentialsFor(ctx: ConnectorContext, config: S3DestinationConfig) {
  if (config.credentialRef === undefined) return fromNodeProviderChain();
  const secret = s3Secrets.parse(await ctx.secret(config.credentialRef));
  return { accessKeyId: secret.accessKeyId, secretAccessKey: secret.secretAccessKey, ...(secret.sessionToken ? { sessionToken: secret.sessionToken } : {}) };
}

/** Loaded on first connect (index.ts), with the AWS SDK. */
export const s3Runtime: DestinationRuntime<S3DestinationConfig, S3DestinationPolicy> = {
  async connect(ctx, config, policy): Promise<DestinationSession> {
    checkPinned(config, policy);
    const client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials: await credentialsFor(ctx, config),
      maxAttempts: 3,
      // Parts carry the checksums computed here; no streaming trailers the server might not speak.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { requestTimeout: config.requestTimeoutMs, connectionTimeout: Math.min(config.requestTimeoutMs, 20_000) },
    });
    try {
      await client.send(new HeadBucketCommand({ Bucket: config.bucket }), { abortSignal: ctx.signal });
    } catch (error) {
      client.destroy();
      throw s3Error('reaching bucket', `s3://${config.bucket} at ${new URL(config.endpoint).origin}`, error);
    }
    const pending = new Set<S3Delivery>();
    return {
      async begin(name) {
        const key = keyFor(config, name);
        let uploadId: string | undefined;
        try {
          const created = await client.send(
            new CreateMultipartUploadCommand({
              Bucket: config.bucket,
              Key: key,
              ContentType: 'application/octet-stream',
              ChecksumAlgorithm: config.checksumAlgorithm,
              ...(config.serverSideEncryption ? { ServerSideEncryption: config.serverSideEncryption } : {}),
              ...(config.kmsKeyId ? { SSEKMSKeyId: config.kmsKeyId } : {}),
            }),
            { abortSignal: ctx.signal },
          );
          uploadId = created.UploadId;
        } catch (error) {
          throw s3Error('starting an upload to', `s3://${config.bucket}/${key}`, error);
        }
        if (!uploadId) throw new OperationalError(`s3://${config.bucket}/${key}: the server returned no upload id`);
        const delivery = new S3Delivery(client, config, ctx, key, uploadId, (settled) => pending.delete(settled));
        pending.add(delivery);
        return delivery;
      },
      async close() {
        await Promise.all([...pending].map((delivery) => delivery.abort()));
        client.destroy();
      },
    };
  },
};
