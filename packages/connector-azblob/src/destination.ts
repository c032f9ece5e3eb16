/**
 * `azblob@1`: delivers into an Azure Blob Storage container as a block blob whose blocks are staged
 * (Put Block) while the ciphertext streams, then committed by one Put Block List. Each block is cut
 * at `blockSizeBytes` and staged before the stream takes more (one block held at a time: memory
 * stays bounded whatever the file's size), with its MD5 or CRC64 for the service to verify.
 *
 * Nothing is visible before the commit: staged blocks are not part of any blob a reader can see.
 * The commit sends `If-None-Match: *`, which the service checks atomically, so an existing blob is
 * never replaced. Azure has no call that discards staged blocks, so `abort` simply never commits
 * them; the service drops uncommitted blocks when the blob is next committed, or after a week.
 * Every delivery names its blocks with a fresh random prefix and commits exactly the blocks it
 * staged itself, so blocks left by an aborted or cut attempt can never end up in a later one's blob.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { AnonymousCredential, type BlockBlobClient, ContainerClient, RestError, StorageSharedKeyCredential, type StoragePipelineOptions } from '@azure/storage-blob';
import { assertSafeName, type ConnectorContext, type DestinationRuntime, type DestinationSession, partWritable, type PendingDelivery } from '@airlock/connector-api';
import { ConflictError, OperationalError, PolicyViolationError, UnexpectedError, UserError } from '@airlock/errors';
import { type AzblobDestinationConfig, type AzblobDestinationPolicy, azblobSecrets } from './definition.ts';

/** Tries per request, the first included; a block is resent whole, so a retry cannot corrupt it. */
const MAX_TRIES = 3;
/** First pause between tries, doubling up to the maximum, in milliseconds. */
const RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 8_000;

/**
 * One place for what a storage failure means to the host: bad config, a conflict, or a transient
 * fault. The SDK's error is not kept as the cause: it carries the request, whose URL holds a SAS
 * token's signature and whose headers hold the shared-key signature, and a cause may be logged.
 */
function azblobError(what: string, where: string, error: unknown): Error {
  if (error instanceof ConflictError || error instanceof UserError || error instanceof OperationalError || error instanceof UnexpectedError) return error;
  const status = error instanceof RestError ? error.statusCode : undefined;
  const code = error instanceof RestError && error.code ? error.code : error instanceof Error ? error.name : 'error';
  const cause = new Error(status === undefined ? code : `${code} (HTTP ${status})`);
  cause.name = error instanceof Error ? error.name : 'Error';
  if (status === 412 || (status === 409 && code === 'BlobAlreadyExists')) return new ConflictError(`${where} already exists; left as it was`, { cause });
  if (status === 401 || status === 403) return new UserError(`${what} ${where}: access denied (${code})`, { cause });
  if (status === 404) return new UserError(`${what} ${where}: not found (${code})`, { cause });
  if (status !== undefined && status < 500 && status !== 408 && status !== 429) return new UserError(`${what} ${where}: refused with ${status} (${code})`, { cause });
  return new OperationalError(`${what} ${where} failed (${code}); retryable`, { cause });
}

/** The transactional checksum of one block, in the byte order the service expects. */
export async function blockChecksum(algorithm: AzblobDestinationConfig['blockChecksum'], block: Buffer): Promise<{ transactionalContentMD5?: Uint8Array; transactionalContentCrc64?: Uint8Array }> {
  if (algorithm === 'md5') return { transactionalContentMD5: createHash('md5').update(block).digest() };
  if (algorithm === 'none') return {};
  const crc = new Crc64Nvme();
  crc.update(block);
  // CRC-64/NVME, which the service sends and checks least significant byte first.
  return { transactionalContentCrc64: Uint8Array.from(await crc.digest()).reverse() };
}

/**
 * Block ids: a random attempt id and the block's index, always the same length (the service wants
 * one length for every block of a blob, staged or committed), base64 as the service requires.
 */
function blockIdsFor(): (index: number) => string {
  const attempt = randomBytes(16);
  return (index) => {
    const id = Buffer.alloc(20);
    attempt.copy(id);
    id.writeUInt32BE(index, 16);
    return id.toString('base64');
  };
}

class AzblobDelivery implements PendingDelivery {
  readonly stream: Writable;
  readonly #blocks: string[] = [];
  readonly #blockId = blockIdsFor();
  #state: 'writing' | 'committing' | 'committed' | 'aborted' = 'writing';
  #abort: Promise<void> | undefined;
  /** Cancels a block still being sent when the delivery is aborted; the job's signal cancels it too. */
  readonly #cancel = new AbortController();
  readonly #signal: AbortSignal;

