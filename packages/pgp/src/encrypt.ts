import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import { RecipientKeyError } from '@airlock/errors';
import type { RecipientKey } from './keys.ts';
import { webStreamFrom } from './streams.ts';

export interface EncryptOptions {
  /** ASCII armor instead of binary packets. Default false. */
  armor?: boolean;
  /** The name recorded in the literal data packet. Default empty. */
  filename?: string;
  /** The time keys are validated at and the literal packet is stamped with. Default now. */
  date?: Date;
}

/**
 * RFC 4880 output that GnuPG 2.2 reads: SEIPDv1 with MDC (no AEAD), and no compression, which
 * would also turn message size into a side channel on the plaintext's content.
 */
const MESSAGE_CONFIG: openpgp.PartialConfig = {
  aeadProtect: false,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
  v6Keys: false,
};

/**
 * Encrypts a plaintext stream to every recipient and returns the ciphertext as a Node stream. The
 * whole path is streamed with backpressure, so memory does not grow with the input, and an error
 * on the input errors the output (never a silently truncated ciphertext).
 */
export async function encryptStream(
  plaintext: Readable,
  recipients: RecipientKey[],
  options: EncryptOptions = {},
): Promise<Readable> {
  if (recipients.length === 0) throw new RecipientKeyError('no recipient keys given');
  const date = options.date ?? new Date();
  const input = webStreamFrom(plaintext);
  const message = await openpgp.createMessage({
    binary: input,
    format: 'binary',
    date,
    ...(options.filename === undefined ? {} : { filename: options.filename }),
  });
  const encryptionKeys = recipients.map((recipient) => recipient.key);
  const config = MESSAGE_CONFIG;
  const output: ReadableStream<Uint8Array> | ReadableStream<string> = options.armor
    ? await openpgp.encrypt({ message, encryptionKeys, date, config, format: 'armored' })
    : await openpgp.encrypt({ message, encryptionKeys, date, config, format: 'binary' });
  // The DOM and node:stream/web declarations of ReadableStream differ only in typing; this is the boundary.
  return Readable.fromWeb(output as NodeWebReadableStream<Uint8Array | string>);
}
