/**
 * Job envelopes: the only form in which work reaches an agent. Each one is signed with the control
 * plane's key (which the agent pinned at enrollment), names one tenant, agent and run, expires soon,
 * and carries a nonce the agent refuses to see twice. A group's run is sealed for the member that
 * claimed it.
 */
import { randomBytes } from 'node:crypto';
import { signStatement } from '@airlock/identity';
import type { IntegrationSpec, JobEnvelopePayload, SignedStatement } from '@airlock/protocol';
import type { AgentPrincipal } from '@airlock/auth';
import type { Signer } from '@airlock/storage';

/** How long an agent may take to start a job after it was handed out. */
export const ENVELOPE_LIFETIME_MS = 5 * 60_000;

export interface ClaimedJob {
  runId: string;
  integrationId: string;
  integrationVersion: number;
  spec: IntegrationSpec;
}

/**
 * The spec as the envelope carries it. A group's run names the member that claimed it, because an
 * agent accepts only envelopes bound to itself: that keeps a group envelope from being replayed to
 * another member. A spec that names an agent is left as it is, so a mismatch is refused on the agent.
 */
function specForClaimant(spec: IntegrationSpec, agentId: string): IntegrationSpec {
  if (spec.group === undefined) return spec;
  const { group: _group, ...rest } = spec;
  return { ...rest, agentId };
}

export function sealJob(ctx: { signer: Signer; now: () => Date }, agent: AgentPrincipal, job: ClaimedJob): SignedStatement {
  const issuedAt = ctx.now();
  const payload: JobEnvelopePayload = {
    v: 1,
    tenantId: agent.tenantId,
    agentId: agent.agentId,
    runId: job.runId,
    integrationId: job.integrationId,
    integrationVersion: job.integrationVersion,
    spec: specForClaimant(job.spec, agent.agentId),
    issuedAt: issuedAt.toISOString(),
    expiresAt: new Date(issuedAt.getTime() + ENVELOPE_LIFETIME_MS).toISOString(),
    nonce: randomBytes(18).toString('base64url'),
  };
  return signStatement('job', payload, (message) => ctx.signer.sign(message));
}
