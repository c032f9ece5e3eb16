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
  /** What an admin should know before using the key, though it is accepted (e.g. the cipher it will get). */
  readonly warnings: readonly string[];
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

/**
 * RFC 9580 algorithms that a v4 key may technically carry but that nothing reading RFC 4880 knows:
 * GnuPG 2.2, Sequoia, rnp and others cannot decrypt a message to them. The legacy encodings
 * (ECDH on curve25519, algorithm 18; EdDSA legacy, algorithm 22) are what v4 keys use instead.
 */
const RFC9580_ONLY: ReadonlyMap<AlgorithmInfo['algorithm'], string> = new Map([
  ['x25519', 'X25519 (algorithm 25)'],
  ['x448', 'X448 (algorithm 26)'],
  ['ed25519', 'Ed25519 (algorithm 27)'],
  ['ed448', 'Ed448 (algorithm 28)'],
  ['pqc_mlkem_x25519', 'ML-KEM + X25519 (algorithm 105)'],
  ['pqc_mldsa_ed25519', 'ML-DSA + Ed25519 (algorithm 107)'],
]);

/** Why a (sub)key's algorithm is refused, or undefined when it is fine. `role` says which key it is. */
function algorithmProblem(info: AlgorithmInfo, version: number, role: string): string | undefined {
  const rfc9580 = RFC9580_ONLY.get(info.algorithm);
  if (rfc9580 !== undefined) {
    return `${role} uses ${rfc9580}, an RFC 9580 algorithm inside a v${version} key: GnuPG 2.2 and other RFC 4880 implementations cannot use it; ask for a key made with the legacy Curve25519 encoding (ECDH, algorithm 18), RSA or NIST P-256/384/521`;
  }
  switch (info.algorithm) {
    case 'dsa':
      return `${role} is DSA, which RFC 9580 deprecates and Airlock does not accept; ask for an RSA (at least ${MIN_FINITE_FIELD_BITS} bits), Curve25519 or NIST P-256/384/521 key`;
    case 'elgamal':
      return `${role} is ElGamal, which RFC 9580 deprecates and Airlock does not accept; ask for an RSA (at least ${MIN_FINITE_FIELD_BITS} bits), Curve25519 or NIST P-256/384/521 key`;
    case 'aedh':
    case 'aedsa':
      return `${role} uses ${info.algorithm}, an algorithm no OpenPGP standard defines`;
    default:
      break;
  }
  if (isWeak(info)) return `${role} ${describeStrength(info)} is weaker than ${MIN_FINITE_FIELD_BITS} bits`;
  if (info.curve === 'secp256k1') return `${role} uses curve secp256k1, which OpenPGP does not standardise`;
  return undefined;
}

/**
 * A config under which openpgp looks past algorithm and size, used only to find the subkey it
 * would have used and say what is wrong with it; encryption never uses it. Key methods take a full
 * config, unlike the top-level API, which merges a partial one into the defaults.
 */
const DIAGNOSTIC_CONFIG: openpgp.Config = {
  ...openpgp.config,
  minRSABits: 1,
  rejectPublicKeyAlgorithms: new Set(),
  rejectCurves: new Set(),
};

const CIPHER_NAMES: ReadonlyMap<number, string> = new Map([
  [openpgp.enums.symmetric.idea, 'IDEA'],
  [openpgp.enums.symmetric.tripledes, '3DES'],
  [openpgp.enums.symmetric.cast5, 'CAST5'],
  [openpgp.enums.symmetric.blowfish, 'Blowfish'],
  [openpgp.enums.symmetric.aes128, 'AES-128'],
  [openpgp.enums.symmetric.aes192, 'AES-192'],
  [openpgp.enums.symmetric.aes256, 'AES-256'],
  [openpgp.enums.symmetric.twofish, 'Twofish'],
]);

/**
 * The cipher of an RFC 4880 message: AES-256 when every recipient lists it, else AES-128, which
 * RFC 9580 makes mandatory for every implementation. Airlock never falls back to 3DES, CAST5 or
 * IDEA, whatever a key prefers: those are 64-bit block ciphers (Sweet32) or obsolete.
 */
export function sessionCipher(recipients: readonly Pick<RecipientKey, 'preferredSymmetricAlgorithms'>[]): 'aes256' | 'aes128' {
  return recipients.every((r) => r.preferredSymmetricAlgorithms.includes(openpgp.enums.symmetric.aes256)) ? 'aes256' : 'aes128';
}

