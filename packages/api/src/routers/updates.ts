/**
 * Releases and rollouts, for admins. A release is created from its signed manifest, its artifact
 * uploaded in fixed-size chunks (requests stay under the body limit), then published once size and
 * SHA-256 match the manifest. A rollout targets the tenant's agents in two rings, canary group
 * first. The control plane cannot sign a release: agents verify each one against the release key
 * they pinned at install.
 */
import { createHash } from 'node:crypto';
import type { TRPCRouterRecord } from '@trpc/server';
import { ConflictError, NotFoundError, UserError, formatIssues } from '@airlock/errors';
import {
  byId,
  createReleaseInput,
  createRolloutInput,
  RELEASE_CHUNK_BYTES,
  releaseManifest,
  uploadReleaseChunkInput,
} from '@airlock/protocol';
import { appendAudit, eventBy } from '@airlock/storage';
import { notifyAgents, WAKE_CHANNEL } from '@airlock/dispatch';
import { procedureFor } from '../trpc.ts';

/** A rollout's window when the admin names none: from now, for this long (ms). */
const DEFAULT_ROLLOUT_WINDOW_MS = 7 * 24 * 60 * 60_000;

interface ReleaseRow {
  id: string;
  version: string;
  platform: string;
  size: string;
  sha256: string;
  downgrade_allowed: boolean;
  state: string;
  created_at: Date;
  published_at: Date | null;
}

function releaseListing(row: ReleaseRow) {
  return {
    id: row.id,
    version: row.version,
    platform: row.platform,
    size: Number(row.size),
    sha256: row.sha256,
    downgradeAllowed: row.downgrade_allowed,
    state: row.state,
    createdAt: row.created_at.toISOString(),
    publishedAt: row.published_at?.toISOString() ?? null,
  };
}

const chunkCount = (size: number) => Math.ceil(size / RELEASE_CHUNK_BYTES);

