/**
 * What a CLI tells a person when a command fails: a message without class names or stack, a
 * stable code for scripts, and the exit status. Both CLIs print through this and nothing else.
 *
 * Exit statuses: 0 ok, 1 failed, 2 usage (the command line itself is wrong), 3 refused by policy
 * or permission (the caller is not allowed, could not be authenticated, or a local policy said no).
 */
import { type ErrorClass, isAirlockError, NetworkError, type NetworkFailure } from './errors.ts';
import { formatIssues, type SchemaIssue } from './issues.ts';
import { networkFailureOf } from './network.ts';
import { remoteErrorClass } from './remote.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_REFUSED = 3;

/** `code` in `{"error": {"code", "message"}}`: an error class, `usage`, or the kind of network failure. */
export type PersonErrorCode = ErrorClass | 'usage' | 'network' | `network-${Exclude<NetworkFailure, 'network'>}`;

export interface PersonError {
  code: PersonErrorCode;
  message: string;
  exitCode: typeof EXIT_FAILED | typeof EXIT_USAGE | typeof EXIT_REFUSED;
}

const REFUSED: ReadonlySet<ErrorClass> = new Set(['not-allowed', 'authentication', 'policy-violation']);

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? text).trim();
}

/** Strips a leading `SomeError: ` that a library put into its own message. */
function withoutClassName(text: string): string {
  return text.replace(/^(?:[A-Z][A-Za-z0-9]*(?:Error|Exception)|TRPCClientError|Error)(?: \[[A-Z0-9_]+\])?:\s+/, '');
}

function issuesOf(error: unknown): readonly SchemaIssue[] | undefined {
  if (!(error instanceof Error) || error.name !== 'ZodError') return undefined;
  const issues: unknown = Reflect.get(error, 'issues');
  return Array.isArray(issues) ? (issues as SchemaIssue[]) : undefined;
}

/** The innermost NetworkError in a cause chain: a tRPC client wraps what its fetch threw. */
function networkErrorIn(error: unknown, depth = 0): NetworkError | undefined {
  if (error instanceof NetworkError) return error;
  if (depth > 4 || typeof error !== 'object' || error === null) return undefined;
  return networkErrorIn(Reflect.get(error, 'cause'), depth + 1);
}

/** Whether this is commander's refusal of the command line (an unknown option, a missing argument). */
function isUsageError(error: unknown): boolean {
  const code: unknown = typeof error === 'object' && error !== null ? Reflect.get(error, 'code') : undefined;
  return typeof code === 'string' && code.startsWith('commander.');
}

function networkCode(failure: NetworkFailure): PersonErrorCode {
  return failure === 'network' ? 'network' : `network-${failure}`;
}

export function forPerson(error: unknown): PersonError {
  const network = networkErrorIn(error);
  if (network) return { code: networkCode(network.failure), message: network.message, exitCode: EXIT_FAILED };
  if (isUsageError(error)) {
    const message = error instanceof Error ? error.message.replace(/^error:\s*/, '') : String(error);
    return { code: 'usage', message: firstLine(message), exitCode: EXIT_USAGE };
  }
  const issues = issuesOf(error);
  if (issues) return { code: 'user', message: `invalid input: ${formatIssues(issues)}`, exitCode: EXIT_FAILED };
  const errorClass: ErrorClass = isAirlockError(error) ? error.errorClass : (remoteErrorClass(error) ?? 'unexpected');
  const bare = networkFailureOf(error);
  if (!isAirlockError(error) && remoteErrorClass(error) === undefined && bare) {
    return { code: networkCode(bare.failure), message: `the request failed: ${bare.failure}${bare.code ? ` (${bare.code})` : ''}`, exitCode: EXIT_FAILED };
  }
  const text = error instanceof Error ? error.message : String(error);
  return { code: errorClass, message: withoutClassName(firstLine(text)) || errorClass, exitCode: REFUSED.has(errorClass) ? EXIT_REFUSED : EXIT_FAILED };
}

/** `{"error": {"code", "message"}}`, the shape `--json` prints a failure in. */
export function personErrorJson(error: PersonError): { error: { code: PersonErrorCode; message: string } } {
  return { error: { code: error.code, message: error.message } };
}
