/**
 * The agent's main loop: heartbeat, witness the audit chain, wait on the wake-up stream (or
 * long-poll, with a client that has none) for a job, open its signed envelope, run it, report it.
 * A refused envelope or policy violation is written to the local security log and reported.
 * Errors back off with jitter; the loop never opens a listening socket.
 */
import { remoteErrorClass } from '@airlock/errors';
import type { Logger } from '@airlock/connector-api';
import { followRotations, keyFingerprint } from '@airlock/identity';
import { HEARTBEAT_INTERVAL_MS, type Job, JOB_KEEPALIVE_MS, LONG_POLL_WAIT_MS, RECONNECT_MAX_DELAY_MS, type RunProgress, type RunReport } from '@airlock/protocol';
import { type ControlPlaneClient, reportedHostname, wakeupStreamOf } from './control-channel.ts';
import type { WakeupOutcome } from './wakeups.ts';
import { isUnauthorized } from './key-rotation.ts';
import { type ControlPlanePin, savePin } from './control-plane-pin.ts';
import { EnvelopeRefusal, openEnvelope } from './envelope.ts';
import type { NonceStore } from './nonce-store.ts';
import { keepReceipts, type ReceiptSigner } from './receipts.ts';
import type { SecurityEvent, SecurityLog } from './security-log.ts';
import { witnessAudit } from './witness.ts';
import type { Outbox } from './outbox.ts';
import type { AgentMetrics } from './metrics.ts';
import type { LocalState } from './local-config.ts';
import { reconnectDelay, retryAfterOf, type RetryPolicy } from './retry.ts';
import { runJob } from './transfer.ts';
import { clearRolledBack, confirmPending, installUpdate, readPending, readRolledBack, recordRefusal, rollBack, UpdateRefusal } from './updates.ts';
import type { UpdateSettings } from './config.ts';
import packageJson from '../package.json' with { type: 'json' };

/** Reported in every heartbeat; the package version is its one source, as for `--version` and the release. */
export const AGENT_VERSION: string = packageJson.version;

export interface DaemonDeps {
  client: ControlPlaneClient;
  /** The local policy, secrets and connectors as they are now: read when a job starts, the policy again before each file. */
  local: { readonly current: LocalState };
  outbox: Outbox;
  logger: Logger;
  /** Holds the ledger and the signing key. */
  dataDir: string;
  retry: RetryPolicy;
  /** The agent's key on disk: re-read after a 401 (another process rotated it), rotated when an admin asks. */
  keys?: { reload(): Promise<ControlPlaneClient>; rotate(): Promise<ControlPlaneClient> };
  identity: { agentId: string; tenantId: string };
  /** The control plane's key as pinned at enrollment; replaced only by a rotation the pinned key signed. */
  pin: ControlPlanePin;
  nonces: NonceStore;
  securityLog: SecurityLog;
  receipts: ReceiptSigner;
  /** How often to witness the audit chain. Default 5 minutes. */
  witnessIntervalMs?: number;
  /** Signed updates: the pinned release key (null: none installed, every offer refused) and the rollback bounds. */
  updates?: { releaseKey: Uint8Array | null; settings: UpdateSettings };
  /** The version this process reports and updates from; the package's by default. */
  version?: string;
  /** The agent's metrics: sent as the heartbeat's summary and written to the textfile collector's file. */
  metrics?: AgentMetrics;
}

export type DaemonOutcome =
  | { kind: 'run'; report: RunReport }
  | { kind: 'refused'; event: SecurityEvent }
  /** `current` now points at another version (an update, or a rollback of one): exit with `EXIT_UPDATED` so the unit starts it. */
  | { kind: 'switched'; version: string };

