import { z } from 'zod';
import { normalizePath } from '@airlock/connector-api';

function normalizable(value: string): boolean {
  try {
    normalizePath(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * An absolute POSIX path in canonical form. `overwrite` (not `transform`) keeps the schema
 * representable as JSON Schema for the console's forms.
 */
export function absolutePath(description: string) {
  return z
    .string()
    .describe(description)
    .refine(normalizable, 'must be an absolute path without `..`, backslashes or control characters')
    .overwrite((value) => (normalizable(value) ? normalizePath(value) : value));
}
