import { z } from 'zod';
import { errorClasses } from '@airlock/errors';

export const uuid = z.uuid();
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256');
const fingerprint = z.string().regex(/^[0-9A-F]{40}$|^[0-9A-F]{64}$/, 'expected an uppercase hex OpenPGP fingerprint');
const shortText = z.string().min(1).max(200);

export const errorClassSchema = z.enum(errorClasses);

/** `connectorId@version`, e.g. `sftp@1`. */
export const connectorRef = z.string().regex(/^[a-z][a-z0-9-]{0,40}@[1-9][0-9]{0,3}$/, 'expected connector@version');

const armoredPublicKey = z
  .string()
  .max(64 * 1024)
  .refine((text) => text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----'), 'expected an armored OpenPGP public key');

/** A name the runtime's time-zone database knows, e.g. `Europe/Berlin` or `UTC`. */
export function isTimeZone(zone: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * When the control plane starts runs by itself. The field ranges of `cron` are checked on save by
 * the control plane's cron parser; here only its shape, so the protocol needs no parser.
 */
export const scheduleSpec = z.strictObject({
  /** Five fields: minute hour day-of-month month day-of-week, read in `timezone`. */
  cron: z
    .string()
    .trim()
    .max(200)
    .refine((text) => text.split(/\s+/).length === 5, 'expected 5 fields: minute hour day-of-month month day-of-week'),
  timezone: z.string().max(64).refine(isTimeZone, 'expected an IANA time zone such as Europe/Berlin').default('UTC'),
  /** After downtime: `run-once` collapses every missed fire time into one run; `skip` drops them. */
  missed: z.enum(['run-once', 'skip']).default('run-once'),
});
export type ScheduleSpec = z.infer<typeof scheduleSpec>;

export const integrationSpec = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lowercase letters, digits, dot, dash, underscore; 1 to 63'),
  agentId: uuid,
  source: z.strictObject({ connector: connectorRef, config: z.record(z.string(), z.unknown()) }),
  destination: z.strictObject({ connector: connectorRef, config: z.record(z.string(), z.unknown()) }),
  recipients: z.array(armoredPublicKey).min(1).max(16),
  schedule: scheduleSpec.optional(),
});
export type IntegrationSpec = z.infer<typeof integrationSpec>;

// ---- enrollment -------------------------------------------------------------------------------

export const createEnrollmentTokenInput = z.strictObject({
  /** Minutes until the token expires; at most 30. */
  ttlMinutes: z.number().int().min(1).max(30).default(15),
});

export const enrollInput = z.strictObject({
  token: z.string().regex(/^aet_[A-Za-z0-9_-]{32,64}$/, 'not an enrollment token'),
  /** The agent's Ed25519 public key, base64 (32 bytes). */
  publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected a base64 Ed25519 public key'),
  hostname: z.string().min(1).max(255),
  version: z.string().min(1).max(64),
});
export const enrollOutput = z.strictObject({ agentId: uuid, tenantId: uuid });

// ---- agent channel ----------------------------------------------------------------------------

export const heartbeatInput = z.strictObject({
  version: z.string().min(1).max(64),
  hostname: z.string().min(1).max(255),
});

export const nextJobInput = z.strictObject({
  /** How long the control plane may hold the request open waiting for work. */
  waitMs: z.number().int().min(0).max(30_000).default(25_000),
});

export const job = z.strictObject({
  runId: uuid,
  integrationId: uuid,
  integrationVersion: z.number().int().positive(),
  spec: integrationSpec,
});
export type Job = z.infer<typeof job>;
export const nextJobOutput = z.strictObject({ job: job.nullable() });

/** One delivered file. Metadata only: sizes, hashes and durations. */
export const fileReport = z.strictObject({
  sourcePath: z.string().max(4096),
  bytesIn: z.number().int().nonnegative(),
  bytesOut: z.number().int().nonnegative(),
  plaintextSha256: sha256Hex,
  ciphertextSha256: sha256Hex,
  durationMs: z.number().int().nonnegative(),
});
export type FileReport = z.infer<typeof fileReport>;

export const runReport = z.strictObject({
  runId: uuid,
  status: z.enum(['succeeded', 'failed']),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  bytesIn: z.number().int().nonnegative(),
  bytesOut: z.number().int().nonnegative(),
  files: z.array(fileReport).max(10_000),
  recipientFingerprints: z.array(fingerprint).max(16),
  errorClass: errorClassSchema.optional(),
  /** For a policy violation: which side of the job the local policy refused. */
  violation: z.strictObject({ kind: z.enum(['source', 'destination', 'file', 'connector']) }).optional(),
});
export type RunReport = z.infer<typeof runReport>;

// ---- admin ------------------------------------------------------------------------------------

export const byId = z.strictObject({ id: uuid });

export const listRunsInput = z.strictObject({
  integrationId: uuid.optional(),
  limit: z.number().int().min(1).max(500).default(50),
});

export const listAuditInput = z.strictObject({
  action: z.string().max(100).optional(),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  afterSeq: z.number().int().nonnegative().optional(),
  limit: z.number().int().min(1).max(1000).default(100),
});

export const runStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof runStatus>;

export { shortText };
