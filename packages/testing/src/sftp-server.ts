/**
 * An in-process SFTP server on `ssh2`'s `Server`, read-only unless `writable` is set. It is the
 * demo's fallback when OpenSSH is absent, and in tests a HOSTILE server: it can list names such as
 * `../x` or `/etc/passwd`, answer reads short, and it records every path a client asks about so a
 * test can prove what the client did (and did not) do.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { link, lstat, open, readdir, realpath, stat, unlink, type FileHandle } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isWithin } from '@airlock/connector-api';
import ssh2, { type Attributes, type AuthContext, type Connection, type FileEntry, type ParsedKey, type SFTPWrapper } from 'ssh2';
import { generateSshKeyPair, publicKeyLine, sshKeygenFingerprint } from './ssh-keys.ts';

const { Server, utils } = ssh2;
const { OPEN_MODE, STATUS_CODE } = utils.sftp;

export interface StartSftpServerOptions {
  /** The local directory served as `/`, read-only unless `writable`. */
  root: string;
  /**
   * Also serve file creation (exclusive only), WRITE, FSETSTAT of the mode, REMOVE and RENAME
   * (which, as SFTPv3 says, refuses an existing target). No SFTP extensions are offered.
   */
  writable?: boolean;
  /** Accept this password for any user name. */
  password?: string;
  /** Accept this public key (OpenSSH line or blob) for any user name. */
  authorizedKey?: string | Buffer;
  /** The host private key (PEM or OpenSSH); a fresh ed25519 key when absent. */
  hostKey?: string | Buffer;
  hostile?: {
    /** Names that every READDIR lists in addition to the real entries, as regular files. */
    extraNames?: string[];
    /** Answer every READ with fewer bytes than asked (never zero before the end of the file). */
    shortReads?: boolean;
  };
}

export interface SftpRequest {
  readonly op: string;
  readonly path: string;
}

export interface TestSftpServer extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly hostKeyFingerprint: string;
  /** Every path a client asked about, in order, exactly as sent. */
  readonly requests: SftpRequest[];
  /** Authentication attempts other than `none`: zero proves that no credential was sent. */
  readonly authAttempts: number;
  /** READ requests answered with fewer bytes than asked. */
  readonly shortReads: number;
  stop(): Promise<void>;
}

type Handle =
  | { kind: 'file'; file: FileHandle; writable: boolean }
  | { kind: 'dir'; virtual: string; done: boolean };

const WRITE_FLAGS = OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC | OPEN_MODE.EXCL;
/** The only way the writable mode creates files: a new file, never an existing one. */
const CREATE_FLAGS = OPEN_MODE.WRITE | OPEN_MODE.CREAT | OPEN_MODE.EXCL;

function sameSecret(given: string, expected: string): boolean {
  // Hashing first gives equal lengths, so the comparison leaks nothing about the length.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function parseKeyOrThrow(data: string | Buffer, what: string): ParsedKey {
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) throw new Error(`cannot parse ${what}: ${parsed.message}`);
  return parsed;
}

function toAttrs(stats: Stats): Attributes {
  return {
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    atime: Math.floor(stats.atimeMs / 1000),
    mtime: Math.floor(stats.mtimeMs / 1000),
  };
}

function longname(name: string, attrs: Attributes): string {
  const type = (attrs.mode & fsConstants.S_IFMT) === fsConstants.S_IFDIR ? 'd'
    : (attrs.mode & fsConstants.S_IFMT) === fsConstants.S_IFLNK ? 'l'
      : (attrs.mode & fsConstants.S_IFMT) === fsConstants.S_IFREG ? '-' : '?';
  const bits = 'rwxrwxrwx'
    .split('')
    .map((char, i) => ((attrs.mode >> (8 - i)) & 1 ? char : '-'))
    .join('');
  return `${type}${bits} 1 ${attrs.uid} ${attrs.gid} ${attrs.size} Jan  1 00:00 ${name}`;
}

