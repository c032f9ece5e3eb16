import { z } from 'zod';
import { nameTemplateProblem, nameTemplateSyntax } from '@airlock/connector-api/definition';
import { errorClasses } from '@airlock/errors';
import { displayText, isStorableJson, text } from './text.ts';
import { LONG_POLL_MAX_WAIT_MS, LONG_POLL_WAIT_MS } from './timings.ts';

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

// ---- integration options: every field optional, every default the safe choice ---------------

export { nameTemplatePlaceholders } from '@airlock/connector-api/definition';

// The agent normalizes and policy-checks this path again; here it only has to look like one.
const absoluteDirectory = z
  .string()
  .max(4096)
  .refine(
    // eslint-disable-next-line no-control-regex
    (value) => value.startsWith('/') && !value.split('/').includes('..') && !/[\u0000-\u001f\u007f\\]/.test(value),
    'an absolute path without `..`, backslashes or control characters',
  );

export const outputOptions = z.strictObject({
  /** ASCII-armored output instead of binary packets. */
  armor: z.boolean().default(false),
  /** The delivered file's name; must come out as one safe path component or the run fails. */
  nameTemplate: nameTemplateSyntax.default('{name}.pgp'),
  /** Sign with the agent's own OpenPGP signing key as well as encrypt. */
  sign: z.boolean().default(false),
  /** `rfc4880` (SEIPDv1, what GnuPG 2.2 reads) or `rfc9580` (AEAD, SEIPDv2; every recipient must advertise it). */
  profile: z.enum(['rfc4880', 'rfc9580']).default('rfc4880'),
});

export const selectionOptions = z.strictObject({
  /** A file whose size or mtime changes within this many milliseconds is left for a later run; 0 disables. */
  stableForMs: z.number().int().min(0).max(600_000).default(2000),
});

export const afterDeliveryOptions = z
  .strictObject({
    /** What happens to the source file once its delivery is committed; the agent's local policy must allow it. */
    action: z.enum(['keep', 'delete', 'archive']).default('keep'),
    archiveDirectory: absoluteDirectory.optional(),
  })
  .refine((value) => (value.action === 'archive') === (value.archiveDirectory !== undefined), {
    message: 'archiveDirectory is required with action archive, and only then',
    path: ['archiveDirectory'],
  });

/** Files of one run transferred in parallel. */
export const concurrencyOption = z.number().int().min(1).max(8);

// ---- field scopes ------------------------------------------------------------------------------
// Which fields of a CSV or JSON Lines file may leave the premises, and an optional data contract.
export const fieldRule = z.strictObject({
  type: z.enum(['string', 'integer', 'number', 'boolean', 'date']).default('string'),
  /** A regular expression the whole value must match (anchored for you). */
  pattern: z
    .string()
    .min(1)
    .max(500)
    .refine((pattern) => {
      try {
        new RegExp(pattern, 'u');
        return true;
      } catch {
        return false;
      }
    }, 'not a valid regular expression')
    .optional(),
  maxLength: z.number().int().min(1).optional(),
  /** Whether an empty value (CSV) or null (JSON) is accepted. */
  nullable: z.boolean().default(false),
});
export type FieldRule = z.output<typeof fieldRule>;

export const fieldScope = z.strictObject({
  format: z.enum(['csv', 'jsonl']),
  /** The fields that may leave, in output order. Everything else is dropped. */
  allow: z.array(z.string().min(1).max(200)).min(1).max(1000),
  /** CSV field delimiter; default `,`. The first row must be the header. */
  delimiter: z.string().length(1).default(','),
  /** Fields that must be present in every row (CSV: in the header). */
  required: z.array(z.string().min(1).max(200)).default([]),
  /** Rules per field; a row that breaks one fails the run with the row number and rule, never its content. */
  rules: z.record(z.string().min(1).max(200), fieldRule).default({}),
  /** Longest accepted record (a JSON line; a CSV record with its quoted line breaks), in bytes; default 16 MiB. */
  maxLineBytes: z.number().int().min(1024).max(1 << 30).default(16 * 1024 * 1024),
  /** The bytes' encoding; the output keeps it, so granted values leave unchanged. Default UTF-8. */
  encoding: z.enum(['utf-8', 'latin1', 'windows-1252']).default('utf-8'),
}).refine(
  // The CSV reader splits bytes, so the delimiter must be one byte, the same in every supported encoding.
  (scope) => {
    const code = scope.delimiter.charCodeAt(0);
    return !'"\r\n'.includes(scope.delimiter) && (code < 0x80 || (scope.encoding !== 'utf-8' && code >= 0xa0 && code <= 0xff));
  },
  { message: 'the delimiter must be one ASCII character (Latin-1 encodings: or one of U+00A0 to U+00FF), not a quote or line break', path: ['delimiter'] },
);
export type FieldScope = z.output<typeof fieldScope>;

