/**
 * Removal of a delivery's partial file when the delivery is given up. A cut connection is the
 * usual reason a delivery fails, and it takes the writing connection with it; the partial file
 * would then stay on the server. So the removal falls back to one fresh connection (same pinned
 * host key, same credential), bounded in time. Only the exact path the delivery created is
 * touched. Best effort: it never throws, and what it cannot remove is logged as metadata.
 */
import type { ConnectorContext } from '@airlock/connector-api';
import { classify, OperationalError } from '@airlock/errors';
import { authorityOf, callVoid, channelIsOpen, connectSftp, isNoSuchFile, type SftpConnection } from './connection.ts';
import type { SftpConnectionConfig } from './schema.ts';

/** How long the removal may take, a fresh connection included; ending a connection adds at most 5 s. */
export const REMOVAL_TIMEOUT_MS = 10_000;

export interface PartialFile {
  /** The connection the file was written over; it may be gone. */
  readonly connection: SftpConnection;
  readonly path: string;
  /** The file's handle, when it is still open on `connection`. */
  readonly handle?: Buffer;
}

/** Rejects once `signal` aborts (the time is up: a transient failure); otherwise settles as `work` does. */
function boundedBy<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new OperationalError('removing the partial file took too long', { cause: signal.reason }));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function unlink(connection: SftpConnection, path: string): Promise<void> {
  const { sftp } = connection;
  try {
    await callVoid(sftp, (cb) => sftp.unlink(path, cb));
  } catch (error) {
    if (!isNoSuchFile(error)) throw error;
  }
}

/** Removes `path` over one new connection, given up when `signal` aborts. */
async function unlinkOverFreshConnection(
  ctx: ConnectorContext,
  config: SftpConnectionConfig,
  path: string,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<void> {
  // The run's own signal may be what ended the delivery; the cleanup has its own bound instead.
  const connection = await connectSftp(
    { signal, logger: ctx.logger, secret: (ref) => ctx.secret(ref) },
    { ...config, connectTimeoutMs: Math.min(config.connectTimeoutMs, timeoutMs) },
  );
  try {
    await boundedBy(signal, unlink(connection, path));
  } finally {
    await connection.end();
  }
}

/**
 * Closes the handle (if open) and removes the partial file over its own connection while that
 * connection is up; when it is gone, or goes during the attempt, over one fresh connection. All of
 * it within `timeoutMs`, plus the few seconds that ending a connection may wait.
 */
export async function removePartialFile(
  ctx: ConnectorContext,
  config: SftpConnectionConfig,
  file: PartialFile,
  timeoutMs: number = REMOVAL_TIMEOUT_MS,
): Promise<void> {
  const { connection, path, handle } = file;
  const meta = { authority: authorityOf(config), path };
  const { sftp } = connection;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    if (channelIsOpen(sftp)) {
      if (handle !== undefined) await boundedBy(signal, callVoid(sftp, (cb) => sftp.close(handle, cb))).catch(() => undefined);
      try {
        await boundedBy(signal, unlink(connection, path));
        return;
      } catch (error) {
        // The server answered and refused, or stalled: a new connection would fare no better.
        if (channelIsOpen(sftp)) throw error;
      }
    }
    await unlinkOverFreshConnection(ctx, config, path, signal, timeoutMs);
    ctx.logger.info(meta, 'partial file removed over a new connection');
  } catch (error) {
    ctx.logger.warn(
      { ...meta, errorClass: classify(error), error: error instanceof Error ? error.message : String(error) },
      'the partial file could not be removed: it stays on the server under its temporary name',
    );
  }
}
