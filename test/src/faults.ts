/**
 * Fault injection against the agent's real data path (`runJob`, built-in connectors, real OpenSSH
 * sshd, real gpg), all on loopback: the connection cut at seeded random byte offsets, the SFTP
 * server killed mid-file and restarted, a destination that runs out of space. After every run the
 * destination is judged (see deliveries.ts): nothing wrong may be visible under a final name, no
 * partial file may be left behind, and the report must not claim what is not on disk. Used by `npm run test:faults` and by test/e2e/faults.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runJob } from '@airlock/agent';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import { type CutProxyOptions, type Direction, seededRandom, startCutProxy, startSshd, type TestSshd } from '@airlock/testing';
import {
  agentDeps,
  chooseDestination,
  type DestinationSpec,
  prepareJob,
  quietLogger,
  type RunReport,
  type SftpEndpoint,
  type TransferDeps,
} from './agent-job.ts';
import { inheritedEnv } from './config.ts';
import { type DeliveryCheck, type ExpectedFile, inspectDeliveries } from './deliveries.ts';
import { cleanUpOnExit, runCommand } from './processes.ts';
import { writeRandomFile } from './random-file.ts';
import { childListeningOn, processTree } from './sockets.ts';

export interface FaultSuiteOptions {
  /** Seeds both the file contents and every cut offset, so a failing case can be replayed. */
  readonly seed: number;
  /** Size of the transferred file in bytes. */
  readonly fileSize: number;
  /** Connection cuts while downloading from the source. */
  readonly downloadCuts: number;
  /** Connection cuts while uploading to an SFTP destination (only once one is registered). */
  readonly uploadCuts: number;
  /** Runs during which the source's sshd is killed mid-file. */
  readonly serverKills: number;
  /** Whether to try the full-disk case (needs permission to mount a tmpfs). */
  readonly diskFull: boolean;
  /** Each run is aborted after this long, and counted as hung. */
  readonly caseTimeoutMs: number;
  /** Progress lines (stderr in the CLI). */
  readonly log: (line: string) => void;
}

/**
 * `*-cut`: every connection is cut at the offset, so retries cannot help and the run must fail
 * cleanly. `*-cut-once`: only the first connection is, so a retry must deliver.
 */
export type FaultKind =
  | 'calibration'
  | 'download-cut'
  | 'download-cut-once'
  | 'upload-cut'
  | 'upload-cut-once'
  | 'server-killed'
  | 'disk-full';

/** Faults the agent must ride out: the run has to end `succeeded`. */
const MUST_DELIVER: ReadonlySet<FaultKind> = new Set(['download-cut-once', 'upload-cut-once', 'server-killed']);

export interface FaultCase extends DeliveryCheck {
  readonly kind: FaultKind;
  /** The byte offset (in the watched direction, handshake included) where the fault struck. */
  readonly at: number | null;
  readonly status: RunReport['status'] | 'hung';
  readonly errorClass: string | null;
  /** The agent's own account of why the run failed, from its log (metadata only). */
  readonly reason: string | null;
  /** Transient failures the agent retried during the run. */
  readonly retries: number;
  /** False when the run hung, threw, or failed without saying why. */
  readonly outcomeOk: boolean;
  readonly durationMs: number;
}

export interface FaultSuiteResult {
  seed: number;
  file_size: number;
  destination: 'local' | 'sftp';
  destination_why: string;
  cases: number;
  partial_files: number;
  corrupt_files: number;
  misreported: number;
  temp_leftovers: number;
  unreported: number;
  bad_outcomes: number;
  /** Exceptions nobody handled while the suite ran: each would have crashed a real agent process. */
  uncaught_errors: Array<{ duringCase: number; error: string }>;
  by_kind: Partial<Record<FaultKind, number>>;
  skipped: Array<{ kind: FaultKind; reason: string }>;
  results: FaultCase[];
}

/** The full-disk case: a tmpfs this size, and a file larger than it. */
const DISK_FULL_TMPFS = '2m';
const DISK_FULL_FILE = 3 * 1024 * 1024;
/**
 * Retries for the server-killed case: enough attempts and backoff to outlast an sshd restart, so
 * the run must end delivered. (Full jitter: the expected total wait is about 3 s.)
 */
const SERVER_RESTART_RETRY: NonNullable<TransferDeps['retry']> = {
  attempts: 6,
  baseDelayMs: 250,
  maxDelayMs: 2_000,
  maxTotalMs: 10_000,
};
/** Past this many uncaught errors something is looping: let the next one end the process. */
const MAX_UNCAUGHT = 100;

