/**
 * The data path for one job. In order, before any byte moves: the integration's options, the local
 * policy (sources, destinations, post-delivery actions), the recipient keys and message profile,
 * and the signing key. Then: list the source (twice, for stability), check every file against the
 * policy, skip what the ledger shows as delivered, and send the rest through `transferFile`, up to
 * `concurrency` at once, each retried on transient errors. Only after a committed delivery is it
 * recorded in the ledger and the source post-action (delete, archive) run.
 */
import { randomBytes } from 'node:crypto';
import {
  type BoundSource,
  type ConnectorContext,
  type ConnectorRegistry,
  type DestinationSession,
  type Logger,
  matchPath,
  normalizePath,
  type SourceFile,
  type SourceSession,
} from '@airlock/connector-api';
import { classify, reasonOf, UserError } from '@airlock/errors';
import { checkProfile, loadRecipients, type RecipientKey, type SigningKey } from '@airlock/pgp';
import { escapeUnprintable, type FileReport, type IntegrationOptions, type Job, MAX_REASON_LENGTH, type RunReport, truncateText } from '@airlock/protocol';
import { jobOptions, renderName } from './job-options.ts';
import { Ledger } from './ledger.ts';
import { forEachLimit } from './limit.ts';
import { type LocalPolicy, PolicyRefusal } from './policy.ts';
import { plaintextKey, type ReceiptSigner } from './receipts.ts';
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry.ts';
import type { SecretResolver } from './secrets.ts';
import { selectStable } from './selection.ts';
import { signingKeyFor } from './signing-key.ts';
import { skippedNames } from './skipped-names.ts';
import { SourceChangedError, transferFile } from './transfer-file.ts';
import { type ProgressSink, trackProgress } from './progress.ts';

export interface TransferDeps {
  registry: ConnectorRegistry;
  /** The policy the job starts under: sources, destinations and recipients are checked against it. */
  policy: LocalPolicy;
  /** The policy as it is now, asked again before each file is opened, so a narrowing reloaded mid-job applies to the next file. Unset: `policy`. */
  livePolicy?: () => LocalPolicy;
  secrets: SecretResolver;
  logger: Logger;
  /** The agent data directory: holds the ledger and the signing key. Without it, no ledger and no signing. */
  dataDir?: string;
  retry?: RetryPolicy;
  signal?: AbortSignal;
  now?: () => Date;
  /** Signs a receipt for each delivered file; without it, files carry no receipt. */
  receipts?: ReceiptSigner;
  /** Where live progress goes (the control plane's agent.progress); unset: none is reported. */
  progress?: ProgressSink;
}

type AfterDelivery = IntegrationOptions['afterDelivery'];
type PostAction = (file: SourceFile) => Promise<void>;

/** The session's implementation of the requested post-action; a source without one cannot run the job. */
function postActionFor(session: SourceSession, ref: string, afterDelivery: AfterDelivery): PostAction | undefined {
  switch (afterDelivery.action) {
    case 'keep':
      return undefined;
    case 'delete': {
      const remove = session.remove?.bind(session);
      if (!remove) throw new UserError(`source ${ref} cannot delete files after delivery`);
      return remove;
    }
    case 'archive': {
      const archive = session.archive?.bind(session);
      const directory = afterDelivery.archiveDirectory;
      if (!archive) throw new UserError(`source ${ref} cannot archive files after delivery`);
      if (directory === undefined) throw new UserError('afterDelivery.archiveDirectory is required with action archive');
      return (file) => archive(file, normalizePath(directory));
    }
  }
}

/** An archived file the source still selected would come back under a new path and be sent again. */
function checkArchiveOutsideSelection(source: BoundSource, afterDelivery: AfterDelivery, files: SourceFile[]): void {
  if (afterDelivery.action !== 'archive' || afterDelivery.archiveDirectory === undefined) return;
  const directory = normalizePath(afterDelivery.archiveDirectory);
  const patterns = source.claims().map((claim) => claim.path);
  for (const file of files) {
    const target = `${directory === '/' ? '' : directory}/${file.name}`;
    if (patterns.some((pattern) => matchPath(pattern, target))) {
      throw new UserError(`archive directory ${directory} lies inside the source selection`);
    }
  }
}

async function signingKey(options: IntegrationOptions, dataDir: string | undefined): Promise<SigningKey | undefined> {
  if (!options.output.sign) return undefined;
  if (dataDir === undefined) throw new UserError('signing needs the agent data directory, where the signing key lives');
  return signingKeyFor(dataDir);
}