/** A connector's settings, checked in full by the connector's own schema; here only that PostgreSQL can store them. */
const connectorConfig = z.record(z.string(), z.unknown()).refine(isStorableJson, 'must not contain NUL or unpaired surrogate characters');

/** A name of an agent group. */
const groupRef = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lowercase letters, digits, dot, dash, underscore; 1 to 63');

export const integrationSpec = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lowercase letters, digits, dot, dash, underscore; 1 to 63'),
  /** The agent that runs it; or `group`, whose runs go to any healthy member. Exactly one of the two. */
  agentId: uuid.optional(),
  group: groupRef.optional(),
  source: z.strictObject({ connector: connectorRef, config: connectorConfig }),
  destination: z.strictObject({ connector: connectorRef, config: connectorConfig }),
  recipients: z.array(armoredPublicKey).min(1).max(16),
  schedule: scheduleSpec.optional(),

  output: outputOptions.optional(),
  selection: selectionOptions.optional(),
  afterDelivery: afterDeliveryOptions.optional(),
  concurrency: concurrencyOption.optional(),
  /** Fields not granted here are dropped on the agent before encryption. */
  fields: fieldScope.optional(),
}).refine((spec) => (spec.agentId === undefined) !== (spec.group === undefined), 'give exactly one of agentId and group');
export type IntegrationSpec = z.infer<typeof integrationSpec>;
export type IntegrationSpecInput = z.input<typeof integrationSpec>;

/**
 * What saving an integration accepts, whoever calls (console, CLI, API): the spec, with a name
 * template that gives ordinary files a safe name by the rules the agent renders names with. Jobs
 * and receipts keep `integrationSpec`, so integrations saved before this check still parse.
 */
export const integrationSpecToSave = integrationSpec.superRefine((spec, ctx) => {
  const template = spec.output?.nameTemplate;
  const problem = template === undefined ? undefined : nameTemplateProblem(template);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['output', 'nameTemplate'], message: problem });
});

/** The options of a spec with every default filled in: what the agent runs with. */
export const integrationOptions = z.strictObject({
  output: outputOptions.prefault({}),
  selection: selectionOptions.prefault({}),
  afterDelivery: afterDeliveryOptions.prefault({}),
  concurrency: concurrencyOption.default(1),
});
export type IntegrationOptions = z.infer<typeof integrationOptions>;

// ---- enrollment -------------------------------------------------------------------------------

export const createEnrollmentTokenInput = z.strictObject({
  /** Minutes until the token expires; at most 30. */
  ttlMinutes: z.number().int().min(1).max(30).default(15),
});

export const enrollInput = z.strictObject({
  token: z.string().regex(/^aet_[A-Za-z0-9_-]{32,64}$/, 'not an enrollment token'),
  /** The agent's Ed25519 public key, base64 (32 bytes). */
  publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected a base64 Ed25519 public key'),
  hostname: displayText({ min: 1, max: 255 }),
  version: displayText({ min: 1, max: 64 }),
});
export const enrollOutput = z.strictObject({ agentId: uuid, tenantId: uuid });

/** The longest failure reason a run report carries, in code points. */
export const MAX_REASON_LENGTH = 500;

/** The longest last error a heartbeat summary carries, in code points. */
export const MAX_SUMMARY_ERROR_LENGTH = 500;

// ---- agent channel ----------------------------------------------------------------------------

/**
 * What an agent says about itself in each heartbeat, for operators: metadata only (counts, sizes,
 * its version, whether it goes through a proxy, and its last error's class-based wording), never a
 * path, file name or secret. The control plane re-exports it per agent in its metrics and shows it
 * in the console. Counters run from the agent's start.
 */
