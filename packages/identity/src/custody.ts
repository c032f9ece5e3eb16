/**
 * Signed statements (job envelopes, delivery receipts, key rotations) and the control plane's key
 * fingerprint. Signing is injected as a function, so the control plane's secret key stays inside its
 * `Signer`; verification needs only a public key.
 */
import { createHash } from 'node:crypto';
import {
  CONTROL_PLANE_KEY_PATTERN,
  keyRotationPayload,
  type ReceiptPayload,
  receiptPayload,
  type SignedStatement,
  signedStatement,
  type StatementDomain,
  statementDomains,
} from '@airlock/protocol';
import { decodePublicKey, verifyDetached } from './keys.ts';

export type Sign = (message: Uint8Array) => Uint8Array;

/** `ed25519:` and the unpadded base64url SHA-256 of the public key: what `--control-plane-key` pins. */
export function keyFingerprint(publicKey: Uint8Array): string {
  return `ed25519:${createHash('sha256').update(publicKey).digest('base64url')}`;
}

export function isKeyFingerprint(text: string): boolean {
  return CONTROL_PLANE_KEY_PATTERN.test(text);
}

function message(domain: StatementDomain, payload: string): Uint8Array {
  return Buffer.from(`${statementDomains[domain]}\n${payload}`, 'utf8');
}

export function signStatement(domain: StatementDomain, value: object, sign: Sign): SignedStatement {
  const payload = JSON.stringify(value);
  return { payload, signature: Buffer.from(sign(message(domain, payload))).toString('base64') };
}

/**
 * The payload of a statement `publicKey` signed for `domain`, parsed as JSON; undefined when the
 * shape is wrong or the signature does not verify. The caller validates the payload's schema.
 */
export function openStatement(domain: StatementDomain, statement: unknown, publicKey: Uint8Array): unknown {
  const parsed = signedStatement.safeParse(statement);
  if (!parsed.success) return undefined;
  const { payload, signature } = parsed.data;
  if (!verifyDetached(message(domain, payload), Buffer.from(signature, 'base64'), publicKey)) return undefined;
  try {
    return JSON.parse(payload);
  } catch {
    return undefined;
  }
}

/**
 * Follows signed rotations from the pinned key: each step must be signed by the key it replaces.
 * Returns the newest key reached (the pinned one when no statement applies); a statement that is
 * not signed by the current key is never followed, however it is ordered.
 */
export function followRotations(pinned: Uint8Array, statements: readonly unknown[], maxSteps = 32): Uint8Array {
  let current = pinned;
  for (let step = 0; step < maxSteps; step++) {
    let next: Uint8Array | undefined;
    for (const statement of statements) {
      const parsed = keyRotationPayload.safeParse(openStatement('rotation', statement, current));
      if (!parsed.success) continue;
      if (parsed.data.previousKey !== Buffer.from(current).toString('base64')) continue;
      next = decodePublicKey(parsed.data.nextKey);
      break;
    }
    if (next === undefined || Buffer.from(next).equals(Buffer.from(current))) return current;
    current = next;
  }
  return current;
}

export type ReceiptCheck = { ok: true; receipt: ReceiptPayload } | { ok: false; reason: string };

/** A receipt is genuine when the agent's key signed exactly this payload and the payload is a receipt. */
export function verifyReceipt(statement: unknown, agentPublicKey: Uint8Array): ReceiptCheck {
  const opened = openStatement('receipt', statement, agentPublicKey);
  if (opened === undefined) return { ok: false, reason: "the signature does not verify against the agent's key" };
  const parsed = receiptPayload.safeParse(opened);
  if (!parsed.success) return { ok: false, reason: `not a receipt: ${parsed.error.issues[0]?.message ?? 'invalid'}` };
  return { ok: true, receipt: parsed.data };
}

export interface ReceiptLines {
  /** Non-blank lines read. */
  receipts: number;
  verified: Array<{ line: number; statement: unknown; receipt: ReceiptPayload }>;
  failures: Array<{ line: number; reason: string }>;
}

/** Checks a receipts export (JSON Lines, one signed receipt per line) against the agent's key. */
export function verifyReceiptLines(text: string, agentPublicKey: Uint8Array): ReceiptLines {
  const result: ReceiptLines = { receipts: 0, verified: [], failures: [] };
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    result.receipts += 1;
    let statement: unknown;
    try {
      statement = JSON.parse(line);
    } catch {
      result.failures.push({ line: index + 1, reason: 'not JSON' });
      continue;
    }
    const check = verifyReceipt(statement, agentPublicKey);
    if (check.ok) result.verified.push({ line: index + 1, statement, receipt: check.receipt });
    else result.failures.push({ line: index + 1, reason: check.reason });
  }
  return result;
}
