import { constants as fsConstants } from 'node:fs';

export function isRegular(mode: number): boolean {
  return (mode & fsConstants.S_IFMT) === fsConstants.S_IFREG;
}

export function isDirectory(mode: number): boolean {
  return (mode & fsConstants.S_IFMT) === fsConstants.S_IFDIR;
}

/** Appends one name the caller has checked with `isSafeName` to an absolute remote directory. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
