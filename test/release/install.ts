/**
 * `npm run -s test:install -- --json`: the release as a user installs it. Needs root (dpkg -i) and
 * the artifacts of `npm run release`. It
 *   1. installs both .deb files with dpkg and checks the user, directories, owners and modes;
 *   2. runs `/usr/bin/airlock-agent --version` and `/usr/bin/airlock --version` with a PATH that
 *      holds no Node.js (each brings its own runtime);
 *   3. bootstraps the packaged embedded database as the airlock user, then runs the whole system
 *      from the installed binaries (control plane on PostgreSQL, OpenSSH sshd, the agent, gpg):
 *      one run delivers two files over SFTP, encrypted, and gpg decrypts each to its source; the
 *      agent is then enrolled as the airlock user into /var/lib/airlock;
 *   4. `dpkg --remove` keeps /etc/airlock and /var/lib/airlock, `dpkg --purge` deletes them.
 * Under CI=true every missing piece is an error; elsewhere, without root it stops with a reason.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, startPostgres } from '@airlock/testing';
import { startSystem } from '../src/system.ts';
import { artifactNames, RELEASE_DIR, releaseVersion } from '@airlock/release/build';
import { underCi } from '../src/config.ts';

const run = promisify(execFile);
const PACKAGES = ['airlock-agent', 'airlock-control-plane'] as const;
/** PGlite compiles its WebAssembly at each start: generous, for a busy machine. */
const COMMAND_TIMEOUT_MS = 180_000;

class Failure extends Error {}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Failure(message);
}

async function command(file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  // From outside the repository: nothing may be found through the clone's node_modules.
  const { stdout } = await run(file, args, { cwd: tmpdir(), timeout: COMMAND_TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024, ...(env ? { env } : {}) });
  return stdout;
}

async function installedStatus(name: string): Promise<string> {
  try {
    return (await command('dpkg-query', ['-W', '-f=${db:Status-Status}', name])).trim();
  } catch {
    return 'not-installed';
  }
}

async function owner(file: string): Promise<string> {
  return (await command('stat', ['-c', '%U:%G %a', file])).trim();
}

export interface InstallReport {
  version: string;
  agent_version: string;
  airlock_version: string;
  files_delivered: number;
  gpg_decrypted_to_source: boolean;
  remove_keeps_config_and_data: boolean;
  purge_removes_config_and_data: boolean;
  seconds: number;
}

