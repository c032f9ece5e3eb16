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
