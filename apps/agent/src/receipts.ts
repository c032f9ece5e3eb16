/**
 * Delivery receipts: for each delivered file, a statement signed with the agent's Ed25519 key
 * (ciphertext digest and size, recipients, policy digest, integration version, times). The
 * plaintext appears only as an HMAC under `<dataDir>/receipt-hmac.key` (32 random bytes, mode 0600,
 * never sent), so a receipt cannot confirm a guess about a small or predictable file. The agent keeps
 * its own copy of each receipt in `<dataDir>/receipts.jsonl`.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '@airlock/errors';
import { type AgentKeyPair, signDetached, signStatement, verifyReceiptLines } from '@airlock/identity';
import { type ReceiptPayload, type RunReport, type SignedStatement, signedStatement } from '@airlock/protocol';
import { appendLine, errnoCode, readIfExists } from './files.ts';
import type { SecurityLog } from './security-log.ts';

export const plaintextKeyFile = (dataDir: string) => path.join(dataDir, 'receipt-hmac.key');

/** The HMAC key, created on first use. */
export async function plaintextKey(dataDir: string): Promise<Buffer> {
  const file = plaintextKeyFile(dataDir);
  try {
    const mode = (await stat(file)).mode & 0o777;
    if ((mode & 0o077) !== 0) throw new UserError(`${file} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    try {
      // `wx`: a concurrent first use keeps the key that was written first.
      await writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
      await chmod(file, 0o600);
    } catch (writeError) {
      if (!(writeError instanceof Error && Reflect.get(writeError, 'code') === 'EEXIST')) throw writeError;
    }
  }
  const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  if (key.length !== 32) throw new UserError(`${file} is damaged`);
  return key;
}

export interface ReceiptSigner {
  readonly agentId: string;
  readonly tenantId: string;
  sign(receipt: Omit<ReceiptPayload, 'v' | 'agentId' | 'tenantId'>): SignedStatement;
}

export function receiptSigner(identity: { agentId: string; tenantId: string }, keyPair: AgentKeyPair): ReceiptSigner {
  return {
    agentId: identity.agentId,
    tenantId: identity.tenantId,
    sign: (receipt) =>
      signStatement('receipt', { v: 1, agentId: identity.agentId, tenantId: identity.tenantId, ...receipt }, (message) => signDetached(message, keyPair.secretKey)),
  };
}

export const receiptsLogFile = (dataDir: string) => path.join(dataDir, 'receipts.jsonl');

/** Keeps this agent's own copy of every receipt it signed (append-only, 0600), to hold a control plane's copies against. */
export async function keepReceipts(dataDir: string, report: RunReport): Promise<void> {
  for (const file of report.files) if (file.receipt !== undefined) await appendLine(receiptsLogFile(dataDir), JSON.stringify(file.receipt));
}

export interface ReceiptsCheck {
  ok: boolean;
  receipts: number;
  /** Lines that this agent did not sign, or signed differently. */
  forged: Array<{ line: number; reason: string }>;
}

/**
 * Checks receipts someone else holds (a control plane's export) against this agent's key and its own
 * log. Each forgery is a security event: a receipt this agent never issued means someone claims a
 * delivery in its name. A receipt signed before a key rotation does not verify under the current
 * key; it is still this agent's when its own log holds it, payload and signature alike.
 */
export async function checkReceipts(dataDir: string, file: string, publicKey: Uint8Array, securityLog: SecurityLog): Promise<ReceiptsCheck> {
  // Compared by payload text and signature, not by the line: a database may reorder a JSON object's keys.
  const identify = (statement: unknown) => {
    const parsed = signedStatement.safeParse(statement);
    return parsed.success ? `${parsed.data.payload}\n${parsed.data.signature}` : '';
  };
  const parseLine = (line: string | undefined): unknown => {
    try {
      return line === undefined ? undefined : JSON.parse(line);
    } catch {
      return undefined;
    }
  };
  const own = new Set<string>();
  for (const line of ((await readIfExists(receiptsLogFile(dataDir))) ?? '').split('\n')) {
    if (line.trim() !== '') own.add(identify(parseLine(line)));
  }
  own.delete('');
  const text = await readFile(file, 'utf8');
  const lines = text.split('\n');
  const { receipts, verified, failures } = verifyReceiptLines(text, publicKey);
  const signedEarlier = (line: number) => own.has(identify(parseLine(lines[line - 1])));
  const unknown = verified.filter((v) => !own.has(identify(v.statement))).map((v) => ({ line: v.line, reason: "validly signed, but not in this agent's receipts log" }));
  const forged = [...failures.filter((f) => !signedEarlier(f.line)), ...unknown].sort((a, b) => a.line - b.line);
  for (const entry of forged) await securityLog.record('receipt-forged', `${path.basename(file)} line ${entry.line}: ${entry.reason}`);
  return { ok: receipts > 0 && forged.length === 0, receipts, forged };
}