export async function startSftpServer(options: StartSftpServerOptions): Promise<TestSftpServer> {
  const rootReal = await realpath(options.root);
  const hostKey = options.hostKey ?? generateSshKeyPair().private;
  const hostKeyFingerprint = await sshKeygenFingerprint(
    publicKeyLine(parseKeyOrThrow(hostKey, 'host key').getPublicSSH()),
  );
  const authorizedKey = options.authorizedKey === undefined ? undefined : parseKeyOrThrow(options.authorizedKey, 'authorized key');
  const extraNames = options.hostile?.extraNames ?? [];
  const requests: SftpRequest[] = [];
  let authAttempts = 0;
  let shortReads = 0;
  const writable = options.writable ?? false;
  const connections = new Set<Connection>();

  /** Maps a client path onto the served tree; `..` is clamped at `/` so the fixture never escapes. */
  const resolveLocal = async (clientPath: string): Promise<{ virtual: string; local: string }> => {
    const virtual = path.posix.resolve('/', clientPath);
    const local = path.join(rootReal, virtual);
    const real = await realpath(local);
    if (!isWithin(rootReal, real)) throw new Error('outside the served root');
    return { virtual, local };
  };

  /** Like `resolveLocal`, for a name that need not exist yet: its directory must. */
  const resolveNew = async (clientPath: string): Promise<{ virtual: string; local: string }> => {
    const virtual = path.posix.resolve('/', clientPath);
    const name = path.posix.basename(virtual);
    if (name === '' || name === '..' || name === '.') throw new Error('not a file name');
    const parent = await resolveLocal(path.posix.dirname(virtual));
    return { virtual, local: path.join(parent.local, name) };
  };

  const authenticate = (ctx: AuthContext): void => {
    if (ctx.method !== 'none') authAttempts += 1;
    const methods: Array<'password' | 'publickey'> = [];
    if (options.password !== undefined) methods.push('password');
    if (authorizedKey !== undefined) methods.push('publickey');
    if (ctx.method === 'password' && options.password !== undefined && sameSecret(ctx.password, options.password)) {
      ctx.accept();
      return;
    }
    if (ctx.method === 'publickey' && authorizedKey !== undefined) {
      const expected = authorizedKey.getPublicSSH();
      const matches =
        ctx.key.algo === authorizedKey.type &&
        ctx.key.data.length === expected.length &&
        timingSafeEqual(ctx.key.data, expected);
      if (matches) {
        if (ctx.signature === undefined || ctx.blob === undefined) {
          ctx.accept();
          return;
        }
        if (authorizedKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
          ctx.accept();
          return;
        }
      }
    }
    ctx.reject(methods);
  };

  const serveSftp = (sftp: SFTPWrapper): void => {
    const handles = new Map<number, Handle>();
    let nextHandle = 0;
    const newHandle = (handle: Handle): Buffer => {
      const id = nextHandle++;
      handles.set(id, handle);
      const buffer = Buffer.alloc(4);
      buffer.writeUInt32BE(id, 0);
      return buffer;
    };
    const lookup = (buffer: Buffer): [number, Handle] | undefined => {
      if (buffer.length !== 4) return undefined;
      const id = buffer.readUInt32BE(0);
      const handle = handles.get(id);
      return handle === undefined ? undefined : [id, handle];
    };
    const fail = (reqId: number) => (error: unknown): void => {
      const code = error instanceof Error && 'code' in error && error.code === 'ENOENT' ? STATUS_CODE.NO_SUCH_FILE : STATUS_CODE.FAILURE;
      sftp.status(reqId, code);
    };
    const record = (op: string, clientPath: string): void => {
      requests.push({ op, path: clientPath });
    };

    sftp.on('REALPATH', (reqId, clientPath) => {
      record('realpath', clientPath);
      resolveLocal(clientPath)
        .then(async ({ virtual, local }) => {
          const attrs = toAttrs(await stat(local));
          const entry: FileEntry = { filename: virtual, longname: longname(virtual, attrs), attrs };
          sftp.name(reqId, [entry]);
        })
        .catch(fail(reqId));
    });

    const onStat = (op: 'stat' | 'lstat') => (reqId: number, clientPath: string): void => {
      record(op, clientPath);
      resolveLocal(clientPath)
        .then(async ({ local }) => sftp.attrs(reqId, toAttrs(op === 'stat' ? await stat(local) : await lstat(local))))
        .catch(fail(reqId));
    };
    sftp.on('STAT', onStat('stat'));
    sftp.on('LSTAT', onStat('lstat'));

    sftp.on('OPENDIR', (reqId, clientPath) => {
      record('opendir', clientPath);
      resolveLocal(clientPath)
        .then(async ({ virtual, local }) => {
          if (!(await stat(local)).isDirectory()) throw new Error('not a directory');
          sftp.handle(reqId, newHandle({ kind: 'dir', virtual, done: false }));
        })
        .catch(fail(reqId));
    });

    sftp.on('READDIR', (reqId, buffer) => {
      const found = lookup(buffer);
      if (found === undefined || found[1].kind !== 'dir') {
        sftp.status(reqId, STATUS_CODE.FAILURE);
        return;
      }
      const dir = found[1];
      if (dir.done) {
        sftp.status(reqId, STATUS_CODE.EOF);
        return;
      }
      dir.done = true;
      resolveLocal(dir.virtual)
        .then(async ({ local }) => {
          const entries: FileEntry[] = [];
          for (const name of await readdir(local)) {
            const attrs = toAttrs(await lstat(path.join(local, name)));
            entries.push({ filename: name, longname: longname(name, attrs), attrs });
          }
          const now = Math.floor(Date.now() / 1000);
          for (const name of extraNames) {
            const attrs: Attributes = { mode: fsConstants.S_IFREG | 0o644, uid: 0, gid: 0, size: 5, atime: now, mtime: now };
            entries.push({ filename: name, longname: longname(name, attrs), attrs });
          }
          if (entries.length === 0) sftp.status(reqId, STATUS_CODE.EOF);
          else sftp.name(reqId, entries);
        })
        .catch(fail(reqId));
    });

    sftp.on('OPEN', (reqId, clientPath, flags, attrs) => {
      record('open', clientPath);
      if (writable && (flags & ~OPEN_MODE.TRUNC) === CREATE_FLAGS) {
        resolveNew(clientPath)
          .then(async ({ local }) => {
            const mode = (attrs.mode ?? 0o644) & 0o777;
            const flagsLocal = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
            const file = await open(local, flagsLocal, mode);
            sftp.handle(reqId, newHandle({ kind: 'file', file, writable: true }));
          })
          .catch(fail(reqId));
        return;
      }
      if ((flags & WRITE_FLAGS) !== 0 || (flags & OPEN_MODE.READ) === 0) {
        sftp.status(reqId, STATUS_CODE.PERMISSION_DENIED);
        return;
      }
      resolveLocal(clientPath)
        .then(async ({ local }) => {
          const file = await open(local, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
          if (!(await file.stat()).isFile()) {
            await file.close();
            throw new Error('not a regular file');
          }
          sftp.handle(reqId, newHandle({ kind: 'file', file, writable: false }));
        })
        .catch(fail(reqId));
    });

    sftp.on('READ', (reqId, buffer, offset, length) => {
      const found = lookup(buffer);
      if (found === undefined || found[1].kind !== 'file') {
        sftp.status(reqId, STATUS_CODE.FAILURE);
        return;
      }
      // A short answer is at most half of what was asked, varied by offset, but never empty.
      const granted = options.hostile?.shortReads === true ? Math.max(1, Math.floor(length / 2) - (offset % 7)) : length;
      const chunk = Buffer.alloc(Math.min(granted, 256 * 1024));
      found[1].file
        .read(chunk, 0, chunk.length, offset)
        .then(({ bytesRead }) => {
          if (bytesRead === 0) sftp.status(reqId, STATUS_CODE.EOF);
          else {
            if (bytesRead < length) shortReads += 1;
            sftp.data(reqId, chunk.subarray(0, bytesRead));
          }
        })
        .catch(fail(reqId));
    });

    sftp.on('FSTAT', (reqId, buffer) => {
      const found = lookup(buffer);
      if (found === undefined || found[1].kind !== 'file') {
        sftp.status(reqId, STATUS_CODE.FAILURE);
        return;
      }
      found[1].file
        .stat()
        .then((stats) => sftp.attrs(reqId, toAttrs(stats)))
        .catch(fail(reqId));
    });

    sftp.on('CLOSE', (reqId, buffer) => {
      const found = lookup(buffer);
      if (found === undefined) {
        sftp.status(reqId, STATUS_CODE.FAILURE);
        return;
      }
      const [id, handle] = found;
      handles.delete(id);
      const closing = handle.kind === 'file' ? handle.file.close() : Promise.resolve();
      closing.then(() => sftp.status(reqId, STATUS_CODE.OK)).catch(fail(reqId));
    });

    const writableFile = (buffer: Buffer): FileHandle | undefined => {
      const found = lookup(buffer);
      return found !== undefined && found[1].kind === 'file' && found[1].writable ? found[1].file : undefined;
    };
    const unsupported = ['SETSTAT', 'RMDIR', 'MKDIR', 'SYMLINK', 'READLINK'];
    if (writable) {
      sftp.on('WRITE', (reqId, buffer, offset, data) => {
        const file = writableFile(buffer);
        if (file === undefined) {
          sftp.status(reqId, STATUS_CODE.FAILURE);
          return;
        }
        file
          .write(data, 0, data.length, offset)
          .then(() => sftp.status(reqId, STATUS_CODE.OK))
          .catch(fail(reqId));
      });
      sftp.on('FSETSTAT', (reqId, buffer, attrs) => {
        const file = writableFile(buffer);
        if (file === undefined || attrs.mode === undefined) {
          sftp.status(reqId, STATUS_CODE.FAILURE);
          return;
        }
        file
          .chmod(attrs.mode & 0o777)
          .then(() => sftp.status(reqId, STATUS_CODE.OK))
          .catch(fail(reqId));
      });
      sftp.on('REMOVE', (reqId, clientPath) => {
        record('remove', clientPath);
        resolveNew(clientPath)
          .then(async ({ local }) => {
            if (!(await lstat(local)).isFile()) throw new Error('not a regular file');
            await unlink(local);
            sftp.status(reqId, STATUS_CODE.OK);
          })
          .catch(fail(reqId));
      });
      sftp.on('RENAME', (reqId, oldPath, newPath) => {
        record('rename', newPath);
        Promise.all([resolveNew(oldPath), resolveNew(newPath)])
          .then(async ([from, to]) => {
            // link(2) refuses an existing target: RENAME never replaces a file, as SFTPv3 says.
            await link(from.local, to.local);
            await unlink(from.local);
            sftp.status(reqId, STATUS_CODE.OK);
          })
          .catch(fail(reqId));
      });
    } else {
      unsupported.push('WRITE', 'FSETSTAT', 'REMOVE', 'RENAME');
    }
    for (const op of unsupported) {
      sftp.on(op, (reqId: number, target: unknown) => {
        if (typeof target === 'string') record(op.toLowerCase(), target);
        sftp.status(reqId, STATUS_CODE.OP_UNSUPPORTED);
      });
    }
    sftp.on('close', () => {
      for (const handle of handles.values()) if (handle.kind === 'file') void handle.file.close().catch(() => undefined);
      handles.clear();
    });
  };

  const server = new Server({ hostKeys: [hostKey] }, (client) => {
    connections.add(client);
    client.on('close', () => connections.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', authenticate);
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('sftp', (acceptSftp) => serveSftp(acceptSftp()));
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('could not read the listening port');
  const port = (address satisfies AddressInfo).port;

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const client of connections) client.end();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  return {
    host: '127.0.0.1',
    port,
    hostKeyFingerprint,
    requests,
    get authAttempts() {
      return authAttempts;
    },
    get shortReads() {
      return shortReads;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
