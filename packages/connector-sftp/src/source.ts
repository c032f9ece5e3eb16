/**
 * The SFTP source connector: lists files under a configured path (or glob) on an SFTP server and
 * streams them to the host. The server is untrusted: its host key is pinned, and every name it
 * returns is checked before it becomes part of a path.
 */
import type { Readable } from 'node:stream';
import {
  chunkReleaser,
  exactLength,
  checkListedName,
  defineSource,
  isSafeName,
  isWithin,
  lendChunks,
  matchPath,
  skipEntry,
  skippedEntry,
  splitGlob,
  type ConnectorContext,
  type SourceFile,
  type SourceSession,
} from '@airlock/connector-api';
import { ConflictError, NotAllowedError, UserError } from '@airlock/errors';
import type { FileEntry, Stats } from 'ssh2';
import {
  call,
  callVoid,
  connectSftp,
  isNoSuchFile,
  refuseExisting,
  remoteError,
  sftpStat,
  type SftpConnection,
} from './connection.ts';
import { childPath, isDirectory, isRegular } from './paths.ts';
import { SftpReadStream } from './reader.ts';
import { sftpSourceDefinition } from './definition.ts';
import type { SftpSourceConfig } from './schema.ts';

/** How deep `**` descends, and how many directory entries one listing may visit. */
const MAX_DEPTH = 32;
const MAX_ENTRIES = 100_000;
class SftpSourceSession implements SourceSession {
  readonly #ctx: ConnectorContext;
  readonly #config: SftpSourceConfig;
  readonly #connection: SftpConnection;
  readonly #onAbort: () => void;
  #closed = false;

  constructor(ctx: ConnectorContext, config: SftpSourceConfig, connection: SftpConnection) {
    this.#ctx = ctx;
    this.#config = config;
    this.#connection = connection;
    this.#onAbort = () => void this.close();
    ctx.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  #remoteError(action: string, path: string, error: unknown): Error {
    return remoteError(action, path, this.#connection.authority, error);
  }

  #authority(): string {
    return this.#connection.authority;
  }

