/**
 * The agent's main loop: heartbeat, long-poll for a job, run it, report it. Errors back off with
 * jitter; the loop never opens a listening socket.
 */
import os from 'node:os';
import { TRPCClientError } from '@trpc/client';
import type { ConnectorRegistry, Logger } from '@airlock/connector-api';
import type { Job, RunProgress, RunReport } from '@airlock/protocol';
import type { ControlPlaneClient } from './control-channel.ts';
import type { Outbox } from './outbox.ts';
import type { LocalPolicy } from './policy.ts';
import type { RetryPolicy } from './retry.ts';
import type { SecretResolver } from './secrets.ts';
import { runJob } from './transfer.ts';

export const AGENT_VERSION = '0.1.0';

export interface DaemonDeps {
  client: ControlPlaneClient;
  registry: ConnectorRegistry;
  policy: LocalPolicy;
  secrets: SecretResolver;
  outbox: Outbox;
  logger: Logger;
  /** Holds the ledger and the signing key. */
  dataDir: string;
  retry: RetryPolicy;
}

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

export async function runDaemon(deps: DaemonDeps, options: DaemonOptions = {}): Promise<RunReport[]> {
  const { client, logger } = deps;
  const reports: RunReport[] = [];
  const sendReport = async (report: RunReport) => {
    try {
      await client.agent.reportRun.mutate(report);
    } catch (error) {
      // The control plane refused this report for good (unknown or finished run): keeping it would block the queue.
      const status = error instanceof TRPCClientError ? (error.data as { httpStatus?: number } | undefined)?.httpStatus : undefined;
      if (status === 400 || status === 404) {
        logger.warn({ runId: report.runId, status }, 'report refused by the control plane; dropped');
        return;
      }
      throw error;
    }
  };
  let failures = 0;
  let lastHeartbeat = 0;
  const started = Date.now();
  while (!options.signal?.aborted) {
    if (options.maxJobs !== undefined && reports.length >= options.maxJobs) break;
    if (options.idleTimeoutMs !== undefined && Date.now() - started > options.idleTimeoutMs) break;
    try {
      if (Date.now() - lastHeartbeat > 60_000) {
        await client.agent.heartbeat.mutate({ version: AGENT_VERSION, hostname: os.hostname() });
        lastHeartbeat = Date.now();
        const flushed = await deps.outbox.flush(sendReport);
        if (flushed > 0) logger.info({ flushed }, 'queued reports sent');
      }
      const { job } = await client.agent.nextJob.mutate({ waitMs: 25_000 }, { signal: options.signal });
      failures = 0;
      if (!job) continue;
      const report = await execute(job, deps, options.signal);
      reports.push(report);
      await deps.outbox.put(report);
      await deps.outbox.flush(sendReport);
    } catch (error) {
      if (options.signal?.aborted) break;
      failures += 1;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6)) * (0.5 + Math.random() / 2);
      const message = error instanceof TRPCClientError || error instanceof Error ? error.message : String(error);
      logger.warn({ error: message, retryInMs: Math.round(delay) }, 'control plane call failed');
      await sleep(delay, options.signal);
    }
  }
  return reports;
}

async function execute(job: Job, deps: DaemonDeps, signal?: AbortSignal): Promise<RunReport> {
  deps.logger.info({ runId: job.runId, integrationId: job.integrationId, version: job.integrationVersion }, 'run started');
  const { registry, policy, secrets, logger, dataDir, retry } = deps;
  const progress = (update: RunProgress) => deps.client.agent.progress.mutate(update);
  const report = await runJob(job, { registry, policy, secrets, logger, dataDir, retry, signal, progress });
  deps.logger.info(
    { runId: job.runId, status: report.status, files: report.files.length, skipped: report.skipped, deferred: report.deferred, bytesIn: report.bytesIn, bytesOut: report.bytesOut, errorClass: report.errorClass },
    'run finished',
  );
  return report;
}
