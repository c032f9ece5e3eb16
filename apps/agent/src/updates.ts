/**
 * Signed updates. The control plane offers a release; the agent installs it only when the release
 * key it pinned from its package signed the manifest, and only after the artifact it streamed
 * through the control channel matches the manifest's size and SHA-256. Until then the bytes sit in
 * a file nobody may execute (mode 0600); only a verified file becomes executable, and only by a
 * rename into `versions/<version>/`.
 *
 * The layout under the data directory:
 *
 *   versions/current              symlink to the executable the unit starts (ExecStart)
 *   versions/<version>/airlock-agent
 *   versions/pending.json         a switch not yet confirmed by a heartbeat of the new version
 *   versions/rolled-back.json     a switch undone, for the previous version to report
 *
 * The switch is a rename of a fresh symlink over `current`. The old process then exits with
 * `EXIT_UPDATED`, which the unit restarts on. Before every start the unit runs `update-guard` from
 * the packaged binary (which a release cannot replace): after too many starts of an unconfirmed
 * version, or too long, it points `current` back at the previous executable. A new version that runs
 * but cannot heartbeat in time rolls itself back the same way.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '@airlock/connector-api';
import { decodePublicKey, openStatement } from '@airlock/identity';
import {
  compareVersions,
  RELEASE_CHUNK_BYTES,
  type ReleaseManifest,
  releaseManifest,
  type ReleasePlatform,
  type SecurityEventKind,
  type UpdateOffer,
  updateOffer,
  type UpdateReport,
} from '@airlock/protocol';
import type { UpdateSettings } from './config.ts';
import { errnoCode, readAdminFile, readIfExists, replaceFile } from './files.ts';
import type { SecurityLog } from './security-log.ts';

/** The agent exits with this after switching versions; the unit restarts on it (`RestartForceExitStatus=75`). */
export const EXIT_UPDATED = 75;

export const EXECUTABLE_NAME = 'airlock-agent';

/** An update the agent would not install: the security event it records and reports. */
export class UpdateRefusal extends Error {
  constructor(
    readonly kind: SecurityEventKind,
    message: string,
  ) {
    super(message);
    this.name = 'UpdateRefusal';
  }
}

const pendingSchema = z.strictObject({
  rolloutId: z.uuid(),
  releaseId: z.uuid(),
  version: z.string(),
  /** Where `current` pointed before the switch: what a rollback restores. */
  previous: z.string().min(1),
  switchedAt: z.iso.datetime(),
  starts: z.number().int().nonnegative(),
});
export type PendingUpdate = z.infer<typeof pendingSchema>;

const rolledBackSchema = z.strictObject({ rolloutId: z.uuid(), releaseId: z.uuid(), version: z.string(), reason: z.string() });
export type RolledBack = z.infer<typeof rolledBackSchema>;

export const versionsDir = (dataDir: string) => path.join(dataDir, 'versions');
const currentLink = (dataDir: string) => path.join(versionsDir(dataDir), 'current');
const pendingFile = (dataDir: string) => path.join(versionsDir(dataDir), 'pending.json');
const rolledBackFile = (dataDir: string) => path.join(versionsDir(dataDir), 'rolled-back.json');

export function thisPlatform(): ReleasePlatform | null {
  if (process.platform !== 'linux') return null;
  if (process.arch === 'x64') return 'linux-x64';
  if (process.arch === 'arm64') return 'linux-arm64';
  return null;
}

/** The pinned release key, or null when none is installed (then every offer is refused). It must not be writable by group or others. */
export async function loadReleaseKey(file: string): Promise<Uint8Array | null> {
  const text = await readAdminFile(file, false);
  if (text === undefined) return null;
  try {
    return decodePublicKey(text.trim());
  } catch {
    throw new UpdateRefusal('update-refused', `${file} does not hold a base64 Ed25519 public key`);
  }
}

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | undefined> {
  const text = await readIfExists(file);
  if (text === undefined) return undefined;
  const parsed = schema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : undefined;
}

export const readPending = (dataDir: string) => readJson(pendingFile(dataDir), pendingSchema);
export const readRolledBack = (dataDir: string) => readJson(rolledBackFile(dataDir), rolledBackSchema);
export const clearRolledBack = (dataDir: string) => rm(rolledBackFile(dataDir), { force: true });

/** Points `current` at `target` atomically: a new symlink renamed over the old one. */
async function pointCurrentAt(dataDir: string, target: string): Promise<void> {
  const temporary = path.join(versionsDir(dataDir), `.current-${randomBytes(6).toString('hex')}`);
  await symlink(target, temporary);
  await rename(temporary, currentLink(dataDir));
}