export const releasesRouter = {
  list: procedureFor('agents:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<ReleaseRow>(
      'SELECT id, version, platform, size, sha256, downgrade_allowed, state, created_at, published_at FROM releases WHERE tenant_id = $1 ORDER BY created_at DESC',
      [ctx.admin.tenantId],
    );
    return rows.map(releaseListing);
  }),

  /** Records a signed manifest; the artifact follows with `uploadChunk`. The signature is the agents' to check. */
  create: procedureFor('agents:write')
    .input(createReleaseInput)
    .mutation(async ({ ctx, input }) => {
      let payload: unknown;
      try {
        payload = JSON.parse(input.release.payload);
      } catch {
        throw new UserError('the release manifest is not JSON');
      }
      const parsed = releaseManifest.safeParse(payload);
      if (!parsed.success) throw new UserError(`release manifest: ${formatIssues(parsed.error.issues)}`);
      const manifest = parsed.data;
      return ctx.db.transaction(async (tx) => {
        const [taken] = await tx.query('SELECT 1 FROM releases WHERE tenant_id = $1 AND version = $2 AND platform = $3', [ctx.admin.tenantId, manifest.version, manifest.platform]);
        if (taken) throw new ConflictError(`release ${manifest.version} for ${manifest.platform} already exists`);
        const [row] = await tx.query<{ id: string }>(
          `INSERT INTO releases (tenant_id, version, platform, manifest, signature, size, sha256, downgrade_allowed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
          [ctx.admin.tenantId, manifest.version, manifest.platform, input.release.payload, input.release.signature, manifest.artifact.size, manifest.artifact.sha256, manifest.downgradeAllowed],
        );
        if (!row) throw new ConflictError('the release was not stored');
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, { action: 'release-create', target: row.id, outcome: 'success', meta: { version: manifest.version, platform: manifest.platform, size: manifest.artifact.size, sha256: manifest.artifact.sha256, downgradeAllowed: manifest.downgradeAllowed } }),
        );
        return { id: row.id, version: manifest.version, size: manifest.artifact.size, chunkBytes: RELEASE_CHUNK_BYTES, chunks: chunkCount(manifest.artifact.size) };
      });
    }),

  /** One chunk of the artifact, base64: every chunk but the last is exactly `RELEASE_CHUNK_BYTES`. Sending one again replaces it. */
  uploadChunk: procedureFor('agents:write')
    .input(uploadReleaseChunkInput)
    .mutation(async ({ ctx, input }) => {
      const [release] = await ctx.db.query<{ size: string; state: string }>('SELECT size, state FROM releases WHERE id = $1 AND tenant_id = $2', [input.id, ctx.admin.tenantId]);
      if (!release) throw new NotFoundError('no release with that id');
      if (release.state !== 'uploading') throw new ConflictError('the release is published; its artifact cannot change');
      const size = Number(release.size);
      const chunks = chunkCount(size);
      if (input.index >= chunks) throw new UserError(`the artifact has ${chunks} chunks; there is no chunk ${input.index}`);
      const data = Buffer.from(input.data, 'base64');
      const expected = input.index === chunks - 1 ? size - input.index * RELEASE_CHUNK_BYTES : RELEASE_CHUNK_BYTES;
      if (data.length !== expected) throw new UserError(`chunk ${input.index} must be ${expected} bytes, not ${data.length}`);
      await ctx.db.query(
        `INSERT INTO release_chunks (release_id, tenant_id, chunk_index, data) VALUES ($1, $2, $3, $4)
         ON CONFLICT (release_id, chunk_index) DO UPDATE SET data = EXCLUDED.data`,
        [input.id, ctx.admin.tenantId, input.index, data],
      );
      return { id: input.id, index: input.index };
    }),

  /** Publishes a release whose uploaded artifact has the manifest's size and SHA-256. */
  publish: procedureFor('agents:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [release] = await tx.query<{ size: string; sha256: string; state: string; version: string }>(
          'SELECT size, sha256, state, version FROM releases WHERE id = $1 AND tenant_id = $2 FOR UPDATE',
          [input.id, ctx.admin.tenantId],
        );
        if (!release) throw new NotFoundError('no release with that id');
        if (release.state === 'published') return { id: input.id, state: 'published' as const };
        const chunks = chunkCount(Number(release.size));
        const hash = createHash('sha256');
        let size = 0;
        for (let index = 0; index < chunks; index++) {
          const [chunk] = await tx.query<{ data: Buffer }>('SELECT data FROM release_chunks WHERE release_id = $1 AND chunk_index = $2', [input.id, index]);
          if (!chunk) throw new UserError(`chunk ${index} of ${chunks} has not been uploaded`);
          hash.update(chunk.data);
          size += chunk.data.length;
        }
        const digest = hash.digest('hex');
        if (size !== Number(release.size) || digest !== release.sha256) {
          await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'release-publish', target: input.id, outcome: 'failure', meta: { version: release.version, reason: 'artifact does not match the manifest' } }));
          throw new UserError('the uploaded artifact does not have the size and SHA-256 the manifest names');
        }
        await tx.query("UPDATE releases SET state = 'published', published_at = $2 WHERE id = $1", [input.id, ctx.now()]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'release-publish', target: input.id, outcome: 'success', meta: { version: release.version, sha256: digest } }));
        return { id: input.id, state: 'published' as const };
      });
    }),
} satisfies TRPCRouterRecord;

interface RolloutRow {
  id: string;
  release_id: string;
  version: string;
  canary_group_id: string | null;
  starts_at: Date;
  ends_at: Date;
  halt_failure_rate: number;
  downgrade: boolean;
  state: string;
  halted_reason: string | null;
  created_at: Date;
  finished_at: Date | null;
}

export const rolloutsRouter = {
  /** Rollouts, newest first, with each targeted agent's ring and progress. */
  list: procedureFor('agents:read').query(async ({ ctx }) => {
    const rollouts = await ctx.db.query<RolloutRow>(
      `SELECT r.id, r.release_id, rel.version, r.canary_group_id, r.starts_at, r.ends_at, r.halt_failure_rate, r.downgrade, r.state, r.halted_reason, r.created_at, r.finished_at
       FROM rollouts r JOIN releases rel ON rel.id = r.release_id WHERE r.tenant_id = $1 ORDER BY r.created_at DESC LIMIT 50`,
      [ctx.admin.tenantId],
    );
    // An offered agent that said it is installing shows as `installing`.
    const agents = await ctx.db.query<{ rollout_id: string; agent_id: string; hostname: string; ring: string; state: string; from_version: string | null; reason: string | null; updated_at: Date }>(
      `SELECT ra.rollout_id, ra.agent_id, a.hostname, ra.ring,
         CASE WHEN ra.state = 'offered' AND ra.installing_at IS NOT NULL THEN 'installing' ELSE ra.state END AS state,
         ra.from_version, ra.reason, ra.updated_at
       FROM rollout_agents ra JOIN agents a ON a.id = ra.agent_id WHERE ra.tenant_id = $1 AND ra.rollout_id = ANY($2::uuid[]) ORDER BY ra.ring, a.hostname`,
      [ctx.admin.tenantId, rollouts.map((r) => r.id)],
    );
    return rollouts.map((r) => {
      const mine = agents.filter((a) => a.rollout_id === r.id);
      const count = (state: string) => mine.filter((a) => a.state === state).length;
      return {
        id: r.id,
        releaseId: r.release_id,
        version: r.version,
        canaryGroupId: r.canary_group_id,
        startsAt: r.starts_at.toISOString(),
        endsAt: r.ends_at.toISOString(),
        haltFailureRate: r.halt_failure_rate,
        downgrade: r.downgrade,
        state: r.state,
        haltedReason: r.halted_reason,
        createdAt: r.created_at.toISOString(),
        finishedAt: r.finished_at?.toISOString() ?? null,
        progress: { total: mine.length, waiting: count('waiting'), offered: count('offered'), installing: count('installing'), installed: count('installed'), failed: count('failed') },
        agents: mine.map((a) => ({ agentId: a.agent_id, hostname: a.hostname, ring: a.ring, state: a.state, fromVersion: a.from_version, reason: a.reason, updatedAt: a.updated_at.toISOString() })),
      };
    });
  }),

  /**
   * Targets every active agent of the tenant: members of the canary group in the first ring, the
   * others after it. Supersedes an active rollout. A canary ring whose window is open is woken at once.
   */
  create: procedureFor('agents:write')
    .input(createRolloutInput)
    .mutation(async ({ ctx, input }) => {
      const now = ctx.now();
      const startsAt = input.startsAt === undefined ? now : new Date(input.startsAt);
      const endsAt = input.endsAt === undefined ? new Date(startsAt.getTime() + DEFAULT_ROLLOUT_WINDOW_MS) : new Date(input.endsAt);
      if (endsAt <= startsAt) throw new UserError('the window must end after it starts');
      return ctx.db.transaction(async (tx) => {
        const [release] = await tx.query<{ state: string; version: string; downgrade_allowed: boolean }>('SELECT state, version, downgrade_allowed FROM releases WHERE id = $1 AND tenant_id = $2', [input.releaseId, ctx.admin.tenantId]);
        if (!release) throw new NotFoundError('no release with that id');
        if (release.state !== 'published') throw new ConflictError('publish the release before rolling it out');
        if (input.downgrade && !release.downgrade_allowed) throw new UserError(`release ${release.version} was not signed as a permitted downgrade`);
        if (input.canaryGroupId !== undefined) {
          const [group] = await tx.query('SELECT 1 FROM agent_groups WHERE id = $1 AND tenant_id = $2', [input.canaryGroupId, ctx.admin.tenantId]);
          if (!group) throw new NotFoundError('no agent group with that id');
        }
        // One rollout offers at a time: a new one supersedes the active one, so an agent is never offered two versions.
        const superseded = await tx.query<{ id: string }>(
          "UPDATE rollouts SET state = 'halted', halted_reason = 'superseded by a newer rollout', finished_at = $2 WHERE tenant_id = $1 AND state = 'active' RETURNING id",
          [ctx.admin.tenantId, now],
        );
        for (const old of superseded) {
          await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'rollout-halt', target: old.id, outcome: 'success', meta: { by: 'admin', reason: 'superseded' } }));
        }
        const [rollout] = await tx.query<{ id: string }>(
          `INSERT INTO rollouts (tenant_id, release_id, canary_group_id, starts_at, ends_at, halt_failure_rate, downgrade)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
          [ctx.admin.tenantId, input.releaseId, input.canaryGroupId ?? null, startsAt, endsAt, input.haltFailureRate, input.downgrade],
        );
        if (!rollout) throw new ConflictError('the rollout was not stored');
        const targeted = await tx.query<{ agent_id: string; ring: string }>(
          `INSERT INTO rollout_agents (rollout_id, agent_id, tenant_id, ring)
           SELECT $1, a.id, a.tenant_id,
                  CASE WHEN EXISTS (SELECT 1 FROM agent_group_members m WHERE m.group_id = $3 AND m.agent_id = a.id) THEN 'canary' ELSE 'rest' END
           FROM agents a WHERE a.tenant_id = $2 AND a.status = 'active'
           RETURNING agent_id, ring`,
          [rollout.id, ctx.admin.tenantId, input.canaryGroupId ?? null],
        );
        const canaryAgents = targeted.filter((row) => row.ring === 'canary').map((row) => row.agent_id);
        const canary = canaryAgents.length;
        // The canary ring is asked to heartbeat at once, where it is offered the release, so its
        // outcome comes in minutes. The rest learn at their own heartbeats, spread over the
        // heartbeat interval: a whole fleet does not download the release in the same second.
        if (startsAt <= now) await notifyAgents(tx, WAKE_CHANNEL, canaryAgents);
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'rollout-create',
            target: rollout.id,
            outcome: 'success',
            meta: { releaseId: input.releaseId, version: release.version, canary, rest: targeted.length - canary, startsAt: startsAt.toISOString(), endsAt: endsAt.toISOString(), haltFailureRate: input.haltFailureRate, downgrade: input.downgrade },
          }),
        );
        return { id: rollout.id, canary, rest: targeted.length - canary };
      });
    }),

  /** Stops offering the release. Agents already switched stay on it. */
  halt: procedureFor('agents:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const [row] = await tx.query<{ id: string }>(
          "UPDATE rollouts SET state = 'halted', halted_reason = 'halted by an admin', finished_at = $3 WHERE id = $1 AND tenant_id = $2 AND state = 'active' RETURNING id",
          [input.id, ctx.admin.tenantId, ctx.now()],
        );
        if (!row) throw new NotFoundError('no active rollout with that id');
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'rollout-halt', target: row.id, outcome: 'success', meta: { by: 'admin' } }));
        return { id: row.id, state: 'halted' as const };
      });
    }),
} satisfies TRPCRouterRecord;
