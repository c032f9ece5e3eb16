/**
 * Verifies signed agent requests: agent known and active, created time within the skew window,
 * signature over method, path and query, body digest, time and nonce, and the nonce unused.
 * The nonce is recorded only after the signature checks out, so nobody can burn an agent's nonces.
 * The caller passes the system scope: the agent is looked up by id before its tenant is known.
 *
 * A signed request costs one statement when this process has the agent's key cached: the nonce
 * claim, which also checks that the agent is still active with that key, records `last_seen_at`
 * and counts the request against the agent's shared rate limit.
 */
import type { KeyObject } from 'node:crypto';
import { AuthenticationError } from '@airlock/errors';
import { decodePublicKey, ed25519PublicKey, sha256Hex, verifySignature } from '@airlock/identity';
import { MAX_CLOCK_SKEW_SECONDS, NONCE_PATTERN, type SignedRequestParts, signedHeaders } from '@airlock/protocol';
import { type Database, prepared, type Queryable } from '@airlock/storage';
import type { CounterCount, SharedCounter } from './counters.ts';
import type { RequestFacts } from './request-facts.ts';

export interface AgentPrincipal {
  kind: 'agent';
  agentId: string;
  tenantId: string;
  /** The base64 public key this request was verified with. */
  publicKey: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class AgentAuthError extends AuthenticationError {
  constructor(
    readonly reason: string,
    readonly claimedAgentId: string | null,
    readonly tenantId: string | null,
  ) {
    super(`agent request refused: ${reason}`);
  }
}

/** An active agent's key as this process last read it. */
interface CachedAgentKey {
  tenantId: string;
  /** Base64, as stored in `agents.public_key`. */
  publicKey: string;
  key: KeyObject;
}

/** Enough for a large fleet; past it the oldest entry goes, and that agent's next request reads its key again. */
const DEFAULT_MAX_AGENT_KEYS = 50_000;

/**
 * Active agents' parsed public keys, so a request's signature is checked before any round trip.
 * Entries need no expiry: an entry only picks the key to verify with, and the statement that
 * claims the nonce accepts the request only if the agent is still active with that very key, so a
 * revocation or rotation made by another replica takes effect on the next request all the same.
 * Revocation and rotation in this process drop the entry at once.
 */
export class AgentKeyCache {
  readonly #entries = new Map<string, CachedAgentKey>();

  constructor(readonly maxEntries: number = DEFAULT_MAX_AGENT_KEYS) {}

  get(agentId: string): CachedAgentKey | undefined {
    return this.#entries.get(agentId);
  }

