/**
 * The agent's identity on disk: `agent.json` (ids and the control plane URL) and `agent.key`, the
 * Ed25519 secret key, written with mode 0600 and never sent anywhere.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { type AgentKeyPair, generateKeyPair, keyPairFromSecretKey } from '@airlock/identity';
import { ConflictError, formatIssues, UserError } from '@airlock/errors';
import { proxySettingsSchema } from './egress.ts';

const identitySchema = z.strictObject({
  agentId: z.uuid(),
  tenantId: z.uuid(),
  controlPlaneUrl: z.url(),
  enrolledAt: z.iso.datetime(),
  /** How the control plane is reached: replaces HTTPS_PROXY, HTTP_PROXY and NO_PROXY when present. */
  proxy: proxySettingsSchema.optional(),
  /** PEM certificates trusted for the control plane's TLS besides the system's roots (an intercepting proxy's CA). */
  controlPlaneCaFile: z.string().min(1).optional(),
});
export type AgentIdentity = z.infer<typeof identitySchema>;

const files = (dataDir: string) => ({
  identity: path.join(dataDir, 'agent.json'),
  key: path.join(dataDir, 'agent.key'),
  /** A rotated key the control plane may or may not have accepted yet (see key-rotation.ts). */
  pendingKey: path.join(dataDir, 'agent.key.pending'),
});

/**
 * The key for enrollment: a new one, or the one a failed enrollment left behind, so that a retry
 * with a fresh token works. Refused once an identity exists.
 */
export async function keyForEnrollment(dataDir: string): Promise<AgentKeyPair> {
  const { identity, key } = files(dataDir);
  if (await exists(identity)) {
    throw new ConflictError(`${identity} exists: this agent is already enrolled (remove the data directory to enroll again)`);
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (await exists(key)) return readKey(key);
  const keyPair = generateKeyPair();
  // `wx`: never overwrite a key another process just wrote.
  await writeFile(key, `${Buffer.from(keyPair.secretKey).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(key, 0o600);
  return keyPair;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

async function readKey(keyFile: string): Promise<AgentKeyPair> {
  const mode = (await stat(keyFile)).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new UserError(`${keyFile} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  const secretKey = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64');
  if (secretKey.length !== 64) throw new UserError(`${keyFile} is damaged`);
  return keyPairFromSecretKey(new Uint8Array(secretKey));
}

export async function saveIdentity(dataDir: string, identity: AgentIdentity): Promise<void> {
  await writeFile(files(dataDir).identity, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
}

export async function loadIdentity(dataDir: string): Promise<{ identity: AgentIdentity; keyPair: AgentKeyPair }> {
  const { identity: identityFile, key: keyFile } = files(dataDir);
  let identityText: string;
  try {
    identityText = await readFile(identityFile, 'utf8');
  } catch {
    throw new UserError(`no agent identity in ${dataDir}: run \`airlock-agent enroll\` first`);
  }
  const parsed = identitySchema.safeParse(JSON.parse(identityText));
  if (!parsed.success) throw new UserError(`${identityFile} is damaged: ${formatIssues(parsed.error.issues)}`);
  return { identity: parsed.data, keyPair: await readKey(keyFile) };
}

/**
 * Writes a secret key so that `file` holds either the old bytes or the new ones, never a torn
 * mix, even across a crash: a 0600 temp file in the same directory, fsynced, renamed over
 * `file`, then the directory fsynced so the rename itself is durable.
 */
async function writeKeyAtomically(file: string, keyPair: AgentKeyPair): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(`${Buffer.from(keyPair.secretKey).toString('base64')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(path.dirname(file));
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The key a rotation in progress generated, or null. */
export async function loadPendingKey(dataDir: string): Promise<AgentKeyPair | null> {
  const { pendingKey } = files(dataDir);
  return (await exists(pendingKey)) ? readKey(pendingKey) : null;
}

export async function savePendingKey(dataDir: string, keyPair: AgentKeyPair): Promise<void> {
  await writeKeyAtomically(files(dataDir).pendingKey, keyPair);
}

/** The control plane accepted the pending key: it becomes the agent's key, atomically. */
export async function promotePendingKey(dataDir: string, expected: AgentKeyPair): Promise<void> {
  const { key, pendingKey } = files(dataDir);
  try {
    await rename(pendingKey, key);
  } catch (error) {
    // Another process of this agent (the daemon, or the CLI) promoted it first.
    const current = await readKey(key);
    if (Buffer.compare(Buffer.from(current.publicKey), Buffer.from(expected.publicKey)) === 0) return;
    throw error;
  }
  await syncDirectory(dataDir);
}

/** The control plane never took the pending key: forget it. */
export async function discardPendingKey(dataDir: string): Promise<void> {
  await rm(files(dataDir).pendingKey, { force: true });
  await syncDirectory(dataDir);
}
