/**
 * The SFTP source connector: lists files under a configured path (or glob) on an SFTP server and
 * streams them to the host. The server is untrusted: its host key is pinned, and every name it
 * returns is checked before it becomes part of a path.
 */
import { constants as fsConstants } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import {
  defineSource,
  isSafeName,
  isWithin,
  matchPath,
  splitGlob,
  type ConnectorContext,
  type SourceFile,
  type SourceSession,
} from '@airlock/connector-api';
import {
  AuthenticationError,
  HostKeyMismatchError,
  NotAllowedError,
  OperationalError,
  UserError,
  isAirlockError,
} from '@airlock/errors';
import ssh2 from 'ssh2';
import type { FileEntry, SFTPWrapper, Stats } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { fingerprintOf, fingerprintsEqual } from './fingerprint.ts';
import { sftpSecrets, sftpSourceConfig, type SftpSecrets, type SftpSourceConfig } from './schema.ts';

/** How deep `**` descends, and how many directory entries one listing may visit. */
const MAX_DEPTH = 32;
const MAX_ENTRIES = 100_000;
/** Bytes per read request of the remote read stream. */
const READ_CHUNK = 256 * 1024;

function isRegular(mode: number): boolean {
  return (mode & fsConstants.S_IFMT) === fsConstants.S_IFREG;
}

function isDirectory(mode: number): boolean {
  return (mode & fsConstants.S_IFMT) === fsConstants.S_IFDIR;
}

function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function readSecrets(ctx: ConnectorContext, ref: string): Promise<SftpSecrets> {
  const raw = await ctx.secret(ref);
  const parsed = sftpSecrets.safeParse(raw);
  // Neither the values nor zod's issues (which may echo them) go into the error.
  if (!parsed.success) {
    throw new UserError(`credential ${JSON.stringify(ref)} must hold either "password" or "privateKey" (with an optional "passphrase")`);
  }
  if ('privateKey' in parsed.data) {
    const key = ssh2.utils.parseKey(parsed.data.privateKey, parsed.data.passphrase);
    if (key instanceof Error) {
      throw new UserError(`credential ${JSON.stringify(ref)}: the private key cannot be read (wrong format or passphrase)`);
    }
  }
  return parsed.data;
}

function promisify<T>(start: (callback: (error: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value)));
  });
}

class SftpSourceSession implements SourceSession {
  readonly #ctx: ConnectorContext;
  readonly #config: SftpSourceConfig;
  readonly #client: SftpClient;
  readonly #sftp: SFTPWrapper;
  readonly #onAbort: () => void;
  #closed = false;

  constructor(ctx: ConnectorContext, config: SftpSourceConfig, client: SftpClient, sftp: SFTPWrapper) {
    this.#ctx = ctx;
    this.#config = config;
    this.#client = client;
    this.#sftp = sftp;
    this.#onAbort = () => void this.close();
    ctx.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  #remoteError(action: string, path: string, error: unknown): Error {
    if (isAirlockError(error)) return error;
    return new OperationalError(`${action} ${JSON.stringify(path)} on ${this.#authority()} failed: ${describeError(error)}`, {
      cause: error,
    });
  }

