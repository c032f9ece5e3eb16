/**
 * A field scope: which fields of a CSV or JSON Lines file may leave the premises, and an optional
 * data contract they must meet. Fields not granted are dropped on the agent, before encryption.
 */
import { z } from 'zod';

export const fieldRule = z.strictObject({
  type: z.enum(['string', 'integer', 'number', 'boolean', 'date']).default('string'),
  /** A regular expression the whole value must match (anchored for you). */
  pattern: z.string().min(1).max(500).optional(),
  maxLength: z.number().int().min(1).optional(),
  /** Whether an empty value (CSV) or null (JSON) is accepted. */
  nullable: z.boolean().default(false),
});
export type FieldRule = z.output<typeof fieldRule>;

export const fieldScope = z.strictObject({
  format: z.enum(['csv', 'jsonl']),
  /** The fields that may leave, in output order. Everything else is dropped. */
  allow: z.array(z.string().min(1).max(200)).min(1).max(1000),
  /** CSV field delimiter; default `,`. The first row must be the header. */
  delimiter: z.string().length(1).default(','),
  /** Fields that must be present in every row (CSV: in the header). */
  required: z.array(z.string().min(1).max(200)).default([]),
  /** Rules per field; a row that breaks one fails the run with the row number and rule, never its content. */
  rules: z.record(z.string().min(1).max(200), fieldRule).default({}),
  /** Longest accepted JSON line, in bytes; default 16 MiB. */
  maxLineBytes: z.number().int().min(1024).max(1 << 30).default(16 * 1024 * 1024),
});
export type FieldScope = z.output<typeof fieldScope>;
