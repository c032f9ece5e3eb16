/**
 * Verifies signed agent requests: agent known and active, created time within the skew window,
 * signature over method, path and query, body digest, time and nonce, and the nonce unused.
 * The nonce is recorded only after the signature checks out, so nobody can burn an agent's nonces.
 * The caller passes the system scope: the agent is looked up by id before its tenant is known.
 */
import { AuthenticationError } from '@airlock/errors';
import { decodePublicKey, sha256Hex, verifySignature } from '@airlock/identity';
import { MAX_CLOCK_SKEW_SECONDS, NONCE_PATTERN, signedHeaders } from '@airlock/protocol';
import type { RequestFacts } from '../context.ts';
import type { Database, Queryable } from '../storage/database.ts';

export interface AgentPrincipal {
  kind: 'agent';
  agentId: string;
  tenantId: string;
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

export async function authenticateAgent(db: Queryable, request: RequestFacts, now: Date): Promise<AgentPrincipal> {
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

  const [agent] = await db.query<{ tenant_id: string; public_key: string; status: string }>(
    'SELECT tenant_id, public_key, status FROM agents WHERE id = $1',
    [claimed],
  );
  if (!agent) throw new AgentAuthError('unknown agent', claimed, null);
  if (agent.status !== 'active') throw new AgentAuthError('agent revoked', claimed, agent.tenant_id);

  const parts = {
    method: request.method,
    pathAndQuery: request.pathAndQuery,
    bodySha256: sha256Hex(request.body),
    created,
    nonce,
    agentId: claimed,
  };
  if (!verifySignature(parts, signature, decodePublicKey(agent.public_key))) {
    throw new AgentAuthError('bad signature', claimed, agent.tenant_id);
  }
  const expiresAt = new Date((created + MAX_CLOCK_SKEW_SECONDS + 1) * 1000);
  const inserted = await db.query(
    'INSERT INTO request_nonces (agent_id, tenant_id, nonce, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1',
    [claimed, agent.tenant_id, nonce, expiresAt],
  );
  if (inserted.length === 0) throw new AgentAuthError('replayed', claimed, agent.tenant_id);
  await db.query('UPDATE agents SET last_seen_at = $1 WHERE id = $2', [now, claimed]);
  return { kind: 'agent', agentId: claimed, tenantId: agent.tenant_id };
}

/** Forgets nonces whose window has passed; a replay of them fails the time check instead. Every tenant's: system work. */
export async function pruneNonces(db: Database, now: Date): Promise<void> {
  await db.forSystem().query('DELETE FROM request_nonces WHERE expires_at < $1', [now]);
}