  #authority(): string {
    return `${this.#config.host}:${this.#config.port}`;
  }

  async list(): Promise<SourceFile[]> {
    const { base, glob } = splitGlob(this.#config.path);
    if (glob.length === 0) return this.#listSingle(base);

    const recursive = glob.includes('**');
    const maxDepth = recursive ? MAX_DEPTH : glob.length;
    const files: SourceFile[] = [];
    const unsafe: string[] = [];
    let unsafeCount = 0;
    let visited = 0;

    const walk = async (dir: string, depth: number): Promise<void> => {
      this.#ctx.signal.throwIfAborted();
      let entries: FileEntry[];
      try {
        entries = await promisify<FileEntry[]>((cb) => this.#sftp.readdir(dir, cb));
      } catch (error) {
        throw this.#remoteError('listing', dir, error);
      }
      for (const entry of entries) {
        visited += 1;
        if (visited > MAX_ENTRIES) {
          throw new UserError(`${this.#config.path} on ${this.#authority()} selects more than ${MAX_ENTRIES} entries; narrow the path`);
        }
        // A hostile server may send `..`, `/etc/passwd` or `a/b`: such a name never becomes a path.
        if (!isSafeName(entry.filename)) {
          unsafeCount += 1;
          if (unsafe.length < 10) unsafe.push(JSON.stringify(entry.filename));
          continue;
        }
        const path = childPath(dir, entry.filename);
        if (!isWithin(base, path)) continue;
        if (isRegular(entry.attrs.mode)) {
          if (matchPath(this.#config.path, path)) {
            files.push({ path, name: entry.filename, size: entry.attrs.size, mtimeMs: entry.attrs.mtime * 1000 });
          }
        } else if (isDirectory(entry.attrs.mode) && depth + 1 < maxDepth) {
          // Without `**`, only descend into directories the glob's next component can match.
          const prefix = [base === '/' ? '' : base, ...glob.slice(0, depth + 1)].join('/');
          if (recursive || matchPath(prefix, path)) await walk(path, depth + 1);
        }
        // Symlinks, devices, sockets and FIFOs are never selected.
      }
    };

    await walk(base, 0);
    if (unsafeCount > 0) {
      this.#ctx.logger.warn(
        { authority: this.#authority(), count: unsafeCount, examples: unsafe },
        'sftp server listed unsafe file names; skipped them',
      );
    }
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async #listSingle(path: string): Promise<SourceFile[]> {
    let stats: Stats;
    try {
      stats = await promisify<Stats>((cb) => this.#sftp.lstat(path, cb));
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
    const { base } = splitGlob(this.#config.path);
    // The host hands back what list() returned, but it is checked again right before it is read.
    if (!isWithin(base, file.path) || !matchPath(this.#config.path, file.path)) {
      throw new NotAllowedError(`${JSON.stringify(file.path)} is not selected by ${this.#config.path}`);
    }
    this.#ctx.signal.throwIfAborted();
    // Streamed straight from the server into the host's pipeline: plaintext never touches the disk.
    const remote = this.#sftp.createReadStream(file.path, { highWaterMark: READ_CHUNK });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: unknown): void => {
        remote.off('open', onOpen);
        reject(this.#remoteError('opening', file.path, error));
      };
      const onOpen = (): void => {
        remote.off('error', onError);
        resolve();
      };
      remote.once('error', onError);
      remote.once('open', onOpen);
    });
    const out = new PassThrough({ highWaterMark: READ_CHUNK });
    remote.on('error', (error: unknown) => out.destroy(this.#remoteError('reading', file.path, error)));
    out.on('close', () => remote.destroy());
    remote.pipe(out);
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.signal.removeEventListener('abort', this.#onAbort);
    await this.#client.end().catch(() => undefined);
  }
}

async function connect(ctx: ConnectorContext, config: SftpSourceConfig): Promise<SourceSession> {
  ctx.signal.throwIfAborted();
  const secrets = await readSecrets(ctx, config.credentialRef);
  const authority = `${config.host}:${config.port}`;
  let offeredKey: string | undefined;
  let lastError: (Error & { level?: unknown }) | undefined;

  const client = new SftpClient('airlock-sftp', {
    // Metadata only: ssh2's messages carry no secrets, but we keep even them at debug level.
    error: (error) => ctx.logger.debug({ authority, error: describeError(error) }, 'sftp connection error'),
    end: () => ctx.logger.debug({ authority }, 'sftp connection ended'),
    close: () => ctx.logger.debug({ authority }, 'sftp connection closed'),
  });
  client.on('error', (error: Error & { level?: unknown }) => {
    lastError = error;
  });
  const abort = (): void => void client.end().catch(() => undefined);
  ctx.signal.addEventListener('abort', abort, { once: true });

  try {
    const sftp = await client.connect({
      host: config.host,
      port: config.port,
      username: config.username,
      ...('password' in secrets
        ? { password: secrets.password }
        : { privateKey: secrets.privateKey, passphrase: secrets.passphrase }),
      readyTimeout: config.connectTimeoutMs,
      agent: undefined,
      agentForward: false,
      tryKeyboard: false,
      // The pin is checked during key exchange, before any credential is sent; there is no
      // trust-on-first-use, so a new or changed key is refused until an admin updates the pin.
      hostVerifier: (key: Buffer): boolean => {
        const offered = fingerprintOf(key);
        if (fingerprintsEqual(offered, config.hostKey)) return true;
        offeredKey = offered;
        return false;
      },
    });
    ctx.logger.info({ authority, hostKey: config.hostKey }, 'sftp connected');
    return new SftpSourceSession(ctx, config, client, sftp);
  } catch (error) {
    await client.end().catch(() => undefined);
    if (offeredKey !== undefined) {
      throw new HostKeyMismatchError(`${authority} presented host key ${offeredKey}, not the pinned ${config.hostKey}`, {
        cause: error,
      });
    }
    if (lastError?.level === 'client-authentication') {
      throw new AuthenticationError(`authentication as ${JSON.stringify(config.username)} to ${authority} failed`, {
        cause: error,
      });
    }
    if (ctx.signal.aborted) throw new OperationalError(`connecting to ${authority} was aborted`, { cause: ctx.signal.reason });
    throw new OperationalError(`could not connect to ${authority}: ${describeError(error)}`, { cause: error });
  } finally {
    ctx.signal.removeEventListener('abort', abort);
  }
}

export const sftpSource = defineSource<SftpSourceConfig>({
  id: 'sftp',
  version: 1,
  title: 'SFTP server',
  config: sftpSourceConfig,
  secrets: sftpSecrets,
  claims: (config) => [
    { scheme: 'sftp', authority: `${config.host}:${config.port}`, path: config.path, hostKey: config.hostKey },
  ],
  claimFor: (config, file) => ({
    scheme: 'sftp',
    authority: `${config.host}:${config.port}`,
    path: file.path,
    hostKey: config.hostKey,
  }),
  connect,
});
