/**
 * The shared error classes. Every layer throws one of these; exactly one place per transport
 * (the control plane's tRPC error formatter, the agent's run reporter and CLIs) maps them.
 * Add a class only when a caller must react to it differently from every existing one.
 */

/** The kinds of transport failure a `NetworkError` names (network.ts reads them from a failed request). */
export const networkFailures = ['refused', 'dns', 'tls', 'timeout', 'reset', 'unreachable', 'proxy-auth', 'proxy', 'redirect', 'network'] as const;
export type NetworkFailure = (typeof networkFailures)[number];

/** The error classes a run report may name. Never a message: messages can carry paths or data. */
export const errorClasses = [
  'user',
  'operational',
  'unexpected',
  'not-found',
  'not-allowed',
  'conflict',
  'policy-violation',
  'host-key-mismatch',
  'authentication',
  'recipient-key',
] as const;
export type ErrorClass = (typeof errorClasses)[number];

interface AirlockErrorOptions {
  cause?: unknown;
  /**
   * Why it failed, fit to leave the host: metadata only (names, URLs, fingerprints, policy claims),
   * never file content or secret values. Set only where the words are known to be such; see `reasonOf`.
   */
  safeReason?: string;
}

export abstract class AirlockError extends Error {
  abstract readonly errorClass: ErrorClass;
  /** Whether trying again later may succeed. */
  readonly retryable: boolean = false;
  /** See `AirlockErrorOptions.safeReason`. */
  readonly safeReason: string | undefined;

  constructor(message: string, options?: AirlockErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.safeReason = options?.safeReason;
  }
}

/** Bad input or configuration. The caller can fix it; no alert. */
export class UserError extends AirlockError {
  readonly errorClass = 'user';
}

/** A transient failure (a timeout, a dropped connection). Retrying may succeed. */
export class OperationalError extends AirlockError {
  readonly errorClass = 'operational';
  override readonly retryable = true;
}

/**
 * The server is past the load it accepts and refused the request before doing any of it. Sent as
 * 503 with `Retry-After`; the caller waits at least that long (with jitter) before trying again.
 */
export class OverloadedError extends OperationalError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    options?: AirlockErrorOptions,
  ) {
    super(message, options);
  }
}

/** A bug. Report it. */
export class UnexpectedError extends AirlockError {
  readonly errorClass = 'unexpected';
}

export class NotFoundError extends AirlockError {
  readonly errorClass = 'not-found';
}

/** The caller is known but may not do this. */
export class NotAllowedError extends AirlockError {
  readonly errorClass = 'not-allowed';
}

/** The caller could not be authenticated (bad signature, unknown agent, replay, bad credential). */
export class AuthenticationError extends AirlockError {
  readonly errorClass = 'authentication';
}

export class ConflictError extends AirlockError {
  readonly errorClass = 'conflict';
}

/** A job asked for something outside the agent's local policy. Always reported as a security event. */
export class PolicyViolationError extends AirlockError {
  readonly errorClass = 'policy-violation';
}

/** A server presented a host key other than the pinned one. Never retried. */
export class HostKeyMismatchError extends AirlockError {
  readonly errorClass = 'host-key-mismatch';
}

/** A recipient key that is expired, revoked, weak or cannot encrypt. */
export class RecipientKeyError extends AirlockError {
  readonly errorClass = 'recipient-key';
}

/**
 * A request that got no answer at all (refused, unresolvable, TLS, timed out). Retryable: the
 * server may come back. Built by `asNetworkError`, which words the message from the cause.
 */
export class NetworkError extends OperationalError {
  readonly url: string;
  readonly failure: NetworkFailure;
  constructor(message: string, options: { url: string; failure: NetworkFailure; cause?: unknown; safeReason?: string }) {
    super(message, options);
    this.url = options.url;
    this.failure = options.failure;
  }
}

export function isAirlockError(error: unknown): error is AirlockError {
  return error instanceof AirlockError;
}

/** The class to report for any thrown value: unknown throwables are bugs. */
export function classify(error: unknown): ErrorClass {
  return isAirlockError(error) ? error.errorClass : 'unexpected';
}

/** What a failure is called when nothing safer than its class is known. */
const GENERIC_REASONS: Record<ErrorClass, string> = {
  user: 'the job or the agent configuration is not valid (details in the agent log)',
  operational: 'a transient failure (details in the agent log)',
  unexpected: 'an unexpected error in the agent (details in the agent log)',
  'not-found': 'something the job names was not found (details in the agent log)',
  'not-allowed': 'not allowed (details in the agent log)',
  conflict: 'a conflict (details in the agent log)',
  'policy-violation': "refused by the agent's local policy (details in the agent log)",
  'host-key-mismatch': 'a server presented a host key other than the pinned one',
  authentication: 'authentication failed (details in the agent log)',
  'recipient-key': 'a recipient key cannot be used (details in the agent log)',
};

/**
 * Why a run failed, fit to show the control plane: the reason its thrower vouched for, else only
 * the class in words. Never the message: a message may quote a line of a file or a library's
 * echo of its input.
 */
export function reasonOf(error: unknown): string {
  if (isAirlockError(error) && error.safeReason !== undefined) return error.safeReason;
  return GENERIC_REASONS[classify(error)];
}

/** Operating-system error codes that say "try again later", not "this input is wrong". */
const TRANSIENT_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EAGAIN', 'EBUSY', 'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * A raw system error from I/O (a full disk, a reset connection) as a retryable OperationalError;
 * anything else is returned unchanged.
 */
export function asOperational(error: unknown): unknown {
  if (isAirlockError(error) || !(error instanceof Error)) return error;
  const code: unknown = Reflect.get(error, 'code');
  if (typeof code !== 'string' || !TRANSIENT_CODES.has(code)) return error;
  return new OperationalError(error.message.startsWith(code) ? error.message : `${code}: ${error.message}`, { cause: error, safeReason: `a transient failure (${code})` });
}

/** A one-line description for logs and CLIs: the class and the first line of the message. */
export function describe(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.split('\n')[0] ?? text;
}
