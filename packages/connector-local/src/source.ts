import { constants, type Dirent } from 'node:fs';
import { link, lstat, open, readdir, realpath, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  assertAsListed,
  checkListedName,
  defineSource,
  exactLength,
  isSafeName,
  isWithin,
  joinInside,
  matchPath,
  normalizePath,
  skipEntry,
  skippedEntry,
  type SkippedEntry,
  type SourceFile,
  type SourceSession,
  splitGlob,
} from '@airlock/connector-api';
import { ConflictError, NotAllowedError, UserError } from '@airlock/errors';
import { localFolderSourceDefinition } from './definition.ts';
import { errnoCode, fsError } from './fs-errors.ts';

/** Guards against pathological trees; deeper than this is almost certainly a mistake. */
const MAX_DEPTH = 32;

/** What a configuration selects: one file, or the files under `base` whose path matches `pattern`. */
type Selection =
  | { kind: 'file'; path: string }
  | {
      kind: 'tree';
      base: string;
      pattern: string;
      /** How many directory levels below `base` may be entered. */
      depth: number;
    };

/** Whether `target` is a directory; refuses one reached through a symlink. */
async function isRealDirectory(target: string): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(target);
  } catch (error) {
    throw fsError('resolve source path', target, error);
  }
  // The policy was checked against the configured path; a symlink would redirect reads elsewhere.
  if (real !== target) throw new NotAllowedError(`source path ${target} resolves through a symlink to another path`);
  const stats = await lstat(target).catch((error: unknown) => {
    throw fsError('stat source path', target, error);
  });
  return stats.isDirectory();
}

async function resolveSelection(configured: string): Promise<Selection> {
  const { base, glob } = splitGlob(configured);
  const isDirectory = await isRealDirectory(base);
  if (glob.length === 0) {
    return isDirectory ? { kind: 'tree', base, pattern: childPath(base, '*'), depth: 0 } : { kind: 'file', path: base };
  }
  if (!isDirectory) throw new UserError(`source ${base} is not a directory`);
  return { kind: 'tree', base, pattern: configured, depth: glob.includes('**') ? MAX_DEPTH : glob.length - 1 };
}

function selects(selection: Selection, candidate: string): boolean {
  if (selection.kind === 'file') return candidate === selection.path;
  return isWithin(selection.base, candidate) && matchPath(selection.pattern, candidate);
}

function childPath(directory: string, name: string): string {
  return directory === '/' ? `/${name}` : `${directory}/${name}`;
}

type Skip = (entry: SkippedEntry) => void;

