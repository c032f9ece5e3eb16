/**
 * Errors across the wire. The control plane's tRPC error formatter puts the class of every error it
 * sends in `data.errorClass`; clients (the agent, the CLI, the console) read it back here and
 * branch on the class, never on an HTTP status. This module reads the error's shape and imports no
 * transport, so connectors and the data path can keep depending on this package alone.
 */
import {
  type AirlockError,
  AuthenticationError,
  ConflictError,
  type ErrorClass,
  errorClasses,
  HostKeyMismatchError,
  NotAllowedError,
  NotFoundError,
  OperationalError,
  PolicyViolationError,
  RecipientKeyError,
  UnexpectedError,
  UserError,
} from './errors.ts';

export function isErrorClass(value: unknown): value is ErrorClass {
  return typeof value === 'string' && (errorClasses as readonly string[]).includes(value);
}

/** A new error of the named class. */
export function errorOfClass(errorClass: ErrorClass, message: string, options?: { cause?: unknown }): AirlockError {
  switch (errorClass) {
    case 'user':
      return new UserError(message, options);
    case 'operational':
      return new OperationalError(message, options);
    case 'unexpected':
      return new UnexpectedError(message, options);
    case 'not-found':
      return new NotFoundError(message, options);
    case 'not-allowed':
      return new NotAllowedError(message, options);
    case 'conflict':
      return new ConflictError(message, options);
    case 'policy-violation':
      return new PolicyViolationError(message, options);
    case 'host-key-mismatch':
      return new HostKeyMismatchError(message, options);
    case 'authentication':
      return new AuthenticationError(message, options);
    case 'recipient-key':
      return new RecipientKeyError(message, options);
  }
}

/**
 * The class for a bare HTTP status: only for answers that carry no class (a proxy's or load
 * balancer's error page, a server older than the class field).
 */
export function errorClassOfStatus(status: number): ErrorClass {
  if (status === 401) return 'authentication';
  if (status === 403) return 'not-allowed';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 408 || status === 429 || status === 502 || status === 503 || status === 504) return 'operational';
  if (status >= 400 && status < 500) return 'user';
  return 'unexpected';
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined;
}

/**
 * The class of an error answered by an Airlock server: `data.errorClass`, else the class of
 * `data.httpStatus`; undefined for anything that is not a server's answer (a refused connection,
 * a timeout, a local bug).
 */
export function remoteErrorClass(error: unknown): ErrorClass | undefined {
  const data = field(error, 'data');
  const errorClass = field(data, 'errorClass');
  if (isErrorClass(errorClass)) return errorClass;
  const status = field(data, 'httpStatus');
  return typeof status === 'number' ? errorClassOfStatus(status) : undefined;
}

/** A server's answer as the AirlockError of its class, with the server's message; anything else unchanged. */
export function fromRemote(error: unknown): unknown {
  const errorClass = remoteErrorClass(error);
  if (errorClass === undefined || !(error instanceof Error)) return error;
  return errorOfClass(errorClass, error.message, { cause: error });
}
