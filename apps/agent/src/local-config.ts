/**
 * The local policy and secrets as they are now. Both are read again on SIGHUP (`systemctl reload
 * airlock-agent`) and when either file changes on disk. A file that fails its checks is refused
 * whole and its last good version stays in force, so a typo or a loose mode never leaves the agent
 * without a ceiling; each refusal is logged and recorded in the security log. A job reads `current`
 * when it starts and the policy again before each file it opens, so a narrowing applies at once.
 */
import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ConnectorRegistry, Logger } from '@airlock/connector-api';
import { UserError } from '@airlock/errors';
import { builtInConnectors } from './connectors.ts';
import { errnoCode } from './files.ts';
import { LocalPolicy } from './policy.ts';
import { loadSecrets, type SecretResolver } from './secrets.ts';
import type { SecurityLog } from './security-log.ts';

export interface LocalState {
  readonly policy: LocalPolicy;
  readonly secrets: SecretResolver;
  /** The connectors: they shape the policy's sections and the secrets' entries. */
  readonly registry: ConnectorRegistry;
}

export interface LocalFiles {
  policyFile: string;
  secretsFile: string;
}

export type ReloadOutcome = { status: 'reloaded' | 'unchanged' } | { status: 'refused'; problems: string[] };

type Connectors = () => ConnectorRegistry;

/** Quiet time after the last change before reading: editors write a file in several steps. Default 250 ms. */
const DEBOUNCE_MS = 250;

/** Identifies what is on disk without reading it: a rename, a write or a chmod each change it. */
async function fileVersion(file: string): Promise<string> {
  try {
    const stats = await stat(file);
    return `${stats.ino}:${stats.size}:${stats.mode}:${stats.mtimeMs}:${stats.ctimeMs}`;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 'absent';
    return `unreadable:${String(errnoCode(error))}`;
  }
}

const problemOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export class LocalConfig {
  #state: LocalState;
  #seen: { policy: string; secrets: string };
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly files: LocalFiles,
    readonly connectors: Connectors,
    state: LocalState,
    seen: { policy: string; secrets: string },
  ) {
    this.#state = state;
    this.#seen = seen;
  }

  /** Reads both files; any problem with either is thrown, every problem in one line. */
  static async load(files: LocalFiles, connectors: Connectors = builtInConnectors): Promise<LocalConfig> {
    const seen = { policy: await fileVersion(files.policyFile), secrets: await fileVersion(files.secretsFile) };
    const registry = connectors();
    const [policy, secrets] = await Promise.allSettled([LocalPolicy.load(files.policyFile, registry), loadSecrets(files.secretsFile, registry)]);
    if (policy.status === 'rejected' || secrets.status === 'rejected') {
      const problems = [policy, secrets].flatMap((result) => (result.status === 'rejected' ? [problemOf(result.reason)] : []));
      throw new UserError(problems.join('; '));
    }
    return new LocalConfig(files, connectors, { policy: policy.value, secrets: secrets.value, registry }, seen);
  }

  get current(): LocalState {
    return this.#state;
  }

  /**
   * Reads again whichever file changed (`force`: both), and swaps in the new state in one assignment.
   * Each file is judged on its own: a refused policy does not hold back a good secrets file.
   */
  reload(deps: { securityLog: SecurityLog; logger: Logger }, force = false): Promise<ReloadOutcome> {
    const next = this.#queue.then(() => this.#reload(deps, force));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #reload({ securityLog, logger }: { securityLog: SecurityLog; logger: Logger }, force: boolean): Promise<ReloadOutcome> {
    const seen = { policy: await fileVersion(this.files.policyFile), secrets: await fileVersion(this.files.secretsFile) };
    const policyChanged = force || seen.policy !== this.#seen.policy;
    const secretsChanged = force || seen.secrets !== this.#seen.secrets;
    // A refused version is remembered too, so it is recorded once, not at every unrelated change in the directory.
    this.#seen = seen;
    if (!policyChanged && !secretsChanged) return { status: 'unchanged' };
    const problems: string[] = [];
    const { registry } = this.#state;
    let { policy, secrets } = this.#state;
    if (policyChanged) {
      try {
        const loaded = await LocalPolicy.load(this.files.policyFile, registry);
        if (loaded.digest !== policy.digest) policy = loaded;
      } catch (error) {
        problems.push(problemOf(error));
      }
    }
    if (secretsChanged) {
      try {
        secrets = await loadSecrets(this.files.secretsFile, registry);
      } catch (error) {
        problems.push(problemOf(error));
      }
    }
    const previousDigest = this.#state.policy.digest;
    this.#state = { policy, secrets, registry };
    if (policy.digest !== previousDigest) logger.info({ policyDigest: policy.digest, previousDigest }, 'local policy reloaded');
    if (problems.length === 0) return { status: 'reloaded' };
    // The messages name files, places and modes; the secrets parser never puts a value in one.
    for (const problem of problems) logger.error({ problem }, 'local config refused; the last good version stays in force');
    await securityLog.record('local-config-refused', problems.join('; '));
    return { status: 'refused', problems };
  }

  /**
   * Reloads on SIGHUP and, debounced, when a file in the policy's or the secrets' directory changes.
   * Returns a function that stops both.
   */
  follow(deps: { securityLog: SecurityLog; logger: Logger; debounceMs?: number }): () => void {
    const { logger } = deps;
    const run = (force: boolean) => {
      this.reload(deps, force).catch((error: unknown) => logger.error({ error: problemOf(error) }, 'local config reload failed'));
    };
    let timer: NodeJS.Timeout | undefined;
    const names = new Set([path.basename(this.files.policyFile), path.basename(this.files.secretsFile)]);
    const onChange = (filename: string | null) => {
      if (filename !== null && !names.has(filename)) return;
      clearTimeout(timer);
      timer = setTimeout(() => run(false), deps.debounceMs ?? DEBOUNCE_MS);
    };
    const watchers: FSWatcher[] = [];
    for (const directory of new Set([path.dirname(this.files.policyFile), path.dirname(this.files.secretsFile)])) {
      try {
        const watcher = watch(directory, { persistent: false }, (_event, filename) => onChange(filename));
        watcher.on('error', (error) => logger.warn({ directory, error: problemOf(error) }, 'watching for local config changes stopped; SIGHUP still reloads'));
        watchers.push(watcher);
      } catch (error) {
        logger.warn({ directory, error: problemOf(error) }, 'cannot watch for local config changes; SIGHUP still reloads');
      }
    }
    const onHangup = () => run(true);
    process.on('SIGHUP', onHangup);
    return () => {
      process.off('SIGHUP', onHangup);
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    };
  }
}