/** Where `current` points, or null when the agent was not installed with a `versions/current` link (then it cannot switch itself). */
async function currentTarget(dataDir: string): Promise<string | null> {
  try {
    if (!(await lstat(currentLink(dataDir))).isSymbolicLink()) return null;
    return await readlink(currentLink(dataDir));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return null;
    throw error;
  }
}

/** Undoes an unconfirmed switch: `current` back to the previous executable, the reason kept for it to report. */
export async function rollBack(dataDir: string, pending: PendingUpdate, reason: string): Promise<void> {
  await pointCurrentAt(dataDir, pending.previous);
  await replaceFile(rolledBackFile(dataDir), JSON.stringify({ rolloutId: pending.rolloutId, releaseId: pending.releaseId, version: pending.version, reason }));
  await rm(pendingFile(dataDir), { force: true });
}

export type GuardOutcome = { action: 'none' } | { action: 'counted'; starts: number } | { action: 'rolled-back'; reason: string };

/**
 * Runs before every start of the unit (ExecStartPre, from the packaged binary): counts the starts of
 * an unconfirmed version and rolls it back after `maxStarts` of them, or once `confirmWithinMs`
 * has passed since the switch.
 */
export async function guardStart(dataDir: string, settings: Pick<UpdateSettings, 'confirmWithinMs' | 'maxStarts'>, now = new Date()): Promise<GuardOutcome> {
  const pending = await readPending(dataDir);
  if (pending === undefined) return { action: 'none' };
  const starts = pending.starts + 1;
  const elapsed = now.getTime() - Date.parse(pending.switchedAt);
  let reason: string | undefined;
  if (starts > settings.maxStarts) reason = `version ${pending.version} was started ${pending.starts} times without a heartbeat`;
  else if (elapsed > settings.confirmWithinMs) reason = `version ${pending.version} did not heartbeat within ${Math.round(settings.confirmWithinMs / 1000)} s of the switch`;
  if (reason !== undefined) {
    await rollBack(dataDir, pending, reason);
    return { action: 'rolled-back', reason };
  }
  await replaceFile(pendingFile(dataDir), JSON.stringify({ ...pending, starts }));
  return { action: 'counted', starts };
}

/** Marks the running version good: it heartbeated, so the guard leaves it alone from now on. */
export async function confirmPending(dataDir: string): Promise<void> {
  await rm(pendingFile(dataDir), { force: true });
}

export interface UpdateDeps {
  dataDir: string;
  /** The version this process runs. */
  version: string;
  releaseKey: Uint8Array | null;
  updatesAllowed: () => 'remote' | 'manual';
  /** Fetches chunk `index` of the release's artifact, base64, through the signed control channel. */
  fetchChunk: (releaseId: string, index: number) => Promise<string>;
  /** Told once the artifact is verified and installed beside the running version, before the switch. */
  installing: (offer: UpdateOffer, manifest: ReleaseManifest) => Promise<void>;
  logger: Logger;
}

/** Checks an offer against the local policy and the pinned release key; throws `UpdateRefusal`, downloads nothing. */
export function vetOffer(raw: unknown, deps: Pick<UpdateDeps, 'version' | 'releaseKey' | 'updatesAllowed'>): { offer: UpdateOffer; manifest: ReleaseManifest } {
  const parsed = updateOffer.safeParse(raw);
  if (!parsed.success) throw new UpdateRefusal('update-refused', 'the update offer is malformed');
  const offer = parsed.data;
  if (deps.updatesAllowed() === 'manual') throw new UpdateRefusal('update-refused', 'the local policy says updates: manual');
  if (deps.releaseKey === null) throw new UpdateRefusal('update-refused', 'no release key is installed, so no release can be verified');
  const payload = openStatement('release', offer.release, deps.releaseKey);
  if (payload === undefined) throw new UpdateRefusal('update-bad-signature', 'the release manifest is not signed by the pinned release key');
  const manifest = releaseManifest.safeParse(payload);
  if (!manifest.success) throw new UpdateRefusal('update-refused', 'the signed release manifest is not one this agent understands');
  const m = manifest.data;
  const platform = thisPlatform();
  if (m.platform !== platform) throw new UpdateRefusal('update-refused', `release ${m.version} is for ${m.platform}, this agent runs on ${platform ?? `${process.platform}-${process.arch}`}`);
  const order = compareVersions(m.version, deps.version);
  if (order === 0) throw new UpdateRefusal('update-refused', `version ${m.version} already runs`);
  if (order < 0 && !(m.downgradeAllowed && offer.downgrade)) {
    const why = m.downgradeAllowed ? 'no admin asked for a downgrade' : 'the release key did not sign a downgrade';
    throw new UpdateRefusal('update-downgrade', `release ${m.version} is older than the running ${deps.version} and ${why}`);
  }
  if (m.minVersion !== undefined && compareVersions(deps.version, m.minVersion) < 0) throw new UpdateRefusal('update-refused', `release ${m.version} needs at least ${m.minVersion}`);
  if (m.maxVersion !== undefined && compareVersions(deps.version, m.maxVersion) > 0) throw new UpdateRefusal('update-refused', `release ${m.version} applies up to ${m.maxVersion} only`);
  return { offer, manifest: m };
}

