/**
 * `npm run release`: builds the versioned release artifacts into `dist/release/` at the repository
 * root, from the same esbuild bundling the clone's bins use (`@airlock/agent/bundle`):
 *
 *   airlock-agent-<version>-linux-x64          the agent as one executable (Node's single-executable
 *                                              application: the Node runtime with the bundle injected)
 *   airlock-agent_<version>_amd64.deb          that executable as /usr/bin/airlock-agent, its unit,
 *                                              /etc/airlock/{policy,secrets}.yaml, /var/lib/airlock
 *   airlock-control-plane_<version>_amd64.deb  /usr/bin/airlock on the Node runtime it ships in
 *                                              /usr/lib/airlock, migrations, the console, its unit
 *   SHA256SUMS
 *
 * The version is the apps' package.json version, the one every `--version` prints. With
 * `--release-key <file>` naming a release key's public half (`src/release-key.ts keygen`), the
 * agent package carries it as /usr/share/airlock/release-key.pub, the only key its agents accept
 * releases from.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { bundleNode } from '@airlock/agent/bundle';
import { PAGE_WORKERS } from '@airlock/audit';
import { decodePublicKey } from '@airlock/identity';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');
export const RELEASE_DIR = path.join(REPO_ROOT, 'dist', 'release');
const DEBIAN = path.join(import.meta.dirname, '..', 'debian');
/** The fuse Node looks for to know a blob was injected (Node's single-executable docs). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Shared libraries the Node runtime links against, as Debian packages. */
const RUNTIME_DEPENDS = 'libc6 (>= 2.28), libstdc++6 (>= 8), libgcc-s1';
/** Packages stay uncompressed enough to build in a few seconds in CI; they are mostly one runtime. */
const DEB_COMPRESSION = ['-Zgzip', '-z1'];

/** A package's directory, also for packages whose exports map hides their package.json. */
function packageDir(name: string): string {
  const base = require.resolve.paths(name)?.map((dir) => path.join(dir, name)) ?? [];
  for (const dir of base) {
    try {
      if ((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === name) return dir;
    } catch {
      // not in this node_modules; the next one up
    }
  }
  throw new Error(`package ${name} is not installed`);
}

/** The release version: both apps carry it, and a release with two versions is refused. */
export async function releaseVersion(): Promise<string> {
  const read = async (name: string) => (JSON.parse(await readFile(path.join(packageDir(name), 'package.json'), 'utf8')) as { version: string }).version;
  const [agent, controlPlane] = await Promise.all([read('@airlock/agent'), read('@airlock/control-plane')]);
  if (agent !== controlPlane) throw new Error(`@airlock/agent is ${agent} but @airlock/control-plane is ${controlPlane}: release one version`);
  if (!/^\d+\.\d+\.\d+([~+.][0-9A-Za-z.~+]+)?$/.test(agent)) throw new Error(`version ${agent} is not a Debian version`);
  return agent;
}

export const artifactNames = (version: string) => ({
  agentExecutable: `airlock-agent-${version}-linux-x64`,
  agentDeb: `airlock-agent_${version}_amd64.deb`,
  controlPlaneDeb: `airlock-control-plane_${version}_amd64.deb`,
});

/** The agent's bundle as one CommonJS file (what Node 20's single-executable applications run), injected into a copy of this Node. */
async function buildAgentExecutable(work: string, out: string): Promise<void> {
  const bundle = path.join(work, 'agent', 'airlock-agent.js');
  await bundleNode(path.join(import.meta.dirname, 'agent-main.ts'), bundle, { mode: 'self-contained', format: 'cjs' });
  const seaConfig = path.join(work, 'sea-config.json');
  const blob = path.join(work, 'agent.blob');
  await writeFile(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false }));
  await run(process.execPath, ['--experimental-sea-config', seaConfig], { cwd: work });
  await copyFile(process.execPath, out);
  await chmod(out, 0o755);
  const postject = path.join(packageDir('postject'), 'dist', 'cli.js');
  await run(process.execPath, [postject, out, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { cwd: work });
}

