import { close, constants, createWriteStream, fchmod, open as openFd, type WriteStream } from 'node:fs';
import { link, lstat, open, realpath, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { finished } from 'node:stream/promises';
import {
  AtomicDelivery,
  defineDestination,
  type DestinationSession,
  joinInside,
  type Logger,
  partialName,
  type PendingDelivery,
} from '@airlock/connector-api';
import { ConflictError, NotAllowedError, UserError, isAirlockError } from '@airlock/errors';
import { localFolderDestinationDefinition } from './definition.ts';
import { errnoCode, fsError } from './fs-errors.ts';



/**
 * Refuses a directory reached through a symlink: the policy was checked against the configured
 * path, so the bytes must land exactly there.
 */
async function checkDirectory(directory: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(directory);
  } catch (error) {
    throw fsError('resolve destination directory', directory, error);
  }
  if (real !== directory) {
    throw new NotAllowedError(`destination directory ${directory} resolves through a symlink to another path`);
  }
  const stats = await lstat(directory).catch((error: unknown) => {
    throw fsError('stat destination directory', directory, error);
  });
  if (!stats.isDirectory()) throw new UserError(`destination ${directory} is not a directory`);
}

/** fsync on a directory makes the new link durable. Some network file systems cannot; that is not fatal. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } catch (error) {
    const code = errnoCode(error);
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EBADF') throw error;
  } finally {
    await handle.close();
  }
}

const openDescriptor = promisify(openFd);
const closeDescriptor = promisify(close);
const chmodDescriptor = promisify(fchmod);


class LocalDelivery extends AtomicDelivery<WriteStream> {
  #tempExists = true;

  constructor(
    fd: number,
    private readonly tempPath: string,
    finalPath: string,
    private readonly directory: string,
    private readonly logger: Logger,
    onSettled: (delivery: PendingDelivery) => void,
  ) {
    // The stream owns the descriptor from here on. `flush` fsyncs it before the stream closes it,
    // so once the stream has closed cleanly the bytes are durable under the partial name.
    super(createWriteStream(tempPath, { fd, flush: true }), finalPath, onSettled);
  }

  /** The stream's `flush` already fsynced the file before it finished. */
  protected async makeDurable(): Promise<void> {}

  protected failure(error: unknown): unknown {
    return isAirlockError(error) ? error : fsError('deliver', this.finalPath, error);
  }

  protected async publish(): Promise<void> {
    try {
      // link(2) never replaces an existing name, unlike rename(2): publishing cannot clobber a file.
      await link(this.tempPath, this.finalPath);
    } catch (error) {
      if (errnoCode(error) === 'EEXIST') throw new ConflictError(`${this.finalPath} already exists`, { cause: error });
      if (['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(errnoCode(error) ?? '')) {
        throw new UserError(`${this.directory} does not support hard links, which atomic no-clobber delivery needs`, { cause: error });
      }
      throw error;
    }
    // From here the complete, fsynced file is visible under its final name. Reporting a failure now
    // would make the host retry into a conflict, so what remains is best effort and logged.
    try {
      await unlink(this.tempPath);
      this.#tempExists = false;
    } catch (error) {
      this.logger.warn({ path: this.tempPath, code: errnoCode(error) }, 'could not remove partial name after publishing');
    }
    try {
      await syncDirectory(this.directory);
    } catch (error) {
      this.logger.warn({ directory: this.directory, code: errnoCode(error) }, 'could not fsync destination directory');
    }
  }

  /** Best effort: removes the partial file and releases the descriptor; never touches the final name. */
  protected async cleanUp(): Promise<void> {
    if (!this.stream.destroyed) this.stream.destroy();
    // Wait for the stream to release the descriptor; a premature-close rejection is expected here.
    await finished(this.stream).catch(() => undefined);
    if (this.#tempExists) {
      try {
        await unlink(this.tempPath);
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw fsError('remove partial file', this.tempPath, error);
      }
      this.#tempExists = false;
    }
  }
}

/**
 * Delivers into a local or mounted directory. Each delivery is written to a hidden partial file in
 * the same directory, fsynced, then hard-linked under its final name, so readers see either
 * nothing or the complete file and an existing file is never replaced.
 */
export const localFolderDestination = defineDestination(localFolderDestinationDefinition, {
  async connect(ctx, config): Promise<DestinationSession> {
    const { directory, fileMode } = config;
    await checkDirectory(directory);
    const pending = new Set<PendingDelivery>();

    return {
      async begin(name) {
        const finalPath = joinInside(directory, name);
        // Checked again per delivery: the directory could have been replaced since connect.
        await checkDirectory(directory);
        const tempPath = joinInside(directory, partialName(name));
        let fd: number;
        try {
          // O_EXCL with O_CREAT never follows a symlink at the temp name; O_NOFOLLOW says so explicitly.
          fd = await openDescriptor(
            tempPath,
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
            fileMode,
          );
        } catch (error) {
          throw fsError('create partial file', tempPath, error);
        }
        try {
          // open(2) applies the umask; the configured mode is what the admin asked for.
          await chmodDescriptor(fd, fileMode);
        } catch (error) {
          await closeDescriptor(fd).catch(() => undefined);
          await unlink(tempPath).catch(() => undefined);
          throw fsError('set mode of partial file', tempPath, error);
        }
        const delivery = new LocalDelivery(fd, tempPath, finalPath, directory, ctx.logger, (d) =>
          pending.delete(d),
        );
        pending.add(delivery);
        return delivery;
      },
      async close() {
        await Promise.all([...pending].map((delivery) => delivery.abort()));
      },
    };
  },
});
