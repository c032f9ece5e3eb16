/**
 * The agent's own metrics. The agent opens no port, so nothing scrapes it: it writes them in the
 * node-exporter textfile-collector format to a file the operator names (AIRLOCK_AGENT_METRICS_FILE,
 * in the collector's directory), and sends the same facts as a summary in each heartbeat, which
 * the control plane re-exports per agent. Metadata only: counts, sizes, the version, whether a
 * proxy is used and the last error's wording (which the agent builds from its typed errors, never
 * from file content); no path, file name or secret.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { type HeartbeatSummary, MAX_SUMMARY_ERROR_LENGTH, type RunReport } from '@airlock/protocol';
import { Counter, Gauge, Registry } from 'prom-client';

/** Control, line-separator and bidirectional-override characters: the protocol's display text refuses them. */
const UNDISPLAYABLE = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/gu;

function displayable(text: string): string {
  const clean = text.replace(UNDISPLAYABLE, ' ').trim();
  const codePoints = [...clean];
  return codePoints.length > MAX_SUMMARY_ERROR_LENGTH ? `${codePoints.slice(0, MAX_SUMMARY_ERROR_LENGTH - 1).join('')}…` : clean;
}

export interface AgentMetricsOptions {
  agentId: string;
  version: string;
  /** Whether the control channel goes through an HTTP proxy. */
  proxy: boolean;
  /** Where to write the textfile metrics; null: the heartbeat summary only. */
  file: string | null;
  now?: () => Date;
}

export class AgentMetrics {
  readonly #options: AgentMetricsOptions;
  readonly #now: () => Date;
  readonly #startedAt: Date;
  readonly #registry = new Registry();
  readonly #runs: Counter<'outcome'>;
  readonly #bytes: Counter;
  readonly #files: Counter;
  readonly #outbox: Gauge;
  readonly #heartbeat: Gauge;
  readonly #reachable: Gauge;
  readonly #errors: Counter;
  #counts = { succeeded: 0, failed: 0, bytes: 0, files: 0 };
  #lastError: string | null = null;
  #outboxDepth = 0;
  /** Writes are serialized: two renames racing could leave the older numbers in place. */
  #writing: Promise<void> = Promise.resolve();

  constructor(options: AgentMetricsOptions) {
    if (options.file !== null && path.extname(options.file) !== '.prom') {
      throw new Error(`the metrics file must end in .prom (the textfile collector reads only those): ${options.file}`);
    }
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#startedAt = this.#now();
    const registers = [this.#registry];
    new Gauge({ name: 'airlock_agent_info', help: "This agent's id and version (always 1).", labelNames: ['agent_id', 'version'], registers }).set(
      { agent_id: options.agentId, version: options.version },
      1,
    );
    new Gauge({ name: 'airlock_agent_start_time_seconds', help: 'When this agent process started, in Unix seconds.', registers }).set(this.#startedAt.getTime() / 1000);
    new Gauge({ name: 'airlock_agent_proxy', help: '1 when the control channel goes through an HTTP proxy.', registers }).set(options.proxy ? 1 : 0);
    this.#runs = new Counter({ name: 'airlock_agent_runs_total', help: 'Runs this agent finished since it started, by outcome.', labelNames: ['outcome'], registers });
    this.#runs.inc({ outcome: 'succeeded' }, 0);
    this.#runs.inc({ outcome: 'failed' }, 0);
    this.#bytes = new Counter({ name: 'airlock_agent_delivered_bytes_total', help: 'Ciphertext bytes this agent delivered since it started.', registers });
    this.#files = new Counter({ name: 'airlock_agent_delivered_files_total', help: 'Files this agent delivered since it started.', registers });
    this.#errors = new Counter({ name: 'airlock_agent_control_plane_errors_total', help: 'Failed calls to the control plane since the agent started.', registers });
    this.#outbox = new Gauge({ name: 'airlock_agent_outbox_depth', help: 'Run reports waiting to be sent to the control plane.', registers });
    this.#heartbeat = new Gauge({ name: 'airlock_agent_last_heartbeat_seconds', help: 'When the control plane last answered a heartbeat, in Unix seconds (0: not yet).', registers });
    this.#reachable = new Gauge({ name: 'airlock_agent_control_plane_up', help: "1 when the agent's last call to the control plane succeeded.", registers });
  }

  /** A run ended: its outcome and what it delivered. */
  runFinished(report: RunReport): void {
    this.#runs.inc({ outcome: report.status });
    this.#bytes.inc(report.bytesOut);
    this.#files.inc(report.files.length);
    this.#counts[report.status] += 1;
    this.#counts.bytes += report.bytesOut;
    this.#counts.files += report.files.length;
    if (report.status === 'failed') this.#lastError = displayable(report.reason ?? `run failed (${report.errorClass ?? 'unexpected'})`);
  }

  /** A control-plane call failed; `kind` is the error's class (never its message, which may hold an address). */
  controlPlaneFailed(kind: string): void {
    this.#errors.inc();
    this.#reachable.set(0);
    this.#lastError = displayable(`control-plane call failed (${kind})`);
  }

  heartbeatAnswered(): void {
    this.#reachable.set(1);
    this.#heartbeat.set(this.#now().getTime() / 1000);
  }

  setOutboxDepth(depth: number): void {
    this.#outboxDepth = depth;
    this.#outbox.set(depth);
  }

  /** What the next heartbeat carries. */
  summary(): HeartbeatSummary {
    return {
      version: this.#options.version,
      proxy: this.#options.proxy,
      lastError: this.#lastError === '' ? null : this.#lastError,
      runs: { succeeded: this.#counts.succeeded, failed: this.#counts.failed },
      bytesDelivered: this.#counts.bytes,
      filesDelivered: this.#counts.files,
      outboxDepth: this.#outboxDepth,
      startedAt: this.#startedAt.toISOString(),
    };
  }

  /**
   * Replaces the metrics file atomically: written in full to a temporary name in the same directory
   * (which the collector ignores: it reads `*.prom` only), synced, then renamed over the file, so
   * the collector never reads half a file.
   */
  write(): Promise<void> {
    const file = this.#options.file;
    if (file === null) return Promise.resolve();
    const next = this.#writing.then(async () => {
      const text = await this.#registry.metrics();
      const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      const handle = await open(temp, 'wx', 0o644);
      try {
        // The collector runs as its own user, and the unit's UMask=0077 would leave the file 0600:
        // the mode is set outright. The file holds counters and versions, nothing secret.
        await handle.chmod(0o644);
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file).catch(async (error: unknown) => {
        await rm(temp, { force: true });
        throw error;
      });
    });
    this.#writing = next.catch(() => undefined);
    return next;
  }
}