/** A key that lists neither AES-256 nor AES-128 still gets AES-128; the admin is told so rather than left to find out. */
function cipherWarning(preferred: readonly number[]): string | undefined {
  const { aes128, aes256 } = openpgp.enums.symmetric;
  if (preferred.includes(aes256) || preferred.includes(aes128)) return undefined;
  const listed = preferred.map((id) => CIPHER_NAMES.get(id) ?? `cipher ${id}`).join(', ');
  return `${preferred.length === 0 ? 'states no cipher preferences' : `prefers only ${listed}`}; Airlock never uses 3DES, CAST5 or IDEA and will encrypt to it with AES-128, which RFC 9580 requires every OpenPGP implementation to support`;
}

/** Openpgp's expiry APIs answer with a Date, Infinity (never) or null (no valid self-signature). */
function expiryOf(value: Date | number | null): Date | null | 'invalid' {
  if (value === null) return 'invalid';
  if (value instanceof Date) return value;
  return null;
}

const ARMOR_BEGIN = /^-----BEGIN PGP ([A-Z0-9 ,/]+)-----$/;

/**
 * Every armor block in the text, each from its BEGIN line to the END line of the same kind. openpgp
 * reads only the first block of a text and ignores the rest, so a file made with `cat a.asc b.asc`
 * would silently lose its second key; a block without its END line is refused for the same reason.
 * One pass over the lines, so a hostile paste cannot make it slow.
 */
function armorBlocks(text: string): string[] {
  const blocks: string[] = [];
  let open: { end: string; lines: string[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const begin = ARMOR_BEGIN.exec(line);
    if (open === undefined) {
      if (begin) open = { end: `-----END PGP ${begin[1] ?? ''}-----`, lines: [line] };
      continue;
    }
    if (begin) throw new RecipientKeyError('recipient key text has an armor block without its matching END line');
    open.lines.push(line);
    if (line === open.end) {
      blocks.push(open.lines.join('\n'));
      open = undefined;
    }
  }
  if (open !== undefined) throw new RecipientKeyError('recipient key text has an armor block without its matching END line');
  return blocks.length === 0 ? [text] : blocks;
}

async function parseKeys(armored: string): Promise<PublicKey[]> {
  const keys: PublicKey[] = [];
  for (const block of armorBlocks(armored)) {
    try {
      keys.push(...(await openpgp.readKeys({ armoredKeys: block })));
    } catch (error) {
      // The parser's message may quote input; the input is a public key, but keep the error plain anyway.
      throw new RecipientKeyError('recipient key is not a parsable armored OpenPGP key', { cause: error });
    }
  }
  if (keys.length === 0) throw new RecipientKeyError('recipient key block contains no key');
  return keys;
}

/**
 * Parses every key in an armored text (several armor blocks, several keys per block) and applies
 * the recipient policy to each. One refused key refuses the whole text: a file is never silently
 * trimmed to the keys that passed. The same key twice in one text is refused too.
 */
export async function inspectRecipientKeys(armored: string, now: Date = new Date()): Promise<RecipientKey[]> {
  const recipients: RecipientKey[] = [];
  for (const key of await parseKeys(armored)) recipients.push(await checkKey(key, now));
  refuseDuplicates(recipients);
  return recipients;
}

/** Like `inspectRecipientKeys`, for a text that must hold exactly one key; a refusal lists every key found. */
export async function inspectRecipientKey(armored: string, now: Date = new Date()): Promise<RecipientKey> {
  const keys = await parseKeys(armored);
  const [key, ...more] = keys;
  if (key === undefined) throw new RecipientKeyError('recipient key block contains no key');
  if (more.length > 0) {
    const fingerprints = keys.map((k) => k.getFingerprint().toUpperCase()).join(', ');
    throw new RecipientKeyError(`recipient key block contains ${keys.length} keys (${fingerprints}); give one key per recipient`);
  }
  return checkKey(key, now);
}

function refuseDuplicates(recipients: readonly RecipientKey[]): void {
  const seen = new Set<string>();
  for (const recipient of recipients) {
    if (seen.has(recipient.fingerprint)) {
      throw new RecipientKeyError(`recipient key ${recipient.fingerprint}: listed more than once`);
    }
    seen.add(recipient.fingerprint);
  }
}

/**
 * The recipient policy for one key: public only, v4, algorithms that RFC 4880 readers know and that
 * are strong enough, a user ID, not revoked, not expired at `now`, and a valid encryption-capable
 * (sub)key. Every refusal is a `RecipientKeyError` that names the fingerprint and the real reason.
 */
async function checkKey(key: PublicKey, now: Date): Promise<RecipientKey> {
  const fingerprint = key.getFingerprint().toUpperCase();
  const refuse = (reason: string, cause?: unknown): RecipientKeyError =>
    new RecipientKeyError(`recipient key ${fingerprint}: ${reason}`, cause === undefined ? undefined : { cause });

  // Secret key material has no business in a recipient list or in the policy that holds it.
  if (key.isPrivate()) throw refuse('is a private key; give the public key only');
  if (key.keyPacket.version !== 4) {
    throw refuse(`is a v${key.keyPacket.version} key; only v4 keys produce messages GnuPG 2.2 can read`);
  }
  // Before any signature is verified: openpgp would fail those for DSA or weak keys and hide the reason.
  const primaryProblem = algorithmProblem(key.getAlgorithmInfo(), key.keyPacket.version, 'primary key');
  if (primaryProblem !== undefined) throw refuse(primaryProblem);
  // GnuPG will not import a key without one, and a v4 key's expiry and preferences live on its self-signature.
  if (key.users.every((user) => user.userID === null)) throw refuse('has no user ID; GnuPG and other implementations need a self-signed user ID');
  if (await key.isRevoked(undefined, undefined, now)) throw refuse('is revoked');

  const primaryExpiry = expiryOf(await key.getExpirationTime());
  if (primaryExpiry === 'invalid') throw refuse('has no valid user ID self-signature');
  if (primaryExpiry !== null && primaryExpiry.getTime() <= now.getTime()) {
    throw refuse(`expired on ${primaryExpiry.toISOString()}`);
  }
  if (key.getCreationTime().getTime() > now.getTime()) throw refuse('was created in the future');

  const encryptionKey = await encryptionKeyOf(key, now, refuse);
  const info = encryptionKey.getAlgorithmInfo();

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
  const preferredSymmetricAlgorithms = selfCertification.preferredSymmetricAlgorithms ?? [];
  const warning = cipherWarning(preferredSymmetricAlgorithms);

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
    preferredSymmetricAlgorithms,
    warnings: warning === undefined ? [] : [warning],
    key,
  };
}

