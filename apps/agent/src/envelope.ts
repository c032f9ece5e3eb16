/**
 * Opens a job envelope from the control plane, or refuses it. Nothing about the job is used (no
 * source touched, no connection made) until the envelope is signed by the pinned key, addressed to
 * this agent and tenant, unexpired, and new.
 */
import { PolicyViolationError } from '@airlock/errors';
import { openStatement } from '@airlock/identity';
import { type Job, jobEnvelopePayload, MAX_ENVELOPE_LIFETIME_MS, type SecurityEventKind, signedStatement, uuid } from '@airlock/protocol';
import type { NonceStore } from './nonce-store.ts';

/** Clocks of agent and control plane may disagree this much. */
export const CLOCK_SKEW_MS = 60_000;

export class EnvelopeRefusal extends PolicyViolationError {
  constructor(
    readonly kind: SecurityEventKind,
    message: string,
    /** The run the envelope claims to be for, if it names one: metadata for the report, never trusted. */
    readonly claimedRunId?: string,
  ) {
    super(message);
  }
}

/** A run id the refused message claims, looked up without trusting anything else in it. */
function claimedRunId(raw: unknown): string | undefined {
  const find = (value: unknown, depth: number): string | undefined => {
    if (depth > 3 || typeof value !== 'object' || value === null) return undefined;
    const runId: unknown = Reflect.get(value, 'runId');
    if (typeof runId === 'string' && uuid.safeParse(runId).success) return runId;
    for (const key of ['job', 'payload']) {
      let inner: unknown = Reflect.get(value, key);
      if (typeof inner === 'string') {
        try {
          inner = JSON.parse(inner);
        } catch {
          inner = undefined;
        }
      }
      const found = find(inner, depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return find(raw, 0);
}

export interface EnvelopeContext {
  pin: Uint8Array;
  agentId: string;
  tenantId: string;
  nonces: NonceStore;
  now: Date;
}

/** The signed message, if it is one, without checking whom it is from (for a retry after following key rotations). */
export function isSignedStatement(raw: unknown): boolean {
  return signedStatement.safeParse(raw).success;
}

export async function openEnvelope(raw: unknown, ctx: EnvelopeContext): Promise<Job> {
  const runId = claimedRunId(raw);
  if (!isSignedStatement(raw)) throw new EnvelopeRefusal('envelope-unsigned', 'the job is not a signed envelope', runId);
  const opened = openStatement('job', raw, ctx.pin);
  if (opened === undefined) throw new EnvelopeRefusal('envelope-bad-signature', "the envelope is not signed by the pinned control-plane key", runId);
  const parsed = jobEnvelopePayload.safeParse(opened);
  if (!parsed.success) throw new EnvelopeRefusal('envelope-bad-signature', 'the signed envelope is not a job envelope', runId);
  const envelope = parsed.data;
  if (envelope.agentId !== ctx.agentId || envelope.tenantId !== ctx.tenantId || envelope.spec.agentId !== ctx.agentId) {
    throw new EnvelopeRefusal('envelope-other-agent', `the envelope is for agent ${envelope.agentId}, not this one`, envelope.runId);
  }
  const issued = Date.parse(envelope.issuedAt);
  const expires = Date.parse(envelope.expiresAt);
  const now = ctx.now.getTime();
  if (expires - issued > MAX_ENVELOPE_LIFETIME_MS || expires < issued) {
    throw new EnvelopeRefusal('envelope-expired', 'the envelope claims a lifetime longer than agents accept', envelope.runId);
  }
  if (now > expires + CLOCK_SKEW_MS) throw new EnvelopeRefusal('envelope-expired', `the envelope expired at ${envelope.expiresAt}`, envelope.runId);
  if (issued > now + CLOCK_SKEW_MS) throw new EnvelopeRefusal('envelope-expired', `the envelope is issued in the future (${envelope.issuedAt})`, envelope.runId);
  // Recorded before the job starts, so a crash mid-run cannot make a second delivery of it acceptable.
  if (!(await ctx.nonces.claim(envelope.nonce, expires + CLOCK_SKEW_MS, now))) {
    throw new EnvelopeRefusal('envelope-replayed', 'the envelope was seen before', envelope.runId);
  }
  return { runId: envelope.runId, integrationId: envelope.integrationId, integrationVersion: envelope.integrationVersion, spec: envelope.spec };
}
