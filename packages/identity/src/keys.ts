/**
 * Agent identity: Ed25519 key pairs, request signing and verification. The private key never
 * leaves the agent's host; the control plane stores only the public key.
 *
 * Signing and verification use node:crypto (OpenSSL), tens of times faster than tweetnacl's pure
 * JavaScript; Ed25519 signatures are deterministic, so both produce the very same bytes
 * (`identity.test.ts` checks them against tweetnacl). Key generation and derivation stay on tweetnacl.
 * OpenSSL is the stricter of the two: it also refuses a signature whose S is not reduced modulo
 * the group order, which tweetnacl accepts but never produces, so nothing honest is refused.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import nacl from 'tweetnacl';
import { canonicalRequest, type SignedRequestParts, signedHeaders } from '@airlock/protocol';

export interface AgentKeyPair {
  /** 32 bytes. */
  publicKey: Uint8Array;
  /** 64 bytes (seed and public key), as tweetnacl keeps it. */
  secretKey: Uint8Array;
}

export function generateKeyPair(): AgentKeyPair {
  const pair = nacl.sign.keyPair();
  return { publicKey: pair.publicKey, secretKey: pair.secretKey };
}

export function keyPairFromSecretKey(secretKey: Uint8Array): AgentKeyPair {
  if (secretKey.length !== nacl.sign.secretKeyLength) throw new Error('an Ed25519 secret key is 64 bytes');
  return { publicKey: nacl.sign.keyPair.fromSecretKey(secretKey).publicKey, secretKey };
}

export function encodeKey(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}

export function decodePublicKey(text: string): Uint8Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== nacl.sign.publicKeyLength || bytes.toString('base64') !== text) {
    throw new Error('not a base64 Ed25519 public key');
  }
  return new Uint8Array(bytes);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function newNonce(): string {
  return randomBytes(18).toString('base64url');
}

/** The headers that authenticate one request. */
export function signRequest(
  keyPair: AgentKeyPair,
  request: { agentId: string; method: string; pathAndQuery: string; body: Uint8Array | string },
  now: Date = new Date(),
): Record<string, string> {
  const parts: SignedRequestParts = {
    method: request.method,
    pathAndQuery: request.pathAndQuery,
    bodySha256: sha256Hex(request.body),
    created: Math.floor(now.getTime() / 1000),
    nonce: newNonce(),
    agentId: request.agentId,
  };
  const signature = signDetached(Buffer.from(canonicalRequest(parts)), keyPair.secretKey);
  return {
    [signedHeaders.agent]: parts.agentId,
    [signedHeaders.created]: String(parts.created),
    [signedHeaders.nonce]: parts.nonce,
    [signedHeaders.signature]: Buffer.from(signature).toString('base64'),
  };
}

/** The DER header that turns a raw 32-byte Ed25519 public key into a SubjectPublicKeyInfo (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A verification key for node:crypto, or null when `raw` is not a 32-byte Ed25519 public key. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject | null {
  if (raw.length !== nacl.sign.publicKeyLength) return null;
  try {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
}

/** A key parsed once with `ed25519PublicKey` skips the DER parse on every verification. */
export type VerificationKey = Uint8Array | KeyObject;

function verifyEd25519(message: Uint8Array, signature: Uint8Array, publicKey: VerificationKey): boolean {
  if (signature.length !== nacl.sign.signatureLength) return false;
  const key = publicKey instanceof Uint8Array ? ed25519PublicKey(publicKey) : publicKey;
  if (key === null || key.asymmetricKeyType !== 'ed25519' || key.type !== 'public') return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

export function verifySignature(parts: SignedRequestParts, signatureBase64: string, publicKey: VerificationKey): boolean {
  return verifyEd25519(Buffer.from(canonicalRequest(parts)), Buffer.from(signatureBase64, 'base64'), publicKey);
}

/** An Ed25519 signature over `message`, for callers that sign their own formats (audit checkpoints). */
/** The DER header that turns a 32-byte Ed25519 seed into a PKCS #8 private key (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Each secret key parsed once: an agent signs every request with the same one. */
const privateKeys = new WeakMap<Uint8Array, KeyObject>();

function ed25519PrivateKey(secretKey: Uint8Array): KeyObject {
  let key = privateKeys.get(secretKey);
  if (key === undefined) {
    if (secretKey.length !== nacl.sign.secretKeyLength) throw new Error('an Ed25519 secret key is 64 bytes');
    key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, secretKey.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    privateKeys.set(secretKey, key);
  }
  return key;
}

export function signDetached(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, ed25519PrivateKey(secretKey)));
}

export function verifyDetached(message: Uint8Array, signature: Uint8Array, publicKey: VerificationKey): boolean {
  return verifyEd25519(message, signature, publicKey);
}