/**
 * The control plane's files under /usr/lib/airlock/control-plane: the ESM bundle, its chunks and worker threads,
 * PGlite beside it (it loads its WebAssembly from its own directory), and the packages the code
 * finds through their package.json (the storage package's migrations; the console's build).
 */
async function buildControlPlane(lib: string): Promise<void> {
  await bundleNode(path.join(import.meta.dirname, 'control-plane-main.ts'), path.join(lib, 'cli.js'), {
    mode: 'self-contained',
    keepExternal: ['@electric-sql/pglite'],
    workers: PAGE_WORKERS,
  });
  await writeFile(path.join(lib, 'package.json'), `${JSON.stringify({ name: 'airlock-control-plane', private: true, type: 'module' }, null, 2)}\n`);
  const modules = path.join(lib, 'node_modules');
  await cp(packageDir('@electric-sql/pglite'), path.join(modules, '@electric-sql', 'pglite'), {
    recursive: true,
    filter: (source) => !source.endsWith('.map'),
  });
  const storage = packageDir('@airlock/storage');
  await mkdir(path.join(modules, '@airlock', 'storage'), { recursive: true });
  await writeFile(path.join(modules, '@airlock', 'storage', 'package.json'), `${JSON.stringify({ name: '@airlock/storage', private: true }, null, 2)}\n`);
  await cp(path.join(storage, 'migrations'), path.join(modules, '@airlock', 'storage', 'migrations'), { recursive: true });
  await mkdir(path.join(modules, '@airlock', 'control-plane'), { recursive: true });
  await writeFile(path.join(modules, '@airlock', 'control-plane', 'package.json'), `${JSON.stringify({ name: '@airlock/control-plane', private: true }, null, 2)}\n`);
  // The config's default console directory is <@airlock/control-plane>/../console/dist.
  const vite = path.join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const consoleOut = path.join(modules, '@airlock', 'console', 'dist');
  await run(process.execPath, [vite, 'build', '--outDir', consoleOut, '--emptyOutDir', '--logLevel', 'warn'], { cwd: path.join(REPO_ROOT, 'apps', 'console') });
}

async function installedSizeKiB(root: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && !path.join(entry.parentPath, entry.name).includes(`${path.sep}DEBIAN`)) {
      total += (await stat(path.join(entry.parentPath, entry.name))).size;
    }
  }
  return Math.ceil(total / 1024);
}

interface DebSpec {
  name: string;
  version: string;
  root: string;
  description: string;
  conffiles: string[];
  scripts: string;
  out: string;
}

async function buildDeb(spec: DebSpec): Promise<void> {
  const control = path.join(spec.root, 'DEBIAN');
  await mkdir(control, { recursive: true });
  for (const script of ['postinst', 'prerm', 'postrm']) {
    await copyFile(path.join(spec.scripts, script), path.join(control, script));
    await chmod(path.join(control, script), 0o755);
  }
  await writeFile(path.join(control, 'conffiles'), `${spec.conffiles.join('\n')}\n`);
  const fields = [
    `Package: ${spec.name}`,
    `Version: ${spec.version}`,
    'Architecture: amd64',
    'Maintainer: Airlock maintainers <maintainers@airlock.invalid>',
    'Section: net',
    'Priority: optional',
    `Depends: ${RUNTIME_DEPENDS}, passwd`,
    `Installed-Size: ${await installedSizeKiB(spec.root)}`,
    `Description: ${spec.description}`,
  ];
  await writeFile(path.join(control, 'control'), `${fields.join('\n')}\n`);
  await run('dpkg-deb', ['--root-owner-group', ...DEB_COMPRESSION, '--build', spec.root, spec.out]);
}

