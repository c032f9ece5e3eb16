/**
 * The agent as a witness of the control plane's audit trail. Each round fetches the newest signed
 * checkpoint with this tenant's leaf and audit path, checks the signature against the pinned key
 * and the path against the signed root, and checks that the records the control plane serves lead
 * from the leaf this agent kept to the new one. A control plane that rewrote or cut this tenant's
 * history cannot produce that, and any one witness notices: the agent records a security event and
 * raises an alert. The agent sees its own tenant's chain and nothing of any other tenant's: not
 * their heads, their sequence numbers or their volume. `<dataDir>/audit-witness.json` holds the
 * last good checkpoint; a v1 checkpoint of the legacy global chain kept there from before the
 * chains were split is followed to the legacy head the tree checkpoints sign.
 */
import path from 'node:path';
import { z } from 'zod';
import {
  type ChainHead,
  type ChainLink,
  type Checkpoint,
  checkpointExtends,
  type TreeCheckpoint,
  treeCheckpointSignedBy,
  verifyChain,
  verifyInclusion,
} from '@airlock/audit';
import type { Logger } from '@airlock/connector-api';
import { verifyDetached } from '@airlock/identity';
import { readIfExists, replaceFile } from './files.ts';
import type { SecurityLog } from './security-log.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

const legacyCheckpointSchema = z.strictObject({
  version: z.literal(1),
  seq: z.number().int().positive(),
  hash: hex64,
  at: z.string(),
  keyId: z.string(),
  signature: z.string(),
});

const treeCheckpointSchema = z.strictObject({
  version: z.literal(2),
  number: z.number().int().positive(),
  at: z.string(),
  size: z.number().int().positive(),
  root: hex64,
  legacy: z.strictObject({ seq: z.number().int().nonnegative(), hash: hex64 }),
  keyId: z.string(),
  signature: z.string(),
});

const chainCheckpointSchema = z.strictObject({
  checkpoint: treeCheckpointSchema,
  proof: z
    .strictObject({
      leaf: z.strictObject({ tenantId: z.string().nullable(), seq: z.number().int().nonnegative(), hash: hex64 }),
      index: z.number().int().nonnegative(),
      proof: z.array(hex64).max(64),
    })
    .nullable(),
});

type ChainCheckpoint = z.infer<typeof chainCheckpointSchema>;
type Kept = ChainCheckpoint | Checkpoint;

/** Records read per witness round at most; a longer gap is read over several rounds' worth of pages. */
const MAX_SEGMENT_RECORDS = 200_000;
const PAGE = 1000;

export interface WitnessSource {
  checkpoint(): Promise<unknown>;
  segment(afterSeq: number, untilSeq: number, limit: number): Promise<readonly ChainLink[]>;
}

type AlertKind = 'audit-rewritten' | 'audit-truncated' | 'control-plane-key-mismatch';

export type WitnessResult =
  | { status: 'none' | 'first' | 'unchanged' | 'extended'; seq: number }
  | { status: 'alert'; kind: AlertKind; reason: string };

type Alert = Extract<WitnessResult, { status: 'alert' }>;

export const witnessFile = (dataDir: string) => path.join(dataDir, 'audit-witness.json');

async function lastSeen(dataDir: string): Promise<Kept | undefined> {
  const text = await readIfExists(witnessFile(dataDir));
  if (text === undefined) return undefined;
  const raw: unknown = JSON.parse(text);
  const tree = chainCheckpointSchema.safeParse(raw);
  return tree.success ? tree.data : legacyCheckpointSchema.parse(raw);
}

const alert = (kind: AlertKind, reason: string): Alert => ({ status: 'alert', kind, reason });

/** The records after `after.seq` up to `untilSeq`, as many pages as it takes (bounded). */
async function readSegment(source: WitnessSource, afterSeq: number, untilSeq: number): Promise<{ records: ChainLink[]; reached: number }> {
  const records: ChainLink[] = [];
  let after = afterSeq;
  while (after < untilSeq && records.length < MAX_SEGMENT_RECORDS) {
    const page = await source.segment(after, untilSeq, PAGE);
    const last = page.at(-1);
    if (last === undefined || last.seq <= after) break;
    records.push(...page);
    after = last.seq;
  }
  return { records, reached: after };
}

/** Does this tenant's chain lead from `from` to `to`, through records the control plane serves now? */
async function chainLeads(source: WitnessSource, from: ChainHead, to: ChainHead): Promise<Alert | undefined> {
  if (to.seq < from.seq) return alert('audit-truncated', `this tenant's chain is at ${to.seq} in the newest checkpoint, behind ${from.seq} which this agent witnessed`);
  if (to.seq === from.seq) return to.hash === from.hash ? undefined : alert('audit-rewritten', `the head at ${to.seq} changed its hash`);
  const { records, reached } = await readSegment(source, from.seq, to.seq);
  if (reached < to.seq) return alert('audit-truncated', `the control plane served records only up to ${reached}, not to its checkpoint's ${to.seq}`);
  let chain: ReturnType<typeof verifyChain>;
  try {
    // The tenant's own chain: every record whole, none withheld.
    chain = verifyChain(records, { after: from });
  } catch (error) {
    return alert('audit-rewritten', error instanceof Error ? error.message : String(error));
  }
  if (!chain.ok) return alert('audit-rewritten', `records after ${from.seq}: ${chain.reason}`);
  if (chain.head?.seq !== to.seq || chain.head.hash !== to.hash) return alert('audit-rewritten', `records after ${from.seq} do not lead to the checkpoint's head ${to.seq}`);
  return undefined;
}

