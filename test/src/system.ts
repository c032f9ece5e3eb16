/**
 * The whole Airlock system as real processes, for the demo and the e2e tests: the control plane
 * (`airlock serve`), an SFTP server with sample files, an enrolled agent (`airlock-agent`) with its
 * local policy and secrets, and a demo recipient key. Everything goes through the CLIs the way an
 * operator would use them; `stop()` (or `await using`) kills every child and removes what it made.
 *
 * Work directory layout:
 *   control-plane/   embedded PGlite data (when no DATABASE_URL)
 *   agent/           the agent's data dir: identity, outbox, policy.yaml, secrets.yaml,
 *                    airlock-agent.prom (its textfile-collector metrics)
 *   sftp/exports/    the plaintext sources, served over SFTP
 *   delivered/       the agent's destination: ciphertext only
 *   keys/            the SFTP client key (0600)
 *   logs/            control-plane.log and every agent run's stdout/stderr
 *   recipient.asc, recipient-secret.asc (0600), integration-<name>.yaml
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import { encodeKey, keyPairFromSecretKey } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { freePort, gpgDecrypt, startSftpServer, startSshd } from '@airlock/testing';
import { inheritedEnv } from './config.ts';
import { array, type JsonObject, number, object, optionalString, parseJsonLine, string } from './json.ts';
import { type CommandResult, type ProcessUser, runCommand, type Service, startService, tail } from './processes.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AIRLOCK_BIN = path.join(REPO_ROOT, 'apps/control-plane/bin/airlock.js');
const AGENT_BIN = path.join(REPO_ROOT, 'apps/agent/bin/airlock-agent.js');

/** How a CLI is started: a command and the arguments that come before the CLI's own. */
interface Program {
  readonly command: string;
  readonly prefix: readonly string[];
}

/** The clone's bin on this Node, or an installed executable (`/usr/bin/airlock`) as it is. */
function program(installed: string | undefined, cloneBin: string): Program {
  return installed === undefined ? { command: process.execPath, prefix: [cloneBin] } : { command: installed, prefix: [] };
}
const SSHD = '/usr/sbin/sshd';

const HEALTH_TIMEOUT_MS = 30_000;
const COMMAND_TIMEOUT_MS = 60_000;
/** The name of the agent's secrets entry that integrations refer to. */
export const CREDENTIAL_REF = 'demo-sftp';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface StartSystemOptions {
  /** Plaintext sources, by name, served from `exports/`. */
  files: Record<string, string | Buffer>;
  /** Where everything lives. A given directory is kept after stop; the default temp dir is removed. */
  workDir?: string;
  /** PostgreSQL for the control plane; unset: embedded PGlite in the work dir. */
  databaseUrl?: string;
  /**
   * `sshd` (default) requires OpenSSH; `sshd-or-in-process` falls back to the in-process server
   * when it is absent, and `in-process` always uses it (the demo's fallback; tests use sshd).
   */
  sftp?: 'sshd' | 'sshd-or-in-process' | 'in-process';
  /** Log in with this password (sshd: as the `airlock-sftp` system user) instead of a client key. */
  sftpPassword?: string;
  /** Log level of the control plane and the agent. Default `info`. */
  logLevel?: LogLevel;
  tenant?: string;
  /** The console's build for the control plane to serve (AIRLOCK_CONSOLE_DIR); unset: its default. */
  consoleDir?: string;
  /** Console users made with `airlock user create` before the server starts; passwords go in on stdin. */
  consoleUsers?: readonly ConsoleUser[];
  /** Enroll the agent with the CLI at start (default). False leaves it to `enrollWithCommand`. */
  enrollAgent?: boolean;
  /** Progress, one short line per step. */
  onStep?: (message: string) => void;
  /**
   * Installed executables to run instead of the clone's bins, e.g. the .deb's `/usr/bin/airlock`
   * and `/usr/bin/airlock-agent`: the release is tested as a user runs it.
   */
  binaries?: { airlock: string; agent: string };
  /**
   * Run every agent command as this uid and gid (the caller is root), owning the agent's data
   * directory, keys and destination, so a firewall rule can tell the agent's traffic apart.
   */
  agentUser?: ProcessUser;
  /** More environment for every agent command (proxy variables). */
  agentEnv?: NodeJS.ProcessEnv;
}

export interface ConsoleUser {
  email: string;
  role: 'owner' | 'admin' | 'operator' | 'auditor';
  password: string;
}

