/**
 * Path safety. Every path the agent receives from outside (a job, a directory listing) passes
 * through here before it is joined or opened. Checks compare path components, never string
 * prefixes: `/srv/out` does not contain `/srv/outx`.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { NotAllowedError } from '@airlock/errors';

const MAX_NAME_BYTES = 255;
// Control characters, including NUL, have no place in a file name we accept.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function isPlainName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\\') &&
    !CONTROL.test(name) &&
    Buffer.byteLength(name) <= MAX_NAME_BYTES
  );
}

/**
 * A single, ordinary path component: not empty, `.` or `..`, no separators, no control characters,
 * and none of those after Unicode compatibility normalization either (`．．` or a fullwidth solidus
 * become `..` and `/` on systems that normalize names).
 */
export function isSafeName(name: string): boolean {
  return isPlainName(name) && isPlainName(name.normalize('NFKC'));
}

export function assertSafeName(name: string): string {
  if (!isSafeName(name)) throw new NotAllowedError(`unsafe file name ${JSON.stringify(name)}`);
  return name;
}

/**
 * The components of an absolute POSIX path. `.` and empty components are dropped; `..`, NUL,
 * backslashes and relative paths are refused outright rather than resolved, because a request
 * that needs them is not one we should be guessing about.
 */
export function pathComponents(posixPath: string): string[] {
  if (!posixPath.startsWith('/')) throw new NotAllowedError(`path must be absolute: ${JSON.stringify(posixPath)}`);
  const components = posixPath.split('/').filter((c) => c !== '' && c !== '.');
  for (const component of components) {
    if (!isSafeName(component)) throw new NotAllowedError(`unsafe path ${JSON.stringify(posixPath)}`);
  }
  return components;
}

/** The canonical form of an absolute POSIX path (see `pathComponents`). */
export function normalizePath(posixPath: string): string {
  return `/${pathComponents(posixPath).join('/')}`;
}

/** Whether `candidate` is `root` or lies below it, compared component by component. */
export function isWithin(root: string, candidate: string): boolean {
  const rootParts = pathComponents(root);
  const parts = pathComponents(candidate);
  return rootParts.length <= parts.length && rootParts.every((part, i) => parts[i] === part);
}

const GLOB_CHARS = /[*?[\]{}]/;

/** Splits a path pattern into the literal directory it starts from and the glob below it. */
export function splitGlob(pattern: string): { base: string; glob: string[] } {
  const parts = pathComponents(pattern);
  const first = parts.findIndex((part) => GLOB_CHARS.test(part));
  if (first === -1) return { base: `/${parts.join('/')}`, glob: [] };
  return { base: `/${parts.slice(0, first).join('/')}`, glob: parts.slice(first) };
}

function segmentMatches(pattern: string, name: string): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.')) return false;
  let source = '^';
  for (const char of pattern) {
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${source}$`, 'u').test(name);
}

function componentsMatch(pattern: readonly string[], parts: readonly string[]): boolean {
  const [head, ...rest] = pattern;
  if (head === undefined) return parts.length === 0;
  if (head === '**') {
    for (let skip = 0; skip <= parts.length; skip++) {
      if (componentsMatch(rest, parts.slice(skip))) return true;
      // Like `*`, `**` does not descend into or match dot-files and dot-directories.
      if (parts[skip]?.startsWith('.')) return false;
    }
    return false;
  }
  const [part, ...remaining] = parts;
  return part !== undefined && segmentMatches(head, part) && componentsMatch(rest, remaining);
}

/**
 * Whether an absolute path matches a pattern, component by component. `*` and `?` stay within one
 * component; `**` spans any number of components. Neither matches a name starting with a dot.
 */
export function matchPath(pattern: string, candidate: string): boolean {
  return componentsMatch(pathComponents(pattern), pathComponents(candidate));
}

/**
 * Joins a single checked name onto a local directory and proves the result stays inside it.
 * Symlinks are the caller's concern: open with `O_NOFOLLOW` or check `realpath` where they matter.
 */
export function joinInside(root: string, name: string): string {
  assertSafeName(name);
  const resolvedRoot = path.resolve(root);
  const joined = path.resolve(resolvedRoot, name);
  const relative = path.relative(resolvedRoot, joined);
  const parts = relative.split(path.sep);
  if (relative === '' || path.isAbsolute(relative) || parts.length !== 1 || parts[0] === '..') {
    throw new NotAllowedError(`${JSON.stringify(name)} escapes ${resolvedRoot}`);
  }
  return joined;
}

const PARTIAL_SUFFIX = '.airlock-partial';

/**
 * A fresh hidden name for a delivery in progress, in the same directory as its final name:
 * `.<name>.<random>.airlock-partial`. Destinations write here, then publish under `name`.
 */
export function partialName(name: string): string {
  assertSafeName(name);
  const suffix = `.${randomBytes(8).toString('hex')}${PARTIAL_SUFFIX}`;
  const candidate = `.${name}${suffix}`;
  // A 255-byte final name leaves no room for the decoration; the temp name then carries no hint of it.
  return Buffer.byteLength(candidate) <= MAX_NAME_BYTES ? candidate : `.airlock${suffix}`;
}
