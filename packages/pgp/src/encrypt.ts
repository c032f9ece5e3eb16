import { randomBytes } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import { RecipientKeyError } from '@airlock/errors';
import { ArmorEncoder } from './armor.ts';
import { checkProfile, type MessageProfile, type RecipientKey, sessionCipher } from './keys.ts';
import { Seipdv1Encryptor } from './seipd.ts';
import type { SigningKey } from './signing.ts';
import { webStreamFrom } from './streams.ts';

export interface EncryptOptions {
  /** ASCII armor instead of binary packets. Default false. */
  armor?: boolean;
  /** The name recorded in the literal data packet. Default empty. */
  filename?: string;
  /** The time keys are validated at and the literal packet is stamped with. Default now. */
  date?: Date;
  /** Message format. Default `rfc4880`; `rfc9580` needs every recipient to advertise SEIPDv2. */
  profile?: MessageProfile;
  /** Sign as well as encrypt (one-pass signature, still streamed). */
  signingKey?: SigningKey;
  /**
   * Hands each plaintext chunk back once it is copied and no longer referenced, for a source that
   * lends its buffers (see `Seipdv1Options.releaseChunk`). Only the node:crypto path calls it;
   * openpgp.js's streams may keep chunks, so signed and RFC 9580 messages never release one.
   */
  releaseChunk?: (chunk: Uint8Array) => void;
}

/**
 * No compression, which would turn message size into a side channel on the plaintext's content,
 * and v4 keys only.
 */
const MESSAGE_CONFIG: openpgp.PartialConfig = {
  aeadProtect: false,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
  v6Keys: false,
};

/**
 * openpgp.js picks SEIPDv2 on its own as soon as every key advertises it. For RFC 4880 output a
 * session key without an AEAD algorithm pins SEIPDv1 (with MDC), whatever the keys say. The cipher
 * is the one the key inspection announced (`sessionCipher`).
 */
function rfc4880SessionKey(recipients: readonly RecipientKey[]): openpgp.SessionKey {
  return sessionCipher(recipients) === 'aes256' ? { data: randomBytes(32), algorithm: 'aes256' } : { data: randomBytes(16), algorithm: 'aes128' };
}

/**
 * Encrypts (and optionally signs) a plaintext stream to every recipient and returns the ciphertext
 * as a Node stream. The whole path is streamed with backpressure, so memory does not grow with the
 * input, and an error on the input errors the output (never a silently truncated ciphertext).
 *
 * An unsigned RFC 4880 message, the agent's usual case, has its bulk written by node:crypto in
 * large frames (`Seipdv1Encryptor`); openpgp.js makes its session key packets. Signed and RFC 9580
 * messages go through openpgp.js's own streaming.
 */
export async function encryptStream(
  plaintext: Readable,
  recipients: RecipientKey[],
  options: EncryptOptions = {},
): Promise<Readable> {
  if (recipients.length === 0) throw new RecipientKeyError('no recipient keys given');
  const profile = options.profile ?? 'rfc4880';
  checkProfile(recipients, profile);
  const date = options.date ?? new Date();
  if (profile === 'rfc4880' && options.signingKey === undefined) return encryptRfc4880(plaintext, recipients, date, options);
  const input = webStreamFrom(plaintext);
  const message = await openpgp.createMessage({
    binary: input,
    format: 'binary',
    date,
    ...(options.filename === undefined ? {} : { filename: options.filename }),
  });
  const common = {
    message,
    encryptionKeys: recipients.map((recipient) => recipient.key),
    date,
    config: MESSAGE_CONFIG,
    ...(profile === 'rfc4880' ? { sessionKey: rfc4880SessionKey(recipients) } : {}),
    ...(options.signingKey === undefined ? {} : { signingKeys: options.signingKey.key }),
  };
  const output: ReadableStream<Uint8Array> | ReadableStream<string> = options.armor
    ? await openpgp.encrypt({ ...common, format: 'armored' })
    : await openpgp.encrypt({ ...common, format: 'binary' });
  // The DOM and node:stream/web declarations of ReadableStream differ only in typing; this is the boundary.
  return Readable.fromWeb(output as NodeWebReadableStream<Uint8Array | string>);
}

/** PKESK v3 packets from openpgp.js, then a SEIPDv1 packet from node:crypto; no compression, as above. */
async function encryptRfc4880(plaintext: Readable, recipients: RecipientKey[], date: Date, options: EncryptOptions): Promise<Readable> {
  const algorithm = sessionCipher(recipients);
  const sessionKey = randomBytes(algorithm === 'aes256' ? 32 : 16);
  const sessionKeyPackets = await openpgp.encryptSessionKey({
    data: sessionKey,
    algorithm,
    encryptionKeys: recipients.map((recipient) => recipient.key),
    date,
    config: MESSAGE_CONFIG,
    format: 'binary',
  });
  const encryptor = new Seipdv1Encryptor({
    sessionKeyPackets,
    sessionKey,
    algorithm,
    filename: options.filename ?? '',
    date,
    releaseChunk: options.releaseChunk,
  });
  // The pipeline errors the output when the input fails, and destroys the input when the output is
  // destroyed; its callback only has to exist, since the reader of the output sees the error.
  const ignore = (): void => undefined;
  return options.armor ? pipeline(plaintext, encryptor, new ArmorEncoder(), ignore) : pipeline(plaintext, encryptor, ignore);
}