export interface DaemonOptions {
  /** Stop after this many jobs (for scripted runs); default: run until aborted. */
  maxJobs?: number;
  /** With maxJobs: give up waiting for work after this long. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Follows the control plane's signed key rotations from the pin. Returns true when the pin moved;
 * a key the pinned one did not sign for is never adopted.
 */
async function followSignedRotations(deps: DaemonDeps): Promise<boolean> {
  const statements: unknown[] = await deps.client.custody.rotations.query();
  const next = followRotations(deps.pin.publicKey, statements);
  if (Buffer.from(next).equals(Buffer.from(deps.pin.publicKey))) return false;
  const previous = deps.pin.fingerprint;
  deps.pin = await savePin(deps.dataDir, next, [...deps.pin.previous, previous]);
  await deps.securityLog.record('control-plane-key-rotated', `followed a signed rotation from ${previous} to ${keyFingerprint(next)}`);
  deps.logger.warn({ from: previous, to: deps.pin.fingerprint }, 'control-plane key rotated (signed by the pinned key)');
  return true;
}

async function openJob(raw: unknown, deps: DaemonDeps): Promise<Job> {
  const open = () => openEnvelope(raw, { pin: deps.pin.publicKey, agentId: deps.identity.agentId, tenantId: deps.identity.tenantId, nonces: deps.nonces, now: new Date() });
  try {
    return await open();
  } catch (error) {
    if (!(error instanceof EnvelopeRefusal) || error.kind !== 'envelope-bad-signature') throw error;
    // Perhaps signed by a successor key: only a chain of signatures from the pin may vouch for it.
    if (!(await followSignedRotations(deps))) throw error;
    return open();
  }
}

async function witness(deps: DaemonDeps): Promise<void> {
  const source = {
    checkpoint: () => deps.client.custody.checkpoint.query(),
    segment: (afterSeq: number, untilSeq: number, limit: number) => deps.client.custody.auditSegment.query({ afterSeq, untilSeq, limit }),
  };
  const round = () =>
    witnessAudit({ source, pin: deps.pin.publicKey, tenantId: deps.identity.tenantId, dataDir: deps.dataDir, securityLog: deps.securityLog, logger: deps.logger });
  const result = await round();
  if (result.status === 'alert' && result.kind === 'control-plane-key-mismatch' && (await followSignedRotations(deps))) await round();
}

export async function runDaemon(deps: DaemonDeps, options: DaemonOptions = {}): Promise<DaemonOutcome[]> {
  const { logger } = deps;
  const version = deps.version ?? AGENT_VERSION;
  let client = deps.client;
  const reports: DaemonOutcome[] = [];
  // Stops the loop when a version switch needs a restart, as well as when the caller aborts.
  const switched = new AbortController();
  const signal = options.signal === undefined ? switched.signal : AbortSignal.any([options.signal, switched.signal]);
  options = { ...options, signal };
  const updates = await updateTrial(deps, version, (outcome) => {
    reports.push(outcome);
    switched.abort();
  });
  const sendEvents = () => deps.securityLog.flush(async (event) => void (await client.custody.reportSecurityEvent.mutate(event)), (fields, message) => logger.warn(fields, message));
  const sendReport = async (report: RunReport) => {
    try {
      await client.agent.reportRun.mutate(report);
    } catch (error) {
      // The control plane refused this report for good (unknown or finished run): keeping it would block the queue.
      const refused = remoteErrorClass(error);
      if (refused === 'user' || refused === 'not-found') {
        logger.warn({ runId: report.runId, errorClass: refused }, 'report refused by the control plane; dropped');
        return;
      }
      throw error;
    }
  };
  const { metrics } = deps;
  /** A failed metrics write is logged and never stops the agent's work. */
  const writeMetrics = async () => {
    await metrics?.write().catch((error: unknown) => logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'metrics file not written'));
  };
  let failures = 0;
  let lastHeartbeat = 0;
  let lastWitness = 0;
  const witnessIntervalMs = deps.witnessIntervalMs ?? 5 * 60_000;
  const started = Date.now();
  // Between jobs the agent waits on its wake-up stream, which brings the next job; it asks with
  // `agent.nextJob` once at the start (as idle, which closes the runs a restart lost) and after a
  // silent stream. A client without a stream long-polls instead.
  let wakeups = wakeupStreamOf(client);
  let askNow = true;
  /** Whether the control plane has heard the agent is idle since it started, and so closed the runs a restart lost. */
  let idleSaid = false;
  let silent = false;
  const useClient = (next: ControlPlaneClient) => {
    client = next;
    deps.client = next;
    if (wakeups === null) return;
    wakeups.close();
    wakeups = wakeupStreamOf(next);
  };
  while (!options.signal?.aborted) {
    if (options.maxJobs !== undefined && reports.length >= options.maxJobs) break;
    if (options.idleTimeoutMs !== undefined && Date.now() - started > options.idleTimeoutMs) break;
    try {
      if (Date.now() - lastHeartbeat > HEARTBEAT_INTERVAL_MS) {
        metrics?.setOutboxDepth(await deps.outbox.depth());
        const beat = await client.agent.heartbeat.mutate({ version, hostname: reportedHostname(), ...(metrics ? { summary: metrics.summary() } : {}) });
        lastHeartbeat = Date.now();
        metrics?.heartbeatAnswered();
        await writeMetrics();
        await updates.heartbeated();
        const offer: unknown = Reflect.get(beat, 'update');
        if (offer !== undefined && offer !== null && (await updates.offered(offer))) break;
        if (beat.rotateKey && deps.keys) {
          useClient(await deps.keys.rotate());
          logger.info({}, 'agent key rotated at the control plane\'s request');
        }
        const flushed = await deps.outbox.flush(sendReport);
        if (flushed > 0) logger.info({ flushed }, 'queued reports sent');
        // The outbox held reports when the agent started: once it is empty, ask as idle.
        if (!idleSaid) askNow = true;
        await sendEvents();
      }
      if (Date.now() - lastWitness > witnessIntervalMs) {
        lastWitness = Date.now();
        await witness(deps);
        await sendEvents();
      }
      let raw: unknown;
      if (wakeups !== null && !askNow) {
        // Back in time for the next heartbeat or witness round, or the end of a scripted run's wait.
        const due = Math.min(lastHeartbeat + HEARTBEAT_INTERVAL_MS, lastWitness + witnessIntervalMs, options.idleTimeoutMs === undefined ? Infinity : started + options.idleTimeoutMs) + 1;
        let outcome: WakeupOutcome;
        const connections = wakeups.connections;
        try {
          outcome = await wakeups.wait(due, options.signal);
        } catch (error) {
          // A stream that was open and then broke (a load balancer that ends responses after a
          // while) is a first failure again, so its agent reopens at once instead of backing off more each time.
          if (wakeups.connections > connections) failures = 0;
          if (remoteErrorClass(error) !== 'not-found') throw error;
          // A control plane from before wake-up streams: long-poll it, as such agents did.
          logger.warn({}, 'the control plane has no wake-up stream; long-polling instead');
          wakeups.close();
          wakeups = null;
          askNow = true;
          continue;
        }
        failures = 0;
        if (outcome.kind === 'silent' && !silent) logger.warn({}, 'the wake-up stream went silent (a proxy holding events back?); asking for work after each silence');
        silent = outcome.kind === 'silent';
        // Heartbeat now: the answer has something for the agent (an admin asked it to rotate its key).
        if (outcome.kind === 'heartbeat') lastHeartbeat = 0;
        if (outcome.kind !== 'job') {
          askNow = silent;
          continue;
        }
        raw = outcome.envelope;
      } else {
        askNow = false;
        // Jobs run one at a time, so between jobs nothing runs: with no report waiting either, any run
        // the control plane still holds open for this agent was lost (a restart mid-run) and is closed.
        const idle = await deps.outbox.isEmpty();
        if (idle) idleSaid = true;
        // Read as unknown: whatever came back is untrusted until its envelope is opened.
        const answer: unknown = await client.agent.nextJob.mutate({ waitMs: wakeups === null ? LONG_POLL_WAIT_MS : 0, idle }, { signal: options.signal });
        failures = 0;
        raw = typeof answer === 'object' && answer !== null && 'envelope' in answer ? answer.envelope : answer;
        if (raw === null || raw === undefined) continue;
      }
      let job: Job;
      try {
        job = await openJob(raw, deps);
      } catch (error) {
        if (!(error instanceof EnvelopeRefusal)) throw error;
        const event = await deps.securityLog.record(error.kind, error.message, error.claimedRunId === undefined ? {} : { runId: error.claimedRunId });
        logger.error({ kind: error.kind, runId: error.claimedRunId, reason: error.message }, 'job refused: security event recorded');
        reports.push({ kind: 'refused', event });
        await sendEvents();
        if (error.claimedRunId !== undefined) {
          // Closes the run on an honest control plane (an envelope that expired in transit); any other refuses it.
          const at = new Date().toISOString();
          const failed: RunReport = { runId: error.claimedRunId, status: 'failed', startedAt: at, finishedAt: at, bytesIn: 0, bytesOut: 0, files: [], recipientFingerprints: [], skipped: 0, deferred: 0, errorClass: 'policy-violation', reason: `the job envelope was refused (${error.kind})`, violation: { kind: 'envelope' } };
          await deps.outbox.put(failed);
          await deps.outbox.flush(sendReport);
        }
        continue;
      }
      const report = await execute(job, deps, options.signal);
      if (report.errorClass === 'policy-violation') {
        await deps.securityLog.record('policy-violation', `the local policy refused the job's ${report.violation?.kind ?? 'request'}`, { runId: job.runId });
      }
      reports.push({ kind: 'run', report });
      metrics?.runFinished(report);
      await keepReceipts(deps.dataDir, report);
      await deps.outbox.put(report);
      await deps.outbox.flush(sendReport);
      metrics?.setOutboxDepth(await deps.outbox.depth());
      await writeMetrics();
      await sendEvents();
    } catch (error) {
      if (options.signal?.aborted) break;
      failures += 1;
      const delay = reconnectDelay(failures, retryAfterOf(error), RECONNECT_MAX_DELAY_MS);
      const message = error instanceof Error ? error.message : String(error);
      logger.warn({ error: message, retryInMs: Math.round(delay) }, 'control plane call failed');
      metrics?.controlPlaneFailed(remoteErrorClass(error) ?? 'unreachable');
      await writeMetrics();
      if (isUnauthorized(error) && deps.keys) {
        useClient(
          await deps.keys.reload().catch((reloadError: unknown) => {
            logger.warn({ error: reloadError instanceof Error ? reloadError.message : String(reloadError) }, 'agent key reload failed');
            return client;
          }),
        );
      }
      await sleep(delay, options.signal);
    }
  }
  wakeups?.close();
  updates.stop();
  return reports;
}

