/**
 * The agent's only link to the control plane: outbound HTTPS calls, each signed with the agent's
 * Ed25519 key over method, path and query, body digest, time and nonce. There is no listener.
 */
import os from 'node:os';
import { createTRPCClient, httpLink } from '@trpc/client';
import type { AppRouter } from '@airlock/api';
import { type AgentKeyPair, signRequest } from '@airlock/identity';
import { fetchNamingFailures, UnexpectedError } from '@airlock/errors';
import { escapeUnprintable, truncateText } from '@airlock/protocol';

export type ControlPlaneClient = ReturnType<typeof createAgentClient>;

function requestUrl(input: string | URL | Request): URL {
  if (typeof input === 'string') return new URL(input);
  return input instanceof URL ? input : new URL(input.url);
}

// A refused connection or an unresolvable name says which URL, in the log and at the CLI.
const namingFailures = fetchNamingFailures();

export function createAgentClient(controlPlaneUrl: string, agentId: string, keyPair: AgentKeyPair) {
  const signedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = requestUrl(input);
    const body = init?.body ?? '';
    if (typeof body !== 'string') throw new UnexpectedError('only string bodies are signed');
    const headers = new Headers(init?.headers);
    const signature = signRequest(keyPair, { agentId, method: init?.method ?? 'GET', pathAndQuery: `${url.pathname}${url.search}`, body });
    for (const [name, value] of Object.entries(signature)) headers.set(name, value);
    return namingFailures(url, { ...init, headers });
  };
  return createTRPCClient<AppRouter>({ links: [httpLink({ url: `${controlPlaneUrl}/trpc`, fetch: signedFetch })] });
}

/** Enrollment is the one unsigned call: the one-time token is the credential. */
export function createEnrollmentClient(controlPlaneUrl: string) {
  return createTRPCClient<AppRouter>({ links: [httpLink({ url: `${controlPlaneUrl}/trpc`, fetch: namingFailures })] });
}

/**
 * The host name as the agent reports it: escaped and cut to what the control plane accepts, since
 * a name with control characters would be refused on every heartbeat and the agent would go dark.
 */
export function reportedHostname(name = os.hostname()): string {
  return truncateText(escapeUnprintable(name), 255) || 'unknown';
}
