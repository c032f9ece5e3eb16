/** Small file helpers for the agent's data directory: atomic replacement and 0600 appends. */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';

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
