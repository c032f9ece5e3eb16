/**
 * How alert webhooks are signed, and the check a receiver runs. Receivers may copy
 * `verifyAlertSignature` as is: it needs only node:crypto.
 *
 * Each request carries
 *   X-Airlock-Timestamp: <unix seconds>
 *   X-Airlock-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 * The timestamp is signed with the body so a captured request cannot be replayed later than the
 * receiver's tolerance; compare in constant time and reject anything outside the tolerance.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-airlock-signature';
export const TIMESTAMP_HEADER = 'x-airlock-timestamp';
export const DELIVERY_HEADER = 'x-airlock-delivery';

export function signAlertBody(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`;
}

export interface SignatureCheck {
  secret: string;
  /** The raw request body, exactly as received. */
  body: string;
  timestamp: string | null | undefined;
  signature: string | null | undefined;
  now?: Date;
  /** Largest accepted distance between the timestamp and now, in seconds. Default 300. */
  toleranceSeconds?: number;
}

export function verifyAlertSignature(check: SignatureCheck): boolean {
  const { timestamp, signature } = check;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return false;
  const seconds = Number(timestamp);
  const now = Math.floor((check.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - seconds) > (check.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signAlertBody(check.secret, seconds, check.body), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given);
}
