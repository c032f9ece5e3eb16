/**
 * Custody: what the control plane signs for agents (job envelopes, key rotations), what agents sign
 * for everyone (delivery receipts), and what agents report when they refuse something (security
 * events). A signed statement carries its payload as the exact JSON text that was signed, so that
 * verification never depends on how a parser orders keys or fills defaults.
 */
import { z } from 'zod';
import { integrationSpec, uuid } from './schemas.ts';
import { displayText } from './text.ts';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256');
const openpgpFingerprint = z.string().regex(/^[0-9A-F]{40}$|^[0-9A-F]{64}$/, 'expected an uppercase hex OpenPGP fingerprint');
const base64Ed25519Key = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected a base64 Ed25519 public key');

/** `ed25519:` and the unpadded base64url SHA-256 of a 32-byte Ed25519 public key. */
export const CONTROL_PLANE_KEY_PATTERN = /^ed25519:[A-Za-z0-9_-]{43}$/;
export const controlPlaneKeyFingerprint = z.string().regex(CONTROL_PLANE_KEY_PATTERN, 'expected ed25519:<base64url SHA-256 of the key>');

/** The payload text and an Ed25519 signature over `<domain>\n<payload>`; the domain keeps one kind from passing for another. */
export const signedStatement = z.strictObject({
  payload: z.string().min(2).max(512 * 1024),
  /** Base64, 64 bytes. */
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected a base64 Ed25519 signature'),
});
export type SignedStatement = z.infer<typeof signedStatement>;

export const statementDomains = {
  job: 'airlock-job-envelope-v1',
  receipt: 'airlock-delivery-receipt-v1',
  rotation: 'airlock-control-plane-key-rotation-v1',
  release: 'airlock-agent-release-v1',
} as const;
export type StatementDomain = keyof typeof statementDomains;

/** Envelopes live at most this long; agents refuse longer ones, which bounds their nonce store. */
export const MAX_ENVELOPE_LIFETIME_MS = 60 * 60_000;

/** Everything that makes an agent do work. Signed by the control plane's key, which the agent pinned at enrollment. */
export const jobEnvelopePayload = z.strictObject({
  v: z.literal(1),
  tenantId: uuid,
  agentId: uuid,
  runId: uuid,
  integrationId: uuid,
  integrationVersion: z.number().int().positive(),
  spec: integrationSpec,
  issuedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  /** Unique per envelope; agents remember it until expiry and refuse it a second time. */
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
});
export type JobEnvelopePayload = z.infer<typeof jobEnvelopePayload>;

/** The long-poll's answer: a signed envelope, never a bare job. */
export const nextJobOutput = z.strictObject({ envelope: signedStatement.nullable() });

/**
 * One delivered file, signed by the agent's Ed25519 key. No plaintext digest: `plaintextHmac` is
 * keyed with a secret that never leaves the agent, so nobody holding the receipt can test a guess.
 */
export const receiptPayload = z.strictObject({
  v: z.literal(1),
  tenantId: uuid,
  agentId: uuid,
  runId: uuid,
  integrationId: uuid,
  integrationVersion: z.number().int().positive(),
  sourcePath: z.string().max(4096),
  /** The delivered name at the destination. */
  name: z.string().max(255),
  bytesIn: z.number().int().nonnegative(),
  plaintextHmac: sha256Hex,
  ciphertextSha256: sha256Hex,
  bytesOut: z.number().int().nonnegative(),
  recipientFingerprints: z.array(openpgpFingerprint).min(1).max(16),
  /** SHA-256 of the local policy file that allowed the delivery. */
  policyDigest: sha256Hex,
  startedAt: z.iso.datetime(),
  deliveredAt: z.iso.datetime(),
});
export type ReceiptPayload = z.infer<typeof receiptPayload>;

/** The control plane's new key, signed by the key it replaces. Agents follow a chain of these from their pin. */
export const keyRotationPayload = z.strictObject({
  v: z.literal(1),
  previousKey: base64Ed25519Key,
  nextKey: base64Ed25519Key,
  at: z.iso.datetime(),
});
export type KeyRotationPayload = z.infer<typeof keyRotationPayload>;

export const securityEventKinds = [
  'envelope-unsigned',
  'envelope-bad-signature',
  'envelope-expired',
  'envelope-replayed',
  'envelope-other-agent',
  'control-plane-key-mismatch',
  'control-plane-key-rotated',
  'policy-violation',
  'audit-rewritten',
  'audit-truncated',
  'receipt-forged',
  'local-config-refused',
  'update-bad-signature',
  'update-artifact-mismatch',
  'update-downgrade',
  'update-refused',
  'update-rolled-back',
] as const;
export type SecurityEventKind = (typeof securityEventKinds)[number];

/** What an agent reports of a refusal: metadata only, never the refused job's content. */
export const securityEventInput = z.strictObject({
  id: uuid,
  kind: z.enum(securityEventKinds),
  at: z.iso.datetime(),
  /** The run the refused envelope claimed, if it named one. */
  runId: uuid.optional(),
  /** One line, shown to admins as is: no control or bidi characters (the agent escapes them before sending). */
  reason: displayText({ min: 1, max: 500 }),
});
export type SecurityEventInput = z.infer<typeof securityEventInput>;

export const auditSegmentInput = z.strictObject({
  afterSeq: z.number().int().nonnegative(),
  untilSeq: z.number().int().positive(),
  limit: z.number().int().min(1).max(5000).default(1000),
});

/** Characters a shell passes through unquoted. */
const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

function shellWord(word: string): string {
  return SHELL_SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export interface EnrollCommand {
  /** The program and its arguments, for anything that runs it without a shell. */
  argv: string[];
  /** The same argv as one line for a POSIX shell, each argument quoted when it needs to be. */
  text: string;
}

/** Where the installed agent keeps its identity and state (the Debian package's state directory). */
export const AGENT_STATE_DIR = '/var/lib/airlock';

/**
 * The one command an on-prem admin runs to enroll an agent (the CLI prints it, the console shows
 * it): the installed binary, the installed agent's data directory, and the control plane's key,
 * which the agent checks before the token is redeemed.
 */
export function enrollCommand(options: { url: string; token: string; controlPlaneKey: string }): EnrollCommand {
  const argv = ['airlock-agent', 'enroll', '--url', options.url, '--token', options.token, '--control-plane-key', options.controlPlaneKey, '--dir', AGENT_STATE_DIR];
  return { argv, text: argv.map(shellWord).join(' ') };
}
