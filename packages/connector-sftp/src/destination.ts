/**
 * The SFTP destination connector: delivers each file into a configured remote directory, first
 * under a hidden partial name, then, once every byte is acknowledged, synced and its size checked,
 * under its final name. A failed delivery leaves nothing under the final name.
 */
import {
  assertSafeName,
  AtomicDelivery,
  defineDestination,
  partialName,
  type ConnectorContext,
  type DestinationSession,
  type PendingDelivery,
} from '@airlock/connector-api';
import { OperationalError, UserError } from '@airlock/errors';
import {
  call,
  callVoid,
  connectSftp,
  refuseExisting,
  remoteError,
  sftpStat,
  type SftpConnection,
} from './connection.ts';
import { removePartialFile } from './partial-cleanup.ts';
import { childPath, isDirectory } from './paths.ts';
import { SftpWriteStream } from './writer.ts';
import { sftpDestinationDefinition } from './definition.ts';
import type { SftpDestinationConfig } from './schema.ts';

class SftpDelivery extends AtomicDelivery<SftpWriteStream> {
  #handleOpen = true;
  #tempExists = true;
  #cleaning: Promise<void> | undefined;

  constructor(
    private readonly ctx: ConnectorContext,
    private readonly config: SftpDestinationConfig,
    private readonly connection: SftpConnection,
    private readonly handle: Buffer,
    private readonly tempPath: string,
    finalPath: string,
    onSettled: (delivery: PendingDelivery) => void,
  ) {
    // The stream's 'finish' comes only once the server has acknowledged every WRITE.
    super(
      new SftpWriteStream(connection.sftp, handle, {
        path: tempPath,
        authority: connection.authority,
        maxWriteLength: connection.capabilities.maxWriteLength,
      }),
      finalPath,
      onSettled,
    );
  }

  protected failure(error: unknown): unknown {
    return this.#error('delivering', this.finalPath, error);
  }

  #error(action: string, path: string, error: unknown): Error {
    return remoteError(action, path, this.connection.authority, error);
  }

  /** fsync (when the server offers it), close, then prove the server holds every byte we sent. */
  protected async makeDurable(): Promise<void> {
    const { sftp, capabilities } = this.connection;
    if (capabilities.fsync) {
      await call<unknown>(sftp, (cb) => sftp.ext_openssh_fsync(this.handle, cb));
    }
    this.#handleOpen = false;
    await callVoid(sftp, (cb) => sftp.close(this.handle, cb));
    const stats = await sftpStat(sftp, this.tempPath);
    if (stats.size !== this.stream.bytesAcknowledged) {
      throw new OperationalError(
        `${this.tempPath} on ${this.connection.authority} holds ${stats.size} bytes, but ${this.stream.bytesAcknowledged} were written`,
      );
    }
  }

  /**
   * Publishes with plain SFTP RENAME, never `posix-rename@openssh.com`. SFTPv3 says RENAME fails
   * when the target exists, and OpenSSH implements it for regular files as link(2) + unlink(2),
   * which cannot replace a file and has no race. posix-rename is rename(2): it would replace an
   * existing delivery. The stat beforehand is the guard for servers whose RENAME replaces too;
   * against those, a file created between the stat and the rename would still be lost.
   */
  protected async publish(): Promise<void> {
    const { sftp } = this.connection;
    await refuseExisting(this.connection, this.finalPath);
    try {
      await callVoid(sftp, (cb) => sftp.rename(this.tempPath, this.finalPath, cb));
    } catch (error) {
      await refuseExisting(this.connection, this.finalPath, error);
      throw error;
    }
    this.#tempExists = false;
  }

  /**
   * Best effort, never throws: closes the handle and removes the partial file, over a fresh
   * connection if the delivery's own is gone; never touches the final name.
   */
  protected cleanUp(): Promise<void> {
    // Tried once, and shared: a second abort, or one racing a failed commit, waits for the first.
    this.#cleaning ??= this.#removePartial();
    return this.#cleaning;
  }

  async #removePartial(): Promise<void> {
    if (!this.stream.destroyed) this.stream.destroy();
    if (!this.#tempExists) return;
    const handle = this.#handleOpen ? this.handle : undefined;
    this.#handleOpen = false;
    await removePartialFile(this.ctx, this.config, { connection: this.connection, path: this.tempPath, ...(handle ? { handle } : {}) });
  }
}

/** Refuses anything but a real directory: a symlink could point the deliveries outside the claim. */
async function checkDirectory(connection: SftpConnection, directory: string): Promise<void> {
  let mode: number;
  try {
    mode = (await sftpStat(connection.sftp, directory)).mode;
  } catch (error) {
    throw remoteError('stat of destination directory', directory, connection.authority, error);
  }
  if (!isDirectory(mode)) throw new UserError(`destination ${directory} on ${connection.authority} is not a directory`);
}

async function connect(ctx: ConnectorContext, config: SftpDestinationConfig): Promise<DestinationSession> {
  const connection = await connectSftp(ctx, config);
  const pending = new Set<PendingDelivery>();
  const { directory, fileMode } = config;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    ctx.signal.removeEventListener('abort', onAbort);
    await Promise.all([...pending].map((delivery) => delivery.abort().catch(() => undefined)));
    await connection.end();
  };
  const onAbort = (): void => void close();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await checkDirectory(connection, directory);
  } catch (error) {
    await close();
    throw error;
  }

  return {
    async begin(name) {
      assertSafeName(name);
      if (closed) throw new OperationalError(`the session to ${connection.authority} is closed`);
      const finalPath = childPath(directory, name);
      const tempPath = childPath(directory, partialName(name));
      // Checked again per delivery: the directory could have been replaced since connect.
      await checkDirectory(connection, directory);
      const { sftp } = connection;
      let handle: Buffer;
      try {
        // 'wx' is CREAT | EXCL: never opens an existing file, nor follows a symlink at the temp name.
        handle = await call<Buffer>(sftp, (cb) => sftp.open(tempPath, 'wx', { mode: fileMode }, cb));
      } catch (error) {
        throw remoteError('creating partial file', tempPath, connection.authority, error);
      }
      try {
        // The server applies its umask at creation; the configured mode is what the admin asked for.
        await callVoid(sftp, (cb) => sftp.fchmod(handle, fileMode, cb));
      } catch (error) {
        await removePartialFile(ctx, config, { connection, path: tempPath, handle });
        throw remoteError('setting the mode of', tempPath, connection.authority, error);
      }
      const delivery = new SftpDelivery(ctx, config, connection, handle, tempPath, finalPath, (d) => pending.delete(d));
      pending.add(delivery);
      return delivery;
    },
    close,
  };
}

/** Delivers into a directory on an SFTP server; the host key is pinned as for the source. */
export const sftpDestination = defineDestination(sftpDestinationDefinition, { connect });
