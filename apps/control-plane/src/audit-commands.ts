/**
 * `airlock audit verify | export`: whole-trail verification, of the database or of an export file,
 * and exports in JSON Lines or CSV. An export is one tenant's chain; unfiltered JSON Lines carry the
 * signed checkpoints with that tenant's leaf and audit path too, so it can be verified offline with
 * nothing but the control plane's public key, and shows nothing of any other tenant.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import {
  type AuditRecord,
  AuditValidationError,
  type ChainHead,
  type ChainProof,
  ChainVerifier,
  GENESIS_HASH,
  hashEvent,
  type TreeCheckpoint,
  treeCheckpointSignedBy,
  verifyInclusion,
} from '@airlock/audit';
import { verifierFor } from '@airlock/storage';
import { UserError } from '@airlock/errors';

/** A checkpoint as exported for one tenant: the tree checkpoint, and that tenant's leaf with its audit path. */
export interface ExportedCheckpoint {
  checkpoint: TreeCheckpoint;
  proof: ChainProof | null;
}

/** One line of a JSON Lines export: a record, or a checkpoint with this tenant's proof. */
type ExportLine = AuditRecord | ExportedCheckpoint;

const isCheckpointLine = (line: ExportLine): line is ExportedCheckpoint => 'checkpoint' in line;

