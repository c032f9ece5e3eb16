/** Small file helpers for the agent's data directory: atomic replacement, 0600 appends, admin-owned files. */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { UserError } from '@airlock/errors';

/** Writes `text` to a temporary file beside `file`, syncs it, then renames it over `file`: readers see the old or the new, never half. */
export async function replaceFile(file: string, text: string): Promise<void> {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
}

/** The system error code of a failed file operation (`ENOENT`, `EEXIST`, ...), if it has one. */
export function errnoCode(error: unknown): unknown {
  return error instanceof Error ? Reflect.get(error, 'code') : undefined;
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** Appends one line and syncs it; the file is created 0600 and only ever appended to. */
export async function appendLine(file: string, line: string): Promise<void> {
  const handle = await open(file, 'a', 0o600);
  try {
    await handle.appendFile(`${line}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/**
 * A file the on-prem admin owns (policy.yaml, secrets.yaml): its text, or undefined when it does not
 * exist. Refused when group or others may write it, since they could widen the policy or swap a
 * credential, and, for a secret file, when they may read it. Mode and text come from one handle, so
 * the mode checked is that of the bytes read.
 */
export async function readAdminFile(file: string, secret: boolean): Promise<string | undefined> {
  const handle = await open(file, 'r').catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  });
  if (handle === undefined) return undefined;
  try {
    const { mode } = await handle.stat();
    if (secret && (mode & 0o077) !== 0) {
      throw new UserError(`${file} has mode ${octal(mode)}, open to group or others: set it to 0600 (chmod 600 ${file})`);
    }
    if ((mode & 0o022) !== 0) {
      throw new UserError(`${file} has mode ${octal(mode)}, writable by group or others: set it to 0644 or 0600 (chmod 644 ${file})`);
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}
