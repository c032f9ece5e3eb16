/** What anyone may learn about this control plane: the public half of its signing key, which agents pin. */
import type { TRPCRouterRecord } from '@trpc/server';
import { encodeKey, keyFingerprint } from '@airlock/identity';
import { publicProcedure } from '../trpc.ts';

export const controlPlaneRouter = {
  identity: publicProcedure.query(({ ctx }) => ({ publicKey: encodeKey(ctx.signer.publicKey), keyId: ctx.signer.keyId, fingerprint: keyFingerprint(ctx.signer.publicKey) })),
} satisfies TRPCRouterRecord;
