/**
 * Rollouts of signed agent releases, as the agent channel sees them: which release an agent is due
 * (canary ring first, the rest once no canary is still under way, only inside the window), what
 * its reports do to the rollout, and when a ring's failures halt it. The control plane never checks
 * a release's signature for the agent: the agent does, against the key it pinned at install.
 */
import { type UpdateOffer, type UpdateStatus, UPDATE_OFFER_TIMEOUT_MS } from '@airlock/protocol';
import type { JsonValue } from '@airlock/audit';
import { appendAudit, eventBy, prepared, type Queryable } from '@airlock/storage';
import type { AgentPrincipal } from '@airlock/auth';
import type { RequestFacts } from './context.ts';

interface DueRow {
  rollout_id: string;
  release_id: string;
  ring: 'canary' | 'rest';
  state: 'waiting' | 'offered';
  offered_at: Date | null;
  downgrade: boolean;
  manifest: string;
  signature: string;
  version: string;
}

/** Closes a rollout with nothing left to offer, and halts one whose ring failed more than it may. Audited. */
async function settleRollout(tx: Queryable, rolloutId: string, audit: (action: string, meta: Record<string, JsonValue>) => Promise<void>, now: Date): Promise<void> {
  const [rollout] = await tx.query<{ state: string; halt_failure_rate: number }>('SELECT state, halt_failure_rate FROM rollouts WHERE id = $1 FOR UPDATE', [rolloutId]);
  if (rollout?.state !== 'active') return;
  const rings = await tx.query<{ ring: string; total: string; failed: string; open: string }>(
    `SELECT ring, count(*) AS total, count(*) FILTER (WHERE state = 'failed') AS failed, count(*) FILTER (WHERE state IN ('waiting', 'offered')) AS open
     FROM rollout_agents WHERE rollout_id = $1 GROUP BY ring`,
    [rolloutId],
  );
  for (const ring of rings) {
    const rate = Number(ring.failed) / Number(ring.total);
    if (Number(ring.failed) > 0 && rate > rollout.halt_failure_rate) {
      const reason = `${ring.failed} of ${ring.total} agents in the ${ring.ring} ring failed, above the threshold ${rollout.halt_failure_rate}`;
      await tx.query("UPDATE rollouts SET state = 'halted', halted_reason = $2, finished_at = $3 WHERE id = $1", [rolloutId, reason, now]);
      await audit('rollout-halt', { ring: ring.ring, failed: Number(ring.failed), total: Number(ring.total) });
      return;
    }
  }
  if (rings.every((ring) => Number(ring.open) === 0)) {
    await tx.query("UPDATE rollouts SET state = 'completed', finished_at = $2 WHERE id = $1", [rolloutId, now]);
    await audit('rollout-complete', {});
  }
}

function auditor(tx: Queryable, agent: AgentPrincipal, request: RequestFacts, rolloutId: string, now: Date) {
  return async (action: string, meta: Record<string, JsonValue>) => {
    // A halt, and an offer that timed out, are failures in the trail as an agent's own failure report is.
    const failed = action === 'rollout-halt' || meta['status'] === 'failed';
    await appendAudit(tx, eventBy(agent, request, { action, target: rolloutId, outcome: failed ? 'failure' : 'success', meta }), now);
  };
}

const OFFER_TIMEOUT_REASON = `no report within ${UPDATE_OFFER_TIMEOUT_MS / 60_000} minutes of the offer`;
const ROLLOUT_ACTOR = { type: 'system', id: 'rollout' } as const;

/**
 * Fails the other agents' offers in this agent's active rollouts that went unanswered past the
 * timeout. An agent that went silent after an offer (its host died mid-install) never heartbeats to
 * time itself out, and would otherwise hold the canary ring open forever: the rest never offered,
 * the ring never halted. Audited as the system's doing, not the heartbeating agent's.
 */