export interface SourceFile {
  readonly name: string;
  /** Absolute path of the plaintext on this machine's disk. */
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
}

export interface SftpEndpoint {
  readonly kind: 'sshd' | 'in-process';
  readonly host: string;
  readonly port: number;
  readonly hostKeyFingerprint: string;
  readonly username: string;
  /** The directory holding the sources, as the SFTP client names it. */
  readonly exportsPath: string;
  /** sshd's log so far (empty for the in-process server). */
  logs(): string;
}

export interface FileReportView {
  readonly sourcePath: string;
  /** Keyed with a secret only the agent holds: it must never equal the plaintext's SHA-256. */
  readonly plaintextHmac: string;
  readonly ciphertextSha256: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The agent's signed receipt, as JSON text (one line of a receipts export). */
  readonly receipt: string | null;
}

export interface RunReportView {
  readonly runId: string;
  readonly status: string;
  readonly files: readonly FileReportView[];
  readonly errorClass: string | null;
  readonly violationKind: string | null;
}

export interface RunView {
  readonly id: string;
  readonly integrationId: string;
  readonly status: string;
  readonly errorClass: string | null;
  readonly report: RunReportView | null;
}

export interface AuditEventView {
  readonly seq: number;
  readonly action: string;
  readonly outcome: string;
  readonly target: string | null;
}

export interface AgentRunResult {
  readonly code: number | null;
  /** What `run --once --json` printed: the report, or null when no job arrived or it was refused. */
  readonly report: RunReportView | null;
  /** The security event, when the agent refused the job it was handed. */
  readonly refused: { kind: string; reason: string } | null;
  readonly stdoutFile: string;
  readonly stderrFile: string;
}

export interface Decrypted {
  /** Absolute path of the ciphertext. */
  readonly ciphertext: string;
  /** The source it came from (matched by name), if any. */
  readonly source: SourceFile | undefined;
  /** SHA-256 of the plaintext gpg produced (hashed as it streamed, never written). */
  readonly sha256: string;
  readonly bytes: number;
}

export interface IntegrationOptions {
  name?: string;
  /** The source glob as the SFTP client sees it. Default `<exports>/*.csv`. */
  sourcePath?: string;
  /** Default the work dir's `delivered/`. */
  destinationDir?: string;
  /** Another source connector in place of the SFTP server, with the scope its claim needs. */
  source?: { connector: string; config: Record<string, unknown>; scope: string };
  /** Another destination connector in place of the local folder, with the scope its claim needs. */
  destination?: { connector: string; config: Record<string, unknown>; scope: string };
  /** The integration's field scope: only these fields leave the agent. */
  fields?: Record<string, unknown>;
  /** Grant the scopes the integration needs before saving it (default); false to see it refused. */
  grant?: boolean;
}

function parseFileReport(value: unknown, what: string): FileReportView {
  const file = object(value, what);
  return {
    sourcePath: string(file, 'sourcePath', what),
    plaintextHmac: string(file, 'plaintextHmac', what),
    ciphertextSha256: string(file, 'ciphertextSha256', what),
    bytesIn: number(file, 'bytesIn', what),
    bytesOut: number(file, 'bytesOut', what),
    receipt: file['receipt'] === undefined ? null : JSON.stringify(object(file['receipt'], `${what}.receipt`)),
  };
}

export function parseRunReport(value: unknown, what: string): RunReportView {
  const report = object(value, what);
  const violation = report['violation'];
  return {
    runId: string(report, 'runId', what),
    status: string(report, 'status', what),
    files: array(report['files'], `${what}.files`).map((file, i) => parseFileReport(file, `${what}.files[${i}]`)),
    errorClass: optionalString(report, 'errorClass', what),
    violationKind: violation === undefined ? null : string(object(violation, `${what}.violation`), 'kind', `${what}.violation`),
  };
}

export function parseRun(value: unknown, what: string): RunView {
  const run = object(value, what);
  const report = run['report'];
  return {
    id: string(run, 'id', what),
    integrationId: string(run, 'integrationId', what),
    status: string(run, 'status', what),
    errorClass: optionalString(run, 'errorClass', what),
    report: report === null || report === undefined ? null : parseRunReport(report, `${what}.report`),
  };
}