  async list(): Promise<SourceFile[]> {
    const { base, glob } = splitGlob(this.#config.path);
    if (glob.length === 0) return this.#listSingle(base);

    const recursive = glob.includes('**');
    const maxDepth = recursive ? MAX_DEPTH : glob.length;
    const files: SourceFile[] = [];
    let visited = 0;

    const walk = async (dir: string, depth: number): Promise<void> => {
      this.#ctx.signal.throwIfAborted();
      let entries: FileEntry[];
      try {
        entries = await call<FileEntry[]>(this.#connection.sftp, (cb) => this.#connection.sftp.readdir(dir, cb));
      } catch (error) {
        throw this.#remoteError('listing', dir, error);
      }
      for (const entry of entries) {
        visited += 1;
        if (visited > MAX_ENTRIES) {
          throw new UserError(`${this.#config.path} on ${this.#authority()} selects more than ${MAX_ENTRIES} entries; narrow the path`);
        }
        // ssh2 decodes names as UTF-8, replacing what is not: such a name would open another file, or none.
        // A hostile server may send `..`, `/etc/passwd` or `a/b`: such a name never becomes a path.
        const listed = checkListedName(entry.filename);
        if (listed.kind === 'none') continue;
        const name = listed.kind === 'name' ? listed.name : listed.standIn;
        const path = childPath(dir, name);
        if (!isWithin(base, path)) continue;
        // Without `**`, only descend into directories the glob's next component can match.
        const prefix = [base === '/' ? '' : base, ...glob.slice(0, depth + 1)].join('/');
        const selected = isRegular(entry.attrs.mode) && matchPath(this.#config.path, path);
        const entered = isDirectory(entry.attrs.mode) && depth + 1 < maxDepth && (recursive || matchPath(prefix, path));
        if (listed.kind !== 'name') {
          if (selected || entered) skipEntry(this.#ctx, skippedEntry(dir, listed));
          continue;
        }
        if (selected) files.push({ path, name, size: entry.attrs.size, mtimeMs: entry.attrs.mtime * 1000 });
        else if (entered) await walk(path, depth + 1);
        // Symlinks, devices, sockets and FIFOs are never selected.
      }
    };

    await walk(base, 0);
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async #listSingle(path: string): Promise<SourceFile[]> {
    let stats: Stats;
    try {
      stats = await sftpStat(this.#connection.sftp, path);
    } catch (error) {
      throw this.#remoteError('stat of', path, error);
    }
    if (isDirectory(stats.mode)) {
      throw new UserError(`${path} on ${this.#authority()} is a directory; select its files with a glob such as ${path}/*`);
    }
    if (!isRegular(stats.mode)) return [];
    const name = path.slice(path.lastIndexOf('/') + 1);
    return [{ path, name, size: stats.size, mtimeMs: stats.mtime * 1000 }];
  }

  async open(file: SourceFile): Promise<Readable> {
    // The file must still be the one listed; `exactLength` catches a change while it is read.
    await this.#checkUnchanged(file);
    // Streamed straight from the server into the host's pipeline: plaintext never touches the disk.
    const stream = await SftpReadStream.open(this.#connection.sftp, {
      path: file.path,
      authority: this.#authority(),
      maxReadLength: this.#connection.capabilities.maxReadLength,
    });
    const checked = exactLength(file, ` on ${this.#authority()}`);
    stream.once('error', (error) => checked.destroy(error));
    checked.once('close', () => stream.destroy());
    // exactLength passes each chunk on as it is and keeps none, so the reader's buffers are lent on.
    lendChunks(checked, chunkReleaser(stream));
    return stream.pipe(checked);
  }

  /**
   * Post-actions touch only the file that was read: still selected, still a regular file (lstat: a
   * symlink put in its place is refused), with the size and mtime it was listed with.
   */
  async #checkUnchanged(file: SourceFile): Promise<void> {
    this.#checkSelected(file);
    this.#ctx.signal.throwIfAborted();
    let stats: Stats;
    try {
      stats = await sftpStat(this.#connection.sftp, file.path);
    } catch (error) {
      if (isNoSuchFile(error)) throw new ConflictError(`${file.path} on ${this.#authority()} is gone`, { cause: error });
      throw this.#remoteError('stat of', file.path, error);
    }
    if (!isRegular(stats.mode)) throw new ConflictError(`${file.path} on ${this.#authority()} is no longer a regular file`);
    if (stats.size !== file.size || stats.mtime * 1000 !== file.mtimeMs) {
      throw new ConflictError(`${file.path} on ${this.#authority()} changed since it was read; left in place`);
    }
  }

  /** The host hands back what list() returned, but every use is checked again. */
  #checkSelected(file: SourceFile): void {
    const { base } = splitGlob(this.#config.path);
    // `name` becomes part of the archive path: it must be the last component of `path`.
    const named = isSafeName(file.name) && file.path.endsWith(`/${file.name}`);
    if (!named || !isWithin(base, file.path) || !matchPath(this.#config.path, file.path)) {
      throw new NotAllowedError(`${JSON.stringify(file.path)} is not selected by ${this.#config.path}`);
    }
  }

  async remove(file: SourceFile): Promise<void> {
    await this.#checkUnchanged(file);
    const { sftp } = this.#connection;
    try {
      await callVoid(sftp, (cb) => sftp.unlink(file.path, cb));
    } catch (error) {
      throw this.#remoteError('removing', file.path, error);
    }
  }

  /**
   * Moves the file into `directory` with plain SFTP RENAME, which SFTPv3 defines as failing when
   * the target exists (OpenSSH: link(2) + unlink(2)); never `posix-rename@openssh.com`, which would
   * replace an earlier archived file. The directory must be a real one: no symlink on the way.
   */
  async archive(file: SourceFile, directory: string): Promise<void> {
    const { sftp } = this.#connection;
    let resolved: string;
    let mode: number;
    try {
      resolved = await call<string>(sftp, (cb) => sftp.realpath(directory, cb));
      mode = (await sftpStat(sftp, directory)).mode;
    } catch (error) {
      if (isNoSuchFile(error)) throw new UserError(`archive ${directory} on ${this.#authority()} does not exist`, { cause: error });
      throw this.#remoteError('stat of archive directory', directory, error);
    }
    if (resolved !== directory || !isDirectory(mode)) {
      throw new UserError(`archive ${directory} on ${this.#authority()} is not a directory (or resolves through a symlink)`);
    }
    const target = childPath(directory, file.name);
    // An archived file the selection still matched would be picked up again under a new path.
    if (matchPath(this.#config.path, target)) throw new UserError(`archive ${directory} lies inside the source selection`);
    await this.#checkUnchanged(file);
    await refuseExisting(this.#connection, target);
    try {
      await callVoid(sftp, (cb) => sftp.rename(file.path, target, cb));
    } catch (error) {
      await refuseExisting(this.#connection, target, error);
      throw this.#remoteError('archiving', file.path, error);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.signal.removeEventListener('abort', this.#onAbort);
    await this.#connection.end();
  }
}

async function connect(ctx: ConnectorContext, config: SftpSourceConfig): Promise<SourceSession> {
  return new SftpSourceSession(ctx, config, await connectSftp(ctx, config));
}

export const sftpSource = defineSource(sftpSourceDefinition, { connect });