async function expireSilentOffers(tx: Queryable, agent: AgentPrincipal, now: Date): Promise<void> {
  const expired = await tx.query<{ rollout_id: string; agent_id: string; ring: string; version: string }>(
    `UPDATE rollout_agents ra SET state = 'failed', reason = $3, updated_at = $2
     FROM rollouts r JOIN releases rel ON rel.id = r.release_id
     WHERE r.id = ra.rollout_id AND r.state = 'active' AND ra.state = 'offered' AND ra.agent_id <> $1
       AND ra.offered_at < $2::timestamptz - make_interval(secs => $4::double precision / 1000)
       AND ra.rollout_id IN (SELECT rollout_id FROM rollout_agents WHERE agent_id = $1)
     RETURNING ra.rollout_id, ra.agent_id, ra.ring, rel.version`,
    [agent.agentId, now, OFFER_TIMEOUT_REASON, UPDATE_OFFER_TIMEOUT_MS],
  );
  for (const row of expired) {
    await appendAudit(
      tx,
      {
        tenantId: agent.tenantId,
        actor: ROLLOUT_ACTOR,
        action: 'agent-update',
        target: row.rollout_id,
        outcome: 'failure',
        sourceIp: null,
        meta: { status: 'failed', agentId: row.agent_id, version: row.version, ring: row.ring, reason: OFFER_TIMEOUT_REASON },
      },
      now,
    );
  }
  for (const rolloutId of new Set(expired.map((row) => row.rollout_id))) {
    const audit = async (action: string, meta: Record<string, JsonValue>) => {
      await appendAudit(tx, { tenantId: agent.tenantId, actor: ROLLOUT_ACTOR, action, target: rolloutId, outcome: action === 'rollout-halt' ? 'failure' : 'success', sourceIp: null, meta }, now);
    };
    await settleRollout(tx, rolloutId, audit, now);
  }
}

/** An agent's row `ra` of an active rollout is in an open ring: the canary ring, or the rest once no canary is still under way. */
const RING_OPEN = `(ra.ring = 'canary' OR NOT EXISTS (
  SELECT 1 FROM rollout_agents c WHERE c.rollout_id = ra.rollout_id AND c.ring = 'canary' AND c.state IN ('waiting', 'offered')))`;

/** See `heartbeatWanted`; a woken stream with no job for its agent asks it. */
const HEARTBEAT_WANTED = prepared(
  `SELECT a.key_rotation_requested_at IS NOT NULL OR EXISTS (
     SELECT 1 FROM rollout_agents ra JOIN rollouts r ON r.id = ra.rollout_id
     WHERE ra.agent_id = a.id AND ra.state = 'waiting' AND r.state = 'active' AND r.starts_at <= $2 AND r.ends_at > $2 AND ${RING_OPEN}) AS wanted
   FROM agents a WHERE a.id = $1`,
);

/**
 * Whether an agent has news that only a heartbeat brings it: an admin's request to rotate its
 * key, or an update due and not yet offered (the offer is made at the heartbeat, so it is not
 * asked twice for one release).
 */
export async function heartbeatWanted(db: Queryable, agentId: string, now: Date): Promise<boolean> {
  const [row] = await db.query<{ wanted: boolean }>(HEARTBEAT_WANTED, [agentId, now]);
  return row?.wanted === true;
}

/**
 * What the agent is due, from a heartbeat reporting `version`: an offer, or null. An agent already
 * running the release counts as installed; an offer unanswered for `UPDATE_OFFER_TIMEOUT_MS` as
 * failed, whether it was this agent's or (see expireSilentOffers) another's in its rollouts.
 */