function parseAuditEvent(value: unknown, what: string): AuditEventView {
  const event: JsonObject = object(value, what);
  return {
    seq: number(event, 'seq', what),
    action: string(event, 'action', what),
    outcome: string(event, 'outcome', what),
    target: optionalString(event, 'target', what),
  };
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** A "YYYYMMDD-HHMMSS" stamp: sortable, and safe in paths and globs. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, '').replace(/[-:]/g, '').replace('T', '-');
}

type Cleanup = () => Promise<void>;

export class AirlockSystem implements AsyncDisposable {
  readonly #cleanups: Cleanup[] = [];
  readonly #services: Service[] = [];
  /** Scopes already granted to the agent, so saving several integrations grants each once. */
  readonly #granted = new Set<string>();
  #apiKey = '';
  #enrollToken = '';
  #agentRuns = 0;
  #stopped = false;
  #controlPlane: Service | undefined;
  #recipientSecretKey = '';
  /** For the in-process server, which this set-up gives a password instead of a key. */
  #generatedPassword: string | undefined;

  readonly workDir: string;
  readonly controlPlaneDataDir: string;
  readonly agentDir: string;
  readonly deliveredDir: string;
  readonly logsDir: string;
  readonly controlPlaneLog: string;
  readonly policyFile: string;
  readonly secretsFile: string;
  readonly recipientPublicKeyFile: string;
  readonly recipientSecretKeyFile: string;
  readonly sources: SourceFile[] = [];
  controlPlaneUrl = '';
  /** The control plane's metrics listener (`/metrics`, `/healthz`, `/readyz`). */
  metricsUrl = '';
  /** Where the agent writes its textfile-collector metrics. */
  readonly agentMetricsFile: string;
  /** The control plane's key fingerprint, as `airlock token create` prints it and the agent pins it. */
  controlPlaneKey = '';
  agentId = '';
  recipientFingerprint = '';
  sftp: SftpEndpoint | undefined;
  readonly #airlock: Program;
  readonly #agent: Program;

  private constructor(
    workDir: string,
    readonly options: StartSystemOptions,
  ) {
    this.workDir = workDir;
    this.controlPlaneDataDir = path.join(workDir, 'control-plane');
    this.agentDir = path.join(workDir, 'agent');
    this.deliveredDir = path.join(workDir, 'delivered');
    this.logsDir = path.join(workDir, 'logs');
    this.controlPlaneLog = path.join(this.logsDir, 'control-plane.log');
    this.agentMetricsFile = path.join(this.agentDir, 'airlock-agent.prom');
    this.policyFile = path.join(this.agentDir, 'policy.yaml');
    this.secretsFile = path.join(this.agentDir, 'secrets.yaml');
    this.recipientPublicKeyFile = path.join(workDir, 'recipient.asc');
    this.recipientSecretKeyFile = path.join(workDir, 'recipient-secret.asc');
    this.#airlock = program(options.binaries?.airlock, AIRLOCK_BIN);
    this.#agent = program(options.binaries?.agent, AGENT_BIN);
  }

  static async start(options: StartSystemOptions): Promise<AirlockSystem> {
    let workDir: string;
    let removeWorkDir = false;
    if (options.workDir === undefined) {
      workDir = await mkdtemp(path.join(tmpdir(), 'airlock-system-'));
      removeWorkDir = true;
    } else {
      workDir = path.resolve(options.workDir);
      await mkdir(workDir, { recursive: true });
    }
    const system = new AirlockSystem(workDir, options);
    if (removeWorkDir) system.#cleanups.push(() => rm(workDir, { recursive: true, force: true }));
    try {
      await system.#start();
      return system;
    } catch (error) {
      await system.stop();
      throw error;
    }
  }