async function install(from: string, to: string, mode: number): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  await copyFile(from, to);
  await chmod(to, mode);
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function buildRelease(options: { releaseKeyFile?: string } = {}): Promise<{ version: string; artifacts: Record<string, number> }> {
  const version = await releaseVersion();
  const names = artifactNames(version);
  await rm(RELEASE_DIR, { recursive: true, force: true });
  await mkdir(RELEASE_DIR, { recursive: true });
  const work = await mkdtemp(path.join(tmpdir(), 'airlock-release-'));
  try {
    const agentExe = path.join(RELEASE_DIR, names.agentExecutable);
    const agentRoot = path.join(work, 'deb-agent');
    const cpRoot = path.join(work, 'deb-control-plane');
    await Promise.all([buildAgentExecutable(work, agentExe), buildControlPlane(path.join(cpRoot, 'usr/lib/airlock/control-plane'))]);

    await install(agentExe, path.join(agentRoot, 'usr/bin/airlock-agent'), 0o755);
    await install(path.join(DEBIAN, 'agent/airlock-agent.service'), path.join(agentRoot, 'usr/lib/systemd/system/airlock-agent.service'), 0o644);
    await install(path.join(DEBIAN, 'agent/policy.yaml'), path.join(agentRoot, 'etc/airlock/policy.yaml'), 0o640);
    await install(path.join(DEBIAN, 'agent/secrets.yaml'), path.join(agentRoot, 'etc/airlock/secrets.yaml'), 0o600);
    // A drop-in the admin copies into /etc to open the textfile collector's directory to the unit.
    await install(path.join(DEBIAN, 'agent/metrics.conf'), path.join(agentRoot, 'usr/share/doc/airlock-agent/examples/metrics.conf'), 0o644);
    // The release key agents pin: with none, the package's agents refuse every remote update.
    const releaseKey = options.releaseKeyFile;
    if (releaseKey !== undefined) {
      decodePublicKey((await readFile(releaseKey, 'utf8')).trim());
      await install(releaseKey, path.join(agentRoot, 'usr/share/airlock/release-key.pub'), 0o644);
    }
    await buildDeb({
      name: 'airlock-agent',
      version,
      root: agentRoot,
      description: 'Airlock agent: pulls files, encrypts them with OpenPGP and delivers them\n Connects outward only; its local policy in /etc/airlock is the ceiling for every job.',
      conffiles: ['/etc/airlock/policy.yaml', '/etc/airlock/secrets.yaml'],
      scripts: path.join(DEBIAN, 'agent'),
      out: path.join(RELEASE_DIR, names.agentDeb),
    });

    await install(process.execPath, path.join(cpRoot, 'usr/lib/airlock/node'), 0o755);
    await install(path.join(DEBIAN, 'control-plane/airlock'), path.join(cpRoot, 'usr/bin/airlock'), 0o755);
    await install(path.join(DEBIAN, 'control-plane/airlock-control-plane.service'), path.join(cpRoot, 'usr/lib/systemd/system/airlock-control-plane.service'), 0o644);
    await install(path.join(DEBIAN, 'control-plane/control-plane.env'), path.join(cpRoot, 'etc/airlock/control-plane.env'), 0o600);
    await buildDeb({
      name: 'airlock-control-plane',
      version,
      root: cpRoot,
      description: 'Airlock control plane: the API, audit trail and console for Airlock agents\n Ships the Node.js runtime it runs on; the embedded database needs no server.',
      conffiles: ['/etc/airlock/control-plane.env'],
      scripts: path.join(DEBIAN, 'control-plane'),
      out: path.join(RELEASE_DIR, names.controlPlaneDeb),
    });

    const artifacts: Record<string, number> = {};
    const sums: string[] = [];
    for (const name of Object.values(names)) {
      artifacts[name] = (await stat(path.join(RELEASE_DIR, name))).size;
      sums.push(`${await sha256(path.join(RELEASE_DIR, name))}  ${name}`);
    }
    await writeFile(path.join(RELEASE_DIR, 'SHA256SUMS'), `${sums.join('\n')}\n`);
    return { version, artifacts };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const started = Date.now();
  const keyFlag = process.argv.indexOf('--release-key');
  const releaseKeyFile = keyFlag < 0 ? undefined : process.argv[keyFlag + 1];
  const { version, artifacts } = await buildRelease(releaseKeyFile === undefined ? {} : { releaseKeyFile });
  const json = process.argv.includes('--json');
  if (json) process.stdout.write(`${JSON.stringify({ version, artifacts, seconds: (Date.now() - started) / 1000 })}\n`);
  else {
    for (const [name, bytes] of Object.entries(artifacts)) process.stdout.write(`dist/release/${name}  ${(bytes / 1024 / 1024).toFixed(1)} MiB\n`);
    process.stdout.write(`release ${version} built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
}