/**
 * The (sub)key openpgp will encrypt to, checked against the algorithm policy. When openpgp finds
 * none, it is asked again with its algorithm and size checks off, so the refusal can name the real
 * reason (an RSA 1024 or ElGamal subkey) instead of a generic "no encryption key".
 */
async function encryptionKeyOf(key: PublicKey, now: Date, refuse: (reason: string, cause?: unknown) => RecipientKeyError): Promise<PublicKey | Subkey> {
  const role = (candidate: PublicKey | Subkey) =>
    candidate === key ? 'encryption key' : `encryption subkey ${candidate.getFingerprint().toUpperCase()}`;
  let encryptionKey: PublicKey | Subkey;
  try {
    encryptionKey = await key.getEncryptionKey(undefined, now);
  } catch (error) {
    const candidate = await key.getEncryptionKey(undefined, now, undefined, DIAGNOSTIC_CONFIG).catch(() => undefined);
    const problem = candidate === undefined ? undefined : algorithmProblem(candidate.getAlgorithmInfo(), key.keyPacket.version, role(candidate));
    if (problem !== undefined) throw refuse(problem, error);
    throw refuse('has no valid encryption-capable key or subkey (revoked, expired or missing)', error);
  }
  const problem = algorithmProblem(encryptionKey.getAlgorithmInfo(), key.keyPacket.version, role(encryptionKey));
  if (problem !== undefined) throw refuse(problem);
  return encryptionKey;
}

/** A receipt lists at most this many recipient fingerprints (packages/protocol, custody). */
export const MAX_RECIPIENTS = 16;

/**
 * Inspects every key of every armored text, in order: a text with several keys gives several
 * recipients, each checked. Refuses an empty list, the same key given twice and more keys than a
 * receipt can name.
 */
export async function loadRecipients(armoredKeys: string[], now: Date = new Date()): Promise<RecipientKey[]> {
  if (armoredKeys.length === 0) throw new RecipientKeyError('no recipient keys given');
  const recipients = (await Promise.all(armoredKeys.map((armored) => inspectRecipientKeys(armored, now)))).flat();
  refuseDuplicates(recipients);
  if (recipients.length > MAX_RECIPIENTS) {
    throw new RecipientKeyError(`${recipients.length} recipient keys given; at most ${MAX_RECIPIENTS} are allowed`);
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
