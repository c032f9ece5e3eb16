/**
 * Rotating the agent's Ed25519 key without re-enrolling. The new key is written to
 * `agent.key.pending` (0600, fsynced) BEFORE the control plane is asked, and replaces `agent.key`
 * only after the control plane accepted it. A crash in between leaves both keys on disk; the next
 * start asks the control plane which one it holds (`settleKeys`), so the agent never loses the
 * only key that works.
 */
import { AuthenticationError, OperationalError, remoteErrorClass } from '@airlock/errors';
import { type AgentKeyPair, encodeKey, generateKeyPair, keyRotationProof } from '@airlock/identity';
import type { ControlPlaneClient } from './control-channel.ts';
import { type AgentIdentity, discardPendingKey, loadIdentity, loadPendingKey, promotePendingKey, savePendingKey } from './identity-store.ts';

export type ClientFor = (keyPair: AgentKeyPair) => ControlPlaneClient;

/** Whether the control plane refused the request's credentials (as opposed to being unreachable). */
export function isUnauthorized(error: unknown): boolean {
  return remoteErrorClass(error) === 'authentication';
}

/** Whether the control plane accepts requests signed with `keyPair`; throws when it cannot tell. */
async function accepted(clientFor: ClientFor, keyPair: AgentKeyPair, probe: (client: ControlPlaneClient) => Promise<unknown>): Promise<boolean> {
  try {
    await probe(clientFor(keyPair));
    return true;
  } catch (error) {
    if (isUnauthorized(error)) return false;
    throw new OperationalError('the control plane did not answer whether it holds the pending key; try again', { cause: error });
  }
}

/**
 * The identity and the key the control plane holds. With a pending key on disk, the pending one is
 * tried first (a rotation whose answer was lost) and promoted if accepted; otherwise it is dropped.
 */
export async function settleKeys(
  dataDir: string,
  clientFor: (identity: AgentIdentity) => ClientFor,
  probe: (client: ControlPlaneClient) => Promise<unknown>,
): Promise<{ identity: AgentIdentity; keyPair: AgentKeyPair }> {
  const { identity, keyPair } = await loadIdentity(dataDir);
  const pending = await loadPendingKey(dataDir);
  if (!pending) return { identity, keyPair };
  const forIdentity = clientFor(identity);
  if (await accepted(forIdentity, pending, probe)) {
    await promotePendingKey(dataDir, pending);
    return { identity, keyPair: pending };
  }
  if (await accepted(forIdentity, keyPair, probe)) {
    await discardPendingKey(dataDir);
    return { identity, keyPair };
  }
  throw new AuthenticationError('the control plane accepts neither the current nor the pending key (is this agent revoked?)');
}

/**
 * Generates a new key, proves possession to the control plane over a request signed with the
 * current key, and makes it the agent's key once accepted. A refusal drops the new key; a lost
 * answer keeps it pending for `settleKeys`.
 */
export async function rotateKey(
  dataDir: string,
  identity: AgentIdentity,
  current: AgentKeyPair,
  clientFor: ClientFor,
): Promise<{ publicKey: string; rotatedAt: string }> {
  const next = generateKeyPair();
  await savePendingKey(dataDir, next);
  let rotatedAt: string;
  try {
    ({ rotatedAt } = await clientFor(current).agent.rotateKey.mutate(keyRotationProof(next, identity.agentId)));
  } catch (error) {
    // Refused outright, the server did not swap the key; anything else leaves the outcome unknown.
    const refused = remoteErrorClass(error);
    if (refused !== undefined && refused !== 'operational' && refused !== 'unexpected') {
      await discardPendingKey(dataDir);
      throw error;
    }
    throw new OperationalError('key rotation outcome unknown: the new key stays pending and the next start settles it', { cause: error });
  }
  await promotePendingKey(dataDir, next);
  return { publicKey: encodeKey(next.publicKey), rotatedAt };
}