export async function installTest(log: (line: string) => void): Promise<InstallReport> {
  const started = Date.now();
  const version = await releaseVersion();
  const names = artifactNames(version);
  const debs = [path.join(RELEASE_DIR, names.agentDeb), path.join(RELEASE_DIR, names.controlPlaneDeb)];
  for (const deb of debs) check(existsSync(deb), `${deb} is missing: run npm run release first`);
  for (const name of PACKAGES) {
    const status = await installedStatus(name);
    // Never replace or purge an installation this test did not make.
    check(status === 'not-installed', `${name} is already on this host (${status}); remove it first (dpkg --purge ${name})`);
  }

  let installed = false;
  const scratch = await mkdtemp(path.join(tmpdir(), 'airlock-install-'));
  try {
    await command('dpkg', ['-i', ...debs]);
    installed = true;
    log('installed both packages with dpkg -i');

    check((await command('getent', ['passwd', 'airlock'])).includes('/usr/sbin/nologin'), 'no system user airlock with a nologin shell');
    check((await owner('/etc/airlock')) === 'root:airlock 750', `/etc/airlock is ${await owner('/etc/airlock')}, expected root:airlock 750`);
    check((await owner('/etc/airlock/policy.yaml')) === 'root:airlock 640', `policy.yaml is ${await owner('/etc/airlock/policy.yaml')}`);
    check((await owner('/etc/airlock/secrets.yaml')) === 'airlock:airlock 600', `secrets.yaml is ${await owner('/etc/airlock/secrets.yaml')}`);
    check((await owner('/etc/airlock/control-plane.env')) === 'root:root 600', `control-plane.env is ${await owner('/etc/airlock/control-plane.env')}`);
    check((await owner('/var/lib/airlock')) === 'airlock:airlock 700', `/var/lib/airlock is ${await owner('/var/lib/airlock')}`);
    // The unit starts versions/current: the packaged binary until a signed update switches it.
    check((await owner('/var/lib/airlock/versions')) === 'airlock:airlock 700', `/var/lib/airlock/versions is ${await owner('/var/lib/airlock/versions')}`);
    check((await readlink('/var/lib/airlock/versions/current')) === '/usr/bin/airlock-agent', 'versions/current does not point at /usr/bin/airlock-agent');
    const conffiles = (await command('dpkg-query', ['-W', '-f=${Conffiles}', ...PACKAGES])).trim();
    for (const file of ['/etc/airlock/policy.yaml', '/etc/airlock/secrets.yaml', '/etc/airlock/control-plane.env']) check(conffiles.includes(file), `${file} is not a conffile`);

    // A PATH with no node: each binary runs on the runtime it ships with.
    const noNode = { PATH: path.join(scratch, 'empty-path'), HOME: scratch };
    const agentVersion = (await command('/usr/bin/airlock-agent', ['--version'], noNode)).trim();
    const airlockVersion = (await command('/usr/bin/airlock', ['--version'], noNode)).trim();
    check(agentVersion === version, `airlock-agent --version printed ${agentVersion}, expected ${version}`);
    check(airlockVersion === version, `airlock --version printed ${airlockVersion}, expected ${version}`);
    log(`/usr/bin/airlock-agent --version and /usr/bin/airlock --version print ${version}`);

    // The embedded database in the packaged layout (PGlite's WebAssembly beside the bundle, the
    // packaged migrations), as README's Install runs it: bootstrap as the airlock user.
    const dataDir = '/var/lib/airlock/control-plane';
    const bootstrapped = await command('/usr/sbin/runuser', ['-u', 'airlock', '--', '/usr/bin/airlock', 'bootstrap', '--tenant', 'install-check', '--json'], {
      ...noNode,
      AIRLOCK_DATA_DIR: dataDir,
    });
    check(/"key":"alk_/.test(bootstrapped), 'airlock bootstrap on the embedded database printed no owner key');
    const databaseFiles = await readdir(dataDir);
    log('airlock bootstrap ran as the airlock user on the packaged embedded database');

    const stateDir = '/var/lib/airlock';
    let stateFiles: string[] = [];
    const files = { 'ledger.csv': 'id,amount\n1,10\n2,20\n', 'large.csv': Buffer.alloc(3 * 1024 * 1024, 0x61) };
    {
      // The delivery on PostgreSQL, as the whole-system test runs: the embedded database is proven above.
      await using postgres = await startPostgres();
      await using system = await startSystem({
        files,
        databaseUrl: await createTestDatabase(postgres.url),
        binaries: { airlock: '/usr/bin/airlock', agent: '/usr/bin/airlock-agent' },
        workDir: path.join(scratch, 'system'),
        logLevel: 'warn',
        onStep: (step) => log(`  ${step}`),
      });
      // The packaged console, found beside the bundle without AIRLOCK_CONSOLE_DIR.
      const consolePage = await fetch(`${system.controlPlaneUrl}/`);
      check(consolePage.status === 200 && (consolePage.headers.get('content-type') ?? '').startsWith('text/html'), `the installed control plane serves no console (${consolePage.status})`);
      const integration = await system.createIntegration({ name: 'installed' });
      const runId = await system.runNow(integration.id);
      const agent = await system.runAgentOnce();
      check(agent.code === 0 && agent.report?.status === 'succeeded', `the installed agent's run ended ${String(agent.code)} ${agent.report?.status ?? ''}; log ${agent.stderrFile}`);
      const result = await system.waitForRun(runId);
      check(result.status === 'succeeded', `run ${runId} ${result.status}`);
      const decrypted = await system.decryptDelivered();
      check(decrypted.length === Object.keys(files).length, `${decrypted.length} files delivered, expected ${Object.keys(files).length}`);
      for (const file of decrypted) check(file.source !== undefined && file.sha256 === file.source.sha256, `${file.ciphertext} does not decrypt to its source`);
      log(`the installed binaries delivered ${decrypted.length} files over SFTP; gpg decrypts each to its source`);

      // The packaged layout as the unit runs it: enrolled as the airlock user into /var/lib/airlock,
      // reading the policy the package installed in /etc/airlock (which its modes must satisfy).
      const created = (await system.airlockJson(['token', 'create'])) as { token?: unknown; controlPlaneKey?: unknown };
      check(typeof created.token === 'string' && typeof created.controlPlaneKey === 'string', 'airlock token create printed no token');
      const asAirlock = { ...noNode, AIRLOCK_ENROLL_TOKEN: String(created.token) };
      await command('/usr/sbin/runuser', ['-u', 'airlock', '--', '/usr/bin/airlock-agent', 'enroll', '--url', system.controlPlaneUrl, '--control-plane-key', String(created.controlPlaneKey), '--dir', stateDir, '--json'], asAirlock);
      const configured = { ...noNode, AIRLOCK_AGENT_POLICY: '/etc/airlock/policy.yaml', AIRLOCK_AGENT_SECRETS: '/etc/airlock/secrets.yaml' };
      await command('/usr/sbin/runuser', ['-u', 'airlock', '--', '/usr/bin/airlock-agent', 'policy', 'show', '--dir', stateDir, '--json'], configured);
      stateFiles = await readdir(stateDir);
      check(stateFiles.includes('agent.key'), `enrolling as the airlock user left no agent.key in ${stateDir}`);
      log(`enrolled as the airlock user into ${stateDir}; the agent accepts the packaged /etc/airlock/policy.yaml`);
    }

    await command('dpkg', ['--remove', ...PACKAGES]);
    check(!existsSync('/usr/bin/airlock-agent') && !existsSync('/usr/bin/airlock'), 'dpkg --remove left the binaries');
    const kept = [
      '/etc/airlock/policy.yaml',
      '/etc/airlock/secrets.yaml',
      '/etc/airlock/control-plane.env',
      ...stateFiles.map((name) => path.join(stateDir, name)),
      ...databaseFiles.map((name) => path.join(dataDir, name)),
    ];
    for (const file of kept) check(existsSync(file), `dpkg --remove deleted ${file}`);
    check((await readFile('/etc/airlock/policy.yaml', 'utf8')).includes('local policy'), 'policy.yaml changed on remove');
    log('dpkg --remove kept /etc/airlock and /var/lib/airlock');

    await command('dpkg', ['--purge', ...PACKAGES]);
    installed = false;
    check(!existsSync('/etc/airlock') && !existsSync('/var/lib/airlock'), 'dpkg --purge left /etc/airlock or /var/lib/airlock');
    for (const name of PACKAGES) check((await installedStatus(name)) === 'not-installed', `${name} still known to dpkg after purge`);
    log('dpkg --purge removed /etc/airlock and /var/lib/airlock');

    return {
      version,
      agent_version: agentVersion,
      airlock_version: airlockVersion,
      files_delivered: Object.keys(files).length,
      gpg_decrypted_to_source: true,
      remove_keeps_config_and_data: true,
      purge_removes_config_and_data: true,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    // A failed check still leaves the host as it was.
    if (installed) await command('dpkg', ['--purge', ...PACKAGES]).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const json = process.argv.includes('--json');
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) {
    if (underCi()) {
      process.stderr.write('test:install: must run as root under CI (it installs the .deb files with dpkg -i)\n');
      process.exit(1);
    }
    process.stderr.write('test:install: skipped, not root: installing the .deb files needs dpkg -i as root (CI runs it as root)\n');
    process.exit(0);
  }
  try {
    const started = Date.now();
    const report = await installTest((line) => {
      if (!json) process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`);
    });
    process.stdout.write(json ? `${JSON.stringify(report)}\n` : `install test passed in ${report.seconds.toFixed(1)} s\n`);
  } catch (error) {
    process.stderr.write(`test:install: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