interface Fixture {
  readonly sshd: TestSshd;
  readonly recipient: DemoKey;
  readonly source: { path: string; expected: ExpectedFile };
}

interface CaseSetup {
  readonly kind: FaultKind;
  readonly at: number | null;
  readonly sourceEndpoint: SftpEndpoint;
  readonly sourcePath: string;
  readonly expected: ExpectedFile;
  readonly destination: DestinationSpec;
  /** The directory on this machine where the destination's files land. */
  readonly inspect: string;
  /** Replaces the harness's short retry policy. */
  readonly retry?: TransferDeps['retry'];
}

async function runCase(fixture: Fixture, setup: CaseSetup, timeoutMs: number): Promise<FaultCase> {
  const started = Date.now();
  const prepared = prepareJob({
    source: { ...setup.sourceEndpoint, path: setup.sourcePath },
    destination: setup.destination,
    recipientPublicKey: fixture.recipient.armoredPublicKey,
    recipientFingerprint: fixture.recipient.fingerprint,
  });
  const signal = AbortSignal.timeout(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  // The abort should end the run; the race bounds the wait even if it does not.
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), timeoutMs + 10_000);
  });
  let reason: string | null = null;
  let retries = 0;
  const logger = {
    ...quietLogger,
    warn: (meta: Record<string, unknown>, message: string) => {
      if (message === 'run failed' && typeof meta['error'] === 'string') reason = meta['error'];
      if (message === 'transient failure; retrying') retries += 1;
    },
  };
  const deps = { ...agentDeps(prepared, fixture.sshd.privateKey, logger), ...(setup.retry ? { retry: setup.retry } : {}), signal };
  const outcome = await Promise.race([
    runJob(prepared.job, deps).catch((error: unknown) => new Error('runJob threw', { cause: error })),
    hung,
  ]);
  clearTimeout(timer);
  const report = outcome === 'hung' || outcome instanceof Error ? undefined : outcome;
  const timedOut = signal.aborted;
  const check = await inspectDeliveries(setup.inspect, report, [setup.expected], fixture.recipient.armoredSecretKey);
  const status = report === undefined || timedOut ? 'hung' : report.status;
  const errorClass = report?.errorClass ?? null;
  return {
    kind: setup.kind,
    at: setup.at,
    status,
    errorClass,
    reason,
    retries,
    // Where the fault passes within the retry budget, giving up is a bad outcome.
    outcomeOk: status === 'succeeded' || (status === 'failed' && errorClass !== null && !MUST_DELIVER.has(setup.kind)),
    durationMs: Date.now() - started,
    ...check,
  };
}

function describeCase(index: number, result: FaultCase): string {
  const problems = (['partial', 'corrupt', 'misreported'] as const).filter((key) => result[key] > 0);
  return [
    `#${index} ${result.kind}`,
    result.at === null ? '' : `at=${result.at}`,
    `-> ${result.status}${result.errorClass === null ? '' : ` (${result.errorClass}: ${result.reason ?? 'no reason logged'})`}`,
    `final=${result.finalFiles} temp=${result.tempLeftovers} retries=${result.retries}`,
    problems.length > 0 ? `PROBLEMS: ${problems.join(',')}` : '',
    `${result.durationMs} ms`,
  ]
    .filter((part) => part !== '')
    .join(' ');
}

