/**
 * The agent's identity on disk: `agent.json` (ids and the control plane URL) and `agent.key`, the
 * Ed25519 secret key, written with mode 0600 and never sent anywhere.
 */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { type AgentKeyPair, generateKeyPair, keyPairFromSecretKey } from '@airlock/identity';
import { ConflictError, UserError } from '@airlock/errors';

const identitySchema = z.strictObject({
  agentId: z.uuid(),
  tenantId: z.uuid(),
  controlPlaneUrl: z.url(),
  enrolledAt: z.iso.datetime(),
});
export type AgentIdentity = z.infer<typeof identitySchema>;

const files = (dataDir: string) => ({ identity: path.join(dataDir, 'agent.json'), key: path.join(dataDir, 'agent.key') });

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
  if (!parsed.success) throw new UserError(`${identityFile} is damaged: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return { identity: parsed.data, keyPair: await readKey(keyFile) };
}
