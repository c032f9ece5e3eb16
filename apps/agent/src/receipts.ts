/**
 * Delivery receipts: for each delivered file, a statement signed with the agent's Ed25519 key
 * (ciphertext digest and size, recipients, policy digest, integration version, times). The
 * plaintext appears only as an HMAC under `<dataDir>/receipt-hmac.key` (32 random bytes, mode 0600,
 * never sent), so a receipt cannot confirm a guess about a small or predictable file.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '@airlock/errors';
import { type AgentKeyPair, signDetached, signStatement } from '@airlock/identity';
import type { ReceiptPayload, SignedStatement } from '@airlock/protocol';

export const plaintextKeyFile = (dataDir: string) => path.join(dataDir, 'receipt-hmac.key');

/** The HMAC key, created on first use. */
export async function plaintextKey(dataDir: string): Promise<Buffer> {
  const file = plaintextKeyFile(dataDir);
  try {
    const mode = (await stat(file)).mode & 0o777;
    if ((mode & 0o077) !== 0) throw new UserError(`${file} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  } catch (error) {
    if (!(error instanceof Error && Reflect.get(error, 'code') === 'ENOENT')) throw error;
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
