import { formatFingerprint } from '../format.ts';

/** One recipient key in the integration form, as the server's inspection describes it. */
export interface RecipientEntry {
  /** This key alone, armored: what the saved spec lists. */
  armored: string;
  fingerprint: string;
  algorithm: string;
  bits: number | null;
  expires: string | null;
  userIds: string[];
  /** What the admin should know about an accepted key, such as the cipher it will get. */
  warnings: string[];
}

/**
 * Adds every key of an inspected file, or none: a key already listed refuses the whole file, so a
 * file is never added in part. A file with several keys says so, naming each.
 */
export function addRecipientKeys(
  value: readonly RecipientEntry[],
  keys: readonly RecipientEntry[],
): { ok: true; next: RecipientEntry[]; note: string | null } | { ok: false; problem: string } {
  const listed = keys.filter((key) => value.some((entry) => entry.fingerprint === key.fingerprint));
  if (listed.length > 0) return { ok: false, problem: `Key ${listed.map((key) => formatFingerprint(key.fingerprint)).join(', ')} is already listed.` };
  const note =
    keys.length > 1 ? `That file held ${keys.length} keys; each is added as its own recipient: ${keys.map((key) => formatFingerprint(key.fingerprint)).join(', ')}.` : null;
  return { ok: true, next: [...value, ...keys], note };
}
