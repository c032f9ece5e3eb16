/**
 * The agent as a witness of the control plane's audit chain. Each round fetches the newest signed
 * checkpoint, checks its signature against the pinned key, and checks that the records the control
 * plane serves lead from the last checkpoint this agent kept to the new one. A control plane that
 * rewrote or cut its history cannot produce that, and any one witness notices: the agent records a
 * security event and raises an alert. `<dataDir>/audit-witness.json` holds the last good checkpoint.
 */
import path from 'node:path';
import { z } from 'zod';
import { type ChainLink, type Checkpoint, checkpointExtends, checkpointSignedBy } from '@airlock/audit';
import type { Logger } from '@airlock/connector-api';
import { verifyDetached } from '@airlock/identity';
import { readIfExists, replaceFile } from './files.ts';
import type { SecurityLog } from './security-log.ts';

const checkpointSchema = z.strictObject({
  version: z.literal(1),
  seq: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.string(),
  keyId: z.string(),
  signature: z.string(),
});

/** Records read per witness round at most; a longer gap is read over several rounds' worth of pages. */
const MAX_SEGMENT_RECORDS = 200_000;
const PAGE = 1000;

export interface WitnessSource {
  checkpoint(): Promise<unknown>;
  segment(afterSeq: number, untilSeq: number, limit: number): Promise<readonly ChainLink[]>;
}

export type WitnessResult =
  | { status: 'none' | 'first' | 'unchanged' | 'extended'; seq: number }
  | { status: 'alert'; kind: 'audit-rewritten' | 'audit-truncated' | 'control-plane-key-mismatch'; reason: string };

export const witnessFile = (dataDir: string) => path.join(dataDir, 'audit-witness.json');

async function lastSeen(dataDir: string): Promise<Checkpoint | undefined> {
  const text = await readIfExists(witnessFile(dataDir));
  return text === undefined ? undefined : checkpointSchema.parse(JSON.parse(text));
}

async function compare(previous: Checkpoint, next: Checkpoint, source: WitnessSource): Promise<WitnessResult | undefined> {
  if (next.seq < previous.seq) {
    return { status: 'alert', kind: 'audit-truncated', reason: `the newest checkpoint is at ${next.seq}, behind ${previous.seq} which this agent witnessed` };
  }
  const records: ChainLink[] = [];
  let after = previous.seq;
  while (after < next.seq && records.length < MAX_SEGMENT_RECORDS) {
    const page = await source.segment(after, next.seq, PAGE);
    const last = page.at(-1);
    if (last === undefined || last.seq <= after) break;
    records.push(...page);
    after = last.seq;
  }
  if (next.seq > previous.seq && after < next.seq) {
    return { status: 'alert', kind: 'audit-truncated', reason: `the control plane served records only up to ${after}, not to its checkpoint ${next.seq}` };
  }
  let verdict: ReturnType<typeof checkpointExtends>;
  try {
    verdict = checkpointExtends(previous, next, records);
  } catch (error) {
    verdict = { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  return verdict.ok ? undefined : { status: 'alert', kind: 'audit-rewritten', reason: verdict.reason };
}

/** One witness round. An alert leaves the last good checkpoint in place, so every later round alerts too. */
export async function witnessAudit(deps: { source: WitnessSource; pin: Uint8Array; dataDir: string; securityLog: SecurityLog; logger: Logger }): Promise<WitnessResult> {
  const raw = await deps.source.checkpoint();
  if (raw === null) return { status: 'none', seq: 0 };
  const parsed = checkpointSchema.safeParse(raw);
  let result: WitnessResult;
  if (!parsed.success || !checkpointSignedBy(parsed.data, deps.pin, (message, signature) => verifyDetached(message, signature, deps.pin))) {
    result = { status: 'alert', kind: 'control-plane-key-mismatch', reason: 'the audit checkpoint is not signed by the pinned control-plane key' };
  } else {
    const next = parsed.data;
    const previous = await lastSeen(deps.dataDir);
    const alert = previous === undefined ? undefined : await compare(previous, next, deps.source);
    if (alert === undefined) {
      if (previous === undefined || previous.seq !== next.seq) await replaceFile(witnessFile(deps.dataDir), `${JSON.stringify(next)}\n`);
      return { status: previous === undefined ? 'first' : previous.seq === next.seq ? 'unchanged' : 'extended', seq: next.seq };
    }
    result = alert;
  }
  if (result.status === 'alert') {
    await deps.securityLog.record(result.kind, result.reason);
    deps.logger.error({ kind: result.kind, reason: result.reason }, 'ALERT: the control plane audit history does not hold');
  }
  return result;
}
