import * as openpgp from 'openpgp';
import type { PrivateKey } from 'openpgp';
import { UserError } from '@airlock/errors';

/** The agent's own signing key: it signs what the agent encrypts, so partners can tell who sent it. */
export interface SigningKey {
  /** Primary key fingerprint, uppercase hex. */
  readonly fingerprint: string;
  readonly key: PrivateKey;
  /** The public half, armored, for partners to import. */
  readonly armoredPublicKey: string;
}

/**
 * A new v4 Ed25519 (legacy encoding) signing key without a passphrase and without an encryption
 * subkey: it only ever signs. GnuPG 2.2 verifies its signatures. Returns the armored secret key.
 */
export async function generateSigningKey(name: string, date: Date = new Date()): Promise<string> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name }],
    subkeys: [],
    date,
    format: 'armored',
    config: { v6Keys: false },
  });
  return privateKey;
}

/** Parses an armored, unprotected secret signing key. Errors never quote the input. */
export async function readSigningKey(armored: string): Promise<SigningKey> {
  let key: PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch (error) {
    throw new UserError('the signing key is not a parsable armored OpenPGP secret key', { cause: error });
  }
  const fingerprint = key.getFingerprint().toUpperCase();
  if (!key.isDecrypted()) throw new UserError(`signing key ${fingerprint} is passphrase-protected; the agent cannot unlock it`);
  try {
    await key.getSigningKey();
  } catch (error) {
    throw new UserError(`signing key ${fingerprint} cannot sign (expired, revoked or no signing capability)`, { cause: error });
  }
  return { fingerprint, key, armoredPublicKey: key.toPublic().armor() };
}
