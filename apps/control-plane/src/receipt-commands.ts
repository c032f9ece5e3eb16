/**
 * `airlock receipts export | verify`: the agents' signed delivery receipts as JSON Lines (one
 * signed statement per line), and their offline verification against an agent's Ed25519 public key.
 * Verification needs nothing from the control plane, which is the point: it cannot vouch for itself.
 */
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { UserError } from '@airlock/errors';
import { verifyReceiptLines } from '@airlock/identity';
import type { ReceiptPayload } from '@airlock/protocol';

export interface ReceiptVerification {
  ok: boolean;
  receipts: number;
  verified: ReceiptPayload[];
  failures: Array<{ line: number; reason: string }>;
}

/** Writes each file's receipt of the given run reports; returns how many. */
export function writeReceipts(reports: readonly unknown[], out: Writable): number {
  let count = 0;
  for (const report of reports) {
    const files: unknown = typeof report === 'object' && report !== null ? Reflect.get(report, 'files') : undefined;
    if (!Array.isArray(files)) continue;
    for (const file of files) {
      const receipt: unknown = typeof file === 'object' && file !== null ? Reflect.get(file, 'receipt') : undefined;
      if (receipt === undefined) continue;
      out.write(`${JSON.stringify(receipt)}\n`);
      count += 1;
    }
  }
  return count;
}

/** Every line must be a receipt the agent's key signed; an empty file verifies nothing and fails. */
export async function verifyReceiptsFile(file: string, agentPublicKey: Uint8Array): Promise<ReceiptVerification> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UserError(`cannot read ${file}`);
  }
  const { receipts, verified, failures } = verifyReceiptLines(text, agentPublicKey);
  return { ok: receipts > 0 && failures.length === 0, receipts, verified: verified.map((v) => v.receipt), failures };
}