  remember(agentId: string, entry: CachedAgentKey): void {
    this.#entries.delete(agentId);
    this.#entries.set(agentId, entry);
    if (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  forget(agentId: string): void {
    this.#entries.delete(agentId);
  }
}

type Claim = { outcome: 'claimed'; count: CounterCount | null } | { outcome: 'replayed' | 'stale' };

/** claimNonce's statement, which every signed request runs: prepared once per connection. */
const CLAIM_NONCE = prepared(
  `WITH agent AS (
     SELECT tenant_id FROM agents WHERE id = $1 AND status = 'active' AND public_key = $2
   ), claimed AS (
     INSERT INTO request_nonces (agent_id, tenant_id, nonce, expires_at)
     SELECT $1, tenant_id, $3, $4 FROM agent
     ON CONFLICT DO NOTHING RETURNING 1
   ), seen AS (
     UPDATE agents SET last_seen_at = $5 WHERE id = $1 AND EXISTS (SELECT 1 FROM claimed) RETURNING 1
   ), counted AS (
     SELECT * FROM airlock_count($6, $5, $7) WHERE $6::text IS NOT NULL AND EXISTS (SELECT 1 FROM claimed)
   )
   SELECT EXISTS (SELECT 1 FROM agent) AS current, EXISTS (SELECT 1 FROM claimed) AS claimed,
     (SELECT points FROM counted) AS points, (SELECT window_ends_at FROM counted) AS window_ends_at`,
);

/**
 * Claims the nonce and records `last_seen_at`, in one statement, only if the agent is still active
 * with `publicKey`; with `counter`, the same statement counts the request on that shared counter
 * (see rate-limits.ts). A replay neither claims, nor counts as being seen, nor counts.
 */
async function claimNonce(
  db: Queryable,
  claim: { agentId: string; publicKey: string; nonce: string; expiresAt: Date; now: Date },
  counter: SharedCounter | null,
): Promise<Claim> {
  const [row] = await db.query<{ current: boolean; claimed: boolean; points: number | null; window_ends_at: Date | null }>(
    CLAIM_NONCE,
    [claim.agentId, claim.publicKey, claim.nonce, claim.expiresAt, claim.now, counter?.key ?? null, counter?.durationSeconds ?? 0],
  );
  if (row?.claimed) {
    const count = row.points !== null && row.window_ends_at !== null ? { points: row.points, windowEndsAt: new Date(row.window_ends_at) } : null;
    return { outcome: 'claimed', count };
  }
  return { outcome: row?.current ? 'replayed' : 'stale' };
}

/** An authenticated agent, and the count its request took on the agent's shared rate limit (null when it was not counted here). */
export interface AuthenticatedAgent {
  principal: AgentPrincipal;
  count: CounterCount | null;
}

/**
 * `counterFor` names the shared counter the request is counted on once authenticated (the
 * agent's rate limit), so that count costs no statement of its own; null leaves counting to the caller.
 */
export async function authenticateAgent(
  db: Database,
  request: RequestFacts,
  now: Date,
  keys?: AgentKeyCache,
  counterFor: (agentId: string) => SharedCounter | null = () => null,
): Promise<AuthenticatedAgent> {
  const agentId = request.headers.get(signedHeaders.agent);
  const createdText = request.headers.get(signedHeaders.created);
  const nonce = request.headers.get(signedHeaders.nonce);
  const signature = request.headers.get(signedHeaders.signature);
  const claimed = agentId !== null && UUID.test(agentId) ? agentId : null;
  if (!agentId || !createdText || !nonce || !signature) throw new AgentAuthError('unsigned', claimed, null);
  if (!claimed) throw new AgentAuthError('malformed agent id', null, null);
  if (!NONCE_PATTERN.test(nonce)) throw new AgentAuthError('malformed nonce', claimed, null);
  const created = /^\d{1,12}$/.test(createdText) ? Number(createdText) : Number.NaN;
  const skew = Math.abs(now.getTime() / 1000 - created);
  if (!(skew <= MAX_CLOCK_SKEW_SECONDS)) throw new AgentAuthError('expired', claimed, null);

  const parts: SignedRequestParts = {
    method: request.method,
    pathAndQuery: request.pathAndQuery,
    bodySha256: sha256Hex(request.body),
    created,
    nonce,
    agentId: claimed,
  };
  const expiresAt = new Date((created + MAX_CLOCK_SKEW_SECONDS + 1) * 1000);
  const principal = (tenantId: string, publicKey: string): AgentPrincipal => ({ kind: 'agent', agentId: claimed, tenantId, publicKey });
  const counter = counterFor(claimed);

  const cached = keys?.get(claimed);
  if (cached && verifySignature(parts, signature, cached.key)) {
    const claim = await claimNonce(db, { agentId: claimed, publicKey: cached.publicKey, nonce, expiresAt, now }, counter);
    if (claim.outcome === 'claimed') return { principal: principal(cached.tenantId, cached.publicKey), count: claim.count };
    if (claim.outcome === 'replayed') throw new AgentAuthError('replayed', claimed, cached.tenantId);
    keys?.forget(claimed);
  }
  // Not cached, signed with another key, or revoked or rotated since (perhaps by another replica):
  // read the agent afresh, so the refusal names the same reason it always has. A bad signature
  // leaves the entry alone, so forged requests cannot push a real agent off the cached path.
  return db.transaction(async (tx) => {
    const [agent] = await tx.query<{ tenant_id: string; public_key: string; status: string }>(
      'SELECT tenant_id, public_key, status FROM agents WHERE id = $1',
      [claimed],
    );
    if (!agent || agent.status !== 'active') keys?.forget(claimed);
    if (!agent) throw new AgentAuthError('unknown agent', claimed, null);
    if (agent.status !== 'active') throw new AgentAuthError('agent revoked', claimed, agent.tenant_id);

    const key = ed25519PublicKey(decodePublicKey(agent.public_key));
    if (key === null || !verifySignature(parts, signature, key)) {
      const retired = await tx.query<{ public_key: string }>(
        'SELECT public_key FROM agent_retired_keys WHERE agent_id = $1 ORDER BY retired_at DESC LIMIT 8',
        [claimed],
      );
      const byRetiredKey = retired.some((row) => verifySignature(parts, signature, decodePublicKey(row.public_key)));
      throw new AgentAuthError(byRetiredKey ? 'retired key' : 'bad signature', claimed, agent.tenant_id);
    }
    const claim = await claimNonce(tx, { agentId: claimed, publicKey: agent.public_key, nonce, expiresAt, now }, counter);
    // Stale here means a revocation or rotation committed between the read above and the claim.
    if (claim.outcome !== 'claimed') throw new AgentAuthError(claim.outcome === 'replayed' ? 'replayed' : 'agent revoked', claimed, agent.tenant_id);
    keys?.remember(claimed, { tenantId: agent.tenant_id, publicKey: agent.public_key, key });
    return { principal: principal(agent.tenant_id, agent.public_key), count: claim.count };
  });
}

/** Forgets nonces whose window has passed; a replay of them fails the time check instead. Every tenant's: system work. */
export async function pruneNonces(db: Database, now: Date): Promise<void> {
  await db.forSystem().query('DELETE FROM request_nonces WHERE expires_at < $1', [now]);
}