export const heartbeatSummary = z.strictObject({
  version: displayText({ min: 1, max: 64 }),
  /** The control channel goes through an HTTP proxy. */
  proxy: z.boolean(),
  /** The last failure the agent met (a run's reason or a failed control-plane call), for people; null: none since it started. */
  lastError: displayText({ min: 1, max: MAX_SUMMARY_ERROR_LENGTH }).nullable(),
  /** Runs this agent finished since it started, by outcome. */
  runs: z.strictObject({ succeeded: z.number().int().nonnegative(), failed: z.number().int().nonnegative() }),
  /** Ciphertext bytes and files delivered since it started. */
  bytesDelivered: z.number().int().nonnegative(),
  filesDelivered: z.number().int().nonnegative(),
  /** Reports waiting in the local outbox. */
  outboxDepth: z.number().int().nonnegative(),
  /** When the agent process started. */
  startedAt: z.iso.datetime(),
});
export type HeartbeatSummary = z.infer<typeof heartbeatSummary>;

export const heartbeatInput = z.strictObject({
  version: displayText({ min: 1, max: 64 }),
  hostname: displayText({ min: 1, max: 255 }),
  /** Absent from agents older than the summary. */
  summary: heartbeatSummary.optional(),
});

export const nextJobInput = z.strictObject({
  /** How long the control plane may hold the request open waiting for work. */
  waitMs: z.number().int().min(0).max(LONG_POLL_MAX_WAIT_MS).default(LONG_POLL_WAIT_MS),
  /**
   * The agent runs nothing and holds no unsent report: a run still open for it was lost (the agent
   * stopped mid-run) and is closed as failed before new work is handed out.
   */
  idle: z.boolean().default(false),
});

export const job = z.strictObject({
  runId: uuid,
  integrationId: uuid,
  integrationVersion: z.number().int().positive(),
  spec: integrationSpec,
});
export type Job = z.infer<typeof job>;

/** One delivered file. Metadata only: sizes, hashes and durations. */
export const fileReport = z.strictObject({
  sourcePath: z.string().max(4096),
  bytesIn: z.number().int().nonnegative(),
  bytesOut: z.number().int().nonnegative(),
  /** HMAC-SHA256 of the plaintext under a key that stays on the agent: never a bare digest anyone could match a guess against. */
  plaintextHmac: sha256Hex,
  ciphertextSha256: sha256Hex,
  durationMs: z.number().int().nonnegative(),
  /** The agent's signed receipt for this file (see `receiptPayload`). */
  receipt: z.strictObject({ payload: z.string().min(2).max(64 * 1024), signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/) }).optional(),
});
export type FileReport = z.infer<typeof fileReport>;

/** A listed entry the agent left in place because of its name. Names are metadata, never contents. */
export const skippedName = z.strictObject({
  /** The directory it was listed in. */
  directory: z.string().max(4096),
  /** Rendered for people: bytes that are not UTF-8, `%` and control characters percent-encoded (`M%FCller.csv`). */
  name: z.string().max(1024),
  reason: z.enum(['name-not-utf8', 'name-unsafe']),
});
export type SkippedName = z.infer<typeof skippedName>;

/** Why an entry was left in place, as logs and the console say it (see `checkListedName`). */
export const skippedNameReasons: Readonly<Record<SkippedName['reason'], string>> = {
  'name-not-utf8': 'name is not valid UTF-8',
  'name-unsafe': 'name has a control character, a slash or a backslash, or normalizes to one or to ..',
};

/** A stored report's reason in words; one this version does not know, as it is. */
export function describeSkipReason(reason: string): string {
  return Object.hasOwn(skippedNameReasons, reason) ? skippedNameReasons[reason as SkippedName['reason']] : reason;
}

/** At most this many skipped names travel in one report; `count` has them all. */
export const MAX_SKIPPED_NAMES = 100;


export const runReport = z.strictObject({
  runId: uuid,
  status: z.enum(['succeeded', 'failed']),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  bytesIn: z.number().int().nonnegative(),
  bytesOut: z.number().int().nonnegative(),
  files: z.array(fileReport).max(10_000),
  recipientFingerprints: z.array(fingerprint).max(16),
  /** Files the ledger shows as already delivered (same path, size and mtime). */
  skipped: z.number().int().nonnegative().default(0),
  /** Files left for a later run because they were still changing. */
  deferred: z.number().int().nonnegative().default(0),
  /**
   * Entries the selection would have taken but whose name the agent cannot handle (see
   * `skippedName`): left in place, and reported by every run until renamed. Absent when none.
   */
  skippedNames: z
    .strictObject({
      count: z.number().int().positive(),
      /** The first ones, sorted by directory and name. */
      entries: z.array(skippedName).min(1).max(MAX_SKIPPED_NAMES),
    })
    .refine((skipped) => skipped.count >= skipped.entries.length, 'count must cover every entry listed')
    .optional(),
  /** The agent's signing key, when the output was signed. */
  signerFingerprint: fingerprint.optional(),
  errorClass: errorClassSchema.optional(),
  /**
   * Why a failed run failed, for people: metadata only (a credential's name, a host and its key
   * fingerprint, a policy claim), never file content or secret values. The agent words it from its
   * typed errors (`reasonOf` in @airlock/errors), never from an arbitrary exception's message.
   */
  reason: displayText({ min: 1, max: MAX_REASON_LENGTH }).optional(),
  /** For a policy violation: which side of the job the local policy refused. */
  violation: z.strictObject({ kind: z.enum(['source', 'destination', 'file', 'connector', 'recipient', 'envelope']) }).optional(),
});
export type RunReport = z.infer<typeof runReport>;

