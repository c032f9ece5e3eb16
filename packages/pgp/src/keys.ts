import * as openpgp from 'openpgp';
import type { AlgorithmInfo, PublicKey, Subkey } from 'openpgp';
import { RecipientKeyError } from '@airlock/errors';

/** A recipient key that passed policy, with the facts a receipt or the console shows about it. */
export interface RecipientKey {
  /** Primary key fingerprint, uppercase hex: what the local policy pins. */
  readonly fingerprint: string;
  /** Primary key id, uppercase hex. */
  readonly keyId: string;
  /** Fingerprint of the (sub)key the session key is encrypted to. */
  readonly encryptionFingerprint: string;
  /** Algorithm of the encryption (sub)key, e.g. `rsa`, `ecdh-curve25519`, `x25519`. */
  readonly algorithm: string;
  /** Key size, for algorithms where it varies (RSA, DSA, ElGamal). */
  readonly bits?: number;
  readonly created: Date;
  /** When the primary key or the encryption subkey expires, whichever is first; null if never. */
  readonly expires: Date | null;
  readonly userIds: string[];
  /** Whether the key advertises RFC 9580 AEAD encryption (SEIPDv2) in its features. */
  readonly supportsSeipdv2: boolean;
  /** Symmetric ciphers the key's owner prefers, best first (`openpgp.enums.symmetric` values). */
  readonly preferredSymmetricAlgorithms: readonly number[];
  readonly key: PublicKey;
}

/** RFC 9580 5.2.3.32: the Features flag for SEIPDv2 (openpgp's typings leave `enums.features` out). */
const SEIPDV2_FEATURE = 0x08;

/** Below this, a finite-field key is refused (NIST SP 800-131A). */
export const MIN_FINITE_FIELD_BITS = 2048;

const FINITE_FIELD = new Set<AlgorithmInfo['algorithm']>(['rsaEncryptSign', 'rsaEncrypt', 'rsaSign', 'dsa', 'elgamal']);

function algorithmName(info: AlgorithmInfo): string {
  switch (info.algorithm) {
    case 'rsaEncryptSign':
    case 'rsaEncrypt':
    case 'rsaSign':
      return 'rsa';
    case 'ecdh':
    case 'ecdsa':
    case 'eddsaLegacy': {
      const curve = info.curve === undefined ? 'unknown' : info.curve.replace(/Legacy$/, '').toLowerCase();
      return `${info.algorithm === 'eddsaLegacy' ? 'eddsa' : info.algorithm}-${curve}`;
    }
    default:
      return info.algorithm;
  }
}

function isWeak(info: AlgorithmInfo): boolean {
  return FINITE_FIELD.has(info.algorithm) && (info.bits === undefined || info.bits < MIN_FINITE_FIELD_BITS);
}

function describeStrength(info: AlgorithmInfo): string {
  return `${algorithmName(info)}${info.bits === undefined ? '' : ` ${info.bits}`}`;
}

/** Openpgp's expiry APIs answer with a Date, Infinity (never) or null (no valid self-signature). */
function expiryOf(value: Date | number | null): Date | null | 'invalid' {
  if (value === null) return 'invalid';
  if (value instanceof Date) return value;
  return null;
}

async function parseSingleKey(armored: string): Promise<PublicKey> {
  let keys: PublicKey[];
  try {
    keys = await openpgp.readKeys({ armoredKeys: armored });
  } catch (error) {
    // The parser's message may quote input; the input is a public key, but keep the error plain anyway.
    throw new RecipientKeyError('recipient key is not a parsable armored OpenPGP key', { cause: error });
  }
  const [key, ...more] = keys;
  if (key === undefined) throw new RecipientKeyError('recipient key block contains no key');
  if (more.length > 0) throw new RecipientKeyError(`recipient key block contains ${keys.length} keys; give one key per recipient`);
  return key;
}

/**
 * Parses one armored public key and applies the recipient policy: public only, v4, not revoked, not
 * expired at `now`, strong enough, and with a valid encryption-capable (sub)key. Every refusal is a
 * `RecipientKeyError` that names the fingerprint and the reason.
 */
