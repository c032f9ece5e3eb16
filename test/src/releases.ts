/**
 * Agent releases for the update tests: small executables (a Node script whose first line names this
 * Node, so no shell is involved), manifests signed by a release key, and the `versions/current`
 * layout a package install creates. A script artifact can leave a marker file when it runs, which
 * is how a test proves that a refused release never ran.
 */
import { createHash } from 'node:crypto';
import { mkdir, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AgentKeyPair, signDetached, signStatement } from '@airlock/identity';
import { RELEASE_CHUNK_BYTES, type ReleaseManifest } from '@airlock/protocol';
import { REPO_ROOT } from './system.ts';

const require = createRequire(import.meta.url);

/** A script that appends a line to `marker` each time it starts, then exits with `code`. */
export function markerArtifact(marker: string, code = 0): Buffer {
  return Buffer.from(`#!${process.execPath}\nrequire('node:fs').appendFileSync(${JSON.stringify(marker)}, 'started\\n');\nprocess.exit(${code});\n`);
}

/**
 * The real agent, reporting `version`: its sources through tsx, as the clone's bin runs them,
 * started through `main` with the version the build says. Appends to `marker` when it starts.
 */
export function agentArtifact(version: string, marker: string): Buffer {
  // The ESM build of tsx's API: its CommonJS twin registers hooks this script's import cannot use.
  const tsx = pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const cli = pathToFileURL(path.join(REPO_ROOT, 'apps/agent/src/cli.ts')).href;
  return Buffer.from(
    [
      `#!${process.execPath}`,
      `require('node:fs').appendFileSync(${JSON.stringify(marker)}, ${JSON.stringify(`${version}\n`)});`,
      '(async () => {',
      `  const { register } = await import(${JSON.stringify(tsx)});`,
      '  register();',
      `  const { main } = await import(${JSON.stringify(cli)});`,
      `  await main(process.argv, { version: ${JSON.stringify(version)} });`,
      '})();',
      '',
    ].join('\n'),
  );
}

export function manifestOf(artifact: Buffer, version: string, extra: Partial<ReleaseManifest> = {}): ReleaseManifest {
  return {
    v: 1,
    product: 'airlock-agent',
    version,
    platform: process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64',
    artifact: { sha256: createHash('sha256').update(artifact).digest('hex'), size: artifact.length },
    downgradeAllowed: false,
    issuedAt: new Date().toISOString(),
    ...extra,
  };
}

export function signRelease(manifest: ReleaseManifest, key: AgentKeyPair) {
  return signStatement('release', manifest, (message) => signDetached(message, key.secretKey));
}

export function chunksOf(artifact: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < artifact.length; offset += RELEASE_CHUNK_BYTES) chunks.push(artifact.subarray(offset, offset + RELEASE_CHUNK_BYTES));
  return chunks;
}

/** The layout the package install makes: `versions/current` pointing at the installed executable. */
export async function installedLayout(dataDir: string, executable: string): Promise<string> {
  const versions = path.join(dataDir, 'versions');
  await mkdir(versions, { recursive: true, mode: 0o700 });
  const current = path.join(versions, 'current');
  await symlink(executable, current);
  return current;
}

export interface UnitStart {
  /** What `update-guard` printed (JSON) before this start. */
  guard: unknown;
  code: number | null;
  stopped: boolean;
  /** The end of what the start wrote to stderr, for a failing test's message. */
  stderr: string;
}

/**
 * Runs an agent as its systemd unit does, without systemd: before each start the guard
 * (`ExecStartPre=/usr/bin/airlock-agent update-guard`, here the clone's bin), then whatever
 * `versions/current` points at (`ExecStart`); a start ending with a failure or with 75 is restarted
 * (`Restart=on-failure`, `RestartForceExitStatus=75`), one ending with 0 is not. Stops the agent
 * (SIGTERM, as `systemctl stop`) once `done()` holds. Bounded in starts and time.
 */
export async function superviseUnit(options: {
  guardBin: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  done: () => Promise<boolean>;
  maxStarts: number;
  timeoutMs: number;
}): Promise<UnitStart[]> {
  const { spawn } = await import('node:child_process');
  const { runCommand } = await import('./processes.ts');
  const starts: UnitStart[] = [];
  const deadline = Date.now() + options.timeoutMs;
  while (starts.length < options.maxStarts && Date.now() < deadline) {
    const guard = await runCommand(process.execPath, [options.guardBin, 'update-guard', '--dir', options.dataDir, '--json'], { env: options.env, timeoutMs: 60_000 });
    if (guard.code !== 0) throw new Error(`update-guard exited with ${String(guard.code)}: ${guard.stderr}`);
    const child = spawn(path.join(options.dataDir, 'versions', 'current'), ['run', '--dir', options.dataDir], { env: options.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-8_000)));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    let code: number | null | undefined;
    let stopped = false;
    void exited.then((value) => (code = value));
    while (code === undefined) {
      if (Date.now() > deadline) break;
      if (await options.done()) {
        stopped = true;
        child.kill('SIGTERM');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (code === undefined) {
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      if (!stopped) child.kill('SIGTERM');
      code = await exited;
      clearTimeout(killer);
    }
    starts.push({ guard: JSON.parse(guard.stdout) as unknown, code, stopped, stderr: stderr.slice(-1_500) });
    if (stopped || code === 0) return starts;
    if (Date.now() > deadline) throw new Error(`the unit did not settle in ${options.timeoutMs} ms; last stderr: ${stderr}`);
    // RestartSec, shortened.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the unit did not settle within ${options.maxStarts} starts`);
}
