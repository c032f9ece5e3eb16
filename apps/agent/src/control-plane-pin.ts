/**
 * The control plane's signing key, pinned at enrollment: `<dataDir>/control-plane-key.json`. Work,
 * checkpoints and key rotations are accepted only when this key (or a successor it signed) signed
 * them, so a server that merely answers at the control plane's URL cannot direct the agent.
 */
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '@airlock/errors';
import { decodePublicKey, encodeKey, keyFingerprint } from '@airlock/identity';
import { readIfExists, replaceFile } from './files.ts';

const pinSchema = z.strictObject({
  publicKey: z.string(),
  fingerprint: z.string(),
  pinnedAt: z.iso.datetime(),
  /** The fingerprints this pin replaced, each through a rotation the previous key signed. */
  previous: z.array(z.string()).default([]),
});

export interface ControlPlanePin {
  readonly publicKey: Uint8Array;
  readonly fingerprint: string;
  readonly previous: readonly string[];
}

export const pinFile = (dataDir: string) => path.join(dataDir, 'control-plane-key.json');

export async function savePin(dataDir: string, publicKey: Uint8Array, previous: readonly string[] = [], now = new Date()): Promise<ControlPlanePin> {
  const fingerprint = keyFingerprint(publicKey);
  const record = { publicKey: encodeKey(publicKey), fingerprint, pinnedAt: now.toISOString(), previous: [...previous] };
  await replaceFile(pinFile(dataDir), `${JSON.stringify(record, null, 2)}\n`);
  return { publicKey, fingerprint, previous };
}

export async function loadPin(dataDir: string): Promise<ControlPlanePin> {
  const file = pinFile(dataDir);
  const text = await readIfExists(file);
  if (text === undefined) throw new UserError(`no pinned control-plane key in ${dataDir}: enroll again with --control-plane-key`);
  const parsed = pinSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new UserError(`${file} is damaged`);
  const publicKey = decodePublicKey(parsed.data.publicKey);
  // The file is local and trusted, but a hand edit that breaks the pair must not pass silently.
  if (keyFingerprint(publicKey) !== parsed.data.fingerprint) throw new UserError(`${file}: the key does not match its fingerprint`);
  return { publicKey, fingerprint: parsed.data.fingerprint, previous: parsed.data.previous };
}