async function walk(
  selection: Extract<Selection, { kind: 'tree' }>,
  directory: string,
  level: number,
  out: SourceFile[],
  skip: Skip,
): Promise<void> {
  let entries: Dirent<Buffer>[];
  try {
    // Names as bytes: a decoded name that was not UTF-8 would name another file, or none.
    entries = await readdir(directory, { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    throw fsError('list', directory, error);
  }
  for (const entry of entries) {
    const listed = checkListedName(entry.name);
    if (listed.kind === 'none') continue;
    // A name we cannot safely join is never guessed at: what the selection would take is reported.
    if (listed.kind !== 'name') {
      const standIn = childPath(directory, listed.standIn);
      const wanted = entry.isDirectory() ? level < selection.depth : entry.isFile() && selects(selection, standIn);
      if (wanted) skip(skippedEntry(directory, listed));
      continue;
    }
    const candidate = childPath(directory, listed.name);
    // Dirent types come from the directory entry itself: a symlink is reported as one and never followed.
    if (entry.isDirectory()) {
      if (level < selection.depth) await walk(selection, candidate, level + 1, out, skip);
      continue;
    }
    if (!entry.isFile() || !selects(selection, candidate)) continue;
    const file = await regularFile(candidate);
    if (file !== null) out.push(file);
  }
}

/** The file at `target` if it is (still) a regular file, by lstat: a symlink is never one. */
async function regularFile(target: string): Promise<SourceFile | null> {
  const name = path.posix.basename(target);
  if (!isSafeName(name)) return null;
  try {
    const stats = await lstat(target);
    return stats.isFile() ? { path: target, name, size: stats.size, mtimeMs: stats.mtimeMs } : null;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return null;
    throw fsError('stat', target, error);
  }
}

async function listSelection(selection: Selection, skip: Skip): Promise<SourceFile[]> {
  if (selection.kind === 'file') {
    const file = await regularFile(selection.path);
    return file === null ? [] : [file];
  }
  const files: SourceFile[] = [];
  await walk(selection, selection.base, 0, files, skip);
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Moves a file within one file system without ever replacing an existing name: link(2) then
 * unlink(2). Where hard links are not supported (some SMB mounts), a rename after checking that the
 * target is free, which leaves only a narrow race with another writer of the archive directory.
 */
async function moveNoClobber(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST') throw new ConflictError(`${to} already exists; ${from} left in place`, { cause: error });
    if (code === 'EXDEV') throw new UserError(`the archive directory is on another file system than ${from}`, { cause: error });
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw fsError('archive', from, error);
    if (await lstat(to).then(() => true, () => false)) {
      throw new ConflictError(`${to} already exists; ${from} left in place`);
    }
    await rename(from, to).catch((renameError: unknown) => {
      throw fsError('archive', from, renameError);
    });
    return;
  }
  await unlink(from).catch((error: unknown) => {
    throw fsError('remove archived original', from, error);
  });
}

/**
 * Reads files from a local or mounted directory. Lists regular files only, never follows a symlink,
 * and re-checks every file the host asks to open against the configured selection.
 */
export const localFolderSource = defineSource(localFolderSourceDefinition, {
  async connect(ctx, config): Promise<SourceSession> {
    const selection = await resolveSelection(config.path);
    const streams = new Set<Readable>();

    /** The listed file, re-checked against the selection, with no symlink on the way to it. */
    const checkSelected = async (file: SourceFile): Promise<void> => {
      const allowed =
        isSafeName(file.name) && path.posix.basename(file.path) === file.name && selects(selection, file.path);
      if (!allowed) throw new NotAllowedError(`${JSON.stringify(file.path)} is not selected by this source`);
      // Intermediate components must not have become symlinks since listing.
      const parent = path.posix.dirname(file.path);
      const realParent = await realpath(parent).catch((error: unknown) => {
        throw fsError('resolve', parent, error);
      });
      if (realParent !== parent) throw new NotAllowedError(`${parent} resolves through a symlink`);
    };

    /** Post-actions only touch the file that was read: same regular file, same size and mtime. */
    const checkUnchanged = async (file: SourceFile): Promise<void> => {
      await checkSelected(file);
      const current = await regularFile(file.path);
      if (current === null) throw new ConflictError(`${file.path} is gone or no longer a regular file`);
      if (current.size !== file.size || current.mtimeMs !== file.mtimeMs) {
        throw new ConflictError(`${file.path} changed since it was read; left in place`);
      }
    };

    const syncParent = async (file: string): Promise<void> => {
      const parent = path.posix.dirname(file);
      const handle = await open(parent, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => undefined);
      // Best effort: some network file systems cannot fsync a directory.
      await handle?.sync().catch(() => ctx.logger.warn({ directory: parent }, 'could not fsync source directory'));
      await handle?.close();
    };

    return {
      async list() {
        // The base could have been replaced by a symlink since connect.
        await isRealDirectory(selection.kind === 'file' ? selection.path : selection.base);
        return listSelection(selection, (entry) => skipEntry(ctx, entry));
      },
      async open(file) {
        await checkSelected(file);

        // O_NOFOLLOW refuses a symlink at the last component; O_NONBLOCK keeps a FIFO from hanging the open.
        const handle = await open(file.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
          (error: unknown) => {
            throw fsError('open', file.path, error);
          },
        );
        const stats = await handle.stat().catch(async (error: unknown) => {
          await handle.close();
          throw fsError('stat', file.path, error);
        });
        if (!stats.isFile()) {
          await handle.close();
          throw new NotAllowedError(`${file.path} is not a regular file`);
        }
        // Checked on the open descriptor, so a file swapped in after the check is not the one read.
        try {
          assertAsListed(file, stats, '');
        } catch (error) {
          await handle.close();
          throw error;
        }
        const stream = handle.createReadStream();
        streams.add(stream);
        stream.once('close', () => streams.delete(stream));
        const checked = exactLength(file, '');
        stream.once('error', (error) => checked.destroy(error));
        checked.once('close', () => stream.destroy());
        return stream.pipe(checked);
      },
      async remove(file) {
        await checkUnchanged(file);
        await unlink(file.path).catch((error: unknown) => {
          throw fsError('remove', file.path, error);
        });
        await syncParent(file.path);
      },
      async archive(file, directory) {
        const archiveDirectory = normalizePath(directory);
        if (!(await isRealDirectory(archiveDirectory))) throw new UserError(`archive ${archiveDirectory} is not a directory`);
        const target = joinInside(archiveDirectory, file.name);
        // An archived file the selection still matched would be picked up again under a new path.
        if (selects(selection, target)) throw new UserError(`archive ${archiveDirectory} lies inside the source selection`);
        await checkUnchanged(file);
        await moveNoClobber(file.path, target);
        await syncParent(target);
        await syncParent(file.path);
      },
      async close() {
        for (const stream of streams) stream.destroy();
        streams.clear();
      },
    };
  },
});