/** A v1 checkpoint of the legacy global chain, kept from before the split: does the chain lead from it to the frozen legacy head? */
async function legacyLeads(source: WitnessSource, previous: Checkpoint, legacy: ChainHead): Promise<Alert | undefined> {
  if (legacy.seq < previous.seq) return alert('audit-truncated', `the legacy chain ends at ${legacy.seq}, behind ${previous.seq} which this agent witnessed`);
  const { records, reached } = await readSegment(source, previous.seq, legacy.seq);
  if (legacy.seq > previous.seq && reached < legacy.seq) return alert('audit-truncated', `the control plane served legacy records only up to ${reached}, not to ${legacy.seq}`);
  let verdict: ReturnType<typeof checkpointExtends>;
  try {
    verdict = checkpointExtends(previous, { ...previous, seq: legacy.seq, hash: legacy.hash }, records);
  } catch (error) {
    verdict = { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  return verdict.ok ? undefined : alert('audit-rewritten', `legacy chain: ${verdict.reason}`);
}

async function compare(previous: Kept, next: ChainCheckpoint, source: WitnessSource): Promise<Alert | undefined> {
  const legacy = next.checkpoint.legacy;
  let from: ChainHead;
  if ('version' in previous) {
    const crossed = await legacyLeads(source, previous, legacy);
    if (crossed) return crossed;
    from = legacy;
  } else {
    const kept = previous.checkpoint.legacy;
    if (kept.seq !== legacy.seq || kept.hash !== legacy.hash) return alert('audit-rewritten', 'the frozen legacy head changed');
    if (next.checkpoint.number < previous.checkpoint.number) {
      return alert('audit-truncated', `the newest checkpoint is number ${next.checkpoint.number}, behind ${previous.checkpoint.number} which this agent witnessed`);
    }
    from = previous.proof?.leaf ?? legacy;
  }
  if (next.proof === null) {
    return from.seq > legacy.seq ? alert('audit-truncated', `this tenant's chain is missing from the newest checkpoint; this agent witnessed it at ${from.seq}`) : undefined;
  }
  return chainLeads(source, from, next.proof.leaf);
}

function holds(served: ChainCheckpoint, pin: Uint8Array, tenantId: string): AlertKind | undefined {
  const verify = (message: Uint8Array, signature: Uint8Array) => verifyDetached(message, signature, pin);
  const checkpoint: TreeCheckpoint = served.checkpoint;
  if (!treeCheckpointSignedBy(checkpoint, pin, verify)) return 'control-plane-key-mismatch';
  const proof = served.proof;
  if (proof === null) return undefined;
  // Another tenant's leaf, or one the signed root does not hold, proves nothing about this chain.
  if (proof.leaf.tenantId !== tenantId || !verifyInclusion(proof.leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)) return 'audit-rewritten';
  return undefined;
}

/** One witness round. An alert leaves the last good checkpoint in place, so every later round alerts too. */
export async function witnessAudit(deps: {
  source: WitnessSource;
  pin: Uint8Array;
  tenantId: string;
  dataDir: string;
  securityLog: SecurityLog;
  logger: Logger;
}): Promise<WitnessResult> {
  const raw = await deps.source.checkpoint();
  if (raw === null) return { status: 'none', seq: 0 };
  const parsed = chainCheckpointSchema.safeParse(raw);
  let result: Alert | undefined;
  if (!parsed.success) {
    result = alert('control-plane-key-mismatch', 'the audit checkpoint is not a checkpoint signed by the pinned control-plane key');
  } else {
    const next = parsed.data;
    const failed = holds(next, deps.pin, deps.tenantId);
    if (failed === 'control-plane-key-mismatch') {
      result = alert(failed, 'the audit checkpoint is not signed by the pinned control-plane key');
    } else if (failed !== undefined) {
      result = alert(failed, "the checkpoint's root does not hold this tenant's head it was served with");
    } else {
      const previous = await lastSeen(deps.dataDir);
      result = previous === undefined ? undefined : await compare(previous, next, deps.source);
      if (result === undefined) {
        const seq = next.proof?.leaf.seq ?? 0;
        const unchanged = previous !== undefined && !('version' in previous) && previous.checkpoint.number === next.checkpoint.number;
        if (!unchanged) await replaceFile(witnessFile(deps.dataDir), `${JSON.stringify(next)}\n`);
        return { status: previous === undefined ? 'first' : unchanged ? 'unchanged' : 'extended', seq };
      }
    }
  }
  await deps.securityLog.record(result.kind, result.reason);
  deps.logger.error({ kind: result.kind, reason: result.reason }, 'ALERT: the control plane audit history does not hold');
  return result;
}
