/** The raw facts of one request that authentication and the audit trail need, before the caller is known. */
export interface RequestFacts {
  method: string;
  /** Path and query exactly as received, for signature checks. */
  pathAndQuery: string;
  headers: Headers;
  /** The raw body bytes, for signature checks. */
  body: Uint8Array;
  sourceIp: string | null;
}
