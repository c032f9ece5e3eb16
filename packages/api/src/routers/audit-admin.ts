/** The audit chain's signed checkpoints, for auditors and for agents that witness the chain. */
import type { TRPCRouterRecord } from '@trpc/server';
import { listCheckpointsInput } from '@airlock/protocol';
import { listCheckpoints } from '../checkpoints.ts';
import { procedureFor } from '../trpc.ts';

export const checkpointProcedures = {
  /** Newest first; pass the last seq of a page as `beforeSeq` for the next. */
  checkpoints: procedureFor('audit:read')
    .input(listCheckpointsInput)
    .query(({ ctx, input }) => listCheckpoints(ctx.db, input)),

  latestCheckpoint: procedureFor('audit:read').query(async ({ ctx }) => {
    const [latest] = await listCheckpoints(ctx.db, { limit: 1 });
    return latest ?? null;
  }),
} satisfies TRPCRouterRecord;