  constructor(
    private readonly blob: BlockBlobClient,
    private readonly config: AzblobDestinationConfig,
    private readonly ctx: ConnectorContext,
    private readonly where: string,
    private readonly onSettled: (delivery: AzblobDelivery) => void,
  ) {
    this.#signal = AbortSignal.any([ctx.signal, this.#cancel.signal]);
    // One block held while it is staged; an empty delivery commits an empty block list, an empty blob.
    this.stream = partWritable({ partBytes: config.blockSizeBytes, send: (block) => this.#stageBlock(block), emptyPart: false });
  }

  async #stageBlock(body: Buffer): Promise<void> {
    if (this.#state !== 'writing') throw new UnexpectedError(`delivery ${this.where} is ${this.#state}`);
    const id = this.#blockId(this.#blocks.length);
    try {
      await this.blob.stageBlock(id, body, body.length, { ...(await blockChecksum(this.config.blockChecksum, body)), abortSignal: this.#signal });
      this.#blocks.push(id);
    } catch (error) {
      throw azblobError(`staging block ${this.#blocks.length + 1} of`, this.where, error);
    }
  }

  async commit(): Promise<{ location: string }> {
    if (this.#state !== 'writing') throw new UnexpectedError(`delivery ${this.where} is ${this.#state}`);
    if (!this.stream.writableFinished) throw new UnexpectedError(`commit of ${this.where} before its stream finished`);
    this.#state = 'committing';
    try {
      await this.blob.commitBlockList(this.#blocks, {
        // Atomic on the service: the commit fails if any blob exists under the name.
        conditions: { ifNoneMatch: '*' },
        blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        ...(this.config.accessTier ? { tier: this.config.accessTier } : {}),
        abortSignal: this.ctx.signal,
      });
      this.#state = 'committed';
      this.onSettled(this);
      return { location: this.where };
    } catch (error) {
      this.#state = 'writing';
      await this.abort();
      throw azblobError('committing', this.where, error);
    }
  }

  abort(): Promise<void> {
    // Once, and shared: a second abort, or one after a failed commit, waits for the first.
    this.#abort ??= this.#abortOnce();
    return this.#abort;
  }

  async #abortOnce(): Promise<void> {
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    // The staged blocks are never committed; no block id of this attempt is ever used again.
    this.#cancel.abort();
    this.stream.destroy();
    this.onSettled(this);
  }
}

/** The blob name a delivery named `name` gets under the configured prefix. */
function blobNameFor(config: AzblobDestinationConfig, name: string): string {
  const prefix = config.prefix === '/' ? '' : `${config.prefix.slice(1)}/`;
  return `${prefix}${assertSafeName(name)}`;
}

/** The endpoint exactly (scheme, host, port and account path) and the container must be pinned in the local policy. */
function checkPinned(config: AzblobDestinationConfig, policy: readonly AzblobDestinationPolicy[]): void {
  if (!policy.some((entry) => entry.endpoint === config.endpoint && entry.container === config.container)) {
    throw new PolicyViolationError(`azblob endpoint ${config.endpoint} with container ${config.container} is not pinned in the local policy`);
  }
}

async function containerClientFor(ctx: ConnectorContext, config: AzblobDestinationConfig): Promise<ContainerClient> {
  const secret = azblobSecrets.parse(await ctx.secret(config.credentialRef));
  const options: StoragePipelineOptions = {
    retryOptions: { maxTries: MAX_TRIES, tryTimeoutInMs: config.requestTimeoutMs, retryDelayInMs: RETRY_DELAY_MS, maxRetryDelayInMs: MAX_RETRY_DELAY_MS },
  };
  const url = `${config.endpoint}/${config.container}`;
  if ('sasToken' in secret) {
    const query = secret.sasToken.replace(/^\?/, '');
    return new ContainerClient(`${url}?${query}`, new AnonymousCredential(), options);
  }
  return new ContainerClient(url, new StorageSharedKeyCredential(secret.accountName, secret.accountKey), options);
}

/** Loaded on first connect (index.ts), with the Azure SDK. */
export const azblobRuntime: DestinationRuntime<AzblobDestinationConfig, AzblobDestinationPolicy> = {
  async connect(ctx, config, policy): Promise<DestinationSession> {
    checkPinned(config, policy);
    // No round trip here: a SAS that may only create and write blobs cannot read the container,
    // and the first block staged reports a wrong key, a missing container or an unreachable host.
    const container = await containerClientFor(ctx, config);
    const pending = new Set<AzblobDelivery>();
    return {
      async begin(name) {
        const blobName = blobNameFor(config, name);
        const where = `${config.endpoint}/${config.container}/${blobName}`;
        const delivery = new AzblobDelivery(container.getBlockBlobClient(blobName), config, ctx, where, (settled) => pending.delete(settled));
        pending.add(delivery);
        return delivery;
      },
      async close() {
        await Promise.all([...pending].map((delivery) => delivery.abort()));
      },
    };
  },
};