async function* lines(file: string): AsyncGenerator<{ line: ExportLine; number: number }> {
  const input = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let number = 0;
  for await (const text of input) {
    number += 1;
    if (text.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UserError(`${file}:${number}: not JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UserError(`${file}:${number}: expected an object`);
    // A parsing boundary: a malformed record fails verification by its hash, a malformed checkpoint by its signature.
    yield { line: parsed as ExportLine, number };
  }
}

export type ExportVerification =
  | { ok: true; count: number; head: ChainHead | null; checkpoints: number; legacy: ChainHead | null }
  | { ok: false; seq: number; reason: string };

/**
 * Verifies one tenant's export with nothing but the control plane's public key. A first pass checks
 * every checkpoint (signature, and this tenant's leaf against the signed root) and collects what
 * they claim; a second streams the records. The tenant's chain since the split links from the
 * frozen legacy head every checkpoint signs to each checkpointed leaf; a legacy record (at or below
 * that head) is checked for edits alone, since its links run through other tenants' records, which
 * an export does not hold. A file of any length needs memory for the checkpoints only.
 */
export async function verifyExportFile(file: string, publicKey: Uint8Array): Promise<ExportVerification> {
  const verify = verifierFor(publicKey);
  let legacy: ChainHead | null = null;
  let tenant: string | null | undefined;
  const claims = new Map<number, string>();
  let checkpoints = 0;
  for await (const { line } of lines(file)) {
    if (!isCheckpointLine(line)) continue;
    const { checkpoint, proof } = line;
    const number = typeof checkpoint.number === 'number' ? checkpoint.number : 0;
    if (!treeCheckpointSignedBy(checkpoint, publicKey, verify)) return { ok: false, seq: number, reason: `checkpoint ${number}: signature does not verify` };
    if (legacy !== null && (legacy.seq !== checkpoint.legacy.seq || legacy.hash !== checkpoint.legacy.hash)) {
      return { ok: false, seq: number, reason: `checkpoint ${number}: signs another legacy head than the others` };
    }
    legacy = checkpoint.legacy;
    checkpoints += 1;
    if (proof === null) continue;
    if (!verifyInclusion(proof.leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)) {
      return { ok: false, seq: proof.leaf.seq, reason: `checkpoint ${number}: this chain's leaf is not in its signed root` };
    }
    if (tenant !== undefined && tenant !== proof.leaf.tenantId) return { ok: false, seq: proof.leaf.seq, reason: 'checkpoints of different chains' };
    tenant = proof.leaf.tenantId;
    const claimed = claims.get(proof.leaf.seq);
    if (claimed !== undefined && claimed !== proof.leaf.hash) return { ok: false, seq: proof.leaf.seq, reason: 'two checkpoints name different records at this seq' };
    claims.set(proof.leaf.seq, proof.leaf.hash);
  }
  const start: ChainHead = legacy ?? { seq: 0, hash: GENESIS_HASH };
  const chain = new ChainVerifier({ after: start });
  let count = 0;
  for await (const { line } of lines(file)) {
    if (isCheckpointLine(line)) continue;
    const record = line;
    if (tenant !== undefined && record.tenantId !== tenant) return { ok: false, seq: record.seq, reason: 'a record of another chain' };
    tenant = record.tenantId;
    if (record.seq <= start.seq) {
      let recomputed: string;
      try {
        const { hash: _hash, ...unhashed } = record;
        recomputed = hashEvent(record.prevHash, unhashed);
      } catch (error) {
        return { ok: false, seq: record.seq, reason: error instanceof AuditValidationError ? error.message : 'unserializable record' };
      }
      if (recomputed !== record.hash) return { ok: false, seq: record.seq, reason: 'hash does not match the record (edited)' };
    } else if (!chain.add(record)) {
      break;
    }
    count += 1;
    const claimed = claims.get(record.seq);
    if (claimed !== undefined && claimed !== record.hash) return { ok: false, seq: record.seq, reason: 'rewritten: the record at this checkpoint has another hash' };
    if (claimed !== undefined) claims.delete(record.seq);
  }
  const result = chain.result();
  if (!result.ok) return result;
  for (const [seq, hash] of claims) {
    if (seq === start.seq && hash === start.hash) continue;
    return { ok: false, seq, reason: `truncated: the chain ends at ${result.head?.seq ?? start.seq}, before checkpoint leaf ${seq}` };
  }
  return { ok: true, count, head: result.head?.seq === start.seq ? null : result.head, checkpoints, legacy };
}

export interface ExportFilter {
  action?: string;
  actor?: string;
  target?: string;
  outcome?: 'success' | 'failure' | 'denied';
  since?: string;
  until?: string;
}

/** The two remote reads an export needs; the admin tRPC client provides them. */
export interface ExportSource {
  list(input: ExportFilter & { afterSeq?: number; limit: number }): Promise<AuditRecord[]>;
  checkpoints(input: { beforeNumber?: number; limit: number }): Promise<ExportedCheckpoint[]>;
}

const PAGE = 1_000;
const CSV_HEADER = ['seq', 'at', 'tenant_id', 'actor_type', 'actor_id', 'action', 'target', 'outcome', 'source_ip', 'meta', 'prev_hash', 'hash'];

function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvRow(r: AuditRecord): string {
  const fields = [r.seq, r.at, r.tenantId, r.actor.type, r.actor.id, r.action, r.target, r.outcome, r.sourceIp, JSON.stringify(r.meta), r.prevHash, r.hash];
  return `${fields.map(csvField).join(',')}\r\n`;
}

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/** Writes every matching event, a page at a time, then (JSON Lines, unfiltered) every checkpoint. Returns the counts. */
export async function exportAudit(
  source: ExportSource,
  options: { format: 'jsonl' | 'csv'; filter: ExportFilter; out: Writable },
): Promise<{ events: number; checkpoints: number }> {
  const { format, filter, out } = options;
  if (format === 'csv') await write(out, `${CSV_HEADER.join(',')}\r\n`);
  let events = 0;
  let afterSeq = 0;
  for (;;) {
    const page = await source.list({ ...filter, afterSeq, limit: PAGE });
    for (const record of page) await write(out, format === 'csv' ? csvRow(record) : `${JSON.stringify(record)}\n`);
    events += page.length;
    const last = page.at(-1);
    if (!last || page.length < PAGE) break;
    afterSeq = last.seq;
  }
  let checkpoints = 0;
  const filtered = Object.values(filter).some((value) => value !== undefined);
  if (format === 'jsonl' && !filtered) {
    let beforeNumber: number | undefined;
    for (;;) {
      const page = await source.checkpoints({ beforeNumber, limit: PAGE });
      for (const { checkpoint, proof } of page) await write(out, `${JSON.stringify({ checkpoint, proof })}\n`);
      checkpoints += page.length;
      const last = page.at(-1);
      if (!last || page.length < PAGE) break;
      beforeNumber = last.checkpoint.number;
    }
  }
  return { events, checkpoints };
}

/** `--out file` (created 0600, refused if it exists) or stdout. */
export async function openOutput(file: string | undefined): Promise<{ out: Writable; close(): Promise<void> }> {
  if (file === undefined) return { out: process.stdout, close: async () => undefined };
  const stream = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  await once(stream, 'open');
  return {
    out: stream,
    async close() {
      stream.end();
      await once(stream, 'finish');
    },
  };
}
