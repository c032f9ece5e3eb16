/**
 * The signed-request format. Every agent request after enrollment carries these headers, and the
 * signature covers the canonical string below, so that the method, path and query, body, time and
 * nonce cannot be changed or replayed without detection.
 */
export const SIGNATURE_VERSION = 'airlock-v1';

export const signedHeaders = {
  agent: 'x-airlock-agent',
  created: 'x-airlock-created',
  nonce: 'x-airlock-nonce',
  signature: 'x-airlock-signature',
} as const;

/** How far a request's created time may be from the server's clock, either way. */
export const MAX_CLOCK_SKEW_SECONDS = 300;

export interface SignedRequestParts {
  method: string;
  /** The request target: path and query exactly as sent (`/trpc/agent.heartbeat?batch=1`). */
  pathAndQuery: string;
  /** Lowercase hex SHA-256 of the raw body (of the empty string when there is none). */
  bodySha256: string;
  /** Unix seconds. */
  created: number;
  /** 16 to 64 characters of base64url. */
  nonce: string;
  agentId: string;
}

export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

export function canonicalRequest(parts: SignedRequestParts): string {
  return [
    SIGNATURE_VERSION,
    parts.method.toUpperCase(),
    parts.pathAndQuery,
    parts.bodySha256,
    String(parts.created),
    parts.nonce,
    parts.agentId,
  ].join('\n');
}