export async function dueUpdate(tx: Queryable, agent: AgentPrincipal, request: RequestFacts, version: string, now: Date): Promise<UpdateOffer | null> {
  await expireSilentOffers(tx, agent, now);
  const [due] = await tx.query<DueRow>(
    `SELECT ra.rollout_id, r.release_id, ra.ring, ra.state, ra.offered_at, r.downgrade, rel.manifest, rel.signature, rel.version
     FROM rollout_agents ra
     JOIN rollouts r ON r.id = ra.rollout_id
     JOIN releases rel ON rel.id = r.release_id
     WHERE ra.agent_id = $1 AND r.state = 'active' AND r.starts_at <= $2 AND r.ends_at > $2 AND ra.state IN ('waiting', 'offered') AND ${RING_OPEN}
     ORDER BY r.created_at LIMIT 1
     FOR UPDATE OF ra`,
    [agent.agentId, now],
  );
  if (due === undefined) return null;
  const audit = auditor(tx, agent, request, due.rollout_id, now);
  if (version === due.version) {
    await tx.query("UPDATE rollout_agents SET state = 'installed', updated_at = $3 WHERE rollout_id = $1 AND agent_id = $2", [due.rollout_id, agent.agentId, now]);
    await audit('agent-update', { status: 'installed', version, ring: due.ring });
    await settleRollout(tx, due.rollout_id, audit, now);
    return null;
  }
  if (due.state === 'offered' && due.offered_at !== null && now.getTime() - due.offered_at.getTime() > UPDATE_OFFER_TIMEOUT_MS) {
    const reason = OFFER_TIMEOUT_REASON;
    await tx.query("UPDATE rollout_agents SET state = 'failed', reason = $3, updated_at = $4 WHERE rollout_id = $1 AND agent_id = $2", [due.rollout_id, agent.agentId, reason, now]);
    await audit('agent-update', { status: 'failed', version: due.version, ring: due.ring, reason });
    await settleRollout(tx, due.rollout_id, audit, now);
    return null;
  }
  if (due.state === 'waiting') {
    await tx.query("UPDATE rollout_agents SET state = 'offered', offered_at = $3, from_version = $4, updated_at = $3 WHERE rollout_id = $1 AND agent_id = $2", [
      due.rollout_id,
      agent.agentId,
      now,
      version,
    ]);
    await audit('update-offer', { version: due.version, from: version, ring: due.ring });
  }
  return { rolloutId: due.rollout_id, releaseId: due.release_id, release: { payload: due.manifest, signature: due.signature }, downgrade: due.downgrade };
}

/** An agent's report on an offered update. Returns false when the agent was not offered that release. */
export async function recordUpdateReport(
  tx: Queryable,
  agent: AgentPrincipal,
  request: RequestFacts,
  report: { rolloutId: string; releaseId: string; status: UpdateStatus; runningVersion: string; reason?: string | undefined },
  now: Date,
): Promise<boolean> {
  const [row] = await tx.query<{ ring: string; state: string }>(
    `SELECT ra.ring, ra.state FROM rollout_agents ra JOIN rollouts r ON r.id = ra.rollout_id
     WHERE ra.rollout_id = $1 AND ra.agent_id = $2 AND r.release_id = $3 FOR UPDATE OF ra`,
    [report.rolloutId, agent.agentId, report.releaseId],
  );
  if (row === undefined) return false;
  const audit = auditor(tx, agent, request, report.rolloutId, now);
  const failed = report.status === 'failed' || report.status === 'rolled-back' || report.status === 'refused';
  await appendAudit(
    tx,
    eventBy(agent, request, {
      action: 'agent-update',
      target: report.rolloutId,
      outcome: failed ? 'failure' : 'success',
      meta: { status: report.status, runningVersion: report.runningVersion, ring: row.ring, ...(report.reason === undefined ? {} : { reason: report.reason }) },
    }),
    now,
  );
  if (report.status === 'installing') {
    // Progress only: the outcome comes with the next report or heartbeat.
    await tx.query("UPDATE rollout_agents SET installing_at = $3, updated_at = $3 WHERE rollout_id = $1 AND agent_id = $2 AND state = 'offered'", [
      report.rolloutId,
      agent.agentId,
      now,
    ]);
    return true;
  }
  // A settled row stays settled: a late or repeated report changes the trail, not the outcome.
  if (row.state === 'installed' || row.state === 'failed') return true;
  await tx.query('UPDATE rollout_agents SET state = $3, reason = $4, updated_at = $5 WHERE rollout_id = $1 AND agent_id = $2', [
    report.rolloutId,
    agent.agentId,
    failed ? 'failed' : 'installed',
    report.reason ?? null,
    now,
  ]);
  await settleRollout(tx, report.rolloutId, audit, now);
  return true;
}
