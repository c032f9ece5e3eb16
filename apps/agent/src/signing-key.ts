/**
 * The agent's OpenPGP signing key: `<dataDir>/signing-key.asc`, a v4 Ed25519 secret key without a
 * passphrase (the agent must use it unattended), written with mode 0600 and never sent anywhere.
 * Only its public half is ever printed, for partners to verify what the agent signed.
 */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConflictError, UserError } from '@airlock/errors';
import { generateSigningKey, readSigningKey, type SigningKey } from '@airlock/pgp';
import { errnoCode } from './files.ts';

export function signingKeyFile(dataDir: string): string {
  return path.join(dataDir, 'signing-key.asc');
}

/** Creates the key; refuses to replace an existing one, which partners may already trust. */
export async function createSigningKey(dataDir: string, name = `Airlock agent on ${os.hostname()}`): Promise<SigningKey> {
  const file = signingKeyFile(dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const armored = await generateSigningKey(name);
  try {
    // `wx`: never overwrite a key another process just wrote.
    await writeFile(file, armored, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') throw new ConflictError(`${file} exists: this agent already has a signing key`);
    throw error;
  }
  await chmod(file, 0o600);
  return readSigningKey(armored);
}

/** Loads the key, or undefined when there is none; refuses one others can read. */
export async function loadSigningKey(dataDir: string): Promise<SigningKey | undefined> {
  const file = signingKeyFile(dataDir);
  let mode: number;
  try {
    mode = (await stat(file)).mode & 0o777;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  if ((mode & 0o077) !== 0) throw new UserError(`${file} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  return readSigningKey(await readFile(file, 'utf8'));
}

/** The key, created on first use. */
export async function signingKeyFor(dataDir: string): Promise<SigningKey> {
  const existing = await loadSigningKey(dataDir);
  if (existing) return existing;
  try {
    return await createSigningKey(dataDir);
  } catch (error) {
    // Another process created it first: use theirs.
    if (error instanceof ConflictError) {
      const created = await loadSigningKey(dataDir);
      if (created) return created;
    }
    throw error;
  }
}
