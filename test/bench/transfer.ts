/**
 * `npm run -s bench:transfer -- --size 256MiB --json [--profile]`
 *
 * One random (incompressible) file on a real OpenSSH sshd on loopback, moved three ways:
 *   openssh_get_s    OpenSSH `sftp` get alone: the reference, plaintext lands on disk;
 *   staged_script_s  the cron-script way: sftp get, `gpg --encrypt` from disk, sftp put;
 *   airlock_s        the agent's data path (runJob, built-in connectors, a local policy) streaming
 *                    SFTP → OpenPGP → destination, in a child process whose peak RSS is measured;
 *   native_floor_s   the cryptography that run cannot avoid (SSH cipher in and out, OpenPGP CFB,
 *                    SHA-1 MDC, HMAC-SHA256, SHA-256) through node:crypto alone on the same byte
 *                    counts, right before and after it (bench/native-floor.ts); `cpu_vs_floor` is
 *                    the agent's CPU time over it.
 *   airlock_memory_peak_mb  the child's JavaScript heap and buffer memory at their highest during
 *                    the run, sampled: what its peak RSS above `airlock_rss_before_run_mb` is made of.
 * The destination is the sshd itself once an `sftp@1` destination is registered and the local
 * policy can allow it, a local folder until then (`"destination": "local"`, with the reason). Prints exactly one JSON object on stdout; progress goes
 * to stderr. `--profile` runs the child under `node --cpu-prof` and adds its top self-time functions;
 * `--profile-dir DIR` also keeps the raw profiles in DIR. The profiler costs CPU of its own, so
 * `cpu_vs_floor` is for runs without it.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleNode } from '@airlock/agent/bundle';
import { generateDemoKey, inspectRecipientKey, sessionCipher } from '@airlock/pgp';
import { gpgDecrypt, startSshd } from '@airlock/testing';
import { chooseDestination, prepareJob, type PreparedJob, type RunReport } from '../src/agent-job.ts';
import { inheritedEnv } from '../src/config.ts';
import { sftpBatch, sftpClientFiles } from '../src/openssh.ts';
import { cleanUpOnExit, runCommand } from '../src/processes.ts';
import { writeRandomFile } from '../src/random-file.ts';
import { topSelfTime, type SelfTime } from './cpu-profile.ts';
import { setUpCli } from './cli.ts';
import { machineBusySeconds } from './machine-cpu.ts';
import { peakRssKb } from './memory.ts';
import { nativeFloor, negotiatedSsh } from './native-floor.ts';
import { parseSize } from './sizes.ts';

const GPG = '/usr/bin/gpg';
const here = path.dirname(fileURLToPath(import.meta.url));
const log = (line: string): void => void process.stderr.write(`${line}\n`);

setUpCli();
const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '256MiB' },
    json: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    // Keeps the raw .cpuprofile files there (open them in Chrome DevTools); implies --profile.
    'profile-dir': { type: 'string' },
  },
});
const size = parseSize(values.size);
/** Every step is bounded: a minute, plus a second per 8 MiB (far slower than any sane loopback). */
const stepTimeoutMs = 60_000 + Math.ceil(size / (8 * 1024 * 1024)) * 1_000;

/** Wall time of `work`, and the CPU time the whole machine spent meanwhile. */
async function timed(what: string, work: () => Promise<void>): Promise<{ seconds: number; machineCpu: number }> {
  log(`${what}...`);
  const busyBefore = await machineBusySeconds();
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const machineCpu = (await machineBusySeconds()) - busyBefore;
  log(`${what}: ${seconds.toFixed(2)} s, machine CPU ${machineCpu.toFixed(2)} s`);
  return { seconds, machineCpu };
}

async function expectSize(file: string): Promise<void> {
  const found = (await stat(file)).size;
  if (found !== size) throw new Error(`${file} has ${found} bytes, expected ${size}`);
}

async function gpg(home: string, args: readonly string[]): Promise<void> {
  const result = await runCommand(GPG, ['--homedir', home, '--batch', '--yes', ...args], {
    env: inheritedEnv(),
    timeoutMs: stepTimeoutMs,
  });
  if (result.code !== 0) throw new Error(`gpg ${args[0] ?? ''} exited with ${String(result.code)}: ${result.stderr.trim()}`);
}

