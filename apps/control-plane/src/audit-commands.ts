/**
 * `airlock audit verify | export`: whole-chain verification, of the database or of an export file,
 * and exports in JSON Lines or CSV. An unfiltered JSON Lines export carries the checkpoints too, so
 * it can be verified offline with nothing but the control plane's public key.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { type AuditRecord, type AuditVerification, AuditVerifier, type Checkpoint } from '@airlock/audit';
import { verifierFor } from '@airlock/api';
import { UserError } from '@airlock/errors';

/** One line of a JSON Lines export: a record, or `{ "checkpoint": ... }`. */
type ExportLine = AuditRecord | { checkpoint: Checkpoint };

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
    // A parsing boundary: a malformed record fails verification by its hash, so its shape is not checked here.
    yield { line: parsed as ExportLine, number };
  }
}

/**
 * Verifies an export file: a first pass collects its checkpoints, a second streams its records
 * through the verifier, so a file of any length needs memory for the checkpoints only.
 */
export async function verifyExportFile(file: string, publicKey: Uint8Array): Promise<AuditVerification> {
  const checkpoints: Checkpoint[] = [];
  for await (const { line } of lines(file)) {
    if ('checkpoint' in line) checkpoints.push(line.checkpoint);
  }
  const audit = new AuditVerifier(checkpoints, publicKey, verifierFor(publicKey));
  for await (const { line } of lines(file)) {
    if (!('checkpoint' in line) && !audit.add(line)) break;
  }
  return audit.result();
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
  checkpoints(input: { beforeSeq?: number; limit: number }): Promise<Checkpoint[]>;
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
    let beforeSeq: number | undefined;
    for (;;) {
      const page = await source.checkpoints({ beforeSeq, limit: PAGE });
      for (const checkpoint of page) await write(out, `${JSON.stringify({ checkpoint })}\n`);
      checkpoints += page.length;
      const last = page.at(-1);
      if (!last || page.length < PAGE) break;
      beforeSeq = last.seq;
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
