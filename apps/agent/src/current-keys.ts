/** The agent's keys as the CLI's commands use them: clients that sign with a key, and the key the control plane holds now. */
import { type ControlPlaneClient, createAgentClient, reportedHostname } from './control-channel.ts';
import { AGENT_VERSION } from './daemon.ts';
import type { AgentIdentity } from './identity-store.ts';
import { type ClientFor, settleKeys } from './key-rotation.ts';

export const clientsFor =
  (identity: AgentIdentity, egressFetch?: typeof fetch): ClientFor =>
  (keyPair) =>
    createAgentClient(identity.controlPlaneUrl, identity.agentId, keyPair, egressFetch);
const heartbeat = (client: ControlPlaneClient) => client.agent.heartbeat.mutate({ version: AGENT_VERSION, hostname: reportedHostname() });

/** The identity and the key the control plane holds, finishing a rotation a crash interrupted. */
export const currentKeys = (dataDir: string, egressFetch?: typeof fetch) => settleKeys(dataDir, (identity) => clientsFor(identity, egressFetch), heartbeat);