export async function inspectRecipientKey(armored: string, now: Date = new Date()): Promise<RecipientKey> {
  const key = await parseSingleKey(armored);
  const fingerprint = key.getFingerprint().toUpperCase();
  const refuse = (reason: string, cause?: unknown): RecipientKeyError =>
    new RecipientKeyError(`recipient key ${fingerprint}: ${reason}`, cause === undefined ? undefined : { cause });

  // Secret key material has no business in a recipient list or in the policy that holds it.
  if (key.isPrivate()) throw refuse('is a private key; give the public key only');
  if (key.keyPacket.version !== 4) {
    throw refuse(`is a v${key.keyPacket.version} key; only v4 keys produce messages GnuPG 2.2 can read`);
  }
  if (await key.isRevoked(undefined, undefined, now)) throw refuse('is revoked');

  const primaryExpiry = expiryOf(await key.getExpirationTime());
  if (primaryExpiry === 'invalid') throw refuse('has no valid self-signature');
  if (primaryExpiry !== null && primaryExpiry.getTime() <= now.getTime()) {
    throw refuse(`expired on ${primaryExpiry.toISOString()}`);
  }
  if (key.getCreationTime().getTime() > now.getTime()) throw refuse('was created in the future');

  const primaryInfo = key.getAlgorithmInfo();
  if (isWeak(primaryInfo)) {
    throw refuse(`primary key ${describeStrength(primaryInfo)} is weaker than ${MIN_FINITE_FIELD_BITS} bits`);
  }

  let encryptionKey: PublicKey | Subkey;
  try {
    encryptionKey = await key.getEncryptionKey(undefined, now);
  } catch (error) {
    throw refuse('has no valid encryption-capable key or subkey (revoked, expired or missing)', error);
  }
  const info = encryptionKey.getAlgorithmInfo();
  if (isWeak(info)) throw refuse(`encryption key ${describeStrength(info)} is weaker than ${MIN_FINITE_FIELD_BITS} bits`);

  let expires = primaryExpiry;
  if (encryptionKey !== key) {
    const subkeyExpiry = expiryOf(await encryptionKey.getExpirationTime(now));
    if (subkeyExpiry instanceof Date && (expires === null || subkeyExpiry < expires)) expires = subkeyExpiry;
  }

  // Features and algorithm preferences of a v4 key live on its primary user's self-signature.
  let selfCertification: openpgp.SignaturePacket;
  try {
    selfCertification = (await key.getPrimaryUser(now)).selfCertification;
  } catch (error) {
    throw refuse('has no valid user ID self-signature', error);
  }
  const features = selfCertification.features?.[0] ?? 0;

  return {
    fingerprint,
    keyId: key.getKeyID().toHex().toUpperCase(),
    encryptionFingerprint: encryptionKey.getFingerprint().toUpperCase(),
    algorithm: algorithmName(info),
    ...(info.bits === undefined ? {} : { bits: info.bits }),
    created: key.getCreationTime(),
    expires,
    userIds: key.getUserIDs(),
    supportsSeipdv2: (features & SEIPDV2_FEATURE) !== 0,
    preferredSymmetricAlgorithms: selfCertification.preferredSymmetricAlgorithms ?? [],
    key,
  };
}

/** Inspects every key; refuses an empty list and the same key given twice. */
export async function loadRecipients(armoredKeys: string[], now: Date = new Date()): Promise<RecipientKey[]> {
  if (armoredKeys.length === 0) throw new RecipientKeyError('no recipient keys given');
  const recipients = await Promise.all(armoredKeys.map((armored) => inspectRecipientKey(armored, now)));
  const seen = new Set<string>();
  for (const recipient of recipients) {
    if (seen.has(recipient.fingerprint)) {
      throw new RecipientKeyError(`recipient key ${recipient.fingerprint}: listed more than once`);
    }
    seen.add(recipient.fingerprint);
  }
  return recipients;
}

/** The OpenPGP message format: RFC 4880 (SEIPDv1, GnuPG 2.2 reads it) or RFC 9580 (AEAD, SEIPDv2). */
export type MessageProfile = 'rfc4880' | 'rfc9580';

/**
 * RFC 9580 output is only for recipients that all said they read it: one that cannot would get a
 * file it cannot open. Call before any byte moves.
 */
export function checkProfile(recipients: readonly RecipientKey[], profile: MessageProfile): void {
  if (profile === 'rfc4880') return;
  const unable = recipients.filter((recipient) => !recipient.supportsSeipdv2);
  if (unable.length > 0) {
    throw new RecipientKeyError(
      `recipient key ${unable.map((r) => r.fingerprint).join(', ')}: does not advertise RFC 9580 AEAD (SEIPDv2); use profile rfc4880`,
    );
  }
}
