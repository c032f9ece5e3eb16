/**
 * Signed agent updates. A release is a manifest signed by the release key, which is not the
 * control-plane key: agents pin it from their package at install, so a control plane (however
 * compromised) can offer a release but never make an agent run code the release key did not sign.
 * The control plane stores the artifact, rolls it out by ring and hands it to agents in chunks
 * over the signed control channel.
 */
import { z } from 'zod';
import { signedStatement } from './custody.ts';
import { uuid } from './schemas.ts';
import { displayText } from './text.ts';

/** `major.minor.patch` with an optional pre-release, as in the apps' package.json. */
export const releaseVersion = z.string().regex(/^\d{1,9}\.\d{1,9}\.\d{1,9}(-[0-9A-Za-z.-]{1,64})?$/, 'expected a version like 1.2.3 or 1.2.3-rc.1');

/** Artifacts are moved in chunks of this size (the last may be shorter), each one signed request. */
export const RELEASE_CHUNK_BYTES = 256 * 1024;

/** The largest agent artifact a release may carry (bytes): a single-executable agent is about 100 MB. */
export const MAX_RELEASE_BYTES = 512 * 1024 * 1024;

export const releasePlatforms = ['linux-x64', 'linux-arm64'] as const;
export type ReleasePlatform = (typeof releasePlatforms)[number];

/** What the release key signs. The agent checks every field before it writes anything executable. */
export const releaseManifest = z.strictObject({
  v: z.literal(1),
  product: z.literal('airlock-agent'),
  version: releaseVersion,
  platform: z.enum(releasePlatforms),
  artifact: z.strictObject({
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256'),
    size: z.number().int().positive().max(MAX_RELEASE_BYTES),
  }),
  /** Agents older than this may not apply the release (they update to a stepping stone first). */
  minVersion: releaseVersion.optional(),
  /** Agents newer than this may not apply it. */
  maxVersion: releaseVersion.optional(),
  /** Only a release that says so may replace a newer version, and only when an admin asks for the downgrade. */
  downgradeAllowed: z.boolean(),
  issuedAt: z.iso.datetime(),
});
export type ReleaseManifest = z.infer<typeof releaseManifest>;

/**
 * Orders two versions as semantic versioning does: numerically by major, minor and patch; a
 * pre-release sorts before its release, and pre-releases compare by their dot-separated parts.
 */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const dash = v.indexOf('-');
    return { core: (dash < 0 ? v : v.slice(0, dash)).split('.').map(Number), pre: dash < 0 ? null : v.slice(dash + 1).split('.') };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < 3; i++) {
    const diff = (x.core[i] ?? 0) - (y.core[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  if (x.pre === null || y.pre === null) return x.pre === y.pre ? 0 : x.pre === null ? 1 : -1;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn && Number(p) !== Number(q)) return Math.sign(Number(p) - Number(q));
    if (pn !== qn) return pn ? -1 : 1;
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

/** What a heartbeat answer carries when the agent is due an update. Untrusted until the release key's signature verifies. */
export const updateOffer = z.strictObject({
  rolloutId: uuid,
  releaseId: uuid,
  release: signedStatement,
  /** An admin asked for a downgrade; it happens only if the signed manifest also allows one. */
  downgrade: z.boolean(),
});
export type UpdateOffer = z.infer<typeof updateOffer>;

export const releaseChunkInput = z.strictObject({ releaseId: uuid, index: z.number().int().nonnegative().max(MAX_RELEASE_BYTES / RELEASE_CHUNK_BYTES) });
/** One chunk, base64. */
export const releaseChunkOutput = z.strictObject({ data: z.string().max(Math.ceil(RELEASE_CHUNK_BYTES / 3) * 4) });

export const updateStatuses = ['installing', 'installed', 'failed', 'rolled-back', 'refused'] as const;
export type UpdateStatus = (typeof updateStatuses)[number];

/** An agent's word on an update it was offered: metadata only. */
export const updateReportInput = z.strictObject({
  rolloutId: uuid,
  releaseId: uuid,
  status: z.enum(updateStatuses),
  /** The version the agent runs as it reports. */
  runningVersion: displayText({ min: 1, max: 64 }),
  reason: displayText({ min: 1, max: 500 }).optional(),
});
export type UpdateReport = z.infer<typeof updateReportInput>;

export const createReleaseInput = z.strictObject({ release: signedStatement });
export const uploadReleaseChunkInput = z.strictObject({ id: uuid, index: z.number().int().nonnegative(), data: z.string().min(1).max(Math.ceil(RELEASE_CHUNK_BYTES / 3) * 4) });

export const createRolloutInput = z.strictObject({
  releaseId: uuid,
  /** Agents in this group update first; the rest of the tenant's agents only once the canary ring finished without halting. */
  canaryGroupId: uuid.optional(),
  /** Offers go out only inside this window. Default: from now, for seven days. */
  startsAt: z.iso.datetime().optional(),
  endsAt: z.iso.datetime().optional(),
  /** A ring whose failed share rises above this fraction halts the rollout. Default 0 (the first failure halts). */
  haltFailureRate: z.number().min(0).max(1).default(0),
  /** Replace newer versions too: honoured by agents only for a release whose signed manifest allows a downgrade. */
  downgrade: z.boolean().default(false),
});
export type CreateRolloutInput = z.infer<typeof createRolloutInput>;
