/** zod building blocks that every connector's config uses the same way. */
import { z } from 'zod';
import { normalizePath } from './paths.ts';

function normalizable(value: string): boolean {
  try {
    normalizePath(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * An absolute POSIX path in canonical form; `..`, backslashes and control characters are refused.
 * `overwrite` (not `transform`) keeps the schema representable as JSON Schema for the console's forms.
 */
export function absolutePath(description = 'An absolute path.') {
  return z
    .string()
    .describe(description)
    .refine(normalizable, 'must be an absolute path without `..`, backslashes or control characters')
    .overwrite((value) => (normalizable(value) ? normalizePath(value) : value));
}

/** Permission bits of delivered files; default 0o640. */
export const deliveryFileMode = z
  .number()
  .int()
  .min(0)
  .max(0o777)
  // Ciphertext is not secret, but a world-writable delivery could be swapped before it is picked up.
  .refine((mode) => (mode & 0o002) === 0, 'must not be world-writable')
  .default(0o640)
  .describe('Permission bits of delivered files, e.g. 0o640 (420 decimal is 0o644).');

/**
 * Local-policy building blocks that every connector's section spells the same way, so an on-prem
 * admin learns them once.
 */

/** What a job may do to a source file once it is delivered. Reading never implies either. */
export const policyPostActions = {
  allowDelete: z.boolean().default(false).describe('May a job delete a source file after delivery? Default no.'),
  allowArchiveTo: z.array(absolutePath()).default([]).describe('Directories a job may move delivered files into; default none.'),
};

/** An OpenPGP primary-key fingerprint; spaces and case as gpg prints them are accepted. */
export const recipientFingerprint = z
  .string()
  .transform((text) => text.replace(/\s+/g, '').toUpperCase())
  .pipe(z.string().regex(/^[0-9A-F]{40}$|^[0-9A-F]{64}$/, 'an OpenPGP fingerprint (40 or 64 hex digits)'));

/** Recipient keys one destination entry allows in addition to the policy's global ones. */
export const policyRecipients = { recipients: z.array(recipientFingerprint).default([]) };
