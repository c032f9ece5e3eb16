/**
 * The agent's identity on disk: `agent.json` (ids and the control plane URL) and `agent.key`, the
 * Ed25519 secret key, written with mode 0600 and never sent anywhere.
 */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { type AgentKeyPair, keyPairFromSecretKey } from '@airlock/identity';
import { ConflictError, UserError } from '@airlock/errors';

const identitySchema = z.strictObject({
  agentId: z.uuid(),
  tenantId: z.uuid(),
  controlPlaneUrl: z.url(),
  enrolledAt: z.iso.datetime(),
});
export type AgentIdentity = z.infer<typeof identitySchema>;

const files = (dataDir: string) => ({ identity: path.join(dataDir, 'agent.json'), key: path.join(dataDir, 'agent.key') });

export async function saveKey(dataDir: string, keyPair: AgentKeyPair): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = files(dataDir).key;
  try {
    // `wx`: never overwrite an existing identity's key.
    await writeFile(file, `${Buffer.from(keyPair.secretKey).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'EEXIST') {
      throw new ConflictError(`${file} exists: this agent is already enrolled (remove the data directory to enroll again)`);
    }
    throw error;
  }
  await chmod(file, 0o600);
}

export async function saveIdentity(dataDir: string, identity: AgentIdentity): Promise<void> {
  await writeFile(files(dataDir).identity, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
}

export async function loadIdentity(dataDir: string): Promise<{ identity: AgentIdentity; keyPair: AgentKeyPair }> {
  const { identity: identityFile, key: keyFile } = files(dataDir);
  let identityText: string;
  let keyText: string;
  try {
    [identityText, keyText] = await Promise.all([readFile(identityFile, 'utf8'), readFile(keyFile, 'utf8')]);
  } catch {
    throw new UserError(`no agent identity in ${dataDir}: run \`airlock-agent enroll\` first`);
  }
  const mode = (await stat(keyFile)).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new UserError(`${keyFile} is readable by others (mode ${mode.toString(8)}): chmod 600 it`);
  const parsed = identitySchema.safeParse(JSON.parse(identityText));
  if (!parsed.success) throw new UserError(`${identityFile} is damaged: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const secretKey = Buffer.from(keyText.trim(), 'base64');
  if (secretKey.length !== 64) throw new UserError(`${keyFile} is damaged`);
  return { identity: parsed.data, keyPair: keyPairFromSecretKey(new Uint8Array(secretKey)) };
}
