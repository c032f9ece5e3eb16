import { type AirlockError, NotAllowedError, NotFoundError, OperationalError } from '@airlock/errors';

export function errnoCode(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code: unknown = Reflect.get(error, 'code');
  return typeof code === 'string' ? code : undefined;
}

/**
 * Maps a file-system error to the shared classes. The message names the operation and the path,
 * which are configuration, never file contents.
 */
export function fsError(operation: string, target: string, error: unknown): AirlockError {
  const code = errnoCode(error) ?? 'unknown';
  const message = `${operation} ${target}: ${code}`;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new NotFoundError(message, { cause: error });
    case 'EACCES':
    case 'EPERM':
    case 'ELOOP':
    case 'EROFS':
      return new NotAllowedError(message, { cause: error });
    default:
      // ENOSPC, EIO, EAGAIN, ESTALE on a shared folder: worth retrying later.
      return new OperationalError(message, { cause: error });
  }
}