  #step(message: string): void {
    this.options.onStep?.(message);
  }

  async #start(): Promise<void> {
    // Traversable by the password-login user that sshd runs the SFTP session as.
    await chmod(this.workDir, 0o755);
    await Promise.all([
      mkdir(this.logsDir, { mode: 0o700 }),
      mkdir(this.deliveredDir, { mode: 0o700 }),
      mkdir(this.agentDir, { mode: 0o700 }),
      mkdir(path.join(this.workDir, 'keys'), { mode: 0o700 }),
      mkdir(path.join(this.workDir, 'sftp', 'exports'), { recursive: true, mode: 0o755 }),
    ]);
    await this.#giveAgentFiles();
    await Promise.all([this.#writeSources(), this.#writeRecipient()]);
    // The SFTP server and the control plane do not depend on each other: start them side by side,
    // and let both settle before failing, so `stop()` sees every process either of them started.
    const started = await Promise.allSettled([this.#startSftp(), this.#startControlPlane()]);
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    await this.#giveAgentFiles();
    if (this.options.enrollAgent !== false) await this.#enrollAgent();
    await this.#writeAgentFiles();
    await this.#giveAgentFiles();
  }

  /** With `agentUser`: hands the agent's data directory, keys and destination to that user. */
  async #giveAgentFiles(): Promise<void> {
    const user = this.options.agentUser;
    if (user === undefined) return;
    const give = async (target: string): Promise<void> => {
      await chown(target, user.uid, user.gid);
      const entries = await readdir(target, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        const child = path.join(target, entry.name);
        if (entry.isDirectory()) await give(child);
        else if (entry.isFile()) await chown(child, user.uid, user.gid);
      }
    };
    for (const dir of [this.agentDir, this.deliveredDir, path.join(this.workDir, 'keys')]) await give(dir);
  }

  async #writeSources(): Promise<void> {
    const dir = path.join(this.workDir, 'sftp', 'exports');
    for (const [name, content] of Object.entries(this.options.files)) {
      if (name !== path.basename(name) || name.startsWith('.')) throw new Error(`source name ${JSON.stringify(name)} must be a plain file name`);
      const file = path.join(dir, name);
      await writeFile(file, content, { mode: 0o644 });
      this.sources.push({ name, path: file, sha256: sha256(content), bytes: Buffer.byteLength(content) });
    }
  }

  async #writeRecipient(): Promise<void> {
    const key = await generateDemoKey('Airlock Demo Recipient', 'recipient@demo.invalid');
    this.recipientFingerprint = key.fingerprint;
    this.#recipientSecretKey = key.armoredSecretKey;
    await writeFile(this.recipientPublicKeyFile, key.armoredPublicKey, { mode: 0o644 });
    // The demo's own secret key, kept so anyone can check the ciphertext with gpg afterwards.
    await writeFile(this.recipientSecretKeyFile, key.armoredSecretKey, { mode: 0o600 });
  }

  async #startSftp(): Promise<void> {
    const root = path.join(this.workDir, 'sftp');
    const mode = this.options.sftp ?? 'sshd';
    const useSshd = mode !== 'in-process' && existsSync(SSHD);
    if (!useSshd && mode === 'sshd') throw new Error(`${SSHD} not found: the system tests need OpenSSH's server`);
    if (useSshd) {
      const sshd = await startSshd();
      this.#cleanups.push(() => sshd.stop());
      // sshd serves the whole file system (no chroot), so the sources can live in the work dir
      // and outlast the fixture's temp dir.
      let username: string = sshd.username;
      if (this.options.sftpPassword === undefined) {
        await writeFile(this.#clientKeyFile, sshd.privateKey, { mode: 0o600 });
      } else {
        username = await sshd.createSftpUser(this.options.sftpPassword);
      }
      this.sftp = {
        kind: 'sshd',
        host: sshd.host,
        port: sshd.port,
        hostKeyFingerprint: sshd.hostKeyFingerprint,
        username,
        exportsPath: path.join(root, 'exports'),
        logs: () => sshd.logs(),
      };
    } else {
      // The in-process server checks passwords only in this set-up; one is generated when none is asked for.
      const password = this.options.sftpPassword ?? randomBytes(24).toString('base64url');
      if (this.options.sftpPassword === undefined) this.#generatedPassword = password;
      const server = await startSftpServer({ root, password });
      this.#cleanups.push(() => server.stop());
      this.sftp = {
        kind: 'in-process',
        host: server.host,
        port: server.port,
        hostKeyFingerprint: server.hostKeyFingerprint,
        username: 'demo',
        exportsPath: '/exports',
        logs: () => '',
      };
    }
    this.#step(`SFTP server (${this.sftp.kind}) on ${this.sftp.host}:${this.sftp.port}, host key ${this.sftp.hostKeyFingerprint}`);
  }

  get #clientKeyFile(): string {
    return path.join(this.workDir, 'keys', 'sftp-client.key');
  }

  #serverEnv(port: number, metricsPort: number): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...inheritedEnv(),
      AIRLOCK_HOST: '127.0.0.1',
      AIRLOCK_PORT: String(port),
      AIRLOCK_METRICS_HOST: '127.0.0.1',
      AIRLOCK_METRICS_PORT: String(metricsPort),
      AIRLOCK_DATA_DIR: this.controlPlaneDataDir,
      AIRLOCK_LOG_LEVEL: this.options.logLevel ?? 'info',
    };
    if (this.options.databaseUrl !== undefined) env['DATABASE_URL'] = this.options.databaseUrl;
    if (this.options.consoleDir !== undefined) env['AIRLOCK_CONSOLE_DIR'] = this.options.consoleDir;
    return env;
  }

  async #startControlPlane(): Promise<void> {
    const port = await freePort();
    const metricsPort = await freePort();
    const env = this.#serverEnv(port, metricsPort);
    // PGlite is single-process: bootstrap must have closed the data dir before `serve` opens it.
    const bootstrap = await this.#node(this.#airlock, ['bootstrap', '--tenant', this.options.tenant ?? 'demo', '--json'], env);
    this.#apiKey = string(object(parseJsonLine(bootstrap.stdout, 'airlock bootstrap'), 'airlock bootstrap'), 'key', 'airlock bootstrap');
    for (const user of this.options.consoleUsers ?? []) {
      const args = ['user', 'create', '--tenant', this.options.tenant ?? 'demo', '--email', user.email, '--role', user.role, '--password-stdin'];
      await this.#node(this.#airlock, args, env, false, user.password);
      this.#step(`console user ${user.email} (${user.role}) created`);
    }
    const service = startService('control plane', this.#airlock.command, [...this.#airlock.prefix, 'serve'], {
      env,
      cwd: this.workDir,
      stdoutFile: this.controlPlaneLog,
      stderrFile: this.controlPlaneLog,
    });
    this.#services.push(service);
    this.#controlPlane = service;
    this.controlPlaneUrl = `http://127.0.0.1:${port}`;
    this.metricsUrl = `http://127.0.0.1:${metricsPort}`;
    await this.#waitForHealth(service);
    this.#step(`control plane on ${this.controlPlaneUrl} (${this.options.databaseUrl === undefined ? 'embedded PGlite' : 'PostgreSQL'}), tenant bootstrapped`);
  }

  async #waitForHealth(service: Service): Promise<void> {
    const until = Date.now() + HEALTH_TIMEOUT_MS;
    while (Date.now() < until) {
      if (!service.isRunning()) throw new Error(`the control plane exited at start-up; its log:\n${await tail(this.controlPlaneLog)}`);
      const healthy = await fetch(`${this.controlPlaneUrl}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
        (response) => response.status === 200,
        () => false,
      );
      if (healthy) return;
      await sleep(100);
    }
    throw new Error(`the control plane was not healthy within ${HEALTH_TIMEOUT_MS} ms; its log:\n${await tail(this.controlPlaneLog)}`);
  }

  async #enrollAgent(): Promise<void> {
    const created = object(await this.airlockJson(['token', 'create']), 'airlock token create');
    const token = string(created, 'token', 'airlock token create');
    this.controlPlaneKey = string(created, 'controlPlaneKey', 'airlock token create');
    this.#enrollToken = token;
    // The token goes in the environment, not argv, where `ps` would show it; the pin is public.
    const env = { ...this.#agentEnv(), AIRLOCK_ENROLL_TOKEN: token };
    const args = ['enroll', '--url', this.controlPlaneUrl, '--control-plane-key', this.controlPlaneKey, '--dir', this.agentDir, '--json'];
    const result = await this.#node(this.#agent, args, env);
    this.agentId = string(object(parseJsonLine(result.stdout, 'airlock-agent enroll'), 'airlock-agent enroll'), 'agentId', 'airlock-agent enroll');
    this.#step(`agent enrolled as ${this.agentId}`);
  }

  async #writeAgentFiles(): Promise<void> {
    const sftp = this.#endpoint();
    const policy = {
      sources: { sftp: [{ host: sftp.host, port: sftp.port, hostKey: sftp.hostKeyFingerprint, paths: [`${sftp.exportsPath}/**`] }] },
      destinations: { local: [{ root: this.deliveredDir }] },
      // The only key data may be encrypted to; an integration naming another is refused on the agent.
      recipients: [this.recipientFingerprint],
    };
    await writeFile(this.policyFile, YAML.stringify(policy), { mode: 0o644 });
    const password = this.options.sftpPassword ?? this.#generatedPassword;
    const credential = password === undefined ? { privateKeyFile: this.#clientKeyFile } : { password };
    await writeFile(this.secretsFile, YAML.stringify({ [CREDENTIAL_REF]: credential }), { mode: 0o600 });
    this.#step(`local policy allows ${sftp.exportsPath}/** → ${this.deliveredDir}, encrypted to ${this.recipientFingerprint} only`);
  }

  /**
   * Runs an `airlock-agent enroll ...` command as an admin copied it (from the console's wizard),
   * given as argv, with this system's agent directory; adopts the enrolled agent.
   */
  async enrollWithCommand(argv: readonly string[]): Promise<string> {
    const [program, ...args] = argv;
    if (program !== 'airlock-agent' || args[0] !== 'enroll') throw new Error(`not an airlock-agent enroll command: ${String(program)} ${String(args[0])}`);
    const result = await runCommand(this.#agent.command, [...this.#agent.prefix, ...args, '--dir', this.agentDir, '--json'], {
      env: this.#agentEnv(),
      user: this.options.agentUser,
      cwd: this.workDir,
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
    // Not the argv in the message: it holds the enrollment token.
    if (result.code !== 0) throw new Error(`airlock-agent enroll exited with ${String(result.code)}: ${result.stderr.trim() || '(no stderr)'}`);
    this.agentId = string(object(parseJsonLine(result.stdout, 'airlock-agent enroll'), 'airlock-agent enroll'), 'agentId', 'airlock-agent enroll');
    this.#step(`agent enrolled as ${this.agentId}`);
    return this.agentId;
  }

  #endpoint(): SftpEndpoint {
    if (this.sftp === undefined) throw new Error('the SFTP server is not started');
    return this.sftp;
  }

  #agentEnv(): NodeJS.ProcessEnv {
    return { ...inheritedEnv(), AIRLOCK_LOG_LEVEL: this.options.logLevel ?? 'info', AIRLOCK_AGENT_METRICS_FILE: this.agentMetricsFile, ...this.options.agentEnv };
  }

  /** The control plane's `/metrics`, in Prometheus text format, from its metrics listener. */
  async scrapeMetrics(): Promise<string> {
    const response = await fetch(`${this.metricsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (response.status !== 200) throw new Error(`GET ${this.metricsUrl}/metrics answered ${response.status}`);
    return response.text();
  }

  async #node(bin: Program, args: readonly string[], env: NodeJS.ProcessEnv, allowFailure = false, input?: string): Promise<CommandResult> {
    const user = bin === this.#agent ? this.options.agentUser : undefined;
    const result = await runCommand(bin.command, [...bin.prefix, ...args], { env, cwd: this.workDir, timeoutMs: COMMAND_TIMEOUT_MS, user, ...(input === undefined ? {} : { input }) });
    if (result.code !== 0 && !allowFailure) {
      const name = `${path.basename(bin.prefix[0] ?? bin.command, '.js')} ${args.join(' ')}`;
      throw new Error(`${name} exited with ${String(result.code)}: ${result.stderr.trim() || '(no stderr)'}`);
    }
    return result;
  }

  /** The process id of `airlock serve`. */
  get controlPlanePid(): number | undefined {
    return this.#controlPlane?.pid;
  }

  /** Runs the admin CLI `airlock` against this control plane with the owner key in its environment. */
  airlock(args: readonly string[], options: { allowFailure?: boolean } = {}): Promise<CommandResult> {
    const env = { ...inheritedEnv(), AIRLOCK_URL: this.controlPlaneUrl, AIRLOCK_API_KEY: this.#apiKey };
    return this.#node(this.#airlock, args, env, options.allowFailure);
  }

  /** Runs the agent CLI `airlock-agent <args>` as the operator on the agent host would. */
  agentCommand(args: readonly string[], options: { allowFailure?: boolean } = {}): Promise<CommandResult> {
    return this.#node(this.#agent, args, this.#agentEnv(), options.allowFailure);
  }

  /** `airlock <args> --json`, parsed. */
  async airlockJson(args: readonly string[]): Promise<unknown> {
    const result = await this.airlock([...args, '--json']);
    return parseJsonLine(result.stdout, `airlock ${args.join(' ')}`);
  }

  /**
   * The owner API key and the (redeemed) enrollment token, so tests can prove that neither is
   * stored or logged in the clear. Never print them.
   */
  issuedCredentials(): { apiKey: string; enrollToken: string } {
    return { apiKey: this.#apiKey, enrollToken: this.#enrollToken };
  }

  /** Grants the agent a control-plane scope with `airlock grant add`, once per scope. */
  async grant(scope: string): Promise<void> {
    if (this.#granted.has(scope)) return;
    await this.airlock(['grant', 'add', '--agent', this.agentId, scope]);
    this.#granted.add(scope);
    this.#step(`granted ${scope}`);
  }

  /** Writes an integration spec to the work dir and saves it with `airlock integration create`. */
  async createIntegration(options: IntegrationOptions = {}): Promise<{ id: string; version: number; file: string }> {
    const sftp = this.#endpoint();
    const name = options.name ?? 'demo-exports';
    const sftpSource = {
      connector: 'sftp@1',
      config: {
        host: sftp.host,
        port: sftp.port,
        hostKey: sftp.hostKeyFingerprint,
        username: sftp.username,
        credentialRef: CREDENTIAL_REF,
        path: options.sourcePath ?? `${sftp.exportsPath}/*.csv`,
      },
    };
    const spec = {
      name,
      source: options.source ? { connector: options.source.connector, config: options.source.config } : sftpSource,
      destination: options.destination
        ? { connector: options.destination.connector, config: options.destination.config }
        : { connector: 'local@1', config: { directory: options.destinationDir ?? this.deliveredDir } },
      recipients: [{ file: path.basename(this.recipientPublicKeyFile) }],
      ...(options.fields ? { fields: options.fields } : {}),
    };
    const file = path.join(this.workDir, `integration-${name}.yaml`);
    await writeFile(file, YAML.stringify(spec), { mode: 0o644 });
    if (options.grant !== false) {
      // The control plane denies by default: grant exactly what this integration reads and writes.
      await this.grant(options.source?.scope ?? `read sftp://${sftpSource.config.host}:${sftpSource.config.port}${sftpSource.config.path}`);
      await this.grant(options.destination?.scope ?? `write file://${options.destinationDir ?? this.deliveredDir}/**`);
    }
    const saved = object(await this.airlockJson(['integration', 'create', '-f', file, '--agent', this.agentId]), 'airlock integration create');
    return { id: string(saved, 'id', 'integration'), version: number(saved, 'version', 'integration'), file };
  }

  /**
   * Rewrites the agent's local files as an on-prem admin would: `policy` edits the parsed policy,
   * `secrets` adds entries. The next agent run reads them.
   */
  async editAgentFiles(edit: { policy?: (policy: Record<string, unknown>) => void; secrets?: Record<string, unknown> }): Promise<void> {
    if (edit.policy) {
      const policy = object(YAML.parse(await readFile(this.policyFile, 'utf8')), 'policy.yaml');
      edit.policy(policy);
      await writeFile(this.policyFile, YAML.stringify(policy), { mode: 0o644 });
    }
    if (edit.secrets) {
      const secrets = object(YAML.parse(await readFile(this.secretsFile, 'utf8')), 'secrets.yaml');
      await writeFile(this.secretsFile, YAML.stringify({ ...secrets, ...edit.secrets }), { mode: 0o600 });
    }
  }

  /** gpg's decryption of one ciphertext file with the recipient's secret key. */
  decryptFile(ciphertext: string): Promise<{ sha256: string; bytes: number }> {
    return gpgDecrypt(ciphertext, this.#recipientSecretKey);
  }

  /** Queues a run; returns its id. */
  async runNow(integrationId: string): Promise<string> {
    return string(object(await this.airlockJson(['run', 'now', integrationId]), 'airlock run now'), 'runId', 'airlock run now');
  }

  async showRun(runId: string): Promise<RunView> {
    return parseRun(await this.airlockJson(['run', 'show', runId]), 'airlock run show');
  }

  async listRuns(): Promise<RunView[]> {
    return array(await this.airlockJson(['run', 'list']), 'airlock run list').map((run, i) => parseRun(run, `airlock run list[${i}]`));
  }

  async listAudit(): Promise<AuditEventView[]> {
    return array(await this.airlockJson(['audit', 'list', '--limit', '1000']), 'airlock audit list').map((event, i) =>
      parseAuditEvent(event, `airlock audit list[${i}]`),
    );
  }

  /** Polls until the run has succeeded or failed. */
  async waitForRun(runId: string, timeoutMs = 60_000): Promise<RunView> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.showRun(runId);
      if (run.status === 'succeeded' || run.status === 'failed') return run;
      if (Date.now() > until) throw new Error(`run ${runId} still ${run.status} after ${timeoutMs} ms`);
      await sleep(300);
    }
  }

  #agentArgs(extra: readonly string[]): string[] {
    return [...this.#agent.prefix, 'run', '--dir', this.agentDir, ...extra];
  }

  /** `airlock-agent run --once --json`: takes one job, runs it and exits. */
  async runAgentOnce(options: { idleTimeoutSeconds?: number; timeoutMs?: number } = {}): Promise<AgentRunResult> {
    const n = ++this.#agentRuns;
    const stdoutFile = path.join(this.logsDir, `agent-run-${n}.stdout.log`);
    const stderrFile = path.join(this.logsDir, `agent-run-${n}.stderr.log`);
    const idle = options.idleTimeoutSeconds ?? 60;
    const timeoutMs = options.timeoutMs ?? (idle + 30) * 1000;
    const service = startService(`agent run ${n}`, this.#agent.command, this.#agentArgs(['--once', '--idle-timeout', String(idle), '--json']), {
      env: this.#agentEnv(),
      user: this.options.agentUser,
      cwd: this.workDir,
      stdoutFile,
      stderrFile,
    });
    this.#services.push(service);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([service.exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await service.stop();
      throw new Error(`airlock-agent run --once did not exit within ${timeoutMs} ms; stderr:\n${await tail(stderrFile)}`);
    }
    const stdout = await readFile(stdoutFile, 'utf8');
    const printed = stdout.trim() === '' ? null : parseJsonLine(stdout, 'airlock-agent run --once');
    if (printed === null && outcome === 0) throw new Error('airlock-agent run --once exited 0 without a report');
    const refusal = printed === null ? undefined : object(printed, 'agent output')['refused'];
    if (refusal !== undefined) {
      const event = object(refusal, 'agent refusal');
      return { code: outcome, report: null, refused: { kind: string(event, 'kind', 'refusal'), reason: string(event, 'reason', 'refusal') }, stdoutFile, stderrFile };
    }
    return { code: outcome, report: printed === null ? null : parseRunReport(printed, 'agent report'), refused: null, stdoutFile, stderrFile };
  }

  /** Starts the agent as a long-running daemon; it is stopped with the system. */
  startAgent(): Service & { readonly logFile: string } {
    const n = ++this.#agentRuns;
    const logFile = path.join(this.logsDir, `agent-daemon-${n}.log`);
    const service = startService('agent', this.#agent.command, this.#agentArgs([]), {
      env: this.#agentEnv(),
      user: this.options.agentUser,
      cwd: this.workDir,
      stdoutFile: logFile,
      stderrFile: logFile,
    });
    this.#services.push(service);
    return Object.assign(service, { logFile });
  }

  /** Every log file the agent processes wrote. */
  async agentLogFiles(): Promise<string[]> {
    const names = await readdir(this.logsDir);
    return names.filter((name) => name.startsWith('agent-')).map((name) => path.join(this.logsDir, name));
  }

  /** The agent's Ed25519 public key (base64), the half of `agent.key` that receipts verify against. */
  async agentPublicKey(): Promise<string> {
    const secretKey = Buffer.from((await readFile(path.join(this.agentDir, 'agent.key'), 'utf8')).trim(), 'base64');
    return encodeKey(keyPairFromSecretKey(new Uint8Array(secretKey)).publicKey);
  }

  /** Names in the destination directory, hidden ones included. */
  deliveredNames(): Promise<string[]> {
    return readdir(this.deliveredDir);
  }

  /** Decrypts every delivered `.pgp` file with gpg and the recipient's secret key. */
  async decryptDelivered(): Promise<Decrypted[]> {
    const names = (await this.deliveredNames()).filter((name) => name.endsWith('.pgp')).sort();
    const results: Decrypted[] = [];
    for (const name of names) {
      const ciphertext = path.join(this.deliveredDir, name);
      const { sha256: plainHash, bytes } = await gpgDecrypt(ciphertext, this.#recipientSecretKey);
      results.push({ ciphertext, source: this.sources.find((s) => `${s.name}.pgp` === name), sha256: plainHash, bytes });
    }
    return results;
  }

  /** Stops every process (agents first), the SFTP server, and removes a temporary work dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const errors: unknown[] = [];
    for (const service of [...this.#services].reverse()) await service.stop().catch((error: unknown) => errors.push(error));
    for (const cleanup of [...this.#cleanups].reverse()) await cleanup().catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw new AggregateError(errors, 'stopping the system failed');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

export function startSystem(options: StartSystemOptions): Promise<AirlockSystem> {
  return AirlockSystem.start(options);
}