/**
 * Streams the artifact into a 0600 file in `versions/`, checking its size as it grows and its
 * SHA-256 at the end; a mismatch deletes it. Only then is it made executable and renamed into place.
 */
async function download(offer: UpdateOffer, manifest: ReleaseManifest, deps: UpdateDeps): Promise<string> {
  const dir = versionsDir(deps.dataDir);
  const temporary = path.join(dir, `.download-${randomBytes(8).toString('hex')}`);
  const handle = await open(temporary, 'wx', 0o600);
  const hash = createHash('sha256');
  let size = 0;
  let kept = false;
  try {
    const chunks = Math.ceil(manifest.artifact.size / RELEASE_CHUNK_BYTES);
    for (let index = 0; index < chunks; index++) {
      const data = Buffer.from(await deps.fetchChunk(offer.releaseId, index), 'base64');
      size += data.length;
      if (data.length === 0 || data.length > RELEASE_CHUNK_BYTES || size > manifest.artifact.size) {
        throw new UpdateRefusal('update-artifact-mismatch', `the artifact of ${manifest.version} is not ${manifest.artifact.size} bytes as signed`);
      }
      hash.update(data);
      await handle.write(data);
    }
    if (size !== manifest.artifact.size) throw new UpdateRefusal('update-artifact-mismatch', `the artifact of ${manifest.version} is ${size} bytes, not ${manifest.artifact.size} as signed`);
    const digest = hash.digest('hex');
    if (digest !== manifest.artifact.sha256) throw new UpdateRefusal('update-artifact-mismatch', `the artifact of ${manifest.version} does not have the signed SHA-256`);
    await handle.sync();
    kept = true;
  } finally {
    await handle.close();
    if (!kept) await rm(temporary, { force: true });
  }
  const versionDir = path.join(dir, manifest.version);
  await mkdir(versionDir, { recursive: true, mode: 0o700 });
  const installed = path.join(versionDir, EXECUTABLE_NAME);
  await chmod(temporary, 0o700);
  await rename(temporary, installed);
  return installed;
}

/**
 * Installs an offered release beside the running version and switches `current` to it, leaving a
 * pending record for the guard. Returns the version switched to; the caller exits with
 * `EXIT_UPDATED` so the unit starts it. Throws `UpdateRefusal` for anything it will not install.
 */
export async function installUpdate(raw: unknown, deps: UpdateDeps): Promise<{ offer: UpdateOffer; manifest: ReleaseManifest }> {
  const vetted = vetOffer(raw, deps);
  const { offer, manifest } = vetted;
  const previous = await currentTarget(deps.dataDir);
  if (previous === null) throw new UpdateRefusal('update-refused', `this agent was not installed with ${currentLink(deps.dataDir)}, so it cannot switch versions itself`);
  deps.logger.info({ version: manifest.version, size: manifest.artifact.size }, 'downloading a signed release');
  const installed = await download(offer, manifest, deps);
  await deps.installing(offer, manifest);
  const pending: PendingUpdate = { rolloutId: offer.rolloutId, releaseId: offer.releaseId, version: manifest.version, previous, switchedAt: new Date().toISOString(), starts: 0 };
  await replaceFile(pendingFile(deps.dataDir), JSON.stringify(pending));
  await pointCurrentAt(deps.dataDir, installed);
  deps.logger.info({ from: deps.version, to: manifest.version }, 'switched to the new version; restarting');
  return vetted;
}

/** Records a refusal in the local security log; the caller reports it. */
export async function recordRefusal(securityLog: SecurityLog, error: UpdateRefusal): Promise<void> {
  await securityLog.record(error.kind, error.message);
}

export type { UpdateReport };
