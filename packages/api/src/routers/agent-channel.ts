/** What agents call, each request signed: heartbeats, the long-poll for work, and run reports. */
import type { TRPCRouterRecord } from '@trpc/server';
import { AuthenticationError, NotFoundError } from '@airlock/errors';
import { heartbeatInput, type IntegrationSpec, nextJobInput, nextJobOutput, releaseChunkInput, releaseChunkOutput, runProgress, runReport, updateReportInput, WAKEUP_STREAM_MS } from '@airlock/protocol';
import { dueUpdate, heartbeatWanted, recordUpdateReport } from '../rollouts.ts';
import { appendAudit, eventBy, prepared, recordAudit } from '@airlock/storage';
import { abandonedEvent, abandonRuns, decideForGroup, decideIntegration, sealJob } from '@airlock/dispatch';
import type { Context } from '../context.ts';
import type { AgentPrincipal } from '@airlock/auth';
import { agentProcedure } from '../trpc.ts';
import { agentKeyProcedures } from './agent-keys.ts';

interface QueuedRun {
  id: string;
  integration_id: string;
  integration_version: number;
  /** Set when the run was queued for a group rather than for this agent. */
  group_id: string | null;
  spec: IntegrationSpec;
}

/** Whether the agent is current and anything is queued for it or its groups: every long-poll asks, so it is prepared. */
const QUEUED_PROBE = prepared(
  `SELECT a.status = 'active' AND a.public_key = $3 AS current,
     EXISTS (SELECT 1 FROM runs WHERE tenant_id = $2 AND status = 'queued' AND (agent_id = $1 OR group_id IN (
       SELECT m.group_id FROM agent_group_members m JOIN agent_groups g ON g.id = m.group_id WHERE m.agent_id = $1 AND g.tenant_id = $2))) AS queued
   FROM agents a WHERE a.id = $1`,
);

/** A heartbeat's one statement (see `heartbeat`), prepared as every idle agent sends it. */
const HEARTBEAT = prepared(
  `WITH changed AS (
     UPDATE agents SET version = $1, hostname = $2 WHERE id = $3 AND (version IS DISTINCT FROM $1 OR hostname IS DISTINCT FROM $2) RETURNING 1
   ), summary AS (
     INSERT INTO agent_summaries (agent_id, tenant_id, summary, reported_at) SELECT $3, $4, $5::jsonb, $6 WHERE $5::jsonb IS NOT NULL
     ON CONFLICT (agent_id) DO UPDATE SET summary = EXCLUDED.summary, reported_at = EXCLUDED.reported_at
     WHERE agent_summaries.summary IS DISTINCT FROM EXCLUDED.summary
     RETURNING 1
   )
   SELECT key_rotation_requested_at,
     EXISTS (SELECT 1 FROM rollout_agents ra JOIN rollouts r ON r.id = ra.rollout_id
             WHERE ra.agent_id = $3 AND r.state = 'active' AND ra.state IN ('waiting', 'offered')) AS update_pending
   FROM agents WHERE id = $3`,
);

/** Runs refused at one claim before the agent is answered; each refusal closes its run, so the queue shrinks. */
const MAX_REFUSALS_PER_CLAIM = 100;

/**
 * Hands out the oldest queued run of the agent or of one of its groups (a group's run goes to
 * whichever member asks first; SKIP LOCKED keeps two members from taking the same one), after
 * checking its scopes again: grants revoked or expired since the run was queued fail the run
 * (`not-allowed`, audited) and it never reaches an agent. A revoked agent, or a request signed with
 * a key rotated away since, gets nothing.
 */
