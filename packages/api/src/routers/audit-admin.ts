/**
 * The audit trail's signed checkpoints, for auditors. Each comes with this tenant's own leaf and
 * its audit path, so the tenant checks its chain against the signed root without learning any other
 * tenant's head, sequence number or volume.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { listCheckpointsInput } from '@airlock/protocol';
import { chainCheckpoints, latestChainCheckpoint, listCheckpoints } from '@airlock/storage';
import { procedureFor } from '../trpc.ts';

export const checkpointProcedures = {
  /** Newest first; pass the last number of a page as `beforeNumber` for the next. */
  checkpoints: procedureFor('audit:read')
    .input(listCheckpointsInput)
    .query(async ({ ctx, input }) => {
      // The paths are computed over every chain's leaf (system scope); only this tenant's leaf leaves.
      const system = ctx.db.forSystem();
      return chainCheckpoints(system, ctx.admin.tenantId, await listCheckpoints(system, input));
    }),

  latestCheckpoint: procedureFor('audit:read').query(({ ctx }) => latestChainCheckpoint(ctx.db.forSystem(), ctx.admin.tenantId, ctx.signer.keyId)),
} satisfies TRPCRouterRecord;