interface ChildResult {
  report: RunReport;
  seconds: number;
  cpuSeconds: number;
  userCpuSeconds: number;
  systemCpuSeconds: number;
  machineCpuSeconds: number;
  processSeconds: number;
  baselineRssKb: number;
  peakRssKb: number;
  memoryPeakKb: { heapUsed: number; external: number; arrayBuffers: number };
  profile: SelfTime[] | null;
}

function numberField(value: Record<string, unknown>, key: string): number {
  const found = value[key];
  if (typeof found !== 'number') throw new Error(`benchmark child: ${key} is not a number`);
  return found;
}

/**
 * Runs bench/airlock-child.ts compiled the way the agent's bin runs (`@airlock/agent/bundle`), not
 * through the tsx loader; reads its VmHWM from /proc after it reports and before it exits.
 */
async function runAirlockChild(prepared: PreparedJob, privateKey: string, profileDir: string | null): Promise<ChildResult> {
  // Inside the repository, so the bundle's third-party imports resolve from node_modules; dist/ is
  // neither committed nor linted.
  const compiled = path.join(here, 'dist', 'airlock-child.js');
  await bundleNode(path.join(here, 'airlock-child.ts'), compiled);
  const args = [...(profileDir === null ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]), compiled];
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { cwd: here, env: inheritedEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const forgetChild = cleanUpOnExit(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  void exited.then(forgetChild);
  const timer = setTimeout(() => child.kill('SIGKILL'), stepTimeoutMs);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4_000)));
  child.stdin.on('error', () => undefined);
  child.stdin.write(`${JSON.stringify({ prepared, privateKey })}\n`);

  let line = '';
  let hwmKb: number | null = null;
  let asked = false;
  const reported = new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      line += chunk;
      if (asked || !line.includes('\n')) return;
      asked = true;
      const pid = child.pid;
      void (pid === undefined ? Promise.resolve(null) : peakRssKb(pid)).then((kb) => {
        hwmKb = kb;
        child.stdin.end();
        resolve();
      });
    });
    void exited.then(() => resolve());
  });
  await reported;
  const code = await exited;
  clearTimeout(timer);
  const processSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0 || !line.includes('\n')) throw new Error(`benchmark child exited with ${String(code)}: ${stderr.trim()}`);

  const parsed: unknown = JSON.parse(line.slice(0, line.indexOf('\n')));
  if (typeof parsed !== 'object' || parsed === null || !('report' in parsed)) throw new Error('benchmark child printed no report');
  const fields = parsed as Record<string, unknown>;
  const ownHwm = typeof fields['vmHwmKb'] === 'number' ? fields['vmHwmKb'] : 0;
  let profile: SelfTime[] | null = null;
  if (profileDir !== null) {
    const files = (await readdir(profileDir)).filter((name) => name.endsWith('.cpuprofile'));
    profile = await topSelfTime(
      files.map((name) => path.join(profileDir, name)),
      20,
    );
  }
  return {
    // The child's report is runJob's own RunReport, passed through JSON.
    report: fields['report'] as RunReport,
    seconds: numberField(fields, 'seconds'),
    cpuSeconds: numberField(fields, 'cpuSeconds'),
    userCpuSeconds: numberField(fields, 'userCpuSeconds'),
    systemCpuSeconds: numberField(fields, 'systemCpuSeconds'),
    machineCpuSeconds: numberField(fields, 'machineCpuSeconds'),
    processSeconds,
    baselineRssKb: numberField(fields, 'baselineRssKb'),
    peakRssKb: Math.max(numberField(fields, 'maxRssKb'), ownHwm, hwmKb ?? 0),
    memoryPeakKb: memoryPeaks(fields['memoryPeakKb']),
    profile,
  };
}

function memoryPeaks(value: unknown): ChildResult['memoryPeakKb'] {
  if (typeof value !== 'object' || value === null) throw new Error('benchmark child: memoryPeakKb is not an object');
  const fields = value as Record<string, unknown>;
  return { heapUsed: numberField(fields, 'heapUsed'), external: numberField(fields, 'external'), arrayBuffers: numberField(fields, 'arrayBuffers') };
}

const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
const mb = (kb: number): number => round(kb / 1024, 1);

