import { createHash, timingSafeEqual } from 'node:crypto';

/** The OpenSSH fingerprint form `SHA256:<base64, no padding>`, as `ssh-keygen -lf` prints it. */
export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** The SHA-256 fingerprint of a raw SSH public key blob (the wire form of the key). */
export function fingerprintOf(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Compares two fingerprints in constant time, so a probing server learns nothing from timing. */
export function fingerprintsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