interface UpdateHooks {
  /** After every successful heartbeat: confirms a version on trial, reports a rollback. */
  heartbeated(): Promise<void>;
  /** An offer came with a heartbeat: true when the agent switched versions and must restart. */
  offered(offer: unknown): Promise<boolean>;
  stop(): void;
}

/**
 * The update side of the loop. A version started by an unconfirmed switch is on trial: its first
 * heartbeat confirms it; if none succeeds in time it points `current` back at the previous version
 * and asks for a restart. A version that was rolled back to reports that once it is heard.
 */
async function updateTrial(deps: DaemonDeps, version: string, restart: (outcome: DaemonOutcome) => void): Promise<UpdateHooks> {
  const { logger, dataDir } = deps;
  const refused = new Set<string>();
  const report = async (input: { rolloutId: string; releaseId: string; status: 'installing' | 'installed' | 'rolled-back' | 'refused'; reason?: string }) => {
    try {
      await deps.client.agent.reportUpdate.mutate({ ...input, runningVersion: version });
      return true;
    } catch (error) {
      logger.warn({ error: error instanceof Error ? error.message : String(error), status: input.status }, 'update report not sent');
      return false;
    }
  };
  const settings = deps.updates?.settings;
  let trial = settings === undefined ? undefined : await readPending(dataDir);
  if (trial !== undefined && trial.version !== version) trial = undefined;
  let timer: NodeJS.Timeout | undefined;
  if (trial !== undefined && settings !== undefined) {
    const onTrial = trial;
    const left = Date.parse(onTrial.switchedAt) + settings.confirmWithinMs - Date.now();
    logger.info({ version, confirmWithinMs: Math.max(0, left) }, 'new version on trial until its first heartbeat');
    timer = setTimeout(() => {
      const reason = `version ${version} did not heartbeat within ${Math.round(settings.confirmWithinMs / 1000)} s of the switch`;
      rollBack(dataDir, onTrial, reason).then(
        () => {
          logger.error({ version, previous: onTrial.previous }, 'no heartbeat in time: rolled back to the previous version');
          restart({ kind: 'switched', version: onTrial.previous });
        },
        (error: unknown) => logger.error({ error: error instanceof Error ? error.message : String(error) }, 'rollback failed'),
      );
    }, Math.max(0, left));
    timer.unref();
  }
  let rolledBack = settings === undefined ? undefined : await readRolledBack(dataDir);
  if (rolledBack !== undefined && rolledBack.version === version) rolledBack = undefined;
  return {
    async heartbeated() {
      if (trial !== undefined) {
        clearTimeout(timer);
        await confirmPending(dataDir);
        logger.info({ version }, 'update confirmed by a heartbeat');
        await report({ rolloutId: trial.rolloutId, releaseId: trial.releaseId, status: 'installed' });
        trial = undefined;
      }
      if (rolledBack !== undefined) {
        const back = rolledBack;
        rolledBack = undefined;
        // This heartbeat's answer may still offer the release just rolled back: it is not taken again.
        refused.add(back.releaseId);
        await deps.securityLog.record('update-rolled-back', `rolled back from ${back.version}: ${back.reason}`);
        if (await report({ rolloutId: back.rolloutId, releaseId: back.releaseId, status: 'rolled-back', reason: back.reason })) await clearRolledBack(dataDir);
      }
    },
    async offered(raw) {
      const key = typeof raw === 'object' && raw !== null ? String(Reflect.get(raw, 'releaseId')) : String(raw);
      if (refused.has(key)) return false;
      if (trial !== undefined) return false;
      try {
        if (deps.updates === undefined) throw new UpdateRefusal('update-refused', 'this agent was started without update settings');
        const { manifest } = await installUpdate(raw, {
          dataDir,
          version,
          releaseKey: deps.updates.releaseKey,
          updatesAllowed: () => deps.local.current.policy.document.updates,
          fetchChunk: async (releaseId, index) => (await deps.client.agent.releaseChunk.mutate({ releaseId, index })).data,
          // Best effort: a report that does not get through is logged, and the switch goes ahead.
          installing: async (offer) => void (await report({ rolloutId: offer.rolloutId, releaseId: offer.releaseId, status: 'installing' })),
          logger,
        });
        restart({ kind: 'switched', version: manifest.version });
        return true;
      } catch (error) {
        if (!(error instanceof UpdateRefusal)) throw error;
        refused.add(key);
        await recordRefusal(deps.securityLog, error);
        logger.error({ kind: error.kind, reason: error.message }, 'update refused: security event recorded');
        const offer = typeof raw === 'object' && raw !== null ? raw : {};
        const rolloutId = Reflect.get(offer, 'rolloutId');
        const releaseId = Reflect.get(offer, 'releaseId');
        if (typeof rolloutId === 'string' && typeof releaseId === 'string') await report({ rolloutId, releaseId, status: 'refused', reason: error.message });
        return false;
      }
    },
    stop() {
      clearTimeout(timer);
    },
  };
}