/** SIGKILLs a server we started and every process it forked, as a crash or a hard restart would. */
async function killServer(port: number): Promise<void> {
  const listener = await childListeningOn(port);
  if (listener === undefined) throw new Error(`no child process of ours listens on port ${port}`);
  for (const pid of await processTree(listener)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

async function mountTmpfs(dir: string): Promise<string | undefined> {
  const result = await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${DISK_FULL_TMPFS},mode=0755`, 'tmpfs', dir], {
    env: inheritedEnv(),
    timeoutMs: 10_000,
  }).catch((error: unknown) => ({ code: null, stdout: '', stderr: error instanceof Error ? error.message : String(error) }));
  return result.code === 0 ? undefined : `mount -t tmpfs failed (${String(result.code)}): ${result.stderr.trim()}`;
}

export async function runFaultSuite(options: FaultSuiteOptions): Promise<FaultSuiteResult> {
  const random = seededRandom(options.seed);
  const choice = chooseDestination();
  const sftpDestination = choice.kind === 'sftp';
  const results: FaultCase[] = [];
  const skipped: FaultSuiteResult['skipped'] = [];
  const record = (result: FaultCase): void => {
    results.push(result);
    options.log(describeCase(results.length, result));
  };

  const uncaught: FaultSuiteResult['uncaught_errors'] = [];
  // Counted, not fatal, so the suite can report every case; the case number in progress (or just
  // finished) is where the error belongs.
  const onUncaught = (error: unknown): void => {
    if (uncaught.length >= MAX_UNCAUGHT) throw error;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    uncaught.push({ duringCase: results.length + 1, error: text });
    options.log(`UNCAUGHT during case #${results.length + 1}: ${text}`);
  };
  process.on('uncaughtException', onUncaught);

  const sshd = await startSshd();
  const work = await mkdtemp(path.join(tmpdir(), 'airlock-faults-'));
  const forgetWork = cleanUpOnExit(() => rmSync(work, { recursive: true, force: true }));
  try {
    const sourcePath = path.join(sshd.root, 'fault.bin');
    const plaintextSha256 = await writeRandomFile(sourcePath, options.fileSize, `faults-${options.seed}`);
    const expected: ExpectedFile = { finalName: 'fault.bin.pgp', plaintextSha256, bytes: options.fileSize };
    const fixture: Fixture = {
      sshd,
      recipient: await generateDemoKey('Fault Partner', 'faults@example.com'),
      source: { path: sourcePath, expected },
    };
    const direct: SftpEndpoint = { port: sshd.port, hostKey: sshd.hostKeyFingerprint };
    options.log(`seed ${options.seed}, ${options.fileSize} bytes, destination ${choice.kind}: ${choice.why}`);

    let caseNumber = 0;
    /** A fresh, empty destination directory per case; an SFTP destination writes to it through `via`. */
    const freshDestination = async (via: SftpEndpoint): Promise<{ destination: DestinationSpec; inspect: string }> => {
      caseNumber += 1;
      const directory = path.join(work, `case-${caseNumber}`);
      await mkdir(directory);
      const destination: DestinationSpec = sftpDestination ? { kind: 'sftp', directory, ...via } : { kind: 'local', directory };
      return { destination, inspect: directory };
    };

    /** One run with a proxy on the source side (download) or the destination side (upload). */
    const throughProxy = async (proxyOptions: CutProxyOptions, kind: FaultKind, at: number | null): Promise<{ result: FaultCase; forwarded: number }> => {
      await using proxy = await startCutProxy(proxyOptions);
      const viaProxy: SftpEndpoint = { port: proxy.port, hostKey: sshd.hostKeyFingerprint };
      const onSource = proxyOptions.direction === 'download';
      const { destination, inspect } = await freshDestination(onSource ? direct : viaProxy);
      const result = await runCase(
        fixture,
        { kind, at, sourceEndpoint: onSource ? viaProxy : direct, sourcePath, expected, destination, inspect },
        options.caseTimeoutMs,
      );
      record(result);
      return { result, forwarded: proxy.forwarded[proxyOptions.direction] };
    };

    // An uncut run through the proxy: proves the path works and measures how many bytes a whole
    // transfer moves, so cuts land between the handshake and the end of the file.
    const calibrate = async (direction: Direction): Promise<number> => {
      const { result, forwarded } = await throughProxy({ targetPort: sshd.port, direction }, 'calibration', null);
      if (result.status !== 'succeeded' || result.finalFiles !== 1 || result.partial + result.corrupt + result.misreported > 0) {
        throw new Error(`the uncut ${direction} calibration run did not deliver the file correctly: ${describeCase(results.length, result)}`);
      }
      return forwarded;
    };

    const cutOffsets = (total: number, count: number): number[] => {
      // The file's bytes occupy roughly the last `fileSize` bytes of the stream.
      const first = Math.max(1, total - options.fileSize);
      return Array.from({ length: count }, () => first + Math.floor(random() * (total - first)));
    };

    /** `count` cuts at random offsets in `direction`; every other one cuts only the first connection. */
    const cutCases = async (direction: Direction, total: number, count: number): Promise<void> => {
      for (const [index, at] of cutOffsets(total, count).entries()) {
        const once = index % 2 === 0;
        await throughProxy(
          { targetPort: sshd.port, direction, cutAfter: at, ...(once ? { cutConnections: 1 } : {}) },
          once ? `${direction}-cut-once` : `${direction}-cut`,
          at,
        );
      }
    };

    if (options.downloadCuts > 0 || options.serverKills > 0) {
      const total = await calibrate('download');
      await cutCases('download', total, options.downloadCuts);
      for (const at of cutOffsets(total, options.serverKills)) {
        record(await serverKilledCase(fixture, at, await freshDestination(direct), options.caseTimeoutMs));
      }
    }

    if (options.uploadCuts > 0) {
      if (!sftpDestination) {
        skipped.push({ kind: 'upload-cut', reason: choice.why });
      } else {
        await cutCases('upload', await calibrate('upload'), options.uploadCuts);
      }
    }

    if (options.diskFull) {
      const outcome = await diskFullCase(fixture, direct, options);
      if (typeof outcome === 'string') {
        skipped.push({ kind: 'disk-full', reason: outcome });
        options.log(`disk-full skipped: ${outcome}`);
      } else {
        record(outcome);
      }
    }
  } finally {
    await sshd.stop();
    await rm(work, { recursive: true, force: true });
    forgetWork();
    process.off('uncaughtException', onUncaught);
  }

  const sum = (key: 'partial' | 'corrupt' | 'misreported' | 'tempLeftovers' | 'unreported'): number =>
    results.reduce((total, result) => total + result[key], 0);
  const byKind: FaultSuiteResult['by_kind'] = {};
  for (const result of results) byKind[result.kind] = (byKind[result.kind] ?? 0) + 1;
  return {
    seed: options.seed,
    file_size: options.fileSize,
    destination: choice.kind,
    destination_why: choice.why,
    cases: results.length,
    partial_files: sum('partial'),
    corrupt_files: sum('corrupt'),
    misreported: sum('misreported'),
    temp_leftovers: sum('tempLeftovers'),
    unreported: sum('unreported'),
    bad_outcomes: results.filter((result) => !result.outcomeOk).length,
    uncaught_errors: uncaught,
    by_kind: byKind,
    skipped,
    results,
  };
}

/**
 * A second sshd serves the same file (it serves the real file system); a proxy in front of it holds
 * the stream at byte `at` while the server and its session processes are killed, then the server
 * is started again on the same port and keys, as a crash and a supervisor's restart would. The run
 * must ride it out: the connection loss and the refused connections while sshd restarts are
 * transient, and a retry delivers the whole file.
 */
async function serverKilledCase(
  fixture: Fixture,
  at: number,
  target: { destination: DestinationSpec; inspect: string },
  timeoutMs: number,
): Promise<FaultCase> {
  // `return await` below: the fixtures must outlive the run, not just the call that starts it.
  // It accepts the job's one client key, which the destination (the fixture's sshd) accepts too.
  await using doomed = await startSshd({ authorizedKeys: [fixture.sshd.publicKey] });
  await using proxy = await startCutProxy({
    targetPort: doomed.port,
    direction: 'download',
    onBytes: {
      at,
      run: async () => {
        await killServer(doomed.port);
        await doomed.restart();
      },
    },
  });
  return await runCase(
    fixture,
    {
      kind: 'server-killed',
      at,
      sourceEndpoint: { port: proxy.port, hostKey: doomed.hostKeyFingerprint },
      sourcePath: fixture.source.path,
      expected: fixture.source.expected,
      retry: SERVER_RESTART_RETRY,
      ...target,
    },
    timeoutMs,
  );
}

/** A local destination on a tmpfs smaller than the ciphertext. Returns why it was skipped, if it was. */
async function diskFullCase(
  fixture: Fixture,
  direct: SftpEndpoint,
  options: FaultSuiteOptions,
): Promise<FaultCase | string> {
  const mountPoint = await mkdtemp(path.join(tmpdir(), 'airlock-full-disk-'));
  const forgetMount = cleanUpOnExit(() => {
    execFileSync('umount', [mountPoint], { stdio: 'ignore', timeout: 10_000 });
    rmSync(mountPoint, { recursive: true, force: true });
  });
  const refused = await mountTmpfs(mountPoint);
  if (refused !== undefined) {
    await rm(mountPoint, { recursive: true, force: true });
    forgetMount();
    return refused;
  }
  try {
    const sourcePath = path.join(fixture.sshd.root, 'too-big.bin');
    const sha = await writeRandomFile(sourcePath, DISK_FULL_FILE, `disk-full-${options.seed}`);
    return await runCase(
      fixture,
      {
        kind: 'disk-full',
        at: null,
        sourceEndpoint: direct,
        sourcePath,
        expected: { finalName: 'too-big.bin.pgp', plaintextSha256: sha, bytes: DISK_FULL_FILE },
        destination: { kind: 'local', directory: mountPoint },
        inspect: mountPoint,
      },
      options.caseTimeoutMs,
    );
  } finally {
    const unmounted = await runCommand('umount', [mountPoint], { env: inheritedEnv(), timeoutMs: 10_000 });
    if (unmounted.code !== 0) {
      options.log(`umount ${mountPoint} failed: ${unmounted.stderr.trim()}`);
    } else {
      await rm(mountPoint, { recursive: true, force: true });
      forgetMount();
    }
  }
}