// ---- admin ------------------------------------------------------------------------------------

export const byId = z.strictObject({ id: uuid });

export const listRunsInput = z.strictObject({
  integrationId: uuid.optional(),
  limit: z.number().int().min(1).max(500).default(50),
});

export const listAuditInput = z.strictObject({
  action: text({ max: 100 }).optional(),
  outcome: z.enum(['success', 'failure', 'denied']).optional(),
  /** `type` or `type:id`, e.g. `api-key:3f2c...`. */
  actor: text({ max: 300 }).regex(/^(admin|api-key|agent|system|anonymous)(:.{1,200})?$/, 'expected type or type:id').optional(),
  target: text({ max: 500 }).optional(),
  /** ISO 8601 with an offset; events at or after `since` and before `until`. */
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  /** Keyset pagination: the last seq of the previous page. */
  afterSeq: z.number().int().nonnegative().optional(),
  limit: z.number().int().min(1).max(1000).default(100),
});

export const listCheckpointsInput = z.strictObject({
  /** Paging backwards: the smallest checkpoint number of the previous page. */
  beforeNumber: z.number().int().positive().optional(),
  limit: z.number().int().min(1).max(1000).default(100),
});

// ---- scopes -----------------------------------------------------------------------------------
// Scope text is parsed by the control plane with @airlock/scopes; here only its size and shape.

/** `<action> <resource>`, e.g. `read sftp://host:22/exports/**`. */
const scopeText = text({ min: 1, max: 4096, trim: true });
/** An agent group's name: lowercase letters, digits, dot, dash, underscore; 1 to 63. */
export const groupName = groupRef;

/** A grant names exactly one subject: an agent by id or a group by name. */
export const addGrantInput = z
  .strictObject({
    agentId: uuid.optional(),
    group: groupName.optional(),
    scope: scopeText,
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .refine((value) => (value.agentId === undefined) !== (value.group === undefined), 'give exactly one of agentId and group');

export const listGrantsInput = z.strictObject({ agentId: uuid.optional() });

export const explainScopeInput = z.strictObject({ agentId: uuid, scope: scopeText });

export const createGroupInput = z.strictObject({ name: groupName });

export const addGroupMemberInput = z.strictObject({ group: groupName, agentId: uuid });

export const removeGroupMemberInput = z.strictObject({ group: groupName, agentId: uuid });

export const leastPrivilegeInput = z.strictObject({
  /** How far back runs count as use, in days. */
  days: z.number().int().min(1).max(365).default(30),
});

/** A new admin API key: a role no higher than the caller's, and a mandatory expiry of at most 90 days. */
export const createApiKeyInput = z.strictObject({
  name: displayText({ min: 1, max: 100 }),
  role: z.enum(['owner', 'admin', 'operator', 'auditor']),
  expiresInDays: z.number().int().min(1).max(90),
});

export const runStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof runStatus>;

export { shortText };

// ---- console and live progress -----------------------------------------------------------------

export { armoredPublicKey };

/** A running run's counters so far, sent by the agent now and then. Metadata only, never names or contents. */
export const runProgress = z.strictObject({
  runId: uuid,
  /** Plaintext bytes read from the source so far. */
  bytesIn: z.number().int().nonnegative(),
  /** Ciphertext bytes written to the destination so far. */
  bytesOut: z.number().int().nonnegative(),
  filesDone: z.number().int().nonnegative(),
  /** Files selected for this run, when known. */
  filesTotal: z.number().int().nonnegative().optional(),
});
export type RunProgress = z.infer<typeof runProgress>;