async function claimJob(ctx: Context, agent: AgentPrincipal, procedure: 'agent.nextJob' | 'agent.wakeups') {
  // Most claims find nothing: one statement (one round trip) says so, and only a queued run or a
  // stale agent takes the claiming transaction below.
  const [probe] = await ctx.db.query<{ current: boolean; queued: boolean }>(
    QUEUED_PROBE,
    [agent.agentId, agent.tenantId, agent.publicKey],
  );
  if (probe?.current && !probe.queued) return null;
  for (let refused = 0; refused < MAX_REFUSALS_PER_CLAIM; refused++) {
    const claimed = await ctx.db.transaction(async (tx) => {
      // Revoked, or its key rotated, while this request waited: it no longer stands.
      const [current] = await tx.query<{ status: string; public_key: string }>('SELECT status, public_key FROM agents WHERE id = $1', [agent.agentId]);
      if (current?.status !== 'active') return { kind: 'stale' as const, reason: 'agent revoked' };
      if (current.public_key !== agent.publicKey) return { kind: 'stale' as const, reason: 'retired key' };
      const [run] = await tx.query<QueuedRun>(
        `SELECT id, integration_id, integration_version, group_id, spec FROM runs
         WHERE tenant_id = $2 AND status = 'queued' AND (agent_id = $1 OR group_id IN (
           SELECT m.group_id FROM agent_group_members m JOIN agent_groups g ON g.id = m.group_id WHERE m.agent_id = $1 AND g.tenant_id = $2))
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [agent.agentId, agent.tenantId],
      );
      if (!run) return { kind: 'empty' as const };
      // A group's run needs the group's grants, whichever member takes it.
      const decision =
        run.group_id === null ? await decideIntegration(tx, agent, run.spec, ctx.now()) : await decideForGroup(tx, agent.tenantId, run.group_id, run.spec, ctx.now());
      if (!decision.allowed) {
        await tx.query("UPDATE runs SET status = 'failed', finished_at = $2, error_class = 'not-allowed' WHERE id = $1", [run.id, ctx.now()]);
        await appendAudit(tx, eventBy(agent, ctx.request, {
          action: 'scope-denied',
          target: run.id,
          outcome: 'denied',
          meta: { integrationId: run.integration_id, integrationVersion: run.integration_version, requiredScopes: decision.scopes, reason: decision.reason },
        }));
        return { kind: 'refused' as const };
      }
      await tx.query("UPDATE runs SET status = 'running', claimed_at = $2, agent_id = $3 WHERE id = $1", [run.id, ctx.now(), agent.agentId]);
      await appendAudit(tx, eventBy(agent, ctx.request, {
        action: 'run-dispatch',
        target: run.id,
        outcome: 'success',
        meta: { integrationId: run.integration_id, integrationVersion: run.integration_version, groupId: run.group_id },
      }));
      return { kind: 'job' as const, job: { runId: run.id, integrationId: run.integration_id, integrationVersion: run.integration_version, spec: run.spec } };
    });
    if (claimed.kind === 'empty') return null;
    if (claimed.kind === 'stale') {
      // End the request refused, as the agent's next one would be.
      await recordAudit(ctx.db, eventBy(agent, ctx.request, { action: 'agent-request-refused', target: procedure, outcome: 'denied', meta: { reason: claimed.reason } }));
      throw new AuthenticationError(`agent request refused: ${claimed.reason}`);
    }
    if (claimed.kind === 'job') return claimed.job;
  }
  return null;
}

export const agentChannelRouter = {
  heartbeat: agentProcedure.input(heartbeatInput).mutation(async ({ ctx, input }) => {
    // One statement, so a heartbeat costs no more with a summary or a rollout than without.
    // `last_seen_at` was written by the authentication of this very request. The agent's row is
    // rewritten only when the version or hostname changed, and the summary only when it changed (an
    // idle agent's is the same each time), never on every heartbeat.
    const [agent] = await ctx.db.query<{ key_rotation_requested_at: Date | null; update_pending: boolean }>(
      HEARTBEAT,
      [input.version, input.hostname, ctx.agent.agentId, ctx.agent.tenantId, input.summary ? JSON.stringify(input.summary) : null, ctx.now()],
    );
    // A release due to this agent from an active rollout: the agent checks the release key's signature itself.
    const update = agent?.update_pending ? await ctx.db.transaction((tx) => dueUpdate(tx, ctx.agent, ctx.request, input.version, ctx.now())) : null;
    // An admin asked for a new key: the agent rotates it with `agent.rotateKey`.
    return { ok: true as const, serverTime: ctx.now().toISOString(), rotateKey: Boolean(agent?.key_rotation_requested_at), update };
  }),

  /** One chunk of a release's artifact, for an agent it was offered to: downloads go through the signed channel, and so through its proxy. */
  releaseChunk: agentProcedure
    .input(releaseChunkInput)
    .output(releaseChunkOutput)
    .mutation(async ({ ctx, input }) => {
      const [chunk] = await ctx.db.query<{ data: Buffer }>(
        `SELECT c.data FROM release_chunks c
         JOIN rollouts r ON r.release_id = c.release_id AND r.state = 'active'
         JOIN rollout_agents ra ON ra.rollout_id = r.id AND ra.agent_id = $3 AND ra.state = 'offered'
         WHERE c.release_id = $1 AND c.chunk_index = $2 AND c.tenant_id = $4
         LIMIT 1`,
        [input.releaseId, input.index, ctx.agent.agentId, ctx.agent.tenantId],
      );
      if (!chunk) throw new NotFoundError('no such chunk of a release offered to this agent');
      return { data: Buffer.from(chunk.data).toString('base64') };
    }),

  /** The agent's word on an offered update: installed, refused, rolled back. Audited; failures count towards the ring's halt threshold. */
  reportUpdate: agentProcedure.input(updateReportInput).mutation(async ({ ctx, input }) => {
    const known = await ctx.db.transaction((tx) => recordUpdateReport(tx, ctx.agent, ctx.request, input, ctx.now()));
    if (!known) throw new NotFoundError('this agent was not offered that release');
    return { ok: true as const };
  }),

  /**
   * Long-poll: answers at once when a run is queued, else waits up to `waitMs` for one. An idle
   * agent first closes the runs it lost (it stopped mid-run), so they neither stay running forever
   * nor block their integration.
   */
  nextJob: agentProcedure
    .input(nextJobInput)
    .output(nextJobOutput)
    .mutation(async ({ ctx, input, signal }) => {
      if (input.idle) {
        await ctx.db.transaction(async (tx) => {
          for (const run of await abandonRuns(tx, { agentId: ctx.agent.agentId }, ctx.now())) {
            await appendAudit(tx, eventBy(ctx.agent, ctx.request, abandonedEvent(run, 'agent-restarted')));
          }
        });
      }
      // The hold ends at a random point in the wait's last fifth: agents that started together (a
      // fleet after a restart) drift apart over a few long-polls instead of all asking at once.
      const deadline = Date.now() + input.waitMs - Math.floor(Math.random() * (input.waitMs / 5));
      // Waiting before the claim, so a wake-up that comes while it runs is not lost.
      const waiter = ctx.dispatcher.waiter(ctx.agent.agentId);
      try {
        for (;;) {
          const job = await claimJob(ctx, ctx.agent, 'agent.nextJob');
          if (job) return { envelope: sealJob(ctx, ctx.agent, job) };
          if (Date.now() >= deadline || signal?.aborted) return { envelope: null };
          // Nothing for this agent until a wake-up: the wait itself costs no database work.
          if (!(await waiter.wait(deadline, signal))) return { envelope: null };
        }
      } finally {
        waiter.close();
      }
    }),

  /**
   * The agent's wake-up stream (server-sent events): hands out the agent's next job as `nextJob`
   * does, as soon as one is queued for it (at once if one already is), then ends; with nothing for
   * the agent it stays open until `WAKEUP_STREAM_MS`. A waiting agent so costs one request per
   * stream, not one per long-poll, and no database work while nothing happens for it: wake-ups come
   * through LISTEN/NOTIFY, and the sweep that catches lost ones also keeps its last-seen time
   * fresh. The stream is kept open with pings (see http.ts). Woken with no job but with news only a
   * heartbeat brings (an admin's request to rotate the agent's key, an update due: see
   * `heartbeatWanted`), it asks the agent to heartbeat now, and ends. Ends refused, as the agent's
   * next request would be, once the agent is revoked or its key rotated away.
   */
  wakeups: agentProcedure.subscription(async function* ({ ctx, signal }) {
    const ends = Date.now() + WAKEUP_STREAM_MS - Math.floor(Math.random() * (WAKEUP_STREAM_MS / 5));
    // Waiting before the first claim, so a wake-up that comes while it runs is not lost.
    const waiter = ctx.dispatcher.waiter(ctx.agent.agentId);
    try {
      for (let opening = true, woken = true; woken; opening = false, woken = await waiter.wait(ends, signal)) {
        const job = await claimJob(ctx, ctx.agent, 'agent.wakeups');
        if (job) {
          yield { envelope: sealJob(ctx, ctx.agent, job) };
          return;
        }
        // Only on a wake-up: an agent that cannot rotate must not be asked again at every opening.
        if (opening) continue;
        if (await heartbeatWanted(ctx.db, ctx.agent.agentId, ctx.now())) {
          yield { heartbeat: true as const };
          return;
        }
      }
    } finally {
      waiter.close();
    }
  }),

  /**
   * Best effort: the counters of a run in flight, for the console's live view. Not audited (the
   * receipt is); a run that is not running for this agent is refused, and the agent drops the report.
   */
  progress: agentProcedure.input(runProgress).mutation(async ({ ctx, input }) => {
    const { runId, ...counters } = input;
    const updated = await ctx.db.query<{ id: string }>(
      "UPDATE runs SET progress = $1, progress_at = $2 WHERE id = $3 AND agent_id = $4 AND status = 'running' RETURNING id",
      [JSON.stringify(counters), ctx.now(), runId, ctx.agent.agentId],
    );
    if (updated.length === 0) throw new NotFoundError('no running run with that id for this agent');
    return { accepted: true as const };
  }),

  reportRun: agentProcedure.input(runReport).mutation(async ({ ctx, input }) => {
    const agent = ctx.agent;
    await ctx.db.transaction(async (tx) => {
      const [run] = await tx.query<{ id: string }>(
        `UPDATE runs SET status = $1, finished_at = $2, error_class = $3, report = $4, failure_reason = $7
         WHERE id = $5 AND agent_id = $6 AND status = 'running' RETURNING id`,
        [input.status, input.finishedAt, input.errorClass ?? null, JSON.stringify(input), input.runId, agent.agentId, input.status === 'failed' ? (input.reason ?? null) : null],
      );
      if (!run) throw new NotFoundError('no running run with that id for this agent');
      await appendAudit(tx, eventBy(agent, ctx.request, {
        action: 'run-complete',
        target: input.runId,
        outcome: input.status === 'succeeded' ? 'success' : 'failure',
        meta: {
          errorClass: input.errorClass ?? null,
          ...(input.status === 'failed' && input.reason !== undefined ? { reason: input.reason } : {}),
          files: input.files.length,
          skippedNames: input.skippedNames?.count ?? 0,
          bytesIn: input.bytesIn,
          bytesOut: input.bytesOut,
          recipientFingerprints: input.recipientFingerprints,
        },
      }));
      if (input.errorClass === 'policy-violation') {
        await appendAudit(tx, eventBy(agent, ctx.request, {
          action: 'policy-violation',
          target: input.runId,
          outcome: 'denied',
          meta: { kind: input.violation?.kind ?? 'unknown' },
        }));
      }
    });
    return { ok: true as const };
  }),

  ...agentKeyProcedures,
} satisfies TRPCRouterRecord;
