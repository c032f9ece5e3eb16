/**
 * `npm run -s check:units -- --json`: audits the systemd units the release ships, as built into
 * its .deb files (so run `npm run release` first):
 *   - `systemd-analyze security --offline=true` rates each unit; the agent's must be 2.0 or lower;
 *   - `systemd-analyze verify` checks both, inside a scratch root holding the packages' own files
 *     and this host's systemd units. verify insists that ExecStart's binary exists; the root has
 *     the packaged binaries, so it passes because the package is complete, not because of a stub.
 *     The agent unit is verified with the metrics drop-in the package ships as an example
 *     (/usr/share/doc/airlock-agent/examples/metrics.conf) installed, as the README says to.
 * Prints `{"agent_exposure": x, "control_plane_exposure": y, "verify_ok": true}` and exits 1 when
 * a check fails. Any warning from verify counts as a failure.
 */
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { artifactNames, RELEASE_DIR, releaseVersion } from '@airlock/release/build';

const run = promisify(execFile);
export const AGENT_EXPOSURE_LIMIT = 2.0;
const UNITS = { agent: 'airlock-agent.service', controlPlane: 'airlock-control-plane.service' } as const;

interface Outcome {
  code: number;
  output: string;
}

async function outcome(command: string, args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(command, args, { maxBuffer: 4 * 1024 * 1024 });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string };
    if (failed.code === 'ENOENT') throw new Error(`${command} is not installed (Debian: apt-get install systemd)`);
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

/** The number in systemd-analyze's last line, `→ Overall exposure level for x.service: 1.3 OK`. */
export function parseExposure(output: string, unit: string): number {
  const match = new RegExp(`Overall exposure level for ${unit.replace('.', '\\.')}: (\\d+(?:\\.\\d+)?)`).exec(output);
  if (!match?.[1]) throw new Error(`systemd-analyze security printed no exposure level for ${unit}:\n${output.slice(-2000)}`);
  return Number(match[1]);
}

export interface UnitReport {
  agent_exposure: number;
  control_plane_exposure: number;
  verify_ok: boolean;
  verify_output?: string;
}

export async function checkUnits(): Promise<UnitReport> {
  const names = artifactNames(await releaseVersion());
  const root = await mkdtemp(path.join(tmpdir(), 'airlock-units-'));
  try {
    for (const deb of [names.agentDeb, names.controlPlaneDeb]) {
      const extracted = await outcome('dpkg-deb', ['-x', path.join(RELEASE_DIR, deb), root]);
      if (extracted.code !== 0) throw new Error(`dpkg-deb -x ${deb} failed (run npm run release first): ${extracted.output.trim()}`);
    }
    // Debian's merged /usr, the targets the units name, and ExecReload's kill: the host's own.
    await symlink('usr/bin', path.join(root, 'bin'));
    await symlink('usr/lib', path.join(root, 'lib'));
    await cp('/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/system'), { recursive: true, force: false, errorOnExist: false });
    await copyFile('/usr/bin/kill', path.join(root, 'usr/bin/kill'));
    await mkdir(path.join(root, 'etc/systemd/system'), { recursive: true });
    // What the agent's postinst makes: the link the unit's ExecStart starts, at the packaged binary.
    await mkdir(path.join(root, 'var/lib/airlock/versions'), { recursive: true });
    await symlink('/usr/bin/airlock-agent', path.join(root, 'var/lib/airlock/versions/current'));
    // The drop-in as an admin installs it; a package without it fails here.
    const dropIns = path.join(root, 'etc/systemd/system', `${UNITS.agent}.d`);
    await mkdir(dropIns, { recursive: true });
    await copyFile(path.join(root, 'usr/share/doc/airlock-agent/examples/metrics.conf'), path.join(dropIns, 'metrics.conf'));

    const unitFile = (unit: string) => path.join(root, 'usr/lib/systemd/system', unit);
    const exposure = async (unit: string) => parseExposure((await outcome('systemd-analyze', ['security', '--offline=true', '--no-pager', unitFile(unit)])).output, unit);
    const agentExposure = await exposure(UNITS.agent);
    const controlPlaneExposure = await exposure(UNITS.controlPlane);
    const verified = await outcome('systemd-analyze', ['verify', `--root=${root}`, '--man=no', UNITS.agent, UNITS.controlPlane]);
    const verifyOk = verified.code === 0 && verified.output.trim() === '';
    return {
      agent_exposure: agentExposure,
      control_plane_exposure: controlPlaneExposure,
      verify_ok: verifyOk,
      ...(verifyOk ? {} : { verify_output: verified.output.trim() }),
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const report = await checkUnits();
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    process.stdout.write(`agent exposure ${report.agent_exposure} (limit ${AGENT_EXPOSURE_LIMIT}), control plane exposure ${report.control_plane_exposure}\n`);
    process.stdout.write(report.verify_ok ? 'systemd-analyze verify: both units pass\n' : `systemd-analyze verify failed:\n${report.verify_output ?? ''}\n`);
  }
  if (report.agent_exposure > AGENT_EXPOSURE_LIMIT || !report.verify_ok) process.exitCode = 1;
}
