/**
 * The control plane's Ed25519 signing key: it signs audit checkpoints (and, later, job envelopes).
 * Agents pin its public key, so the secret key stays in this object and is never logged or served.
 */
import { keyIdOf } from '@airlock/audit';
import { keyPairFromSecretKey, signDetached, verifyDetached } from '@airlock/identity';

export interface Signer {
  /** 32 bytes. */
  readonly publicKey: Uint8Array;
  /** First 16 hex digits of the SHA-256 of the public key. */
  readonly keyId: string;
  sign(message: Uint8Array): Uint8Array;
}

export function signerFromSecretKey(secretKey: Uint8Array): Signer {
  const pair = keyPairFromSecretKey(secretKey);
  return {
    publicKey: pair.publicKey,
    keyId: keyIdOf(pair.publicKey),
    sign: (message) => signDetached(message, pair.secretKey),
  };
}

/** The `verify` function `@airlock/audit` takes, for signatures made by `publicKey`. */
export function verifierFor(publicKey: Uint8Array): (message: Uint8Array, signature: Uint8Array) => boolean {
  return (message, signature) => verifyDetached(message, signature, publicKey);
}