async function execute(job: Job, deps: DaemonDeps, signal?: AbortSignal): Promise<RunReport> {
  deps.logger.info({ runId: job.runId, integrationId: job.integrationId, version: job.integrationVersion }, 'run started');
  const { logger, dataDir, retry, receipts, local } = deps;
  const { registry, policy } = local.current;
  const livePolicy = () => local.current.policy;
  const secrets = (ref: string) => local.current.secrets(ref);
  const progress = (update: RunProgress) => deps.client.agent.progress.mutate(update);
  const keepalive = setInterval(() => {
    deps.client.agent.heartbeat.mutate({ version: deps.version ?? AGENT_VERSION, hostname: reportedHostname(), ...(deps.metrics ? { summary: deps.metrics.summary() } : {}) }).catch((error: unknown) => {
      deps.logger.debug({ error: error instanceof Error ? error.message : String(error) }, 'keepalive failed');
    });
  }, JOB_KEEPALIVE_MS);
  keepalive.unref();
  let report: RunReport;
  try {
    report = await runJob(job, { registry, policy, livePolicy, secrets, logger, dataDir, retry, signal, receipts, progress });
  } finally {
    clearInterval(keepalive);
  }
  deps.logger.info(
    { runId: job.runId, status: report.status, files: report.files.length, skipped: report.skipped, deferred: report.deferred, skippedNames: report.skippedNames?.count ?? 0, bytesIn: report.bytesIn, bytesOut: report.bytesOut, errorClass: report.errorClass },
    'run finished',
  );
  return report;
}
