/**
 * What the on-prem admin approves in the agent's local policy: a named script, its exact argv,
 * the SHA-256 of the file it runs, and a schema for the parameters an integration may pass.
 * The control plane can only name a script and supply parameters; it can never define a command.
 */
import { z } from 'zod';
import { absolutePath } from '@airlock/connector-api/definition';

export const scriptParameter = z.strictObject({
  /** A regular expression the whole value must match (anchored for you). */
  pattern: z.string().min(1).max(500),
  maxLength: z.number().int().min(1).max(4096).default(256),
});

export const approvedScript = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits, dot, dash, underscore'),
  /** The executable: an absolute path. A script with a shebang is fine; no shell is ever added. */
  command: absolutePath('The executable to run.'),
  /** Arguments; `{param}` inside an argument is replaced by that parameter's validated value. */
  args: z.array(z.string().max(4096)).max(64).default([]),
  /** Lowercase hex SHA-256 of `command`'s file; a changed file is refused. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex SHA-256 of the command file'),
  cwd: absolutePath('The working directory.'),
  /** Extra environment; nothing else from the agent's environment is passed on. */
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/), z.string()).default({}),
  params: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9_]{0,31}$/), scriptParameter).default({}),
  /** Kill the script after this long; default 10 minutes. */
  timeoutMs: z.number().int().min(100).max(24 * 3_600_000).default(600_000),
  /** Fail the run if stdout exceeds this many bytes; default 10 GiB. */
  maxOutputBytes: z.number().int().min(1).max(2 ** 50).default(10 * 2 ** 30),
});
export type ApprovedScript = z.output<typeof approvedScript>;