export async function runJob(job: Job, deps: TransferDeps): Promise<RunReport> {
  const now = deps.now ?? (() => new Date());
  const started = now();
  const logger = deps.logger;
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  const signal = controller.signal;
  const progress = trackProgress(job.runId, deps.progress, logger);
  const delivered: Array<FileReport | undefined> = [];
  const counts = { skipped: 0, deferred: 0 };
  const passedOver = skippedNames(job.runId, logger);
  let recipients: RecipientKey[] = [];
  let signer: SigningKey | undefined;
  let ledger: Ledger | undefined;
  let sourceSession: SourceSession | undefined;
  let destinationSession: DestinationSession | undefined;
  const summary = (status: RunReport['status']): RunReport => {
    const files = delivered.filter((file) => file !== undefined);
    return {
      runId: job.runId,
      startedAt: started.toISOString(),
      status,
      finishedAt: now().toISOString(),
      bytesIn: files.reduce((sum, f) => sum + f.bytesIn, 0),
      bytesOut: files.reduce((sum, f) => sum + f.bytesOut, 0),
      files,
      recipientFingerprints: recipients.map((r) => r.fingerprint),
      ...counts,
      ...passedOver.report(),
      ...(signer ? { signerFingerprint: signer.fingerprint } : {}),
    };
  };
  try {
    const options = jobOptions(job.spec);
    const source = deps.registry.source(job.spec.source.connector, job.spec.source.config);
    const destination = deps.registry.destination(job.spec.destination.connector, job.spec.destination.config);
    // Both keys to the door, before any connection: the local policy decides what may be touched.
    const sourcePolicy = deps.policy.checkSource(source.claims(), options.afterDelivery, source.ref);
    const destinationPolicy = deps.policy.checkDestination(destination.claims(), destination.ref);
    recipients = await loadRecipients(job.spec.recipients, now());
    deps.policy.checkRecipients(recipients.map((r) => r.fingerprint), destination.claims());
    checkProfile(recipients, options.output.profile);
    // Without a data directory there is nowhere to keep a key: a one-run key still hides the plaintext digest.
    const hmacKey = deps.dataDir === undefined ? randomBytes(32) : await plaintextKey(deps.dataDir);
    signer = await signingKey(options, deps.dataDir);
    if (deps.dataDir !== undefined) ledger = await Ledger.open(deps.dataDir, job.integrationId);

    const ctx: ConnectorContext = { signal, logger, secret: deps.secrets, skipped: (entry) => passedOver.add(entry) };
    // Each runtime receives the entries of its own policy section that allowed this run.
    const sourceCtx: ConnectorContext = { ...ctx, policy: sourcePolicy };
    const destinationCtx: ConnectorContext = { ...ctx, policy: destinationPolicy };
    const { from: opened, into } = await connectBoth(
      () => source.connect(sourceCtx),
      () => destination.connect(destinationCtx),
    );
    destinationSession = into;
    const from = progress.watch(opened);
    sourceSession = from;
    const postAction = postActionFor(from, source.ref, options.afterDelivery);

    const selected = await selectStable(from, options.selection.stableForMs, signal);
    counts.deferred = selected.deferred;
    for (const file of selected.files) deps.policy.checkFile(source.claimFor(file), options.afterDelivery);
    checkArchiveOutsideSelection(source, options.afterDelivery, selected.files);
    const deliveredBefore = (file: SourceFile) => file.generated !== true && ledger?.has(file) === true;
    const done = selected.files.filter(deliveredBefore);
    const todo = selected.files.filter((file) => !deliveredBefore(file));
    counts.skipped = done.length;
    progress.total(todo.length);
    const names = todo.map((file) => renderName(options.output.nameTemplate, file, { runId: job.runId, date: started }));
    if (new Set(names).size !== names.length) {
      throw new UserError(`name template ${JSON.stringify(options.output.nameTemplate)} gives several files the same name`);
    }

    const retry = deps.retry ?? DEFAULT_RETRY;
    const retried = <T>(what: string, operation: (attempt: number) => Promise<T>) =>
      withRetry(operation, retry, {
        signal,
        onRetry: (error, attempt, delayMs) => logger.warn({ runId: job.runId, what, attempt, delayMs, errorClass: classify(error) }, 'transient failure; retrying'),
      });
    await forEachLimit(todo, options.concurrency, async (file, index) => {
      const name = names[index] ?? '';
      let allowedBy = deps.policy;
      let report: FileReport;
      try {
        report = await retried('transfer', async (attempt) => {
          allowedBy = deps.livePolicy?.() ?? deps.policy;
          allowedBy.checkFile(source.claimFor(file), options.afterDelivery);
          const transfer = (sourceSession: SourceSession, destinationSession: DestinationSession) =>
            transferFile({
              source: sourceSession,
              destination: destinationSession,
              file,
              name,
              recipients,
              encrypt: { armor: options.output.armor, profile: options.output.profile, ...(signer ? { signingKey: signer } : {}) },
              ...(job.spec.fields ? { fields: job.spec.fields } : {}),
              plaintextKey: hmacKey,
              signal,
            });
          if (attempt === 1) return transfer(from, into);
          // A transient failure may have taken the connections with it: a retry gets its own.
          const retry = await connectBoth(
            () => source.connect(sourceCtx),
            () => destination.connect(destinationCtx),
          );
          try {
            return await transfer(retry.from, retry.into);
          } finally {
            await retry.from.close().catch(() => undefined);
            await retry.into.close().catch(() => undefined);
          }
        });
      } catch (error) {
        if (!(error instanceof SourceChangedError)) throw error;
        counts.deferred += 1;
        return;
      }
      const deliveredAt = now();
      const receipt = deps.receipts?.sign({
        runId: job.runId,
        integrationId: job.integrationId,
        integrationVersion: job.integrationVersion,
        sourcePath: report.sourcePath,
        name,
        bytesIn: report.bytesIn,
        plaintextHmac: report.plaintextHmac,
        ciphertextSha256: report.ciphertextSha256,
        bytesOut: report.bytesOut,
        recipientFingerprints: recipients.map((r) => r.fingerprint),
        policyDigest: allowedBy.digest,
        startedAt: new Date(deliveredAt.getTime() - report.durationMs).toISOString(),
        deliveredAt: deliveredAt.toISOString(),
      });
      delivered[index] = receipt === undefined ? report : { ...report, receipt };
      progress.fileDone(delivered[index] ?? report);
      logger.info({ runId: job.runId, bytesIn: report.bytesIn, bytesOut: report.bytesOut, durationMs: report.durationMs }, 'file delivered');
      if (!file.generated) await ledger?.record({
        path: file.path,
        size: file.size,
        mtimeMs: file.mtimeMs,
        plaintextHmac: report.plaintextHmac,
        deliveredAt: deliveredAt.toISOString(),
        runId: job.runId,
      });
      if (postAction) await retried('post-action', () => postAction(file));
    });
    // A post-action a crash or an earlier failure left undone: the ledger shows the delivery was committed.
    if (postAction) for (const file of done) await retried('post-action', () => postAction(file));
    return summary('succeeded');
  } catch (error) {
    const errorClass = classify(error);
    logger.warn({ runId: job.runId, errorClass, error: error instanceof Error ? error.message : String(error) }, 'run failed');
    return {
      ...summary('failed'),
      errorClass,
      reason: reportableReason(error),
      ...(error instanceof PolicyRefusal ? { violation: { kind: error.kind } } : {}),
    };
  } finally {
    deps.signal?.removeEventListener('abort', onAbort);
    progress.stop();
    await sourceSession?.close().catch(() => undefined);
    await destinationSession?.close().catch(() => undefined);
    await ledger?.close().catch(() => undefined);
  }
}

/**
 * Connects the source and the destination at once: each is a handshake or more of round trips. When
 * either fails, the other is closed, and the destination's error is the one thrown, as when the
 * destination was connected first.
 */
async function connectBoth(
  connectSource: () => Promise<SourceSession>,
  connectDestination: () => Promise<DestinationSession>,
): Promise<{ from: SourceSession; into: DestinationSession }> {
  const [into, from] = await Promise.allSettled([connectDestination(), connectSource()]);
  if (into.status === 'rejected') {
    if (from.status === 'fulfilled') await from.value.close().catch(() => undefined);
    throw into.reason;
  }
  if (from.status === 'rejected') {
    await into.value.close().catch(() => undefined);
    throw from.reason;
  }
  return { from: from.value, into: into.value };
}

/** The reason a failed run reports: vouched for by its thrower (see `reasonOf`), one printable line, bounded. */
export function reportableReason(error: unknown): string {
  return truncateText(escapeUnprintable(reasonOf(error)), MAX_REASON_LENGTH);
}
