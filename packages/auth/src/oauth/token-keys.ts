/**
 * The keys that sign OAuth access tokens: Ed25519 (JWS `EdDSA`), kept apart from the control
 * plane's envelope and checkpoint key so that neither can be made to sign what the other means.
 * Each key is a PKCS#8 PEM held outside the database (a file, mode 0600, like the other keys).
 *
 * Rotation: start the server with the new key as current and the old one as previous. The old key
 * signs nothing more but stays in the JWKS, so tokens it signed verify until they expire (at most
 * `MAX_ACCESS_TOKEN_TTL_SECONDS`); after that the previous key can be dropped.
 */
import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type CryptoKey, exportJWK, importPKCS8, type JWK } from 'jose';

export const TOKEN_ALG = 'EdDSA';

export interface TokenKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface TokenKeys {
  /** Signs every new token. */
  current: TokenKey;
  /** Verify only: tokens they signed stay valid until they expire. */
  previous: readonly TokenKey[];
}

/** A fresh Ed25519 private key as PKCS#8 PEM, for a new key file. */
export function generateTokenKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export async function tokenKeyFromPem(pem: string): Promise<TokenKey> {
  const privateKey = await importPKCS8(pem, TOKEN_ALG, { extractable: true });
  const { kty, crv, x } = await exportJWK(privateKey);
  if (kty !== 'OKP' || crv !== 'Ed25519' || x === undefined) throw new Error('the OAuth token key must be an Ed25519 key');
  // Only the public members: the JWKS must never carry `d`.
  const publicJwk: JWK = { kty, crv, x };
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateKey, publicJwk: { ...publicJwk, kid, alg: TOKEN_ALG, use: 'sig' } };
}

export async function tokenKeysFromPems(current: string, previous: readonly string[] = []): Promise<TokenKeys> {
  return { current: await tokenKeyFromPem(current), previous: await Promise.all(previous.map(tokenKeyFromPem)) };
}

/** The JSON Web Key Set served at `/.well-known/jwks.json`: public halves only. */
export function jwksOf(keys: TokenKeys): { keys: JWK[] } {
  return { keys: [keys.current, ...keys.previous].map((key) => key.publicJwk) };
}