async function main(): Promise<Record<string, unknown>> {
  const loadBefore = loadavg();
  const choice = chooseDestination();
  const sftpDestination = choice.kind === 'sftp';
  log(`size ${size} bytes; destination ${choice.kind}: ${choice.why}; load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
  const scratch = await mkdtemp(path.join(tmpdir(), 'airlock-bench-'));
  const forgetScratch = cleanUpOnExit(() => rmSync(scratch, { recursive: true, force: true }));
  const gnupgHome = path.join(scratch, 'gnupg');
  await using sshd = await startSshd();
  try {
    await mkdir(gnupgHome, { mode: 0o700 });
    const source = path.join(sshd.root, 'bench.bin');
    log('writing the random source file...');
    const sourceSha256 = await writeRandomFile(source, size, `bench-${Date.now()}`);
    const client = await sftpClientFiles(sshd, scratch);
    const recipient = await generateDemoKey('Bench Partner', 'bench@example.com');
    await runCommand(GPG, ['--homedir', gnupgHome, '--batch', '--import'], {
      env: inheritedEnv(),
      timeoutMs: 30_000,
      input: recipient.armoredPublicKey,
    });

    // 1. OpenSSH alone.
    const fetched = path.join(scratch, 'get.bin');
    const { seconds: opensshGet, machineCpu: opensshGetCpu } = await timed('openssh sftp get', () => sftpBatch(client, [{ op: 'get', remote: source, local: fetched }], stepTimeoutMs));
    await expectSize(fetched);
    await rm(fetched);

    // 2. The staged cron script: get to disk, encrypt from disk, put.
    const staged = path.join(scratch, 'staged.bin');
    const stagedPgp = path.join(scratch, 'staged.bin.pgp');
    const stagedRemote = path.join(sshd.root, 'staged-out');
    await mkdir(stagedRemote);
    const { seconds: stagedScript, machineCpu: stagedScriptCpu } = await timed('staged script (sftp get, gpg --encrypt, sftp put)', async () => {
      await sftpBatch(client, [{ op: 'get', remote: source, local: staged }], stepTimeoutMs);
      await gpg(gnupgHome, ['--trust-model', 'always', '--compress-algo', 'none', '-r', recipient.fingerprint, '-o', stagedPgp, '--encrypt', staged]);
      await sftpBatch(client, [{ op: 'put', local: stagedPgp, remote: `${stagedRemote}/staged.bin.pgp` }], stepTimeoutMs);
    });
    await expectSize(staged);
    await rm(staged);
    await rm(stagedPgp);
    await rm(stagedRemote, { recursive: true });

    // The native floor, measured right before and right after the Airlock run so that both see the
    // machine as it was then; the ratio uses their mean. The ciphertext is the plaintext plus a
    // few hundred octets of packets, so both passes count the plaintext's size for it.
    const ssh = await negotiatedSsh(sshd, stepTimeoutMs);
    const floorInput = {
      plaintextBytes: size,
      ciphertextBytes: size,
      sshIn: ssh.fromServer,
      sshOut: sftpDestination ? ssh.toServer : null,
      openpgpCipher: sessionCipher([await inspectRecipientKey(recipient.armoredPublicKey)]),
    };
    log('native crypto floor (before)...');
    const floorBefore = nativeFloor(floorInput);

    // 3. Airlock, in a child process.
    const delivered = sftpDestination ? path.join(sshd.root, 'airlock-out') : path.join(scratch, 'airlock-out');
    await mkdir(delivered);
    const prepared = prepareJob({
      source: { port: sshd.port, hostKey: sshd.hostKeyFingerprint, path: source },
      destination: sftpDestination
        ? { kind: 'sftp', port: sshd.port, hostKey: sshd.hostKeyFingerprint, directory: delivered }
        : { kind: 'local', directory: delivered },
      recipientPublicKey: recipient.armoredPublicKey,
      recipientFingerprint: recipient.fingerprint,
    });
    const keptProfileDir = values['profile-dir'] === undefined ? null : path.resolve(values['profile-dir']);
    const profileDir = keptProfileDir ?? (values.profile ? path.join(scratch, 'profile') : null);
    if (profileDir !== null) await mkdir(profileDir, { recursive: true });
    log(`airlock runJob (child process${profileDir === null ? '' : ', --cpu-prof'})...`);
    const airlock = await runAirlockChild(prepared, sshd.privateKey, profileDir);
    log(`airlock: ${airlock.seconds.toFixed(2)} s, ${airlock.report.status}${airlock.report.errorClass === undefined ? '' : ` (${airlock.report.errorClass})`}, peak RSS ${mb(airlock.peakRssKb)} MB`);

    log('decrypting the delivery with gpg...');
    const output = path.join(delivered, 'bench.bin.pgp');
    const decrypted = airlock.report.status === 'succeeded' ? await gpgDecrypt(output, recipient.armoredSecretKey).catch(() => null) : null;
    const gpgDecryptOk = decrypted !== null && decrypted.sha256 === sourceSha256 && decrypted.bytes === size;
    const ciphertextBytes = airlock.report.status === 'succeeded' ? (await stat(output)).size : null;
    await rm(delivered, { recursive: true, force: true });
    log('native crypto floor (after)...');
    const floorAfter = nativeFloor(floorInput);
    const floorSeconds = (floorBefore.seconds + floorAfter.seconds) / 2;
    log(`native floor: ${floorBefore.seconds.toFixed(2)} s before, ${floorAfter.seconds.toFixed(2)} s after`);

    const loadAfter = loadavg();
    return {
      size_bytes: size,
      destination: choice.kind,
      destination_why: choice.why,
      openssh_get_s: round(opensshGet),
      staged_script_s: round(stagedScript),
      airlock_s: round(airlock.seconds),
      airlock_process_s: round(airlock.processSeconds),
      airlock_cpu_s: round(airlock.cpuSeconds),
      airlock_cpu_user_s: round(airlock.userCpuSeconds),
      airlock_cpu_system_s: round(airlock.systemCpuSeconds),
      // The cryptography the run cannot avoid, through node:crypto alone on this machine in this run,
      // and how much CPU the agent spends for each second of it (1.0 would be no overhead at all).
      native_floor_s: round(floorSeconds),
      native_floor_runs_s: { before: round(floorBefore.seconds), after: round(floorAfter.seconds) },
      native_floor_parts_s: Object.fromEntries(
        Object.keys(floorBefore.parts).map((part) => [part, round(((floorBefore.parts[part] ?? 0) + (floorAfter.parts[part] ?? 0)) / 2)]),
      ),
      cpu_vs_floor: round(airlock.cpuSeconds / floorSeconds, 2),
      ssh_cipher: { to_server: ssh.toServer.cipher, from_server: ssh.fromServer.cipher },
      // CPU time the whole machine spent (sshd, gpg and sftp included) during each of the three.
      machine_cpu_s: {
        openssh_get: round(opensshGetCpu, 2),
        staged_script: round(stagedScriptCpu, 2),
        airlock: round(airlock.machineCpuSeconds, 2),
      },
      // The sshd processes share this machine's cores with the agent: the agent's run cannot take
      // less wall time than the CPU it needs spread over every core, which caps both ratios.
      cpu_bound: {
        cores: cpus().length,
        airlock_wall_floor_s: round(airlock.machineCpuSeconds / cpus().length),
        ratio_vs_staged_ceiling: round(stagedScript / (airlock.machineCpuSeconds / cpus().length)),
        ratio_vs_openssh_get_ceiling: round(opensshGet / (airlock.machineCpuSeconds / cpus().length)),
      },
      ratio_vs_staged: round(stagedScript / airlock.seconds),
      ratio_vs_openssh_get: round(opensshGet / airlock.seconds),
      airlock_mib_per_s: round(size / 1024 / 1024 / airlock.seconds, 1),
      airlock_rss_peak_mb: mb(airlock.peakRssKb),
      airlock_rss_before_run_mb: mb(airlock.baselineRssKb),
      airlock_memory_peak_mb: {
        heap_used: mb(airlock.memoryPeakKb.heapUsed),
        external: mb(airlock.memoryPeakKb.external),
        array_buffers: mb(airlock.memoryPeakKb.arrayBuffers),
      },
      airlock_status: airlock.report.status,
      ...(airlock.report.errorClass === undefined ? {} : { airlock_error_class: airlock.report.errorClass }),
      ciphertext_bytes: ciphertextBytes,
      gpg_decrypt_ok: gpgDecryptOk,
      env: {
        node: process.version,
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model ?? 'unknown',
        loadavg_before: loadBefore.map((l) => round(l, 2)),
        loadavg_after: loadAfter.map((l) => round(l, 2)),
      },
      ...(airlock.profile === null ? {} : { airlock_profile_top_self: airlock.profile }),
    };
  } finally {
    await runCommand('gpgconf', ['--kill', 'all'], { env: { ...inheritedEnv(), GNUPGHOME: gnupgHome }, timeoutMs: 10_000 }).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    forgetScratch();
  }
}

const result = await main();
process.stdout.write(`${values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2)}\n`);
