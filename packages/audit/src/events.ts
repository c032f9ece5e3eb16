import { AuditValidationError, type JsonValue } from './canonical.ts';

export type AuditActorType = 'admin' | 'api-key' | 'oauth-client' | 'agent' | 'system' | 'anonymous';

export interface AuditActor {
  type: AuditActorType;
  id: string | null;
}

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEventInput {
  tenantId: string | null;
  actor: AuditActor;
  /** Kebab-case, e.g. `agent-enroll`, `request-signature-invalid`. */
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  sourceIp: string | null;
  /** Metadata only: sizes, hashes, fingerprints, reasons. Never contents or secrets. */
  meta: Record<string, JsonValue>;
}

const ACTION = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const MAX_ACTION_LENGTH = 64;

export function isAuditableAction(action: string): boolean {
  return action.length <= MAX_ACTION_LENGTH && ACTION.test(action);
}

/** Refuses an action name that is not kebab-case (`agent-enroll`), so the trail stays queryable. */
export function assertAuditable(action: string): string {
  if (!isAuditableAction(action)) {
    throw new AuditValidationError(`audit action must be kebab-case: ${JSON.stringify(action)}`);
  }
  return action;
}

// Words that mark a key as carrying a secret or a file's contents. Matched against whole words of
// the key (camelCase, snake_case and kebab-case are split), so `metadata` passes and `apiToken` does not.
const FORBIDDEN_WORDS = new Set([
  'password',
  'passwd',
  'secret',
  'secrets',
  'token',
  'passphrase',
  'content',
  'contents',
  'data',
  'plaintext',
  'credential',
  'credentials',
]);
const FORBIDDEN_PAIRS = [['private', 'key']] as const;

function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((word) => word !== '');
}

function forbiddenKey(key: string): boolean {
  const words = keyWords(key);
  if (words.some((word) => FORBIDDEN_WORDS.has(word))) return true;
  // `privatekey` as one word as well as `privateKey` / `private_key`.
  if (words.includes('privatekey')) return true;
  return FORBIDDEN_PAIRS.some(([first, second]) =>
    words.some((word, i) => word === first && words[i + 1] === second),
  );
}

function checkKeys(value: JsonValue, where: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkKeys(item, `${where}[${i}]`));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, field] of Object.entries(value)) {
    if (forbiddenKey(key)) {
      // Name the key, never the value: the value is what must not be written anywhere.
      throw new AuditValidationError(`audit meta key ${where}.${key} looks like it carries a secret or contents`);
    }
    checkKeys(field, `${where}.${key}`);
  }
}

/**
 * A guard, not a scrubber: throws if any key of `meta`, at any depth, looks like it carries a
 * secret or file contents. Dropping such a field silently would hide the bug that put it there.
 */
export function redactMeta<T extends Record<string, JsonValue>>(meta: T): T {
  checkKeys(meta, 'meta');
  return meta;
}
